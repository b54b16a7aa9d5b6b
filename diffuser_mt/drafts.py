"""User text as decoder input: drafts with kept spans, and text <-> sentencepiece pieces.

A draft is a start state x_T written by a person (``diffuser-mt revise``) or by another system
(``--init-file``). Its kept spans (``--keep-spans``) are whole-word substrings that must survive the edits:
``locked_draft`` encodes the draft part by part, so that each kept span becomes its own run of ids with its
own lock (``diffuser_mt.edit_decoder``'s locks) and every other id is FREE.

Text becomes pieces with the sentencepiece model that encoded the data: the one given on the command line,
else the one the data directory's manifest names (``diffuser_mt.data_manifest``); without either, text is
taken as space-separated pieces.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import sentencepiece

from diffuser_mt.data_manifest import sentencepiece_model
from diffuser_mt.edit_decoder import FREE
from diffuser_mt.textio import InputError


class PieceEncoder:
    """Text <-> sentencepiece pieces; without a model, text is taken as space-separated pieces."""

    def __init__(self, processor: sentencepiece.SentencePieceProcessor | None):
        self.processor = processor

    def encode_as_text(self, text: str) -> str:
        """``text`` as space-separated pieces (the form a fairseq dictionary encodes)."""
        return " ".join(self.processor.encode(text, out_type=str)) if self.processor else text

    def decode(self, symbols: Sequence[str]) -> str:
        return self.processor.decode_pieces(list(symbols)) if self.processor else " ".join(symbols)


def piece_encoder(spm_model: str | os.PathLike | None, manifest: dict | None, option: str) -> PieceEncoder:
    """The encoder of ``spm_model``, else of the manifest's sentencepiece model, else of none; InputError naming
    ``option`` (the command-line option of ``spm_model``) when the model file is missing."""
    if spm_model is None:
        spm_model = sentencepiece_model(manifest)
    if spm_model is None:
        return PieceEncoder(None)
    if not Path(spm_model).is_file():
        raise InputError(f"{spm_model}: no such sentencepiece model (pass {option} PATH)")
    return PieceEncoder(sentencepiece.SentencePieceProcessor(model_file=str(spm_model)))


def keep_span_bounds(draft: str, keep_spans: Sequence[str], line: int) -> list[tuple[int, int]]:
    """Sorted (start, end) character bounds of the first occurrence of each kept span in the draft; InputError
    naming draft ``line`` if a span is absent, not whole words, or overlaps another."""
    bounds = []
    for span in keep_spans:
        start = draft.find(span)
        if start < 0:
            raise InputError(f"draft {line}: --keep-spans {span!r} does not occur in it")
        end = start + len(span)
        if (start > 0 and not draft[start - 1].isspace()) or (end < len(draft) and draft[end].isalnum()):
            raise InputError(f"draft {line}: --keep-spans {span!r} must cover whole words")
        bounds.append((start, end))
    bounds.sort()
    for (_, end), (start, _) in zip(bounds, bounds[1:]):
        if start < end:
            raise InputError(f"draft {line}: --keep-spans overlap")
    return bounds


def locked_draft(draft: str, keep_spans: Sequence[str], pieces: PieceEncoder, encode: Callable[[str], list[int]],
                 line: int) -> tuple[list[int], list[int]]:
    """(draft ids, lock per id): the draft split at the kept spans, each part encoded on its own with
    ``encode`` (space-separated pieces -> ids); kept span k has lock k, the rest FREE."""
    ids, locks, position = [], [], 0
    for lock, (start, end) in enumerate(keep_span_bounds(draft, keep_spans, line)):
        for text, part_lock in ((draft[position:start], FREE), (draft[start:end], lock)):
            part = encode(pieces.encode_as_text(text.strip())) if text.strip() else []
            ids += part
            locks += [part_lock] * len(part)
        position = end
    tail = draft[position:].strip()
    tail_ids = encode(pieces.encode_as_text(tail)) if tail else []
    return ids + tail_ids, locks + [FREE] * len(tail_ids)
