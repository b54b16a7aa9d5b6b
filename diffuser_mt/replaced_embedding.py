"""The generator's token embedding with visible replaced tokens (the paper's type embedding).

A canvas with visible replaced tokens (``diffuser_mt.canvas``) writes a token
that its step replaces as ``V + token`` (V: the vocabulary size). Such an id
is embedded as the token's own embedding plus one learned "replaced" vector;
every id < V is embedded as before. The output layer stays over the V real
ids, so the generator never writes a marked id.
"""
from __future__ import annotations

import torch
from torch import nn


class ReplacedTokenEmbedding(nn.Module):
    """Wraps an nn.Embedding of V rows: ids (...) in [0, 2V) -> (..., d); id V + i -> E[i] + replaced."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        self.embedding = embedding
        self.replaced = nn.Parameter(torch.empty(embedding.embedding_dim))
        nn.init.normal_(self.replaced, mean=0.0, std=embedding.embedding_dim ** -0.5)

    @property
    def offset(self) -> int:
        """V: the id of the first marked (replaced) token."""
        return self.embedding.num_embeddings

    @property
    def padding_idx(self):
        return self.embedding.padding_idx

    @property
    def embedding_dim(self) -> int:
        return self.embedding.embedding_dim

    @property
    def weight(self) -> torch.Tensor:
        return self.embedding.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        marked = ids >= self.offset
        vectors = self.embedding(torch.where(marked, ids - self.offset, ids))
        return vectors + marked.unsqueeze(-1).to(vectors.dtype) * self.replaced.to(vectors.dtype)
