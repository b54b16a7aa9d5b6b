"""Timestep embeddings for diffusion networks: sinusoidal features of t through a small MLP.

As in DDPM and DiffuSeq: features [cos(t ω_k), sin(t ω_k)], ω_k = 10000^(-k/(d/2)), k = 0..d/2-1,
then Linear(d, 4d), SiLU, Linear(4d, d). t may be an integer step or a real time.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_features(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """(B,) times -> (B, dim) features; dim must be even."""
    if dim % 2:
        raise ValueError(f"the sinusoidal feature size must be even, got {dim}")
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float().unsqueeze(-1) * frequencies
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TimeEmbedding(nn.Module):
    """t (B,) -> (B, dim): sinusoidal features of t through Linear-SiLU-Linear."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(sinusoidal_features(t, self.dim))
