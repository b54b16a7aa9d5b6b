"""GoldTagModel: the decoder edits exactly where a draft differs from its reference; the fills are the generator's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from diffuser_mt.alignment import edit_supervision
from diffuser_mt.edit_decoder import DecodeConfig, decode
from diffuser_mt.edits import Tag
from diffuser_mt.gold_tags import (GoldTagModel, certain_tags, chance_of_error_first,
                                   chance_of_least_confident_at_error, error_ranked_first, least_confident_at_error,
                                   token_at_error)
from test_edit_decoder import IDS, V, VOCAB, A, B, C, D, E, ToyModel, log_probs_of, tag_table


def writes(*tokens):
    """A generator that writes ``tokens`` into any span, then ends it."""
    def generate(row, generated):
        return log_probs_of({(tokens + (IDS.eos,))[len(generated)]: 1.0}, V)
    return generate


def gold(model_generator, references, starts, steps=2, unit="token", is_word_start=None):
    tagger = ToyModel(lambda row, seq: tag_table([Tag.KEEP] * (len(seq) + 1)), model_generator)
    model = GoldTagModel(tagger, references, unit, is_word_start)
    return [hypotheses[0] for hypotheses in decode(model, starts, VOCAB, DecodeConfig(steps=steps))]


def test_certain_tags_put_all_mass_on_the_given_tag():
    log_probs = certain_tags([Tag.KEEP, Tag.REPLACE, Tag.INSERT])
    assert log_probs.argmax(-1).tolist() == [Tag.KEEP, Tag.REPLACE, Tag.INSERT]
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3))


def test_a_draft_equal_to_its_reference_is_kept_and_ends_the_decode():
    hypothesis, = gold(writes(E), [[A, B]], [[A, B]])
    assert hypothesis.tokens == [A, B]
    assert len(hypothesis.history) == 1 and set(hypothesis.history[0].tags) == {Tag.KEEP}


@pytest.mark.parametrize("draft", [[A, A, B], [A, B, B], [C, A, B], [A, B, D, D]])
def test_extra_tokens_are_deleted_whatever_the_generator_writes(draft):
    hypothesis, = gold(writes(E), [[A, B]], [draft])
    assert hypothesis.tokens == [A, B]


@pytest.mark.parametrize("written, restored", [((A,), True), ((E,), False), ((A, E), False)])
def test_a_substitution_is_restored_only_if_the_generator_writes_the_right_token(written, restored):
    hypothesis, = gold(writes(*written), [[A, B]], [[C, B]], steps=1)
    assert (hypothesis.tokens == [A, B]) == restored
    first = hypothesis.history[0]
    assert list(first.tags) == edit_supervision([C, B], [A, B])[0]
    assert list(first.fills) == [written]


def test_a_second_step_deletes_what_the_first_fill_wrote_too_much():
    hypothesis, = gold(writes(A, E), [[A, B]], [[C, B]], steps=2)
    assert [list(record.result()) for record in hypothesis.history] == [[A, E, B], [A, B]]


def test_a_dropped_token_is_one_insert_filled_by_the_generator():
    hypothesis, = gold(writes(B), [[A, B, C]], [[A, C]])
    assert list(hypothesis.history[0].tags) == [Tag.KEEP, Tag.INSERT, Tag.KEEP]
    assert hypothesis.tokens == [A, B, C]


def test_word_units_replace_the_whole_word():
    is_word_start = np.zeros(V, dtype=bool)
    is_word_start[[A, C]] = True  # A and C begin words; B, D, E continue them
    hypothesis, = gold(writes(A, B), [[A, B, C]], [[A, D, C]], steps=1, unit="word", is_word_start=is_word_start)
    assert list(hypothesis.history[0].tags) == [Tag.KEEP, Tag.REPLACE, Tag.REPLACE, Tag.KEEP]
    assert hypothesis.tokens == [A, B, C]


def test_rows_follow_their_own_references():
    hypotheses = gold(writes(A), [[A, B], [B, B]], [[C, B], [C, B]])
    assert [h.tokens for h in hypotheses] == [[A, B], [A, B]]
    assert hypotheses[1].history[0].tags == hypotheses[0].history[0].tags


@pytest.mark.parametrize("least_kept, found", [(0, False), (1, True), (2, False)])
def test_an_error_is_ranked_first_when_the_least_kept_position_is_one_the_gold_tags_edit(least_kept, found):
    keep = [0.9, 0.9, 0.9]
    keep[least_kept] = 0.2
    log_probs = torch.tensor([[p] + [(1 - p) / 3] * 3 for p in keep]).log()
    assert error_ranked_first(log_probs, [Tag.KEEP, Tag.REPLACE, Tag.KEEP]) == found


def test_chance_is_the_share_of_positions_the_gold_tags_edit():
    assert chance_of_error_first([Tag.KEEP, Tag.REPLACE, Tag.REPLACE, Tag.KEEP]) == 0.5
    assert chance_of_error_first([Tag.KEEP, Tag.KEEP]) == 0.0


# gold tags over [start] + 3 tokens: token 1 duplicated (DELETE), a word missing before token 2 (INSERT after token 1)
DELETED, GAP_AFTER_1 = [Tag.KEEP, Tag.KEEP, Tag.DELETE, Tag.KEEP], [Tag.KEEP, Tag.KEEP, Tag.INSERT, Tag.KEEP]


@pytest.mark.parametrize("gold_tags, at_error", [(DELETED, [False, True, False]), (GAP_AFTER_1, [False, True, True]),
                                                 ([Tag.INSERT, Tag.KEEP, Tag.KEEP, Tag.KEEP], [True, False, False])])
def test_a_token_is_at_an_error_when_edited_or_right_after_a_gap(gold_tags, at_error):
    assert [token_at_error(gold_tags, index) for index in range(3)] == at_error


@pytest.mark.parametrize("least_confident, found", [(0, False), (1, True), (2, False)])
def test_the_generator_finds_an_error_when_its_least_confident_token_is_at_one(least_confident, found):
    confidences = torch.zeros(3)
    confidences[least_confident] = -5.0
    assert least_confident_at_error(confidences, DELETED) == found


def test_the_generators_chance_is_the_share_of_tokens_at_an_error():
    assert chance_of_least_confident_at_error(GAP_AFTER_1) == pytest.approx(2 / 3)
    assert chance_of_least_confident_at_error([Tag.KEEP]) == 0.0
    assert not least_confident_at_error(torch.zeros(0), [Tag.KEEP])
