"""A tagger that knows the answer, to measure the generator alone: the ceiling of any tagger with this generator.

``GoldTagModel`` wraps an EditModel and replaces its tagger. Row i's x_t is tagged, with probability 1, with the
edits ``alignment.edit_supervision`` derives from x_t to reference i (in token or word units), so a decoding
step edits exactly where x_t differs from the reference and the fills are the generator's own. An x_t equal to
its reference is all KEEP, which ends its decode. The generator's calls pass through unchanged.

Decoding a draft with it asks: had the tagger found every error, would the generator have written the right
words there? (``benchmarks/postedit_check.py --gold-tags``.)
"""
from __future__ import annotations

from typing import Sequence

import torch

from diffuser_mt.alignment import edit_supervision
from diffuser_mt.edit_model import EditModel
from diffuser_mt.edits import NUM_TAGS, Tag


def certain_tags(tags: Sequence[int]) -> torch.Tensor:
    """(len(tags), NUM_TAGS) log-probabilities: 0 at each given tag, -inf at every other."""
    log_probs = torch.full((len(tags), NUM_TAGS), float("-inf"))
    log_probs[torch.arange(len(tags)), torch.as_tensor(list(tags), dtype=torch.long)] = 0.0
    return log_probs


def error_ranked_first(tag_log_probs: torch.Tensor, gold_tags: Sequence[int]) -> bool:
    """Does the position a tagger is least sure to keep, by its (L+1, NUM_TAGS) ``tag_log_probs``, have a gold tag
    other than KEEP? A threshold-free test of whether it found an error (ties: the first position)."""
    return gold_tags[int(tag_log_probs[:, Tag.KEEP].argmin())] != Tag.KEEP


def chance_of_error_first(gold_tags: Sequence[int]) -> float:
    """The probability that a position drawn uniformly from [start slot] + x_t has a gold tag other than KEEP: what
    ``error_ranked_first`` would score for a tagger that ranks at random."""
    return sum(tag != Tag.KEEP for tag in gold_tags) / len(gold_tags)


def token_at_error(gold_tags: Sequence[int], index: int) -> bool:
    """Is token ``index`` of x_t at an error of the gold tags (over [start slot] + x_t): edited itself (REPLACE,
    DELETE, or INSERT after it), or right after a gap the gold tags fill (INSERT before it)?"""
    return gold_tags[index + 1] != Tag.KEEP or gold_tags[index] == Tag.INSERT


def least_confident_at_error(confidences: torch.Tensor, gold_tags: Sequence[int]) -> bool:
    """Is the token the generator is least confident of, by its (L,) refill ``confidences``
    (``diffuser_mt.confidence.token_confidences``), at an error (``token_at_error``)? Ties: the first token; an
    empty x_t: False. The generator's counterpart of ``error_ranked_first``."""
    return len(confidences) > 0 and token_at_error(gold_tags, int(confidences.argmin()))


def chance_of_least_confident_at_error(gold_tags: Sequence[int]) -> float:
    """The share of x_t's tokens at an error: what ``least_confident_at_error`` would score for a random ranking."""
    tokens = len(gold_tags) - 1
    return sum(token_at_error(gold_tags, index) for index in range(tokens)) / tokens if tokens else 0.0


class GoldTagModel(EditModel):
    """``model``'s generator with gold tags: x_t of row i tagged with its edits towards ``references[i]``.

    references: token ids per source row (no bos/eos); unit: "token" or "word" (then ``is_word_start``, a bool
    per vocabulary id, is needed).
    """

    def __init__(self, model: EditModel, references: Sequence[Sequence[int]], unit: str = "word",
                 is_word_start=None):
        self.model, self.references = model, [list(reference) for reference in references]
        self.unit, self.is_word_start = unit, is_word_start

    def gold_tags(self, row: int, sequence: Sequence[int]) -> list[int]:
        """The tags over [start slot] + ``sequence`` that take it to reference ``row``."""
        return edit_supervision(list(sequence), self.references[row], self.unit, self.is_word_start)[0]

    def tag_log_probs(self, rows, sequences):
        return [certain_tags(self.gold_tags(row, sequence)) for row, sequence in zip(rows, sequences)]

    def next_token_log_probs(self, rows, prefixes):
        return self.model.next_token_log_probs(rows, prefixes)

    def start_fills(self, rows, prefixes):
        return self.model.start_fills(rows, prefixes)

    def extend_fills(self, state, parents, tokens):
        return self.model.extend_fills(state, parents, tokens)
