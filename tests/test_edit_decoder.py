"""The edit decoder's searches on toy models whose tagger and generator are fixed functions."""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch

from diffuser_mt.canvas import SpecialIds
from diffuser_mt.edit_decoder import DecodeConfig, choose_tags, decode
from diffuser_mt.corruption import NoiseVocabulary
from diffuser_mt.edit_model import DecodeVocabulary, EditModel, fillable_mask
from diffuser_mt.edits import NUM_TAGS, Tag
from diffuser_mt.span_filling import FillRequest, TokenSearch, fill_spans

IDS = SpecialIds(bos=0, eos=2, pad=1, sentinels=(3, 4))
V = 10
FILLABLE = torch.tensor([False] * 5 + [True] * 5)
VOCAB = DecodeVocabulary(IDS, FILLABLE)
A, B, C, D, E = 5, 6, 7, 8, 9


def log_probs_of(table: dict[int, float], size: int) -> torch.Tensor:
    """Log-probabilities with the given probabilities and a negligible rest."""
    probs = torch.full((size,), 1e-9, dtype=torch.float64)
    for index, p in table.items():
        probs[index] = p
    return (probs / probs.sum()).log()


class ToyModel(EditModel):
    """tagger(row, x_t) and generator(row, text after S_0) given as python functions."""

    def __init__(self, tags, generate):
        self.tags, self.generate = tags, generate
        self.calls = 0

    def tag_log_probs(self, rows, sequences):
        return [self.tags(row, list(seq)) for row, seq in zip(rows, sequences)]

    def next_token_log_probs(self, rows, prefixes):
        self.calls += 1
        out = []
        for row, prefix in zip(rows, prefixes):
            prefix = list(prefix)
            start = prefix.index(IDS.sentinels[0], 1)
            if IDS.sentinels[0] in prefix[start + 1:]:  # canvas holds S_0 and the fill section repeats it
                start = prefix.index(IDS.sentinels[0], start + 1)
            out.append(self.generate(row, tuple(prefix[start + 1:])))
        return torch.stack(out)


def tag_table(tags: list[int], confidence: float = 0.9) -> torch.Tensor:
    rest = (1 - confidence) / (NUM_TAGS - 1)
    table = torch.full((len(tags), NUM_TAGS), rest, dtype=torch.float64)
    table[torch.arange(len(tags)), torch.tensor(tags)] = confidence
    return table.log()


def insert_when_empty(row, seq):
    return tag_table([Tag.INSERT] if not seq else [Tag.KEEP] * (len(seq) + 1))


# The generator of the classic beam example: greedy takes A (0.55) and must continue with a
# flat distribution; B (0.45) ends at once with certainty, so its fill is more likely.
BEAM_TABLE = {(): {A: 0.55, B: 0.45}, (A,): {C: 0.34, D: 0.33, E: 0.33}, (A, C): {IDS.eos: 1.0},
              (A, D): {IDS.eos: 1.0}, (A, E): {IDS.eos: 1.0}, (B,): {IDS.eos: 1.0}}


def beam_generator(row, generated):
    return log_probs_of(BEAM_TABLE.get(generated, {IDS.eos: 1.0}), V)


def null_request(row=0, budget=10):
    return FillRequest(row=row, canvas=(IDS.sentinels[0],), num_spans=1, budget=budget)


def test_greedy_fill_takes_the_locally_best_token():
    (best,), = fill_spans(ToyModel(insert_when_empty, beam_generator), [null_request()], VOCAB, TokenSearch())
    assert best.fills == ((A, C),)
    assert best.log_prob == pytest.approx(math.log(0.55) + math.log(0.34), abs=1e-6)
    assert best.decisions == 3


def test_token_beam_finds_the_better_fill_that_greedy_misses():
    candidates, = fill_spans(ToyModel(insert_when_empty, beam_generator), [null_request()], VOCAB,
                             TokenSearch(beam=2))
    assert candidates[0].fills == ((B,),)
    assert candidates[0].log_prob == pytest.approx(math.log(0.45), abs=1e-6)
    assert [c.mean_log_prob for c in candidates] == sorted((c.mean_log_prob for c in candidates), reverse=True)
    assert all(c.log_prob <= 0 for c in candidates)


