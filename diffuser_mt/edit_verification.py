"""Edit verification: keep a step's edit only if the generator, read as a translation model, prefers it.

On an empty canvas the generator reads ``[bos, S_0, S_0] + y + [eos]`` and is an
ordinary left-to-right model of y (``diffuser_mt.canvas``). Its mean
log-probability per decision (every token of y and the closing eos, renormalised
over what a fill may write, as in ``diffuser_mt.span_filling``) is the length-
normalised score fairseq's beam search ranks translations by. With verification
the decoder compares that score of the text a step writes with the score of the
text it started from and keeps the edit only if the score rises: the tagger and
generator propose, the generator as a whole-sentence model decides. A proposal
from a tagger that edits too much (roll-in, plausible noise, confidence
re-editing) then cannot make the text less likely than it was.
"""
from __future__ import annotations

from typing import Sequence

import torch

from diffuser_mt.canvas import build_canvas
from diffuser_mt.edit_model import DecodeVocabulary, EditModel
from diffuser_mt.edits import Tag


def sentence_scores(model: EditModel, rows: Sequence[int], sentences: Sequence[Sequence[int]],
                    vocab: DecodeVocabulary) -> list[float]:
    """Per sentence (token ids, no bos/eos) of source row ``rows[i]``: the generator's mean log-probability per
    decision of writing it, then eos, as the one fill of an empty canvas (module docstring)."""
    if not sentences:
        return []
    ids = vocab.ids
    canvas = build_canvas([], [Tag.INSERT], ids.sentinels, ids.replaced_offset)
    prefix = [ids.bos, *canvas, ids.sentinels[0]]
    longest = max(len(sentence) for sentence in sentences)
    targets = torch.tensor([[*sentence, ids.eos] + [ids.eos] * (longest - len(sentence)) for sentence in sentences])
    state, log_probs = model.start_fills(rows, [prefix] * len(sentences))
    totals = torch.zeros(len(sentences), dtype=torch.float64)
    for position in range(longest + 1):
        normalised = vocab.single_fill_log_probs(log_probs)
        written = torch.tensor([position <= len(sentence) for sentence in sentences])
        totals += torch.where(written, normalised[torch.arange(len(sentences)), targets[:, position]].double(), 0.0)
        if position < longest:
            state, log_probs = model.extend_fills(state, list(range(len(sentences))), targets[:, position].tolist())
    return [float(total) / (len(sentence) + 1) for total, sentence in zip(totals, sentences)]
