"""DiffuSeq's joint sequence x ⊕ y (diffuser_mt.joint_sequence) and MBR selection (diffuser_mt.metrics)."""
from __future__ import annotations

import pytest
import torch

from diffuser_mt.joint_sequence import joint_batch, read_target, unpadded
from diffuser_mt.metrics import mbr_select

SEP, FILL = 2, 2


def test_rows_are_source_separator_target_and_fillers_of_the_fixed_length():
    batch = joint_batch([[5, 6], [7]], [[8, 9, 10], [11]], length=8, separator=SEP, filler=FILL)
    assert batch.tokens.tolist() == [[5, 6, SEP, 8, 9, 10, FILL, FILL], [7, SEP, 11, FILL, FILL, FILL, FILL, FILL]]
    assert batch.target_mask.tolist() == [[False] * 3 + [True] * 5, [False] * 2 + [True] * 6]
    assert batch.truncated == 0


def test_decoding_rows_hold_fillers_in_the_whole_target_region():
    batch = joint_batch([[5, 6, 7]], None, length=6, separator=SEP, filler=FILL)
    assert batch.tokens.tolist() == [[5, 6, 7, SEP, FILL, FILL]]
    assert batch.target_mask.tolist() == [[False] * 4 + [True] * 2]


@pytest.mark.parametrize("target_length, kept", [(3, 3), (4, 3), (9, 3)])
def test_a_long_target_is_cut_so_that_one_filler_ends_it(target_length, kept):
    target = list(range(10, 10 + target_length))
    batch = joint_batch([[5]], [target], length=6, separator=SEP, filler=FILL)
    assert batch.tokens[0].tolist() == [5, SEP, *target[:kept], FILL]
    assert batch.truncated == int(target_length > kept)


def test_a_source_that_leaves_no_target_slot_is_refused():
    with pytest.raises(ValueError, match="leaves no target slot"):
        joint_batch([[5, 6, 7, 8]], None, length=5, separator=SEP, filler=FILL)


@pytest.mark.parametrize("region, expected", [([8, 9, FILL, 7], [8, 9]), ([FILL, 8], []), ([8, 9, 7], [8, 9])])
def test_read_target_stops_at_the_first_filler(region, expected):
    tokens = [5, SEP, *region]
    mask = [False, False] + [True] * len(region)
    assert read_target(tokens, mask, FILL) == expected


def test_read_target_inverts_joint_batch():
    batch = joint_batch([[5, 6], [7]], [[8, 9, 10], [11]], length=8, separator=SEP, filler=FILL)
    assert [read_target(t, m, FILL) for t, m in zip(batch.tokens.tolist(), batch.target_mask.tolist())] == [
        [8, 9, 10], [11]]


def test_unpadded_drops_padding_and_eos():
    assert unpadded(torch.tensor([[1, 1, 5, 6, 2], [7, 8, 9, 10, 2]]), 1, 2) == [[5, 6], [7, 8, 9, 10]]


def test_mbr_picks_the_consensus_candidate():
    candidates = ["a b c d e", "a b c d f", "x y z w v", "a b c d e g"]
    assert mbr_select(candidates) == 0


def test_mbr_breaks_ties_by_the_first_and_takes_a_single_candidate():
    assert mbr_select(["a b c d", "a b c d"]) == 0
    assert mbr_select(["only"]) == 0