@pytest.mark.parametrize("p, expected", [(0.3, {A}), (0.54, {A}), (0.56, {A, B}), (1.0, {A, B})])
def test_nucleus_samples_only_inside_the_nucleus(p, expected):
    rngs = [np.random.default_rng(seed) for seed in range(200)]
    results = fill_spans(ToyModel(insert_when_empty, beam_generator), [null_request(row) for row in range(200)],
                         VOCAB, TokenSearch(nucleus_p=p), rngs)
    assert {candidates[0].fills[0][0] for candidates in results} == expected


def test_nucleus_frequencies_follow_the_model():
    rngs = [np.random.default_rng([3, seed]) for seed in range(2000)]
    results = fill_spans(ToyModel(insert_when_empty, beam_generator), [null_request(row) for row in range(2000)],
                         VOCAB, TokenSearch(nucleus_p=1.0), rngs)
    share_a = np.mean([candidates[0].fills[0][0] == A for candidates in results])
    assert abs(share_a - 0.55) < 4 * math.sqrt(0.55 * 0.45 / 2000)


def test_fills_of_several_spans_end_at_their_terminators():
    script = {(): {D: 1.0}, (D,): {IDS.sentinels[1]: 1.0}, (D, IDS.sentinels[1]): {E: 1.0},
              (D, IDS.sentinels[1], E): {E: 1.0}, (D, IDS.sentinels[1], E, E): {IDS.eos: 1.0}}
    model = ToyModel(lambda row, seq: tag_table([Tag.KEEP, Tag.KEEP, Tag.REPLACE, Tag.INSERT]),
                     lambda row, generated: log_probs_of(script[generated], V))
    hypotheses, = decode(model, [[A, B, C]], VOCAB, DecodeConfig(steps=1))
    assert hypotheses[0].tokens == [A, D, C, E, E]
    record, = hypotheses[0].history
    assert record.tokens == (A, B, C) and record.fills == ((D,), (E, E))


def test_the_budget_caps_the_length():
    endless = ToyModel(insert_when_empty, lambda row, generated: log_probs_of({A: 0.999, IDS.eos: 0.001}, V))
    hypotheses, = decode(endless, [[]], VOCAB, DecodeConfig(steps=3, max_length=7))
    assert hypotheses[0].tokens == [A] * 7


def test_null_start_inserts_then_keeps():
    config = DecodeConfig(steps=4, stop_when_unchanged=False)
    hypotheses, = decode(ToyModel(insert_when_empty, beam_generator), [[]], VOCAB, config)
    best = hypotheses[0]
    assert best.tokens == [A, C]
    assert len(best.history) == 4
    assert best.history[0].tags == (Tag.INSERT,) and best.history[0].tokens == ()
    assert all(set(record.tags) == {Tag.KEEP} for record in best.history[1:])


def test_stop_when_unchanged_ends_after_the_first_step_that_changes_nothing():
    config = DecodeConfig(steps=12, stop_when_unchanged=True)
    hypotheses, = decode(ToyModel(insert_when_empty, beam_generator), [[]], VOCAB, config)
    assert len(hypotheses[0].history) == 2


class MostlyKeepingToyModel(EditModel):
    """RandomToyModel's generator; a pseudo-random tagger that favours KEEP, so texts settle within a few steps."""

    def tag_log_probs(self, rows, sequences):
        return [torch.stack([pseudo_random_log_probs(("tag", row, tuple(seq), i), NUM_TAGS, (Tag.KEEP,), 3.0)
                             for i in range(len(seq) + 1)]) for row, seq in zip(rows, sequences)]

    def next_token_log_probs(self, rows, prefixes):
        return RandomToyModel().next_token_log_probs(rows, prefixes)


