"""The generator's search within one reverse step: writing the fills of marked spans.

A fill request is a canvas with K >= 1 span sentinels (``diffuser_mt.canvas``).
The generator continues ``[bos] + canvas + [S_0]`` token by token; writing
S_{k+1} ends fill k and eos ends the last fill. The search may only write
fillable tokens or the current span's terminator, and once the request's
token budget is spent only the terminator. A span of fixed length (a request's
``span_lengths``) ends after exactly that many tokens, unless the budget runs
out first.

Searches (the paper's intra-revision level):

* beam b (b = 1 is greedy): the standard beam over the whole fill section;
  finished candidates are ranked by mean log-probability per decision
  (fill tokens and terminators), like fairseq's length-normalised beam.
* nucleus p: sample each token from the smallest set of tokens whose
  probability reaches p (Holtzman et al.); one candidate.

Log-probabilities are those of the generator renormalised over the allowed
ids, so every score is <= 0. Randomness comes from one numpy Generator per
request (the caller gives the sentence's own), so a sentence's result does not
depend on the other sentences of its batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from diffuser_mt.edit_model import DecodeVocabulary, EditModel


@dataclass(frozen=True)
class TokenSearch:
    """beam: token beam size b (1 = greedy); nucleus_p: sample from the top-p nucleus when > 0 (needs beam 1)."""

    beam: int = 1
    nucleus_p: float = 0.0

    def __post_init__(self):
        if self.beam < 1:
            raise ValueError(f"token beam must be >= 1, got {self.beam}")
        if not 0.0 <= self.nucleus_p <= 1.0:
            raise ValueError(f"nucleus p must lie in [0, 1] (0 = off), got {self.nucleus_p}")
        if self.nucleus_p > 0 and self.beam > 1:
            raise ValueError("nucleus sampling and a token beam > 1 exclude each other")


FREE_LENGTH = -1  # a span_lengths entry: the generator decides the fill's length


@dataclass(frozen=True)
class FillRequest:
    """row: source row; canvas: generator canvas with sentinels S_0..S_{K-1}; budget: most fill tokens in all;
    span_lengths: per span its exact fill length or FREE_LENGTH (empty: every span free)."""

    row: int
    canvas: tuple[int, ...]
    num_spans: int
    budget: int
    span_lengths: tuple[int, ...] = ()

    def span_length(self, span: int) -> int:
        return self.span_lengths[span] if self.span_lengths else FREE_LENGTH


@dataclass(frozen=True)
class FillCandidate:
    """fills: one token list per span; log_prob: sum over decisions; decisions: fill tokens + terminators;
    token_log_probs: per span, the log-probability of each fill token (same shape as ``fills``)."""

    fills: tuple[tuple[int, ...], ...]
    log_prob: float
    decisions: int
    token_log_probs: tuple[tuple[float, ...], ...] = ()

    @property
    def mean_log_prob(self) -> float:
        return self.log_prob / self.decisions if self.decisions else 0.0


@dataclass(frozen=True)
class _Partial:
    request: int
    generated: tuple[int, ...]  # after S_0: fill tokens and terminators
    span: int  # index of the span being filled
    fill_tokens: int
    log_prob: float
    span_tokens: int = 0  # fill tokens of the current span so far
    token_log_probs: tuple[float, ...] = ()  # one per generated token


def fill_spans(model: EditModel, requests: Sequence[FillRequest], vocab: DecodeVocabulary, search: TokenSearch,
               rngs: Sequence[np.random.Generator] | None = None) -> list[list[FillCandidate]]:
    """Candidates per request, best first: up to ``search.beam`` for beam search, one for nucleus sampling.

    ``rngs[i]`` draws request i's samples (needed when ``search.nucleus_p > 0``).
    """
    if search.nucleus_p > 0 and (rngs is None or len(rngs) != len(requests)):
        raise ValueError("nucleus sampling needs one numpy Generator per request")
    for request in requests:
        if not 1 <= request.num_spans <= vocab.max_spans:
            raise ValueError(f"a fill request needs 1..{vocab.max_spans} spans, got {request.num_spans}")
        if request.span_lengths and len(request.span_lengths) != request.num_spans:
            raise ValueError(f"{len(request.span_lengths)} span lengths for {request.num_spans} spans")
    if not requests:
        return []
    ids = vocab.ids
    partials = [_Partial(i, (), 0, 0, 0.0) for i in range(len(requests))]
    state, log_probs = model.start_fills([request.row for request in requests],
                                         [[ids.bos, *request.canvas, ids.sentinels[0]] for request in requests])
    finished: dict[int, list[FillCandidate]] = {i: [] for i in range(len(requests))}
    while partials:
        terminators = [_terminator(p, requests[p.request], ids) for p in partials]
        lengths = [requests[p.request].span_length(p.span) for p in partials]
        must_end = [p.fill_tokens >= requests[p.request].budget or p.span_tokens == length
                    for p, length in zip(partials, lengths)]
        may_end = [length == FREE_LENGTH or p.span_tokens >= length for p, length in zip(partials, lengths)]
        allowed = _allowed_log_probs(log_probs.float(), vocab.fillable, terminators, must_end, may_end)
        by_request: dict[int, list[tuple[int, _Partial, torch.Tensor, int]]] = {}
        for index, (partial, row_log_probs, terminator) in enumerate(zip(partials, allowed, terminators)):
            by_request.setdefault(partial.request, []).append((index, partial, row_log_probs, terminator))
        continuing: list[tuple[int, int, _Partial]] = []  # (parent index in the state, token, extended partial)
        for i, expansions in by_request.items():
            if search.nucleus_p > 0:
                (index, partial, row_log_probs, terminator), = expansions
                token = _sample_nucleus(row_log_probs, search.nucleus_p, rngs[i])
                choices = [(index, partial, token, float(row_log_probs[token]), terminator)]
            else:
                choices = _top_continuations(expansions, search.beam)
            survivors = []
            for index, partial, token, log_prob, terminator in choices:
                extended = _extend(partial, token, log_prob, terminator)
                if extended.span == requests[i].num_spans:
                    finished[i].append(_as_candidate(extended, ids))
                else:
                    survivors.append((index, token, extended))
                if len(finished[i]) >= search.beam or len(survivors) == search.beam:
                    break
            if len(finished[i]) < search.beam:
                continuing += survivors
        if not continuing:
            break
        state, log_probs = model.extend_fills(state, [index for index, _, _ in continuing],
                                              [token for _, token, _ in continuing])
        partials = [extended for _, _, extended in continuing]
    return [sorted(finished[i], key=lambda c: -c.mean_log_prob)[: search.beam] for i in range(len(requests))]


def _terminator(partial: _Partial, request: FillRequest, ids) -> int:
    return ids.eos if partial.span == request.num_spans - 1 else ids.sentinels[partial.span + 1]


def _allowed_log_probs(log_probs: torch.Tensor, fillable: torch.Tensor, terminators: list[int],
                       must_end: list[bool], may_end: list[bool]) -> torch.Tensor:
    """(N, V) log-probs renormalised over each row's allowed ids; -inf elsewhere. A row that must end may only
    write its terminator; one that may not end (and need not) may only write fillable ids."""
    device = log_probs.device
    allowed = fillable.to(device).unsqueeze(0).repeat(len(terminators), 1)
    allowed[torch.tensor(must_end, dtype=torch.bool, device=device)] = False
    rows = torch.arange(len(terminators), device=device)
    ends = torch.tensor([must or may for must, may in zip(must_end, may_end)], dtype=torch.bool, device=device)
    allowed[rows[ends], torch.tensor(terminators, device=device)[ends]] = True
    return torch.log_softmax(log_probs.masked_fill(~allowed, float("-inf")), dim=-1).cpu()


def _top_continuations(expansions, beam: int):
    """The ``beam`` best (index, partial, token, token log-prob, terminator) by cumulative log-prob, best first."""
    pool = []
    for index, partial, row_log_probs, terminator in expansions:
        k = min(beam, int(torch.isfinite(row_log_probs).sum()))
        values, tokens = row_log_probs.topk(k)
        pool += [(partial.log_prob + float(v), index, partial, int(t), float(v), terminator)
                 for v, t in zip(values, tokens)]
    pool.sort(key=lambda entry: -entry[0])
    return [entry[1:] for entry in pool[: 2 * beam]]


def _sample_nucleus(row_log_probs: torch.Tensor, p: float, rng: np.random.Generator) -> int:
    probs = row_log_probs.double().exp()
    order = torch.argsort(probs, descending=True, stable=True)
    sorted_probs = probs[order]
    reaching = int((torch.cumsum(sorted_probs, 0) < p).sum()) + 1  # smallest prefix whose mass reaches p
    keep = min(reaching, int((sorted_probs > 0).sum()))
    nucleus = sorted_probs[:keep].numpy()
    return int(order[rng.choice(keep, p=nucleus / nucleus.sum())])


def _extend(partial: _Partial, token: int, log_prob: float, terminator: int) -> _Partial:
    ends_span = token == terminator
    return _Partial(partial.request, partial.generated + (token,), partial.span + ends_span,
                    partial.fill_tokens + (not ends_span), partial.log_prob + log_prob,
                    0 if ends_span else partial.span_tokens + 1, partial.token_log_probs + (log_prob,))


def _as_candidate(partial: _Partial, ids) -> FillCandidate:
    fills, scores, current, current_scores = [], [], [], []
    terminators = set(ids.sentinels) | {ids.eos}
    for token, log_prob in zip(partial.generated, partial.token_log_probs):
        if token in terminators:
            fills.append(tuple(current))
            scores.append(tuple(current_scores))
            current, current_scores = [], []
        else:
            current.append(token)
            current_scores.append(log_prob)
    return FillCandidate(tuple(fills), partial.log_prob, len(partial.generated), tuple(scores))
