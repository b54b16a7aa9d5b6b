"""Canvas positions: the fill section read at the places its tokens will take (GLM's blank-infilling positions).

The generator reads one causal sequence Z = [bos] + canvas + S_0 f_0 ... S_{K-1} f_{K-1} + [eos]
(``diffuser_mt.canvas``). By default a token's position is its index in Z, so a fill is read far from the
gap it fills and the generator has to learn to point from S_k in the fill section back to S_k in the
canvas. With canvas positions (``--canvas-positions``), as GLM (Du et al., 2022) positions its blank
infilling:

* a canvas token (bos and everything before the fill section) keeps its index in Z;
* a fill sentinel S_k takes the position just before S_k's place in the canvas, c_k - 1, and the j-th token
  after it (its fill tokens, then the terminator S_{k+1} or eos) takes c_k - 1 + j, unless that token is
  itself a fill sentinel.

So fill k's first token is read at c_k, where the span stands, with the canvas to its left at the positions
before it, exactly as a left-to-right model reads a sentence. On an empty canvas, Z = [bos, S_0, S_0] + y +
[eos] puts y at positions 1, 2, ...: the positions of a fairseq transformer's target, which the warm start
(``--init-generator-from``) then matches.

Positions here are 0-based; pad tokens get 0 (their keys are masked, their outputs never read).
"""
from __future__ import annotations

import torch
from torch import Tensor


def sentinel_matches(tokens: Tensor, sentinels: Tensor) -> Tensor:
    """(..., K) bool: ``tokens`` (...) equal to sentinel k (``sentinels``: the K sentinel ids)."""
    return tokens.unsqueeze(-1) == sentinels.to(tokens.device)


def canvas_positions(z: Tensor, sentinels: Tensor, pad: int) -> tuple[Tensor, Tensor]:
    """(positions B x T, anchors B x K) of right-padded generator sequences ``z`` (B x T), see module docstring.

    ``anchors[b, k]`` = c_k - 1, the position of fill sentinel S_k in row b, or -1 when S_k is not on the
    row's canvas. The first occurrence of S_k in a row is its canvas place, the second its fill.
    """
    matches = sentinel_matches(z, sentinels)  # B x T x K
    occurrence = matches.long().cumsum(1) * matches  # 1 at S_k's canvas place, 2 at its fill
    index = torch.arange(z.size(1), device=z.device)
    on_canvas = occurrence.eq(1)
    anchors = torch.where(on_canvas.any(1), (on_canvas * index[None, :, None]).sum(1) - 1,
                          torch.full_like(on_canvas[:, 0], -1, dtype=torch.long))
    fill_sentinel = occurrence.eq(2)  # B x T x K
    is_fill_sentinel = fill_sentinel.any(-1)  # B x T
    span = fill_sentinel.long().argmax(-1)  # B x T: the span of a fill sentinel (0 elsewhere)
    last_fill_sentinel = torch.where(is_fill_sentinel, index, torch.full_like(index, -1)).cummax(1).values
    in_fill = last_fill_sentinel.ge(0)
    at = last_fill_sentinel.clamp(min=0)
    anchor_there = anchors.gather(1, span.gather(1, at))
    positions = torch.where(in_fill, anchor_there + index - last_fill_sentinel, index.expand_as(z))
    return positions.masked_fill(z.eq(pad), 0), anchors


def step_positions(tokens: Tensor, following: Tensor, anchors: Tensor, sentinels: Tensor) -> Tensor:
    """(B,) positions of one more token per row: a fill sentinel S_k at ``anchors[:, k]``, any other token at
    ``following`` (the position after the row's last token). ``tokens``, ``following``: (B,); anchors: B x K."""
    matches = sentinel_matches(tokens, sentinels)
    anchor = (anchors * matches).sum(-1)
    return torch.where(matches.any(-1) & anchor.ge(0), anchor, following)