@pytest.mark.parametrize("settings", [{}, {"token_beam": 3, "revision_beam": 2}, {"nucleus_p": 0.9},
                                      {"verify_edits": True}, {"verify_edits": True, "token_beam": 3,
                                                               "revision_beam": 2}])
def test_stopping_when_unchanged_returns_what_all_steps_return(settings):
    rngs = [[np.random.default_rng([5, row]) for row in range(len(STARTS))] for _ in range(2)]
    runs = [decode(MostlyKeepingToyModel(), STARTS, VOCAB,
                   DecodeConfig(steps=10, stop_when_unchanged=stop, **settings), rngs[stop])
            for stop in (False, True)]
    for forced, stopped in zip(*runs):
        assert [(h.tokens, h.step_score, h.score) for h in forced] == [(h.tokens, h.step_score, h.score)
                                                                       for h in stopped]
    stopped_steps = [len(hypotheses[0].history) for hypotheses in runs[1]]
    forced_steps = [len(hypotheses[0].history) for hypotheses in runs[0]]
    assert min(stopped_steps) < 10
    if not settings.get("verify_edits"):  # a refused edit leaves no record
        assert forced_steps == [10] * len(forced_steps)


def test_scores_are_log_probabilities():
    hypotheses, = decode(ToyModel(insert_when_empty, beam_generator), [[]], VOCAB,
                         DecodeConfig(steps=3, token_beam=2, revision_beam=2))
    for hypothesis in hypotheses:
        assert hypothesis.score <= 0 and hypothesis.step_score <= 0
        assert len(hypothesis.keep_log_probs) == len(hypothesis.tokens) + 1
        assert all(record.score <= 0 for record in hypothesis.history)


def test_2d_beam_keeps_the_best_r_of_the_r_times_b_candidates():
    """One step from null: b = 3 fills of the single parent; the best 2 by step score survive."""
    hypotheses, = decode(ToyModel(insert_when_empty, beam_generator), [[]], VOCAB,
                         DecodeConfig(steps=1, token_beam=3, revision_beam=2))
    tag_log_prob = math.log(0.9)
    paths = {(B,): [0.45, 1.0], (A, C): [0.55, 0.34, 1.0], (A, D): [0.55, 0.33, 1.0], (A, E): [0.55, 0.33, 1.0]}
    scores = {text: (tag_log_prob + sum(map(math.log, probs))) / (1 + len(probs)) for text, probs in paths.items()}
    expected = sorted(scores, key=lambda text: -scores[text])[:2]
    assert [tuple(h.tokens) for h in hypotheses] == expected
    assert [h.step_score for h in hypotheses] == pytest.approx([scores[text] for text in expected], abs=1e-6)


def pseudo_random_log_probs(key, size: int, favoured: tuple[int, ...] = (), boost: float = 2.0):
    """Log-probs drawn from a generator seeded by ``key``; ``favoured`` ids get +``boost`` logits (terminators)."""
    generator = torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))
    logits = torch.randn(size, generator=generator, dtype=torch.float64) * 2
    logits[list(favoured)] += boost
    return logits.log_softmax(-1)


class RandomToyModel(EditModel):
    """Deterministic pseudo-random tagger and generator: the same (row, sequence) always gives the same scores."""

    def tag_log_probs(self, rows, sequences):
        return [torch.stack([pseudo_random_log_probs(("tag", row, tuple(seq), i), NUM_TAGS)
                             for i in range(len(seq) + 1)]) for row, seq in zip(rows, sequences)]

    def next_token_log_probs(self, rows, prefixes):
        return torch.stack([pseudo_random_log_probs(("gen", row, tuple(prefix)), V, (IDS.eos, IDS.sentinels[1]))
                            for row, prefix in zip(rows, prefixes)])


STARTS = [[A, B, C, D], [], [E, E, A], [B], [C, D, E, A, B, A]]


