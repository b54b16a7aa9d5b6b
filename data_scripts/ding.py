"""English-German sentence pairs from the Ding dictionary (Debian's ``trans-de-en``).

A Ding line reads ``German :: English``. Each side holds sub-entries separated
by `` | `` (the same number on both sides, matched by position); a sub-entry
holds ``;``-separated alternatives; ``{..}``, ``[..]`` and ``<..>`` hold
annotations (gender, region, register) and ``(..)`` optional words. Lines
starting with ``#`` are the header; the first reads ``# Version :: devel 2023-01-30``.

Cleaning rules, applied to every sub-entry:

1. Candidates: sub-entries whose two sides, annotations removed, both end in
   ``.``, ``!`` or ``?``. Lines without exactly one `` :: `` or with unequal
   sub-entry counts on the two sides are skipped.
2. On each side: remove the annotations; remove parenthesised optional words
   together with their parentheses (``Lassen wir das (alles) erst`` ->
   ``Lassen wir das erst``; parentheses may hold a ``;`` of their own, so this
   comes first); keep the first ``;`` alternative; collapse whitespace.
3. A cleaned side is a sentence when it ends in ``.``, ``!`` or ``?``, starts
   with an upper-case letter, a digit or an opening quote, has at least
   ``MIN_WORDS`` (3) words, holds none of the markup characters
   ``/ ~ … ( ) [ ] { } < > |`` (slashes mark alternatives such as
   ``come/get``, ellipses mark blanks) and no dictionary placeholder
   (``etw.``, ``jdm.``, ``sth.``, ``sb.``, ...). A pair is kept when both of
   its sides are sentences.
4. Deduplication: one pair per English sentence, the first in file order. This
   drops exact duplicates and also the same English with another German
   translation, so an English source never appears in two splits or twice with
   conflicting targets. The same German with other English is kept (several
   renderings of one idiom; about a hundred pairs in the 2023 dictionary).

The split sorts the clean pairs, shuffles them with ``numpy.random.default_rng(seed)``
and cuts test, valid and train from the front, so it depends on nothing but
the pairs and the seed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from diffuser_mt.textio import InputError

Pair = tuple[str, str]  # (english, german)

MIN_WORDS = 3
SENTENCE_ENDS = (".", "!", "?")
OPENING_QUOTES = "\"'„“‚‘"
MARKUP_CHARACTERS = frozenset("/~…()[]{}<>|")
ANNOTATION = re.compile(r"\s*(?:\{[^{}]*\}|\[[^\[\]]*\]|<[^<>]*>)")
OPTIONAL_WORDS = re.compile(r"\s*\([^()]*\)")
PLACEHOLDER = re.compile(r"\b(?:etw|jd|jdm|jdn|jds|sth|sb)\b")
SIDE_SEPARATOR = " :: "
SUBENTRY_SEPARATOR = " | "
VERSION_PREFIX = "# Version :: "


def ding_version(first_line: str) -> str | None:
    """The version from a Ding header line ``# Version :: ...``; None when it is not one."""
    if first_line.startswith(VERSION_PREFIX):
        return first_line[len(VERSION_PREFIX):].strip() or None
    return None


def remove_annotations(text: str) -> str:
    """``text`` without its ``{..}``, ``[..]`` and ``<..>`` annotations."""
    return ANNOTATION.sub("", text).strip()


def candidate_subentries(line: str) -> list[Pair]:
    """The (english, german) sub-entries of a Ding line whose both sides end like sentences."""
    if line.startswith("#") or line.count(SIDE_SEPARATOR) != 1:
        return []
    german, english = line.split(SIDE_SEPARATOR)
    german_parts = german.split(SUBENTRY_SEPARATOR)
    english_parts = english.split(SUBENTRY_SEPARATOR)
    if len(german_parts) != len(english_parts):
        return []
    return [
        (en, de)
        for en, de in zip(english_parts, german_parts)
        if remove_annotations(en).endswith(SENTENCE_ENDS) and remove_annotations(de).endswith(SENTENCE_ENDS)
    ]


def remove_optional_words(text: str) -> str:
    """``text`` without parenthesised words, innermost parentheses first."""
    while True:
        shorter = OPTIONAL_WORDS.sub("", text)
        if shorter == text:
            return text
        text = shorter


def clean_side(text: str) -> str | None:
    """One side of a sub-entry as a clean sentence, or None when it is not one."""
    first_alternative = remove_optional_words(remove_annotations(text)).split(";")[0]
    sentence = " ".join(first_alternative.split())
    if not is_sentence(sentence):
        return None
    return sentence


def is_sentence(text: str) -> bool:
    """Whether a cleaned side is a plain sentence free of dictionary markup."""
    return (
        text.endswith(SENTENCE_ENDS)
        and (text[0].isupper() or text[0].isdigit() or text[0] in OPENING_QUOTES)
        and len(text.split()) >= MIN_WORDS
        and MARKUP_CHARACTERS.isdisjoint(text)
        and PLACEHOLDER.search(text) is None
    )


def clean_pair(english: str, german: str) -> Pair | None:
    """A clean (english, german) sentence pair, or None when either side is not a sentence."""
    clean_english, clean_german = clean_side(english), clean_side(german)
    if clean_english is None or clean_german is None:
        return None
    return clean_english, clean_german


def sentence_pairs(line: str) -> list[Pair]:
    """The clean (english, german) sentence pairs held by one Ding line."""
    pairs = (clean_pair(en, de) for en, de in candidate_subentries(line))
    return [pair for pair in pairs if pair is not None]


@dataclass
class Extraction:
    """The deduplicated clean pairs of a dictionary and what was dropped on the way."""

    pairs: list[Pair] = field(default_factory=list)
    candidates: int = 0
    unclean: int = 0
    duplicates: int = 0

    @property
    def dropped(self) -> int:
        """Candidate sub-entries that did not become a pair."""
        return self.unclean + self.duplicates


def extract_pairs(lines: Iterable[str]) -> Extraction:
    """Clean and deduplicate (one pair per English sentence, the first) the pairs of Ding lines."""
    result = Extraction()
    seen_english: set[str] = set()
    for line in lines:
        for english, german in candidate_subentries(line):
            result.candidates += 1
            pair = clean_pair(english, german)
            if pair is None:
                result.unclean += 1
            elif pair[0] in seen_english:
                result.duplicates += 1
            else:
                seen_english.add(pair[0])
                result.pairs.append(pair)
    return result


def split_pairs(pairs: list[Pair], seed: int, valid_size: int, test_size: int) -> dict[str, list[Pair]]:
    """Disjoint ``train``/``valid``/``test`` splits of ``pairs``, fixed by ``seed``.

    Raises InputError when fewer than ``valid_size + test_size + 1`` pairs are given.
    """
    needed = valid_size + test_size + 1
    if len(pairs) < needed:
        raise InputError(
            f"only {len(pairs)} clean sentence pairs; need at least {needed} "
            f"(valid {valid_size} + test {test_size} + 1 for train)"
        )
    ordered = sorted(pairs)
    shuffled = [ordered[i] for i in np.random.default_rng(seed).permutation(len(ordered))]
    return {
        "train": shuffled[test_size + valid_size:],
        "valid": shuffled[test_size:test_size + valid_size],
        "test": shuffled[:test_size],
    }
