"""Confidence re-editing (Mask-Predict style) on toy models whose generator sees the canvas."""
from __future__ import annotations

import math

import pytest
import torch

from diffuser_mt.canvas import SpecialIds, build_canvas
from diffuser_mt.confidence import refill_predictions, remask_count, remask_tags, token_confidences
from diffuser_mt.edit_decoder import FREE, DecodeConfig, carry_through_edits, decode
from diffuser_mt.edit_model import DecodeVocabulary, EditModel
from diffuser_mt.edits import NUM_TAGS, Tag, apply_edits
from diffuser_mt.span_filling import FREE_LENGTH, FillRequest, TokenSearch, fill_spans

IDS = SpecialIds(bos=0, eos=2, pad=1, sentinels=(3, 4))
V = 10
VOCAB = DecodeVocabulary(IDS, torch.tensor([False] * 5 + [True] * 5))
A, B, C, D, X = 5, 6, 7, 8, 9
REFERENCE = [A, B, C, D]


class InfillingModel(EditModel):
    """Tagger: KEEP everywhere (INSERT on an empty text). Generator: a one-span fill at canvas position i writes
    REFERENCE[i] (probability 0.9), then ends (0.9)."""

    def __init__(self):
        self.generator_calls = 0

    def tag_log_probs(self, rows, sequences):
        tables = []
        for sequence in sequences:
            table = torch.full((len(sequence) + 1, NUM_TAGS), 0.02)
            table[:, Tag.KEEP if sequence else Tag.INSERT] = 0.94
            tables.append(table.log())
        return tables

    def next_token_log_probs(self, rows, prefixes):
        self.generator_calls += 1
        out = []
        for prefix in prefixes:
            prefix = list(prefix)
            canvas_end = prefix.index(IDS.sentinels[0], prefix.index(IDS.sentinels[0]) + 1)
            position, written = prefix.index(IDS.sentinels[0]) - 1, prefix[canvas_end + 1:]
            probs = torch.full((V,), 0.1 / (V - 1))
            if written:
                probs[IDS.eos] = 0.9
            else:
                probs[REFERENCE[min(position, len(REFERENCE) - 1)]] = 0.9
            out.append(probs.log())
        return torch.stack(out)


def renormalised(probs_table: torch.Tensor, token: int) -> float:
    allowed = VOCAB.fillable.clone()
    allowed[IDS.eos] = True
    return float(torch.log_softmax(probs_table.masked_fill(~allowed, float("-inf")), -1)[token])


@pytest.mark.parametrize("share, length, step, steps, expected", [
    (0.5, 10, 1, 4, 5), (0.5, 10, 2, 4, 3), (0.5, 10, 4, 4, 1), (0.3, 10, 1, 1, 3), (1.0, 7, 1, 7, 7),
    (1.0, 7, 7, 7, 1), (0.1, 5, 1, 2, 0), (0.0, 30, 1, 3, 0)])
def test_remask_count_decays_linearly(share, length, step, steps, expected):
    assert remask_count(share, length, step, steps) == expected


@pytest.mark.parametrize("share, length, steps", [(0.3, 17, 12), (1.0, 9, 4), (0.5, 40, 7)])
def test_remask_count_never_grows(share, length, steps):
    counts = [remask_count(share, length, step, steps) for step in range(1, steps + 1)]
    assert counts == sorted(counts, reverse=True)


@pytest.mark.parametrize("step", [0, 5])
def test_remask_count_refuses_a_step_outside_the_decode(step):
    with pytest.raises(ValueError, match="step must lie in 1..4"):
        remask_count(0.5, 10, step, 4)


def test_token_confidence_is_the_generators_refill_probability():
    model = InfillingModel()
    text = [A, X, C, B]
    confidences, = token_confidences(model, [0], [text], VOCAB)
    for i, token in enumerate(text):
        tags = [Tag.KEEP] * 5
        tags[i + 1] = Tag.REPLACE
        prefix = [IDS.bos, *build_canvas(text, tags, IDS.sentinels), IDS.sentinels[0]]
        expected = renormalised(model.next_token_log_probs([0], [prefix])[0], token)
        assert float(confidences[i]) == pytest.approx(expected, abs=1e-6)
    assert confidences.argmin() == 1 and confidences[3] < confidences[0]


