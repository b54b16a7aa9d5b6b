"""Word errors (diffuser_mt/word_errors.py) and their training examples."""
from collections import Counter

import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from diffuser_mt.canvas import SpecialIds
from diffuser_mt.edits import Tag, apply_edits
from diffuser_mt.rollin import fills_of
from diffuser_mt.training_examples import make_word_error_example
from diffuser_mt.word_errors import ERROR_KINDS, WordVocabulary, inject_word_errors

IDS = SpecialIds(bos=0, eos=2, pad=1, sentinels=tuple(range(3, 11)))
IS_WORD_START = np.arange(40) % 2 == 0  # ids 11..39; the even ones begin a word
WORDS = WordVocabulary(Counter({(12,): 6, (14, 15): 3, (16, 17, 19): 1}))


def words_of(tokens):
    """The words of ``tokens`` as tuples; the first token always begins one."""
    starts = [i for i, token in enumerate(tokens) if i == 0 or IS_WORD_START[token]]
    return [tuple(tokens[a:b]) for a, b in zip(starts, starts[1:] + [len(tokens)])]


def random_sentence(rng):
    return [12, *rng.integers(11, 40, size=int(rng.integers(0, 12))).tolist()]


def test_the_word_vocabulary_counts_whole_words_of_the_sentences():
    vocabulary = WordVocabulary.from_sentences([[12, 13, 14], [14, 16, 13, 13]], IS_WORD_START)
    assert vocabulary.words == [(12, 13), (14,), (16, 13, 13)]
    draws = Counter(vocabulary.sample(np.random.default_rng([4, i])) for i in range(4000))
    assert abs(draws[(14,)] / 4000 - 0.5) < 0.03 and abs(draws[(12, 13)] / 4000 - 0.25) < 0.03


def test_an_empty_word_vocabulary_is_refused():
    with pytest.raises(ValueError, match="at least one non-empty word"):
        WordVocabulary.from_sentences([[]], IS_WORD_START)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 10])
def test_each_chosen_word_gets_one_error(count):
    for seed in range(40):
        x0 = random_sentence(np.random.default_rng(seed))
        hypothesis = inject_word_errors(x0, count, WORDS, np.random.default_rng([1, seed]), IS_WORD_START)
        x0_words, hyp_words = words_of(x0), words_of(hypothesis)
        # every error changes the word count by at most one, and leaves the other words as they are
        assert abs(len(hyp_words) - len(x0_words)) <= min(count, len(x0_words))
        if count == 0:
            assert hypothesis == x0


def test_the_error_kinds_are_drawn_uniformly():
    x0, foreign = [12, 14, 16, 18], WordVocabulary(Counter({(30,): 1, (32, 33): 1}))
    seen = Counter()
    for seed in range(2000):
        hypothesis = words_of(inject_word_errors(x0, 1, foreign, np.random.default_rng([2, seed]), IS_WORD_START))
        brought = [word for word in hypothesis if word in foreign.words]
        kind = {(3, 0): "drop", (5, 0): "duplicate", (4, 1): "substitute", (5, 1): "insert"}[len(hypothesis),
                                                                                           len(brought)]
        seen[kind] += 1
    assert set(seen) == set(ERROR_KINDS)
    assert all(abs(n / 2000 - 0.25) < 0.04 for n in seen.values()), seen


def test_an_error_always_changes_a_one_word_sentence():
    # WORDS draws (12,) six times in ten: without drawing again, a substitute would often leave [12] as it was
    for seed in range(300):
        assert inject_word_errors([12], 1, WORDS, np.random.default_rng([3, seed]), IS_WORD_START) != [12]


@pytest.mark.parametrize("unit", ["token", "word"])
@pytest.mark.parametrize("seed", range(25))
def test_word_error_examples_reconstruct_x0(unit, seed):
    x0 = random_sentence(np.random.default_rng(seed))
    example = make_word_error_example(x0, WORDS, IDS, np.random.default_rng([5, seed]), 3, IS_WORD_START, unit)
    x_hat, tags = example.tagger_tokens[1:], example.tag_targets
    assert apply_edits(x_hat, tags, fills_of(example.generator_targets, IDS)) == x0
    assert len(tags) == len(x_hat) + 1


def test_word_error_examples_draw_the_error_count_uniformly():
    # 300 distinct one-token words and a substitute from outside them: each error is one word edit (errors at
    # neighbouring words, which may merge, are rare), so the word-level distance is the drawn count
    every_token_a_word, x0 = np.ones(500, dtype=bool), list(range(100, 400))
    foreign = WordVocabulary(Counter({(50,): 1}))
    distances = []
    for seed in range(1500):
        example = make_word_error_example(x0, foreign, IDS, np.random.default_rng([6, seed]), 3, every_token_a_word,
                                          "word")
        distances.append(Levenshtein.distance(example.tagger_tokens[1:], x0))
    frequencies = np.bincount(distances, minlength=4)
    assert frequencies[0] == 0 and len(frequencies) == 4
    assert np.abs(frequencies[1:] / 1500 - 1 / 3).max() < 0.04, frequencies


def test_word_error_examples_are_deterministic_and_empty_x0_stays_empty():
    first = make_word_error_example([12, 13, 14], WORDS, IDS, np.random.default_rng(9), 2, IS_WORD_START)
    assert make_word_error_example([12, 13, 14], WORDS, IDS, np.random.default_rng(9), 2, IS_WORD_START) == first
    empty = make_word_error_example([], WORDS, IDS, np.random.default_rng(9), 2, IS_WORD_START)
    assert empty.tagger_tokens == [IDS.bos] and empty.tag_targets == [Tag.KEEP]
    with pytest.raises(ValueError, match="max_errors must be >= 1"):
        make_word_error_example([12], WORDS, IDS, np.random.default_rng(9), 0, IS_WORD_START)
