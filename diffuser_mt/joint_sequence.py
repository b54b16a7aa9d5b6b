"""DiffuSeq's joint sequence z = x ⊕ y: one fixed-length row per sentence pair, source first.

A row of length L is ``source + [separator] + target + [filler] * k`` with k >= 1: the target region (every
position after the separator) is noised and generated, and the filler after the target is part of it, so the
model writes the output length as the position of its first filler (DiffuSeq pads the target with PAD to its
fixed length and predicts the PADs; it has no length head). Rows have no batch padding: all are L long.

The fairseq adapters use eos as both separator and filler: z = x </s> y </s> </s> ...
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass(frozen=True)
class JointBatch:
    """tokens: (B, L) long; target_mask: (B, L) bool, True on the target region; truncated: how many targets
    were cut to fit (their last tokens dropped)."""

    tokens: Tensor
    target_mask: Tensor
    truncated: int = 0


def joint_batch(sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]] | None, length: int,
                separator: int, filler: int) -> JointBatch:
    """Rows ``source + [separator] + target + fillers`` of ``length`` L; ``targets`` None: fillers only (decoding).

    A source needs at least two free positions (separator and one target slot); a target longer than its row's
    free slots minus one (the filler that ends it) is cut to fit, as DiffuSeq's data preparation does.
    """
    rows, masks, truncated = [], [], 0
    for index, source in enumerate(sources):
        slots = length - len(source) - 1
        if slots < 1:
            raise ValueError(f"a source of {len(source)} tokens leaves no target slot in a joint sequence of "
                             f"{length}; raise the sequence length")
        target = list(targets[index]) if targets is not None else []
        if len(target) > slots - 1:
            target, truncated = target[: slots - 1], truncated + 1
        rows.append([*source, separator, *target] + [filler] * (slots - len(target)))
        masks.append([False] * (len(source) + 1) + [True] * slots)
    return JointBatch(torch.tensor(rows, dtype=torch.long), torch.tensor(masks, dtype=torch.bool), truncated)


def read_target(tokens: Sequence[int], target_mask: Sequence[bool], filler: int) -> list[int]:
    """The generated target of one row: its target-region tokens before the first filler. A region without a
    filler gives all its tokens but the last, whose slot then ends the target (a filler slot always exists in
    training)."""
    region = [token for token, is_target in zip(tokens, target_mask) if is_target]
    if filler in region:
        return region[: region.index(filler)]
    return region[:-1]


def unpadded(rows: Tensor, *specials: int) -> list[list[int]]:
    """Each row of a padded (B, S) batch as a list of ids without the ``specials`` (padding, eos)."""
    drop = set(specials)
    return [[token for token in row if token not in drop] for row in rows.tolist()]