def test_refill_predictions_are_the_generators_word_for_each_position():
    predictions = refill_predictions(InfillingModel(), [0, 1], [[X, X, X, X], [D, C]], VOCAB)
    assert [p.tolist() for p in predictions] == [REFERENCE, [A, B]]


def test_token_confidences_of_many_texts_are_one_generator_batch_each():
    model = InfillingModel()
    texts = [[A, B], [], [X, X, X]]
    scores = token_confidences(model, [0, 1, 2], texts, VOCAB)
    assert [len(score) for score in scores] == [2, 0, 3]
    assert model.generator_calls == 1


@pytest.mark.parametrize("confidences, count, expected", [
    ([-1.0, -3.0, -2.0, -0.5], 1, [Tag.KEEP, Tag.KEEP, Tag.REPLACE, Tag.KEEP, Tag.KEEP]),
    ([-1.0, -3.0, -2.0, -0.5], 2, [Tag.KEEP, Tag.KEEP, Tag.REPLACE, Tag.REPLACE, Tag.KEEP]),
    ([-1.0, -1.0, -1.0, -1.0], 1, [Tag.KEEP, Tag.REPLACE, Tag.KEEP, Tag.KEEP, Tag.KEEP]),
    ([-1.0, -3.0, -2.0, -0.5], 0, [Tag.KEEP] * 5),
    ([-1.0, -3.0, -2.0, -0.5], 9, [Tag.KEEP] + [Tag.REPLACE] * 4)])
def test_remask_tags_rewrite_the_least_confident_tokens(confidences, count, expected):
    assert remask_tags([Tag.KEEP] * 5, torch.tensor(confidences), count, max_spans=4) == expected


def test_remask_tags_leave_the_taggers_edits_and_locked_tokens_alone():
    tags = [Tag.KEEP, Tag.DELETE, Tag.KEEP, Tag.KEEP, Tag.INSERT]
    confidences = torch.tensor([-9.0, -8.0, -7.0, -6.0])
    assert remask_tags(tags, confidences, 1, 4, editable=[True, False, True, True]) == \
        [Tag.KEEP, Tag.DELETE, Tag.KEEP, Tag.REPLACE, Tag.INSERT]


def test_remask_tags_never_make_more_spans_than_sentinels():
    tags = remask_tags([Tag.KEEP] * 6, torch.tensor([-5.0, 0.0, -4.0, -0.1, -3.0]), 3, max_spans=2)
    # token 4 would open a third span; token 3, next in order, extends the second
    assert tags == [Tag.KEEP, Tag.REPLACE, Tag.KEEP, Tag.REPLACE, Tag.REPLACE, Tag.KEEP]


@pytest.mark.parametrize("length", [1, 2, 3])
def test_a_fixed_length_fill_writes_exactly_that_many_tokens(length):
    request = FillRequest(0, (A, IDS.sentinels[0], D), 1, budget=10, span_lengths=(length,))
    (best,), = fill_spans(InfillingModel(), [request], VOCAB, TokenSearch())
    assert len(best.fills[0]) == length
    assert best.fills[0][0] == B  # the model's word for canvas position 1
    assert [len(scores) for scores in best.token_log_probs] == [len(fill) for fill in best.fills]


def test_fill_token_log_probs_add_up_to_the_candidate_with_its_terminators():
    request = FillRequest(0, (IDS.sentinels[0], B), 1, budget=10, span_lengths=(FREE_LENGTH,))
    for search in (TokenSearch(), TokenSearch(beam=3)):
        for candidate in fill_spans(InfillingModel(), [request], VOCAB, search)[0]:
            terminators = candidate.decisions - sum(map(len, candidate.fills))
            assert terminators == 1
            assert sum(candidate.token_log_probs[0]) <= 0
            assert sum(candidate.token_log_probs[0]) >= candidate.log_prob


def test_fixed_lengths_must_match_the_spans():
    request = FillRequest(0, (IDS.sentinels[0], B), 1, budget=10, span_lengths=(1, 1))
    with pytest.raises(ValueError, match="2 span lengths for 1 spans"):
        fill_spans(InfillingModel(), [request], VOCAB, TokenSearch())


