"""Sampling D3PM's reverse process x_T -> x_0 with a stride: N <= T steps on an evenly spaced grid of times.

From t to the next grid time s (s < t; a jump of several steps uses Q_{s+1} ... Q_t, see
``Transition.posterior``), with p̃ = softmax(logits / temperature) over the clean-token support:

* ``sample``: ancestral sampling, x_s ~ p_θ(x_s | x_t) ∝ q(x_t | x_s) [p̃ Q̄_s](x_s);
* ``argmax``: x̂_0 = argmax p_θ(x_0 | x_t), the most likely clean token consistent with x_t (for absorbing
  diffusion an unmasked token is its own x̂_0), then x_s ~ q(x_s | x_t, x̂_0): which positions change is
  still drawn, what they change to is not. The last step (s = 0) sets every position to x̂_0.

Randomness is per sentence: each sentence draws from its own generator (``sentence_generator``: seeded
by the run's seed and the sentence's source ids) exactly one uniform per token and step, so its output does
not depend on the batch it is decoded in, nor on its position in the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from diffuser_mt.d3pm_transitions import Transition

DECODING_MODES = ("argmax", "sample")


@dataclass(frozen=True)
class DecodeConfig:
    """steps: reverse steps N (1 <= N <= T); mode: one of DECODING_MODES; temperature: divides the x_0 logits."""

    steps: int = 20
    mode: str = "argmax"
    temperature: float = 1.0

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"the number of decoding steps must be >= 1, got {self.steps}")
        if self.mode not in DECODING_MODES:
            raise ValueError(f"unknown decoding mode {self.mode!r}; choose one of {', '.join(DECODING_MODES)}")
        if not self.temperature > 0:
            raise ValueError(f"the temperature must be > 0, got {self.temperature}")


def timestep_grid(num_steps: int, steps: int) -> list[int]:
    """T = t_0 > t_1 > ... > t_N = 0, evenly strided (t_i = floor(T (N - i) / N)); needs 1 <= N <= T."""
    if not 1 <= steps <= num_steps:
        raise ValueError(f"the number of decoding steps must be in 1..T = 1..{num_steps}, got {steps}")
    return [num_steps * (steps - i) // steps for i in range(steps + 1)]


def sentence_generator(seed: int, source: Sequence[int], *stream: int) -> torch.Generator:
    """A CPU generator for one sentence, seeded from (seed, the sentence's source ids, *stream); ``stream`` tells
    apart several independent draws of one sentence (e.g. the samples of MBR decoding)."""
    state = np.random.SeedSequence([seed, len(source), *source, *stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def categorical(probs: Tensor, uniforms: Tensor) -> Tensor:
    """Inverse-CDF draws: one state per row of ``probs`` (..., K) from ``uniforms`` (...) in [0, 1);
    states of probability 0 are never drawn."""
    cdf = probs.cumsum(-1)
    draws = torch.searchsorted(cdf, (uniforms * cdf[..., -1]).unsqueeze(-1).contiguous(), right=True)
    return draws.squeeze(-1).clamp_max(probs.size(-1) - 1)


def reverse_diffusion(transition: Transition, denoise: Callable[[Tensor, Tensor], Tensor], lengths: Sequence[int],
                      generators: Sequence[torch.Generator], config: DecodeConfig,
                      pad: int) -> tuple[Tensor, Tensor]:
    """Decode one batch of sentences of the given lengths (>= 1) from x_T ~ π.

    ``denoise(x_t, t)`` maps tokens (B x L, padded with ``pad``) and timesteps (B,) to x_0 logits (B x L x K).
    Returns the tokens x_0 (B x L, padded) and each token's log p̃(x_0 | x_{t_{N-1}}) at the last step
    (untempered; 0 at padding).
    """
    device = transition.support.device
    width = max(lengths)
    is_token = torch.arange(width, device=device) < torch.tensor(list(lengths), device=device).unsqueeze(1)
    rows = [transition.sample_stationary((n,), generator) for n, generator in zip(lengths, generators)]
    x = _pad(rows, width, pad, device)
    times = timestep_grid(transition.num_steps, config.steps)
    for t, s in zip(times, times[1:]):
        t_rows = torch.full((len(lengths), 1), t, device=device)
        s_rows = torch.full((len(lengths), 1), s, device=device)
        logits = denoise(x, t_rows.squeeze(1)).float()
        x0_probs = transition.x0_log_probs(logits / config.temperature).exp()
        if config.mode == "argmax":
            x0_hat = transition.posterior(x, x0_probs, torch.zeros_like(s_rows), t_rows).argmax(-1)
            x0_probs = F.one_hot(x0_hat, transition.num_states).float()
        probs = transition.posterior(x, x0_probs, s_rows, t_rows)
        uniforms = _pad([torch.rand(n, generator=generator) for n, generator in zip(lengths, generators)],
                        width, 0.0, device)
        x = torch.where(is_token, categorical(probs, uniforms), pad)
    scores = transition.x0_log_probs(logits).gather(-1, x.unsqueeze(-1)).squeeze(-1)
    return x, torch.where(is_token, scores, torch.zeros_like(scores))


def _pad(rows: Sequence[Tensor], width: int, value, device) -> Tensor:
    """Stack 1-d rows into (len(rows), width), right-padded with ``value``."""
    out = torch.full((len(rows), width), value, dtype=rows[0].dtype, device=device)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row.to(device)
    return out
