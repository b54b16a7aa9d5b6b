"""Edit verification: the generator's sentence score decides whether a step's edit stays."""
from __future__ import annotations

import math

import pytest
from test_edit_decoder import IDS, RandomToyModel, STARTS, V, VOCAB, A, B, C, E, ToyModel, log_probs_of, tag_table

from diffuser_mt.edit_decoder import DecodeConfig, decode
from diffuser_mt.edit_verification import sentence_scores
from diffuser_mt.edits import Tag

# a left-to-right model of the text written after S_0: it likes "A B" as a sentence, but a fill after a
# replaced first token is "C" (then eos), which makes "C B" a worse sentence than "A B"
TABLE = {(): {C: 0.6, A: 0.4}, (C,): {IDS.eos: 0.9, B: 0.1}, (A,): {B: 0.9, IDS.eos: 0.1},
         (A, B): {IDS.eos: 1.0}, (C, B): {IDS.eos: 1.0}}


def table_generator(row, written):
    return log_probs_of(TABLE.get(written, {IDS.eos: 1.0}), V)


def replace_first(row, tokens):
    return tag_table([Tag.INSERT if not tokens else Tag.KEEP, *([Tag.REPLACE] + [Tag.KEEP] * (len(tokens) - 1))
                      ][: len(tokens) + 1])


def mean_log_prob(*probabilities):
    return sum(map(math.log, probabilities)) / len(probabilities)


def test_sentence_scores_are_the_mean_log_probability_of_the_sentence_and_its_eos():
    scores = sentence_scores(ToyModel(replace_first, table_generator), [0, 0, 0], [[A, B], [C, B], []], VOCAB)
    assert scores == pytest.approx([mean_log_prob(0.4, 0.9, 1.0), mean_log_prob(0.6, 0.1, 1.0), math.log(1e-9)],
                                   abs=1e-6)


def test_sentence_scores_do_not_depend_on_the_batch():
    model = RandomToyModel()
    together = sentence_scores(model, list(range(len(STARTS))), STARTS, VOCAB)
    alone = [sentence_scores(model, [row], [start], VOCAB)[0] for row, start in enumerate(STARTS)]
    assert together == pytest.approx(alone, abs=1e-9)


def test_an_edit_that_lowers_the_sentence_score_is_refused():
    model = ToyModel(replace_first, table_generator)
    plain, = decode(model, [[A, B]], VOCAB, DecodeConfig(steps=3))
    verified, = decode(model, [[A, B]], VOCAB, DecodeConfig(steps=3, verify_edits=True))
    assert plain[0].tokens == [C, B]
    assert verified[0].tokens == [A, B] and verified[0].history == []


def test_an_edit_that_raises_the_sentence_score_is_kept():
    verified, = decode(ToyModel(replace_first, table_generator), [[E, B]], VOCAB,
                       DecodeConfig(steps=3, verify_edits=True))
    assert verified[0].tokens == [C, B] and verified[0].history[0].tokens == (E, B)
    assert verified[0].sentence_score == pytest.approx(mean_log_prob(0.6, 0.1, 1.0), abs=1e-6)


def test_a_refused_step_stops_a_deterministic_decode():
    model = ToyModel(replace_first, table_generator)
    decode(model, [[A, B]], VOCAB, DecodeConfig(steps=10, verify_edits=True))
    one_step = model.calls
    model.calls = 0
    decode(model, [[A, B]], VOCAB, DecodeConfig(steps=1, verify_edits=True))
    assert one_step == model.calls
