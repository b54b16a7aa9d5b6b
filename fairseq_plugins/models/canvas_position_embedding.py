"""The generator's positional embedding with canvas positions (``--canvas-positions``).

Wraps the position module of a fairseq TransformerDecoder (sinusoidal or learned) so that the decoder's own
forward pass reads Z at the positions of ``diffuser_mt.canvas_positions``: the training step, the uncached
decoding path and the confidence refills need no change. The key/value-cached path
(``fairseq_plugins.cached_decoding``) computes its positions itself and reads them off ``inner``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from diffuser_mt.canvas_positions import canvas_positions
from fairseq_plugins.cached_decoding import position_embeddings


class CanvasPositionalEmbedding(nn.Module):
    """``inner``: the decoder's position module; ``sentinels``: the K span sentinel ids."""

    def __init__(self, inner: nn.Module, sentinels, padding_idx: int):
        super().__init__()
        self.inner = inner
        self.padding_idx = padding_idx
        self.register_buffer("sentinels", torch.tensor(list(sentinels), dtype=torch.long), persistent=False)

    @property
    def max_positions(self) -> int:
        return self.inner.max_positions

    def forward(self, tokens: Tensor, incremental_state=None, **unused) -> Tensor:
        """Embeddings (B x T x C) of right-padded Z (B x T) at its canvas positions."""
        if incremental_state is not None:
            raise ValueError("canvas positions need the whole prefix: decode through fairseq_plugins.cached_decoding")
        positions, _ = canvas_positions(tokens, self.sentinels, self.padding_idx)
        return position_embeddings(self.inner, self.padding_idx, positions)
