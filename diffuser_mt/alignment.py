"""Edit supervision from any hypothesis: the tags and fills that take x̂ to x_0.

Corruption knows where every token of x_t came from; a model's output or an
external system's hypothesis x̂ does not. A Levenshtein alignment recovers it:
rapidfuzz's opcodes over integer sequences (token units, or whole words mapped
to integer ids) mark the units of x̂ that match x_0. Those tokens are the
survivors, every other token of x̂ is treated as noise, and
``corruption.clean_supervision`` turns that origin map into tags over
``[start slot] + x̂`` and fills:

* a matched token is KEEP;
* a run of unmatched tokens is REPLACE by the x_0 tokens missing there, or
  DELETE when none are (a duplicated word, trailing junk);
* x_0 tokens missing between two matched tokens are an INSERT after the first
  (the start slot before the first match).

So ``apply_edits(x̂, *edit_supervision(x̂, x_0)) == x_0`` exactly; an identical
pair is all KEEP, one substituted unit is one REPLACE, one omitted unit one
INSERT. Word units never split a word: a word of x̂ is matched whole or not at all.
"""
from __future__ import annotations

from rapidfuzz.distance import Levenshtein

from diffuser_mt.corruption import UNITS, clean_supervision, unit_boundaries
from diffuser_mt.edits import as_token_list


def matched_origins(hypothesis, target, unit: str = "token", is_word_start=None) -> list[int]:
    """Per token of ``hypothesis``: the index of the ``target`` token it is aligned to, or -1.

    The matched indices increase along the hypothesis (an alignment never
    crosses). ``is_word_start`` (bool per vocabulary id) is needed for word units.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    hypothesis, target = as_token_list(hypothesis, "hypothesis"), as_token_list(target, "target")
    hyp_units = unit_boundaries(hypothesis, unit, is_word_start)
    tgt_units = unit_boundaries(target, unit, is_word_start)
    hyp_keys, tgt_keys = _unit_keys(hypothesis, hyp_units, target, tgt_units)
    origins = [-1] * len(hypothesis)
    for opcode in Levenshtein.opcodes(hyp_keys, tgt_keys):
        if opcode.tag != "equal":
            continue
        for offset in range(opcode.src_end - opcode.src_start):
            hyp_unit, tgt_unit = opcode.src_start + offset, opcode.dest_start + offset
            first_target = tgt_units[tgt_unit]
            for k, position in enumerate(range(hyp_units[hyp_unit], hyp_units[hyp_unit + 1])):
                origins[position] = first_target + k
    return origins


def edit_supervision(hypothesis, target, unit: str = "token", is_word_start=None) -> tuple[list[int], list[list[int]]]:
    """Gold (tags, fills) with ``apply_edits(hypothesis, tags, fills) == target``; see the module docstring."""
    origins = matched_origins(hypothesis, target, unit, is_word_start)
    return clean_supervision(as_token_list(hypothesis, "hypothesis"), origins, as_token_list(target, "target"))


def _unit_keys(hypothesis: list[int], hyp_units: list[int], target: list[int],
               tgt_units: list[int]) -> tuple[list[int], list[int]]:
    """One integer per unit; equal units (same token ids) get equal integers."""
    if len(hyp_units) == len(hypothesis) + 1 and len(tgt_units) == len(target) + 1:
        return hypothesis, target  # token units: the ids themselves
    ids: dict[tuple[int, ...], int] = {}

    def keys(tokens, units):
        return [ids.setdefault(tuple(tokens[a:b]), len(ids)) for a, b in zip(units[:-1], units[1:])]

    return keys(hypothesis, hyp_units), keys(target, tgt_units)
