"""Canvas positions (--canvas-positions): the fill section read at the places of the spans it fills."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_canvas import IDS, MIXES, S, random_training_pair

from diffuser_mt.canvas import build_canvas, fill_section, limit_spans
from diffuser_mt.canvas_positions import canvas_positions, step_positions
from diffuser_mt.edits import Tag

K, R, I = Tag.KEEP, Tag.REPLACE, Tag.INSERT  # noqa: E741
SENTINELS = torch.tensor(S)


def sequence(tokens, tags, fills):
    """Z = [bos] + canvas + fill section (none without spans): one example's whole generator sequence."""
    return [IDS.bos, *build_canvas(tokens, tags, S), *(fill_section(fills, S, IDS.eos) if fills else [])]


def positions_by_definition(z):
    """The module docstring's rule, token by token: canvas tokens at their index, fill sentinel S_k at c_k - 1,
    each later token one further."""
    canvas_place, positions, current = {}, [], None
    for index, token in enumerate(z):
        if token in S and token not in canvas_place:
            canvas_place[token] = index
            current = None if current is None else current + 1
        elif token in S:
            current = canvas_place[token] - 1
        elif current is not None:
            current += 1
        positions.append(index if current is None else current)
    return positions


@pytest.mark.parametrize("tokens, tags, fills, positions", [
    # Z = bos 10 S0 12 13 S1 | S0 20 21 S1 30 eos: fill 0 starts at S0's place (2), fill 1 at S1's (5)
    ([10, 11, 12, 13], [K, K, R, K, I], [[20, 21], [30]], [0, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 6]),
    # an empty canvas: y at 1, 2, 3, as a left-to-right model's target
    ([], [I], [[5, 6, 7]], [0, 1, 0, 1, 2, 3, 4]),
    # nothing to fill: every token at its index
    ([5, 6], [K, K, K], [], [0, 1, 2]),
    # Z = bos S0 6 | S0 eos: an empty fill (a deletion) ends where S0 stands
    ([5, 6], [K, R, K], [[]], [0, 1, 2, 0, 1]),
])
def test_fill_tokens_take_the_place_of_their_span(tokens, tags, fills, positions):
    z = sequence(tokens, tags, fills)
    assert canvas_positions(torch.tensor([z]), SENTINELS, IDS.pad)[0][0].tolist() == positions


def test_anchors_are_each_fill_sentinels_position_and_minus_one_off_the_canvas():
    z = sequence([10, 11, 12, 13], [K, K, R, K, I], [[20, 21], [30]])
    _, anchors = canvas_positions(torch.tensor([z]), SENTINELS, IDS.pad)
    assert anchors[0, :3].tolist() == [1, 4, -1]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31), st.lists(st.integers(0, 30), min_size=1, max_size=4), st.floats(0.5, 6), MIXES)
def test_a_padded_batch_gives_each_row_its_own_positions_by_definition(seed, lengths, lam, mix):
    rows = []
    for k, length in enumerate(lengths):
        pair = random_training_pair(seed + k, length, lam, mix)
        tags, fills = limit_spans(pair.x_next, pair.tags, pair.fills, len(S))
        rows.append(sequence(pair.x_next, tags, fills))
    width = max(map(len, rows))
    batch = torch.tensor([row + [IDS.pad] * (width - len(row)) for row in rows])
    positions, _ = canvas_positions(batch, SENTINELS, IDS.pad)
    for row, got in zip(rows, positions.tolist()):
        assert got == positions_by_definition(row) + [0] * (width - len(row))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 30), st.floats(0.5, 6), MIXES)
def test_step_positions_continue_a_prefix_as_the_whole_sequence_reads(seed, length, lam, mix):
    pair = random_training_pair(seed, length, lam, mix)
    tags, fills = limit_spans(pair.x_next, pair.tags, pair.fills, len(S))
    if not fills:
        return
    z = sequence(pair.x_next, tags, fills)
    full, _ = canvas_positions(torch.tensor([z]), SENTINELS, IDS.pad)
    start = z.index(S[0], z.index(S[0]) + 1) + 1  # the decoder's prefix ends with the fill sentinel S_0
    prefix_positions, anchors = canvas_positions(torch.tensor([z[:start]]), SENTINELS, IDS.pad)
    following = prefix_positions[:, -1] + 1
    for index in range(start, len(z)):
        position = step_positions(torch.tensor([z[index]]), following, anchors, SENTINELS)
        assert int(position) == int(full[0, index])
        following = position + 1


def test_positions_follow_the_tokens_device_and_ignore_ids_beyond_the_sentinels():
    rng = np.random.default_rng(0)
    z = torch.tensor([[0, *rng.integers(3, 99, size=5).tolist(), 1000 + 7]])  # a visible replaced id
    positions, anchors = canvas_positions(z, SENTINELS, IDS.pad)
    assert positions.tolist() == [list(range(7))] and anchors.eq(-1).all()
    assert positions.device == z.device and positions.dtype == torch.long