@pytest.mark.parametrize("steps", [1, 3, 6])
def test_2d_beam_with_r_1_and_b_1_is_greedy(steps):
    greedy = decode(RandomToyModel(), STARTS, VOCAB, DecodeConfig(steps=steps, max_length=12))
    beam = decode(RandomToyModel(), STARTS, VOCAB,
                  DecodeConfig(steps=steps, max_length=12, token_beam=1, revision_beam=1))
    assert [[h.tokens for h in hs] for hs in greedy] == [[h.tokens for h in hs] for hs in beam]


@pytest.mark.parametrize("config", [DecodeConfig(steps=4, max_length=12),
                                    DecodeConfig(steps=4, max_length=12, token_beam=3, revision_beam=2),
                                    DecodeConfig(steps=4, max_length=12, nucleus_p=0.8),
                                    DecodeConfig(steps=4, max_length=12, token_beam=2, revision_beam=2,
                                                 verify_edits=True)])
def test_each_row_decodes_the_same_alone_and_in_a_batch(config):
    together = decode(RandomToyModel(), STARTS, VOCAB, config, [np.random.default_rng([1, i]) for i in range(5)])
    for row, start in enumerate(STARTS):

        class OneRow(RandomToyModel):
            def tag_log_probs(self, rows, sequences):
                return super().tag_log_probs([row] * len(rows), sequences)

            def next_token_log_probs(self, rows, prefixes):
                return super().next_token_log_probs([row] * len(rows), prefixes)

        alone, = decode(OneRow(), [start], VOCAB, config, [np.random.default_rng([1, row])])
        assert [h.tokens for h in alone] == [h.tokens for h in together[row]]


def test_history_replays_to_the_output():
    for hypotheses in decode(RandomToyModel(), STARTS, VOCAB, DecodeConfig(steps=5, max_length=12, token_beam=2,
                                                                           revision_beam=3)):
        for hypothesis in hypotheses:
            state = list(hypothesis.history[0].tokens)
            for record in hypothesis.history:
                assert list(record.tokens) == state
                state = record.result()
            assert state == hypothesis.tokens


@pytest.mark.parametrize("tags, expected", [
    ([Tag.DELETE, Tag.KEEP], [Tag.KEEP, Tag.KEEP]),
    ([Tag.REPLACE, Tag.DELETE], [Tag.KEEP, Tag.DELETE]),
    ([Tag.KEEP], [Tag.INSERT]),
    ([Tag.INSERT, Tag.INSERT, Tag.INSERT, Tag.INSERT], [Tag.INSERT, Tag.INSERT, Tag.KEEP, Tag.KEEP]),
])
def test_choose_tags_respects_the_start_slot_empty_canvas_and_span_limit(tags, expected):
    log_probs = tag_table(tags, confidence=0.7)
    if tags[0] in (Tag.DELETE, Tag.REPLACE):  # the runner-up at the start slot is KEEP
        log_probs[0] = torch.tensor([0.2, 0.7, 0.05, 0.05], dtype=torch.float64).log()
        if tags[0] == Tag.REPLACE:
            log_probs[0] = torch.tensor([0.2, 0.05, 0.7, 0.05], dtype=torch.float64).log()
    assert choose_tags(log_probs, max_spans=2) == expected


@pytest.mark.parametrize("bias, expected", [(0.0, [Tag.KEEP, Tag.REPLACE, Tag.DELETE, Tag.KEEP]),
                                            (0.7, [Tag.KEEP, Tag.KEEP, Tag.DELETE, Tag.KEEP]),
                                            (3.0, [Tag.KEEP, Tag.KEEP, Tag.KEEP, Tag.KEEP])])
def test_keep_bias_edits_only_the_confident_positions(bias, expected):
    log_probs = torch.tensor([[0.9, 0.0, 0.0, 0.1], [0.3, 0.1, 0.6, 0.0], [0.05, 0.9, 0.05, 0.0],
                              [0.9, 0.05, 0.05, 0.0]], dtype=torch.float64).clamp(min=1e-6).log()
    assert choose_tags(log_probs, max_spans=4, keep_bias=bias) == expected


