"""The edit vocabulary of DiffusER's reverse step and ``apply_edits``.

A reverse step x_t -> x_{t-1} is a tag sequence plus one fill per edit span.
Tags are the paper's four Levenshtein operations and attach to the *canvas*
``[start slot] + x_t``, so ``len(tags) == len(x_t) + 1``:

* ``tags[0]`` is the start slot. It may only be KEEP (nothing happens) or
  INSERT (insert a span before the first token).
* For a token of x_t:

  - KEEP    copy the token;
  - DELETE  drop the token;
  - INSERT  copy the token, then insert a span after it;
  - REPLACE the token belongs to a replaced span. Each maximal run of
    consecutive REPLACE tags is ONE span: all its tokens are replaced by the
    span's fill, which may be longer, shorter or empty (an empty fill deletes
    the run). The generator decides the fill's length.

``edit_spans(tags)`` lists the spans in canvas order as ``(kind, start, end)``
over canvas positions (end exclusive): one per REPLACE run and one per INSERT
tag (``start == end - 1 ==`` that position). ``fills[k]`` is the token list
for span ``k``. An INSERT fill may be empty (then it inserts nothing).

Token sequences, tags and fills may be lists or 1-D numpy arrays / torch
tensors of ints; results are plain lists of ints.
"""
from __future__ import annotations

import enum
from typing import Sequence


class Tag(enum.IntEnum):
    """Edit tag of one canvas position in the reverse step x_t -> x_{t-1}."""

    KEEP = 0
    DELETE = 1
    REPLACE = 2
    INSERT = 3


NUM_TAGS = len(Tag)
TAG_PAD = -100  # a padded position of a tag target: the ignore_index of the tagger's cross-entropy
START_SLOT_TAGS = frozenset({Tag.KEEP, Tag.INSERT})

EditSpan = tuple[Tag, int, int]


def as_token_list(sequence, name: str = "sequence") -> list[int]:
    """Return a 1-D list, numpy array or torch tensor of ints as a list of python ints."""
    if getattr(sequence, "ndim", 1) != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(sequence.shape)}")
    values = sequence.tolist() if hasattr(sequence, "tolist") else list(sequence)
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold integers, got {values[:5]!r}...") from None


def _validated_tags(tags) -> list[int]:
    tags = as_token_list(tags, "tags")
    if not tags:
        raise ValueError("tags must hold at least the start slot (len(tags) == len(tokens) + 1)")
    bad = sorted({t for t in tags if not 0 <= t < NUM_TAGS})
    if bad:
        raise ValueError(f"tags must be Tag values 0..{NUM_TAGS - 1} (KEEP, DELETE, REPLACE, INSERT), got {bad}")
    if tags[0] not in START_SLOT_TAGS:
        raise ValueError(f"tags[0] is the start slot: it must be KEEP or INSERT, got {Tag(tags[0]).name}")
    return tags


def _spans_of_valid_tags(tags: list[int]) -> list[EditSpan]:
    spans: list[EditSpan] = []
    run_start = None
    for position, tag in enumerate(tags):
        if tag == Tag.REPLACE:
            if run_start is None:
                run_start = position
            continue
        if run_start is not None:
            spans.append((Tag.REPLACE, run_start, position))
            run_start = None
        if tag == Tag.INSERT:
            spans.append((Tag.INSERT, position, position + 1))
    if run_start is not None:
        spans.append((Tag.REPLACE, run_start, len(tags)))
    return spans


def edit_spans(tags) -> list[EditSpan]:
    """Spans of a canvas tag sequence, in canvas order: (REPLACE, start, end) per run, (INSERT, p, p+1) per INSERT."""
    return _spans_of_valid_tags(_validated_tags(tags))


def apply_edits(tokens, tags, fills: Sequence) -> list[int]:
    """Apply a reverse step: x_t (``tokens``), canvas ``tags`` and one fill per span -> x_{t-1}.

    Raises ValueError when ``len(tags) != len(tokens) + 1``, a tag is not a Tag
    value, the start slot is neither KEEP nor INSERT, or ``len(fills)`` differs
    from the number of spans in ``edit_spans(tags)``.
    """
    tokens = as_token_list(tokens, "tokens")
    tags = _validated_tags(tags)
    if len(tags) != len(tokens) + 1:
        raise ValueError(
            f"len(tags) must be len(tokens) + 1 (start slot + one per token): "
            f"got {len(tags)} tags for {len(tokens)} tokens"
        )
    spans = _spans_of_valid_tags(tags)
    if len(fills) != len(spans):
        raise ValueError(f"need one fill per edit span: got {len(fills)} fills for {len(spans)} spans")
    fill_at = {start: as_token_list(fill, f"fills[{k}]") for k, ((_, start, _), fill) in enumerate(zip(spans, fills))}

    output: list[int] = list(fill_at.get(0, ()))
    for position in range(1, len(tags)):
        tag = tags[position]
        if tag == Tag.KEEP:
            output.append(tokens[position - 1])
        elif tag == Tag.INSERT:
            output.append(tokens[position - 1])
            output.extend(fill_at[position])
        elif tag == Tag.REPLACE and position in fill_at:
            output.extend(fill_at[position])
    return output


def whole_word_tags(tags, word_starts: Sequence[bool], editable: Sequence[bool] | None = None) -> list[int]:
    """Canvas tags with each edit inside a word widened to the whole word: the decoder's word unit.

    ``word_starts``: one flag per token of x_t (len(tags) - 1), True where a word begins (sentencepiece's ▁);
    the first token always begins one. A word is edited inside when one of its tokens is REPLACE or DELETE, or
    one before its last is INSERT (an insertion that splits it). Such a word becomes one REPLACE run, so the
    generator rewrites it whole, unless every token is DELETE (the word is deleted). INSERT after a word's last
    token and the start slot are left as they are; so is a word with a token whose ``editable`` flag is False.
    The span count may change: callers apply their span limit afterwards.
    """
    tags = _validated_tags(tags)
    if len(word_starts) != len(tags) - 1:
        raise ValueError(f"need one word-start flag per token: got {len(word_starts)} for {len(tags) - 1} tokens")
    starts = [index for index, flag in enumerate(word_starts) if flag or index == 0]
    widened = list(tags)
    for start, end in zip(starts, starts[1:] + [len(word_starts)]):
        word = tags[start + 1:end + 1]
        splits = any(tag in (Tag.REPLACE, Tag.DELETE) for tag in word) or Tag.INSERT in word[:-1]
        if not splits or all(tag == Tag.DELETE for tag in word):
            continue
        if editable is not None and not all(editable[start:end]):
            continue
        widened[start + 1:end + 1] = [Tag.REPLACE] * (end - start)
    return widened
