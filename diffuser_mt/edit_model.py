"""What the edit decoder needs from a trained DiffusER model.

The decoder (``diffuser_mt.edit_decoder``) is written against this small
interface, so its searches are tested on toy models with fixed functions and
run unchanged on the fairseq model (``fairseq_plugins.diffuser_generator``).

An EditModel is bound to one batch of sources. Every call takes ``rows``:
hypothesis i is conditioned on source ``rows[i]`` of that batch, so one call
can hold several hypotheses of the same source (beams) and hypotheses of
different sources. Results must not depend on which other rows share a call.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from diffuser_mt.canvas import SpecialIds
from diffuser_mt.corruption import NoiseVocabulary


class EditModel(abc.ABC):
    """Tagger and generator log-probabilities for one batch of sources."""

    @abc.abstractmethod
    def tag_log_probs(self, rows: Sequence[int], sequences: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """For each x_t (token ids, no bos/eos): log-probs of the tags of [start slot] + x_t, (len(x_t)+1, NUM_TAGS)."""

    @abc.abstractmethod
    def next_token_log_probs(self, rows: Sequence[int], prefixes: Sequence[Sequence[int]]) -> torch.Tensor:
        """Next-token log-probs, (len(prefixes), V), of each generator prefix ([bos] + canvas + fill so far)."""

    def start_fills(self, rows: Sequence[int], prefixes: Sequence[Sequence[int]]) -> tuple[Any, torch.Tensor]:
        """Begin writing after each prefix: an opaque generation state holding len(prefixes) hypotheses, and their
        next-token log-probs (len(prefixes), V).

        This default keeps the prefixes and calls ``next_token_log_probs`` on the whole prefix at every token; a
        model with a key/value cache overrides ``start_fills`` and ``extend_fills`` (same results).
        """
        state = ([int(row) for row in rows], [tuple(prefix) for prefix in prefixes])
        return state, self.next_token_log_probs(*state)

    def extend_fills(self, state: Any, parents: Sequence[int], tokens: Sequence[int]) -> tuple[Any, torch.Tensor]:
        """A new state whose hypothesis j is hypothesis ``parents[j]`` of ``state`` followed by ``tokens[j]``, and
        its next-token log-probs (len(tokens), V)."""
        rows, prefixes = state
        state = ([rows[parent] for parent in parents],
                 [prefixes[parent] + (int(token),) for parent, token in zip(parents, tokens)])
        return state, self.next_token_log_probs(*state)


@dataclass(frozen=True)
class DecodeVocabulary:
    """The ids the decoder needs: specials and span sentinels, and what a fill may contain.

    fillable: bool tensor (V,), True for ids the generator may write inside a fill
    (real tokens: no bos/eos/pad/unk, no sentinel). Span terminators (the next
    sentinel, eos after the last span) are allowed by the decoder on its own.
    word_starts: optional bool tensor (V,), True for ids that begin a word
    (sentencepiece's ▁), for whole-word edits.
    """

    ids: SpecialIds
    fillable: torch.Tensor
    word_starts: torch.Tensor | None = None

    def __post_init__(self):
        if self.fillable.dtype != torch.bool or self.fillable.dim() != 1:
            raise ValueError("fillable must be a 1-D bool tensor over the vocabulary")
        specials = [self.ids.bos, self.ids.eos, self.ids.pad, *self.ids.sentinels]
        if self.fillable[specials].any():
            raise ValueError("bos, eos, pad and the span sentinels must not be fillable")
        if not self.fillable.any():
            raise ValueError("no fillable token: the generator could write nothing")
        if self.word_starts is not None and (self.word_starts.dtype != torch.bool
                                             or self.word_starts.shape != self.fillable.shape):
            raise ValueError("word_starts must be a bool tensor of fillable's shape (one flag per vocabulary id)")

    @property
    def max_spans(self) -> int:
        return len(self.ids.sentinels)

    def word_starts_of(self, tokens: Sequence[int]) -> list[bool]:
        """One flag per token: does it begin a word? Raises ValueError without ``word_starts``."""
        if self.word_starts is None:
            raise ValueError("whole-word edits need the vocabulary's word starts (a sentencepiece dictionary)")
        return self.word_starts[torch.as_tensor(list(tokens), dtype=torch.long)].tolist() if tokens else []

    def single_fill_log_probs(self, log_probs: torch.Tensor) -> torch.Tensor:
        """(N, V) generator log-probs renormalised over what the one fill of a canvas may write next: a fillable
        id or eos (its terminator); -inf elsewhere. Returned as float32 on the CPU."""
        allowed = self.fillable.clone()
        allowed[self.ids.eos] = True
        return torch.log_softmax(log_probs.float().cpu().masked_fill(~allowed, float("-inf")), dim=-1)


def fillable_mask(noise_vocab: NoiseVocabulary) -> torch.Tensor:
    """(V,) bool: the generator may write exactly the tokens corruption draws as noise (no specials, no
    sentinels), DecodeVocabulary's ``fillable``."""
    mask = torch.zeros(noise_vocab.vocab_size, dtype=torch.bool)
    mask[torch.from_numpy(noise_vocab.allowed_ids)] = True
    return mask