def test_keep_bias_never_keeps_the_start_slot_of_an_empty_canvas():
    assert choose_tags(tag_table([Tag.KEEP]), max_spans=2, keep_bias=10.0) == [Tag.INSERT]


@pytest.mark.parametrize("kwargs", [dict(steps=-1), dict(revision_beam=0), dict(token_beam=0),
                                    dict(nucleus_p=1.5), dict(nucleus_p=0.5, token_beam=2), dict(max_length=0),
                                    dict(keep_bias=float("inf"))])
def test_invalid_decode_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        DecodeConfig(**kwargs)


def test_per_row_max_lengths_cap_each_row():
    endless = ToyModel(insert_when_empty, lambda row, generated: log_probs_of({A: 0.999, IDS.eos: 0.001}, V))
    short, long = decode(endless, [[], [B] * 9], VOCAB, DecodeConfig(steps=2, max_length=7), max_lengths=[3, 20])
    assert short[0].tokens == [A] * 3
    assert long[0].tokens == [B] * 7


def always(tag):
    return lambda row, seq: tag_table([Tag.INSERT if not seq else Tag.KEEP] + [tag] * len(seq), confidence=0.6)


@pytest.mark.parametrize("tag", [Tag.DELETE, Tag.REPLACE])
def test_locked_tokens_are_never_deleted_or_replaced(tag):
    model = ToyModel(always(tag), lambda row, generated: log_probs_of({E: 0.5, IDS.eos: 0.5}, V))
    hypotheses, = decode(model, [[A, B, C, D]], VOCAB, DecodeConfig(steps=3), locks=[[-1, 0, 0, -1]])
    best = hypotheses[0]
    assert A not in best.tokens and D not in best.tokens  # the free tokens were edited away
    start = best.tokens.index(B)
    assert best.tokens[start:start + 2] == [B, C]
    assert best.locks[start:start + 2] == [0, 0] and best.locks.count(0) == 2


def test_nothing_is_inserted_inside_a_locked_span():
    model = ToyModel(always(Tag.INSERT), lambda row, generated: log_probs_of({E: 0.1, IDS.eos: 0.9}, V))
    hypotheses, = decode(model, [[A, B, C]], VOCAB, DecodeConfig(steps=1), locks=[[0, 0, 0]])
    record = hypotheses[0].history[0]
    assert record.tags[1:3] == (Tag.KEEP, Tag.KEEP) and record.tags[3] == Tag.INSERT


def test_carry_locks_follows_the_tokens():
    from diffuser_mt.edit_decoder import carry_locks
    # x_t = [A, B, C]: insert before A, delete A, keep B (locked), replace C by two tokens
    tags = [Tag.INSERT, Tag.DELETE, Tag.KEEP, Tag.REPLACE]
    assert carry_locks([-1, 7, -1], tags, [[D], [E, E]]) == [-1, 7, -1, -1]


def test_the_fillable_tokens_are_the_noise_vocabulary():
    mask = fillable_mask(NoiseVocabulary(V, special_ids=[*range(5), 7]))
    assert mask.dtype == torch.bool and mask.tolist() == [False] * 5 + [True, True, False, True, True]
    DecodeVocabulary(IDS, mask)  # no special id or sentinel is fillable


@pytest.mark.parametrize("beams", [(2, 2), (3, 2), (1, 3)])
def test_the_revision_beam_ranks_by_the_path_score_of_the_text_changing_steps(beams):
    token_beam, revision_beam = beams
    for hypotheses in decode(RandomToyModel(), STARTS, VOCAB, DecodeConfig(steps=5, max_length=12,
                                                                           token_beam=token_beam,
                                                                           revision_beam=revision_beam)):
        for hypothesis in hypotheses:
            changing = [record.score for record in hypothesis.history if record.result() != list(record.tokens)]
            assert hypothesis.path_score == pytest.approx(sum(changing), abs=1e-9)
        paths = [hypothesis.path_score for hypothesis in hypotheses]
        assert paths == sorted(paths, reverse=True)


