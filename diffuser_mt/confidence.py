"""Confidence re-editing (Mask-Predict style): the generator's own judgement of every token of x_t.

A token's confidence is the log-probability the generator gives it as a
refill of its own position: the canvas is x_t with that one token replaced by
the sentinel S_0 (every other token visible; with visible replaced tokens
the token itself stays, marked as replaced), and the score is the
probability of the token as the fill's first token, renormalised over what a
fill may start with (fillable ids and the terminator eos). This is the
distribution a refill of that position draws from, so a token of low
confidence is one the generator would likely write differently; ranking by it
needs no skill from the tagger, which only ever learns to spot corruption.

Schedule (``remask_count``): at step s of N (1-based) the decoder re-edits
(tags REPLACE) the floor(share * L * (N - s + 1) / N) least confident free
tokens of x_t that the tagger keeps, a linearly decaying number as in
Mask-Predict (Ghazvininejad et al., 2019). The count never grows, so a step
whose tags are all KEEP is still a fixed point of every later step.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch

from diffuser_mt.canvas import build_canvas
from diffuser_mt.edit_model import DecodeVocabulary, EditModel
from diffuser_mt.edits import Tag, edit_spans

PREFIXES_PER_CALL = 512  # bounds the generator batch of one confidence call (L prefixes per hypothesis)


def remask_count(share: float, length: int, step: int, steps: int) -> int:
    """Tokens to re-edit at ``step`` (1-based) of ``steps`` for an x_t of ``length`` tokens."""
    if not 1 <= step <= steps:
        raise ValueError(f"step must lie in 1..{steps}, got {step}")
    return math.floor(share * length * (steps - step + 1) / steps + 1e-9)


def token_confidences(model: EditModel, rows: Sequence[int], sequences: Sequence[Sequence[int]],
                      vocab: DecodeVocabulary) -> list[torch.Tensor]:
    """For each x_t (token ids), a float tensor (len(x_t),) of its tokens' confidences (module docstring)."""
    scores = [log_probs[torch.arange(len(targets)), torch.tensor(targets)]
              for log_probs, targets in refill_log_probs(model, rows, sequences, vocab)]
    flat = torch.cat(scores) if scores else torch.empty(0)
    return list(flat.split([len(tokens) for tokens in sequences]))


def refill_predictions(model: EditModel, rows: Sequence[int], sequences: Sequence[Sequence[int]],
                       vocab: DecodeVocabulary, shown: Sequence[Sequence[int]] | None = None) -> list[torch.Tensor]:
    """For each x_t, a long tensor (len(x_t),): the generator's most likely first token of a refill of each
    position (eos: an empty refill); ``shown`` as in ``refill_log_probs``."""
    predictions = [log_probs.argmax(-1) for log_probs, _ in refill_log_probs(model, rows, sequences, vocab, shown)]
    flat = torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)
    return list(flat.split([len(tokens) for tokens in sequences]))


def refill_log_probs(model: EditModel, rows: Sequence[int], sequences: Sequence[Sequence[int]],
                     vocab: DecodeVocabulary, shown: Sequence[Sequence[int]] | None = None,
                     ) -> Iterator[tuple[torch.Tensor, list[int]]]:
    """Chunks of (log-probs (n, V) of a one-token refill of each position, renormalised over fillable ids and
    eos; the n tokens there), over every token of every x_t in order, PREFIXES_PER_CALL positions a chunk.

    shown: per x_t, the token its refilled position holds on a canvas with visible replaced tokens (default:
    the token itself; ``benchmarks/refill_check.py`` shows noise there); a canvas without them drops it.
    """
    ids = vocab.ids
    owners, prefixes, targets = [], [], []
    for index, (row, tokens) in enumerate(zip(rows, sequences)):
        tokens = list(tokens)
        for position in range(len(tokens)):
            tags = [Tag.KEEP] * (len(tokens) + 1)
            tags[position + 1] = Tag.REPLACE
            canvas_tokens = tokens if shown is None else [*tokens[:position], shown[index][position],
                                                           *tokens[position + 1:]]
            canvas = build_canvas(canvas_tokens, tags, ids.sentinels, ids.replaced_offset)
            prefixes.append([ids.bos, *canvas, ids.sentinels[0]])
            owners.append(row)
            targets.append(tokens[position])
    for start in range(0, len(prefixes), PREFIXES_PER_CALL):
        chunk = slice(start, start + PREFIXES_PER_CALL)
        yield vocab.single_fill_log_probs(model.next_token_log_probs(owners[chunk], prefixes[chunk])), targets[chunk]


def remask_tags(tags: Sequence[int], confidences: torch.Tensor, count: int, max_spans: int,
                editable: Sequence[bool] | None = None) -> list[int]:
    """``tags`` with up to ``count`` of the least confident kept, editable tokens tagged REPLACE.

    tags: L+1 canvas tags; confidences: (L,); editable: L flags (None: all). Ties go to the earlier token; a
    token whose REPLACE would make more than ``max_spans`` spans stays KEEP.
    """
    tags = [int(tag) for tag in tags]
    candidates = [i for i in range(len(tags) - 1)
                  if tags[i + 1] == Tag.KEEP and (editable is None or editable[i])]
    candidates.sort(key=lambda i: (float(confidences[i]), i))
    chosen = 0
    for i in candidates:
        if chosen == count:
            break
        tags[i + 1] = Tag.REPLACE
        if len(edit_spans(tags)) > max_spans:
            tags[i + 1] = Tag.KEEP
            continue
        chosen += 1
    return tags