def test_confidence_re_editing_restores_the_implausible_token_one_for_one():
    start = [A, B, X, D]
    without, = decode(InfillingModel(), [start], VOCAB, DecodeConfig(steps=1))
    assert without[0].tokens == start  # the tagger keeps everything
    restored, = decode(InfillingModel(), [start], VOCAB, DecodeConfig(steps=1, remask_share=0.25))
    assert restored[0].tokens == REFERENCE
    record, = restored[0].history
    assert record.tags == (Tag.KEEP, Tag.KEEP, Tag.KEEP, Tag.REPLACE, Tag.KEEP) and record.fills == ((C,),)
    # the written token's confidence is its probability as written: a one-token fill may not end at once
    assert restored[0].confidences[2] == pytest.approx(math.log(0.9 / (0.9 + 4 * 0.1 / 9)), abs=1e-6)


def test_locked_tokens_are_never_re_edited():
    start = [A, B, X, D]
    locked, = decode(InfillingModel(), [start], VOCAB, DecodeConfig(steps=1, remask_share=0.25),
                     locks=[[FREE, FREE, 0, FREE]])
    assert locked[0].tokens[2] == X


@pytest.mark.parametrize("share", [0.25, 0.5, 1.0])
def test_early_stopping_stays_exact_with_re_editing(share):
    starts = [[A, B, X, D], [X, X, C, D], [A]]
    stopped = decode(InfillingModel(), starts, VOCAB, DecodeConfig(steps=4, remask_share=share))
    forced = decode(InfillingModel(), starts, VOCAB, DecodeConfig(steps=4, remask_share=share,
                                                                  stop_when_unchanged=False))
    assert [h[0].tokens for h in stopped] == [h[0].tokens for h in forced]


def test_re_editing_does_not_depend_on_the_other_rows():
    starts = [[A, B, X, D], [X, X, C, D], [X, B]]
    config = DecodeConfig(steps=3, remask_share=0.5)
    together = decode(InfillingModel(), starts, VOCAB, config)
    alone = [decode(InfillingModel(), [start], VOCAB, config)[0] for start in starts]
    assert [h[0].tokens for h in together] == [h[0].tokens for h in alone]


@pytest.mark.parametrize("share", [-0.1, 1.5, math.nan])
def test_a_remask_share_outside_zero_one_is_refused(share):
    with pytest.raises(ValueError, match="remask share must lie in"):
        DecodeConfig(remask_share=share)


@pytest.mark.parametrize("tokens, tags, fills", [
    ([A, B, C], [Tag.KEEP, Tag.KEEP, Tag.REPLACE, Tag.KEEP], [[D, X]]),
    ([A, B], [Tag.INSERT, Tag.DELETE, Tag.INSERT], [[C], [D, D]]),
    ([], [Tag.INSERT], [[A, B]])])
def test_carried_values_follow_their_tokens(tokens, tags, fills):
    values = [f"old{i}" for i in range(len(tokens))]
    written = [[f"new{k}.{j}" for j in range(len(fill))] for k, fill in enumerate(fills)]
    carried = carry_through_edits(values, tags, written)
    result = apply_edits(tokens, tags, fills)
    assert len(carried) == len(result)
    names = {f"old{i}": token for i, token in enumerate(tokens)}
    names.update({f"new{k}.{j}": token for k, fill in enumerate(fills) for j, token in enumerate(fill)})
    assert [names[value] for value in carried] == result


class RecordingModel(InfillingModel):
    def __init__(self):
        super().__init__()
        self.prefixes = []

    def next_token_log_probs(self, rows, prefixes):
        self.prefixes += [list(prefix) for prefix in prefixes]
        return torch.zeros(len(prefixes), V)


@pytest.mark.parametrize("replaced_offset, expected", [
    (None, [[0, 3, B, 3], [0, A, 3, 3]]),  # a dropped replaced token: ``shown`` cannot matter
    (V, [[0, 3, V + X, B, 3], [0, A, 3, V + C, 3]]),
])
def test_a_refill_shows_the_given_token_at_its_position_only_when_replaced_tokens_are_visible(replaced_offset,
                                                                                             expected):
    vocab = DecodeVocabulary(SpecialIds(bos=0, eos=2, pad=1, sentinels=(3, 4), replaced_offset=replaced_offset),
                             VOCAB.fillable)
    model = RecordingModel()
    refill_predictions(model, [0], [[A, B]], vocab, shown=[[X, C]])
    assert model.prefixes == expected