def test_sampled_tags_follow_the_taggers_distribution_under_the_constraints():
    table = torch.tensor([[0.5, 0.2, 0.2, 0.1], [0.6, 0.1, 0.2, 0.1], [0.1, 0.3, 0.3, 0.3]]).log()
    draws = np.array([choose_tags(table, max_spans=4, rng=np.random.default_rng([2, i])) for i in range(4000)])
    assert set(draws[:, 0]) <= {Tag.KEEP, Tag.INSERT}  # the start slot
    start_insert = (draws[:, 0] == Tag.INSERT).mean()
    assert abs(start_insert - 0.1 / 0.6) < 4 * math.sqrt(0.17 * 0.83 / 4000)
    assert abs((draws[:, 1] == Tag.REPLACE).mean() - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 4000)
    assert abs((draws[:, 2] == Tag.KEEP).mean() - 0.1) < 4 * math.sqrt(0.1 * 0.9 / 4000)


def test_sampled_tags_need_generators_and_run_every_step():
    with pytest.raises(ValueError, match="sampled tags need one numpy Generator"):
        decode(RandomToyModel(), STARTS, VOCAB, DecodeConfig(steps=2, sample_tags=True))
    rngs = [np.random.default_rng([4, row]) for row in range(len(STARTS))]
    results = decode(RandomToyModel(), STARTS, VOCAB, DecodeConfig(steps=4, max_length=12, sample_tags=True), rngs)
    assert all(len(hypotheses[0].history) == 4 for hypotheses in results)


# A and C begin words, B and D continue them: [A, B, C] is two words, "AB" and "C"
WORD_VOCAB = DecodeVocabulary(IDS, FILLABLE, word_starts=torch.tensor([True] * 5 + [True, False, True, False, True]))


def first_piece_replaced(row, seq):
    return tag_table([Tag.KEEP, Tag.REPLACE, Tag.KEEP, Tag.KEEP] if seq == [A, B, C] else [Tag.KEEP] * (len(seq) + 1))


def writes_e(row, generated):
    return log_probs_of({E: 1.0} if not generated else {IDS.eos: 1.0}, V)


@pytest.mark.parametrize("whole_word_edits, expected", [(False, [E, B, C]), (True, [E, C])])
def test_whole_word_edits_rewrite_the_word_whole(whole_word_edits, expected):
    model = ToyModel(first_piece_replaced, writes_e)
    hypotheses, = decode(model, [[A, B, C]], WORD_VOCAB, DecodeConfig(steps=2, whole_word_edits=whole_word_edits))
    assert hypotheses[0].tokens == expected
    assert hypotheses[0].history[0].tags == ((Tag.KEEP, Tag.REPLACE, Tag.REPLACE, Tag.KEEP) if whole_word_edits
                                             else (Tag.KEEP, Tag.REPLACE, Tag.KEEP, Tag.KEEP))


def test_whole_word_edits_keep_the_span_limit():
    # three two-piece words with their continuation deleted, a kept word between them: three REPLACE spans after
    # widening, two sentinels, so the last word stays
    kept_word, cut_word = [Tag.KEEP], [Tag.KEEP, Tag.DELETE]
    tags = choose_tags(tag_table([Tag.KEEP] + (cut_word + kept_word) * 2 + cut_word), max_spans=2,
                       word_starts=[True, False, True] * 2 + [True, False])
    replaced_word = [Tag.REPLACE, Tag.REPLACE]
    assert tags == [Tag.KEEP] + (replaced_word + kept_word) * 2 + [Tag.KEEP, Tag.KEEP]


def test_whole_word_edits_need_word_starts():
    with pytest.raises(ValueError, match="word starts"):
        decode(ToyModel(first_piece_replaced, writes_e), [[A, B, C]], VOCAB, DecodeConfig(whole_word_edits=True))


def test_word_starts_must_cover_the_vocabulary():
    with pytest.raises(ValueError, match="word_starts must be a bool tensor"):
        DecodeVocabulary(IDS, FILLABLE, word_starts=torch.ones(V - 1, dtype=torch.bool))
