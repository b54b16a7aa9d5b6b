"""The generator's view of a reverse step: the canvas and its CM3-style fill section.

Given x_t, its tags over ``[start slot] + x_t`` and the span fills (see
``diffuser_mt.edits``), the generator sees one causal sequence

    Z = [bos] + canvas + S_0 f_0 S_1 f_1 ... S_{K-1} f_{K-1} + [eos]

* canvas: x_t with DELETE tokens dropped; each span is marked by its numbered
  sentinel S_k (k = span index in canvas order). A REPLACE run is replaced by
  its sentinel; an INSERT keeps its token and puts the sentinel after it.
  The sentinels play the role of the paper's learned insert/replace embedding.
  With visible replaced tokens (``SpecialIds.replaced_offset`` set, the
  paper's type embedding on REPLACE positions) the run's tokens stay after
  its sentinel as ``replaced_offset + token``: the model embeds such an id as
  the token plus a learned "replaced" vector, so it sees what it rewrites (a
  near miss of a hypothesis, not only uniform noise). Without it they are
  dropped.
* fill section: for each span in order, its sentinel again, then its fill,
  generated left to right; the end of fill k is signalled by S_{k+1} (by eos
  after the last span). A REPLACE fill may be empty (a deletion) and any fill
  may be longer or shorter than what it replaces, so span lengths are free.

The model reads Z[:-1] and is trained to predict Z[1:] at the fill tokens and
at the span terminators (S_{k+1} / eos); every other target is ``pad``.

With an empty x_t and the start slot tagged INSERT, Z = [bos, S_0, S_0] + y +
[eos]: the generator is then an ordinary autoregressive model of y.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from diffuser_mt.edits import Tag, apply_edits, as_token_list, edit_spans


@dataclass(frozen=True)
class SpecialIds:
    """The dictionary ids the canvas needs; ``sentinels[k]`` is S_k; replaced_offset: None (replaced tokens are
    dropped from the canvas) or the vocabulary size V (token id + V marks a visible replaced token)."""

    bos: int
    eos: int
    pad: int
    sentinels: tuple[int, ...]
    replaced_offset: int | None = None


def build_canvas(tokens, tags, sentinels: Sequence[int], replaced_offset: int | None = None) -> list[int]:
    """x_t with deletions dropped and every span marked by its sentinel; a replaced token is dropped, or kept as
    ``replaced_offset + token`` after its run's sentinel (see module docstring)."""
    tokens = as_token_list(tokens, "tokens")
    spans = edit_spans(tags)
    if len(spans) > len(sentinels):
        raise ValueError(f"{len(spans)} spans but only {len(sentinels)} sentinels; use limit_spans first")
    span_at = {start: k for k, (_, start, _) in enumerate(spans)}
    canvas = [sentinels[span_at[0]]] if 0 in span_at else []
    for position, (token, tag) in enumerate(zip(tokens, as_token_list(tags, "tags")[1:]), start=1):
        if tag == Tag.KEEP:
            canvas.append(token)
        elif tag == Tag.INSERT:
            canvas += [token, sentinels[span_at[position]]]
        elif tag == Tag.REPLACE:
            if position in span_at:
                canvas.append(sentinels[span_at[position]])
            if replaced_offset is not None:
                canvas.append(replaced_offset + token)
    return canvas


def kept_tokens(tags) -> int:
    """How many tokens of x_t a step keeps in place (tagged KEEP or INSERT); ``tags`` over [start slot] + x_t."""
    return sum(tag in (Tag.KEEP, Tag.INSERT) for tag in as_token_list(tags, "tags")[1:])


def fill_canvas(canvas: Sequence[int], fills: Sequence[Sequence[int]], ids: SpecialIds) -> list[int]:
    """The step's output read off its canvas: each sentinel S_k becomes fill k, a visible replaced token goes.
    ``fill_canvas(build_canvas(x, tags, ...), fills, ids) == apply_edits(x, tags, fills)``."""
    span_of = {sentinel: k for k, sentinel in enumerate(ids.sentinels)}
    output = []
    for token in as_token_list(canvas, "canvas"):
        if token in span_of:
            output += as_token_list(fills[span_of[token]], "fill")
        elif ids.replaced_offset is None or token < ids.replaced_offset:
            output.append(token)
    return output


def generator_canvas(generator_inputs: Sequence[int], generator_targets: Sequence[int], pad: int) -> list[int] | None:
    """The canvas of a generator example (Z[:-1], Z[1:] of ``build_generator_example``, maybe right-padded): Z
    from after bos up to the first learned target; None when the example has no span (nothing is learned)."""
    targets = as_token_list(generator_targets, "generator_targets")
    first_learned = next((i for i, target in enumerate(targets) if target != pad), None)
    return None if first_learned is None else as_token_list(generator_inputs, "generator_inputs")[1:first_learned]


def fill_section(fills: Sequence[Sequence[int]], sentinels: Sequence[int], eos: int) -> list[int]:
    """S_0 f_0 S_1 f_1 ... S_{K-1} f_{K-1} eos."""
    section = []
    for k, fill in enumerate(fills):
        section += [sentinels[k], *as_token_list(fill, "fill")]
    return section + [eos]


def build_generator_example(tokens, tags, fills, ids: SpecialIds) -> tuple[list[int], list[int]]:
    """Return (inputs, targets) of equal length: inputs = Z[:-1], targets = Z[1:] with non-fill targets padded.

    The loss falls on every fill token and on every span terminator, so the
    number of non-pad targets is ``sum(len(f) for f in fills) + len(fills)``;
    with no spans there is nothing to generate and every target is pad.
    """
    canvas = build_canvas(tokens, tags, ids.sentinels, ids.replaced_offset)
    section = fill_section(fills, ids.sentinels, ids.eos) if fills else []
    z = [ids.bos, *canvas, *section]
    inputs, targets = z[:-1], z[1:]
    learned = targets[1 + len(canvas):]  # from the first fill token (after S_0) on; empty without spans
    return inputs, [ids.pad] * (len(targets) - len(learned)) + learned


def limit_spans(tokens, tags, fills, max_spans: int) -> tuple[list[int], list[list[int]]]:
    """Coarsen the edits to at most ``max_spans`` spans without changing their result.

    Spans from index ``max_spans - 1`` on are merged into one REPLACE run that
    covers x_t from that span's start to the end, whose fill is the rest of
    x_{t-1}. ``apply_edits`` gives the same x_{t-1} before and after.
    """
    if max_spans < 1:
        raise ValueError(f"max_spans must be >= 1, got {max_spans}")
    tokens, tags = as_token_list(tokens, "tokens"), as_token_list(tags, "tags")
    spans = edit_spans(tags)
    fills = [as_token_list(fill, "fill") for fill in fills]
    if len(spans) <= max_spans:
        return tags, fills
    kind, start, _ = spans[max_spans - 1]
    head_tags = tags[:start] + ([Tag.KEEP] if kind == Tag.INSERT or start == 0 else [])
    head = apply_edits(tokens[: len(head_tags) - 1], head_tags, fills[: max_spans - 1])
    target = apply_edits(tokens, tags, fills)
    tail_start = len(head_tags)  # first canvas position of the merged run
    new_tags = head_tags + [Tag.REPLACE] * (len(tags) - tail_start)
    if tail_start == len(tags):  # the merged run would be empty: insert after the last token
        new_tags[-1] = Tag.INSERT
    return [int(tag) for tag in new_tags], fills[: max_spans - 1] + [target[len(head):]]
