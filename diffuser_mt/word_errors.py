"""Word errors: x_0 with a few whole words wrong, the errors of a fluent hypothesis.

Corruption edits random spans with random tokens, so the tagger learns to spot
implausible tokens. A fluent hypothesis (an AR system's output, DiffusER's own
first step) is wrong in other ways: a real word in the wrong place, a word
missing, a word repeated, a word too many. ``inject_word_errors`` makes such a
hypothesis from x_0: a few of its words, at random, each get one error of
ERROR_KINDS, with the words that substitutions and insertions bring drawn from
a ``WordVocabulary`` by their frequency in the training targets. Words are a
word start and its continuations (``corruption.unit_boundaries``).
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np

from diffuser_mt.corruption import unit_boundaries
from diffuser_mt.edits import as_token_list

# substitute: the word is replaced by a drawn word; drop: it is removed; duplicate: it is written twice;
# insert: a drawn word is written before it
ERROR_KINDS = ("substitute", "drop", "duplicate", "insert")


class WordVocabulary:
    """Whole words (tuples of token ids), drawn in proportion to their counts."""

    def __init__(self, counts: Counter):
        words = sorted(word for word, count in counts.items() if count > 0 and word)
        if not words:
            raise ValueError("a word vocabulary needs at least one non-empty word with a positive count")
        self.words = words
        cumulative = np.cumsum([counts[word] for word in words], dtype=np.float64)
        self._cumulative = cumulative / cumulative[-1]

    @classmethod
    def from_sentences(cls, sentences: Iterable, is_word_start) -> WordVocabulary:
        """The words of ``sentences`` (token-id sequences, no bos/eos), counted; ``is_word_start``: (V,) bools."""
        counts = Counter()
        for sentence in sentences:
            counts.update(words_of(sentence, is_word_start))
        return cls(counts)

    def sample(self, rng: np.random.Generator) -> tuple[int, ...]:
        """One word, drawn by its count."""
        drawn = int(np.searchsorted(self._cumulative, rng.random(), side="right"))
        return self.words[min(drawn, len(self.words) - 1)]


def words_of(tokens, is_word_start) -> list[tuple[int, ...]]:
    """The words of ``tokens`` (token ids) as tuples: a word start and its continuations (the first token always
    begins one); ``is_word_start``: (V,) bools."""
    tokens = as_token_list(tokens, "tokens")
    bounds = unit_boundaries(tokens, "word", is_word_start)
    return [tuple(tokens[start:end]) for start, end in zip(bounds[:-1], bounds[1:])]


def inject_word_errors(x0, count: int, words: WordVocabulary, rng: np.random.Generator,
                       is_word_start) -> list[int]:
    """``x0`` (token ids, no bos/eos) with ``min(count, number of words)`` distinct words, chosen at random, each
    given one error of a kind drawn uniformly from ERROR_KINDS; a substitute is drawn again while it equals the
    word it replaces (at most SUBSTITUTE_DRAWS draws). An empty ``x0`` stays empty."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    sentence = words_of(x0, is_word_start)
    chosen = sorted(rng.choice(len(sentence), size=min(count, len(sentence)), replace=False).tolist())
    kinds = {position: ERROR_KINDS[int(rng.integers(len(ERROR_KINDS)))] for position in chosen}
    hypothesis = []
    for position, word in enumerate(sentence):
        kind = kinds.get(position)
        if kind == "substitute":
            hypothesis.extend(_other_word(word, words, rng))
        elif kind == "duplicate":
            hypothesis.extend(word + word)
        elif kind == "insert":
            hypothesis.extend(words.sample(rng) + word)
        elif kind != "drop":
            hypothesis.extend(word)
    return hypothesis


SUBSTITUTE_DRAWS = 20  # draws before a substitution gives up looking for a word other than the one it replaces


def _other_word(word: tuple[int, ...], words: WordVocabulary, rng: np.random.Generator) -> tuple[int, ...]:
    for _ in range(SUBSTITUTE_DRAWS):
        other = words.sample(rng)
        if other != word:
            return other
    return other
