"""Roll-in: training examples made from the model's own output.

Corruption only shows the tagger random tokens, so it learns "implausible
token -> edit it" and never "plausible but wrong token". Refiners of the NAT
literature train on their own outputs instead (LevT's deletion learned on its
own insertions, SUNDAE's unrolled denoising, CMLMC's correction loss).

The cheap flavour here costs no decoding: a training step has already
computed the generator's teacher-forced distribution at every gold fill token.
Drawing one token there gives fills of the gold lengths written by the model,
and

    x̂ = apply_edits(x_t, tags, drawn fills)  (read off the generator's canvas, ``canvas.fill_canvas``)

is the model's own version of the step's output: equal to the target where
the generator is right, a plausible but wrong token where it errs. The
example that edits x̂ back to x_0 (Levenshtein supervision,
``training_examples.make_postedit_example``) teaches the tagger to find those
tokens and the generator to correct them in context. It only ever makes
substitutions: the fills keep the gold lengths and x_t's survivors stay.

The full flavour (``decoded_hypotheses``) runs one greedy reverse step of the
model from x_t, as the decoder would: the tagger's own tags (so noise it keeps
and tokens it wrongly deletes stay in x̂) and fills written left to right at
their own lengths. Its x̂ holds every kind of error the model makes at that
step (a wrong, missing, repeated or extra word), and the Levenshtein
supervision teaches the step after it to fix them; it costs one decoding step
of the flagged examples per update.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from diffuser_mt.canvas import SpecialIds, fill_canvas, generator_canvas
from diffuser_mt.edit_decoder import DecodeConfig, decode
from diffuser_mt.edit_model import DecodeVocabulary, EditModel
from diffuser_mt.edits import apply_edits, as_token_list
from diffuser_mt.training_examples import DiffuserExample, make_postedit_example


def fills_of(generator_targets: Sequence[int], ids: SpecialIds, tokens: Sequence[int] | None = None) -> list[list[int]]:
    """The fills of one example, read off its generator targets (Z[1:], pad where no loss applies).

    The learned targets are ``f_0 S_1 f_1 ... S_{K-1} f_{K-1} eos``: each fill
    ends at a sentinel or eos. With ``tokens`` (same length as the targets),
    the fills hold ``tokens`` at the fill positions instead of the targets.
    """
    targets = as_token_list(generator_targets, "generator_targets")
    tokens = targets if tokens is None else as_token_list(tokens, "tokens")
    if len(tokens) != len(targets):
        raise ValueError(f"tokens has {len(tokens)} entries, generator_targets {len(targets)}")
    terminators = {*ids.sentinels, ids.eos}
    fills: list[list[int]] = []
    current: list[int] | None = None
    for target, token in zip(targets, tokens):
        if target == ids.pad:
            continue
        if current is None:
            current = []
        if target in terminators:
            fills.append(current)
            current = [] if target != ids.eos else None
        else:
            current.append(token)
    return fills


def rolled_in_hypothesis(x_t: Sequence[int], tags: Sequence[int], generator_inputs: Sequence[int],
                         generator_targets: Sequence[int], drawn: Sequence[int], ids: SpecialIds) -> list[int]:
    """x̂: the step's canvas filled with the fills' tokens taken from ``drawn`` (aligned with the generator
    targets); with ``drawn == generator_targets`` it is the step's gold output.

    Read off the generator's sequence rather than the tagger's ``tags``: the generator may rewrite tokens the
    tagger keeps (``make_masking_example``'s unchanged share). A step without spans (nothing learned, so the
    sequence does not show its whole canvas) only deletes, by its tags.
    """
    canvas = generator_canvas(generator_inputs, generator_targets, ids.pad)
    if canvas is None:
        return apply_edits(x_t, tags, [])
    return fill_canvas(canvas, fills_of(generator_targets, ids, drawn), ids)


def rollin_example(x_t: Sequence[int], tags: Sequence[int], generator_inputs: Sequence[int],
                   generator_targets: Sequence[int], drawn: Sequence[int], x0: Sequence[int], ids: SpecialIds,
                   unit: str = "token", is_word_start=None) -> DiffuserExample:
    """The example that edits the rolled-in hypothesis (``rolled_in_hypothesis``) into ``x0``."""
    hypothesis = rolled_in_hypothesis(x_t, tags, generator_inputs, generator_targets, drawn, ids)
    return make_postedit_example(hypothesis, as_token_list(x0, "x0"), ids, unit, is_word_start)


def decoded_hypotheses(model: EditModel, states: Sequence[Sequence[int]], vocab: DecodeVocabulary,
                       max_lengths: Sequence[int],
                       rngs: Sequence[np.random.Generator] | None = None) -> list[list[int]]:
    """x̂ of the full flavour: one reverse step of ``model`` from each x_t (``states[i]`` belongs to the model's
    source row i), each at most ``max_lengths[i]`` tokens long. Greedy; with ``rngs`` (one per state) the tags
    and fill tokens are drawn from the model's distributions instead (SUNDAE's sampled unrolling)."""
    config = DecodeConfig(steps=1, stop_when_unchanged=False, max_length=max(max_lengths, default=1),
                          sample_tags=rngs is not None, nucleus_p=1.0 if rngs is not None else 0.0)
    return [beam[0].tokens for beam in decode(model, states, vocab, config, rngs, max_lengths)]
