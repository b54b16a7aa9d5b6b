"""The generator's canvas and fill section, and span limiting."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffuser_mt.canvas import (SpecialIds, build_canvas, build_generator_example, fill_canvas, fill_section,
                                generator_canvas, kept_tokens, limit_spans)
from diffuser_mt.corruption import CorruptionConfig, NoiseVocabulary, sample_training_pair
from diffuser_mt.edits import Tag, apply_edits, edit_spans

K, D, R, I = Tag.KEEP, Tag.DELETE, Tag.REPLACE, Tag.INSERT  # noqa: E741  (I: the INSERT letter of the E- lines)
IDS = SpecialIds(bos=0, eos=2, pad=1, sentinels=tuple(range(100, 132)))
S = IDS.sentinels


@pytest.mark.parametrize(
    "tokens, tags, canvas",
    [
        ([5, 6, 7], [K, K, K, K], [5, 6, 7]),
        ([5, 6, 7], [K, K, D, K], [5, 7]),
        ([5, 6, 7], [K, R, R, K], [S[0], 7]),
        ([5, 6, 7], [I, K, I, K], [S[0], 5, 6, S[1], 7]),
        ([5, 6, 7], [K, R, D, R], [S[0], S[1]]),
        ([], [I], [S[0]]),
    ],
)
def test_canvas_marks_each_span_with_its_sentinel(tokens, tags, canvas):
    assert build_canvas(tokens, tags, S) == canvas


V = 1000  # replaced_offset: the vocabulary size


@pytest.mark.parametrize(
    "tokens, tags, canvas, kept",
    [
        ([5, 6, 7], [K, K, K, K], [5, 6, 7], 3),
        ([5, 6, 7], [K, R, R, K], [S[0], V + 5, V + 6, 7], 1),
        ([5, 6, 7], [K, R, K, R], [S[0], V + 5, 6, S[1], V + 7], 1),
        ([5, 6, 7], [I, K, D, R], [S[0], 5, S[1], V + 7], 1),
        ([5, 6, 7], [K, I, R, K], [5, S[0], S[1], V + 6, 7], 2),
    ],
)
def test_visible_replaced_tokens_follow_their_sentinel_marked_by_the_offset(tokens, tags, canvas, kept):
    assert build_canvas(tokens, tags, S, replaced_offset=V) == canvas
    assert kept_tokens(tags) == kept == len(build_canvas(tokens, tags, S)) - len(edit_spans(tags))


def test_visible_replaced_tokens_carry_no_loss_and_keep_the_fills():
    ids = SpecialIds(bos=0, eos=2, pad=1, sentinels=S, replaced_offset=V)
    inputs, targets = build_generator_example([5, 6, 7], [K, R, R, K], [[8]], ids)
    assert inputs == [0, S[0], V + 5, V + 6, 7, S[0], 8]
    assert targets == [1, 1, 1, 1, 1, 8, 2]


def test_fill_section_ends_each_span_with_the_next_sentinel_and_eos():
    assert fill_section([[8, 9], [], [10]], S, eos=2) == [S[0], 8, 9, S[1], S[2], 10, 2]


def test_empty_canvas_makes_the_generator_autoregressive():
    inputs, targets = build_generator_example([], [I], [[8, 9, 10]], IDS)
    assert inputs == [0, S[0], S[0], 8, 9, 10]
    assert targets == [1, 1, 8, 9, 10, 2]


def test_no_spans_means_nothing_to_learn():
    inputs, targets = build_generator_example([5, 6], [K, K, K], [], IDS)
    assert inputs == [0, 5] and targets == [1, 1]


def test_too_many_spans_is_a_clear_error():
    with pytest.raises(ValueError, match="use limit_spans"):
        build_canvas([5, 6], [I, I, I], S[:2])


def random_training_pair(seed, length, lam, mix):
    rng = np.random.default_rng(seed)
    x0 = rng.integers(3, 60, size=length).tolist()
    config = CorruptionConfig(edit_mix=mix, span_lambda=lam)
    return sample_training_pair(x0, config, NoiseVocabulary(60, special_ids=(0, 1, 2)), rng)


MIXES = st.sampled_from([(0.6, 0.2, 0.1, 0.1), (0.2, 0.4, 0.2, 0.2), (0.0, 0.5, 0.0, 0.5)])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 40), st.floats(0.5, 6), MIXES)
def test_targets_are_exactly_fills_and_terminators(seed, length, lam, mix):
    pair = random_training_pair(seed, length, lam, mix)
    fills = pair.fills
    if len(fills) > len(S):
        return
    inputs, targets = build_generator_example(pair.x_next, pair.tags, fills, IDS)
    learned = [t for t in targets if t != IDS.pad]
    assert len(inputs) == len(targets)
    assert learned == fill_section(fills, S, IDS.eos)[1:]
    # teacher forcing: every learned target is the next input token (or the final eos)
    for j, target in enumerate(targets[:-1]):
        if target != IDS.pad:
            assert inputs[j + 1] == target


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 40), st.floats(0.5, 6), MIXES, st.sampled_from([None, V]))
def test_the_step_output_can_be_read_off_the_generator_example(seed, length, lam, mix, replaced_offset):
    pair = random_training_pair(seed, length, lam, mix)
    tags, fills = limit_spans(pair.x_next, pair.tags, pair.fills, len(S))
    ids = SpecialIds(bos=0, eos=2, pad=1, sentinels=S, replaced_offset=replaced_offset)
    inputs, targets = build_generator_example(pair.x_next, tags, fills, ids)
    canvas = generator_canvas(inputs + [ids.pad] * 3, targets + [ids.pad] * 3, ids.pad)  # as padded in a batch
    if not fills:
        assert canvas is None
        return
    assert canvas == build_canvas(pair.x_next, tags, S, replaced_offset)
    assert fill_canvas(canvas, fills, ids) == apply_edits(pair.x_next, tags, fills) == pair.x_prev


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 40), st.floats(0.5, 6), MIXES, st.integers(1, 6))
def test_limit_spans_keeps_the_result_and_caps_the_count(seed, length, lam, mix, max_spans):
    pair = random_training_pair(seed, length, lam, mix)
    tags, fills = limit_spans(pair.x_next, pair.tags, pair.fills, max_spans)
    assert len(edit_spans(tags)) == len(fills) <= max_spans
    assert apply_edits(pair.x_next, tags, fills) == pair.x_prev


def test_limit_spans_is_the_identity_under_the_cap():
    tags, fills = limit_spans([5, 6, 7], [I, K, R, K], [[9], [8]], 2)
    assert tags == [I, K, R, K] and fills == [[9], [8]]


@pytest.mark.parametrize("max_spans", [0, -1])
def test_limit_spans_rejects_a_cap_below_one(max_spans):
    with pytest.raises(ValueError, match="max_spans"):
        limit_spans([5], [K, K], [], max_spans)
