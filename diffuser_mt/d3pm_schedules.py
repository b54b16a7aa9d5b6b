"""D3PM noise schedules: ᾱ_t, the probability that a token still holds its clean value x_0 after t steps.

A schedule is the cumulative product ᾱ_t = (1 - β_1) ... (1 - β_t) of the one-step rates β_t of the
transition matrices Q_t (``diffuser_mt.d3pm_transitions``); every schedule here is given in closed form
over integer steps t = 0..T, with ᾱ_0 = 1 and ᾱ_T = 0 exactly, so q(x_T | x_0) is the transition's
stationary distribution and the prior term L_T of the bound is 0. The rates follow as
β_t = 1 - ᾱ_t / ᾱ_{t-1}.

* ``mutual_information``: β_t = 1 / (T - t + 1), so ᾱ_t = 1 - t/T (D3PM's schedule for absorbing
  diffusion: a token is masked by step t with probability t/T).
* ``cosine``: ᾱ_t = f(t) / f(0), f(t) = cos((t/T + s) / (1 + s) * π/2), s = 0.008, as D3PM's released code
  computes it for uniform diffusion (the cosine itself, not its square); ᾱ_T is set to 0 where the
  released code clips β_T at 0.999.
* ``spindle`` (DiffusionBERT, He et al. 2022): a token-dependent schedule for absorbing diffusion that
  masks informative (rare) tokens first: ᾱ_t(v) = 1 - t/T + λ sin(π t/T) (w(v) - w̄), with w(v) =
  log(1 + count(v)) / max_u log(1 + count(u)) and w̄ the mean of w over the training tokens. DiffusionBERT
  centres w by each sentence's mean; the corpus mean used here makes ᾱ depend on the token alone, so
  that the forward process stays a Markov chain per token and the reverse step keeps its closed form.
  For 0 <= λ <= 1/π every ᾱ_t(v) lies in [0, 1] and decreases with t.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

SCHEDULES = ("mutual_information", "cosine", "spindle")
COSINE_OFFSET = 0.008


class NoiseSchedule(nn.Module, ABC):
    """ᾱ_t over integer steps t in 0..T; a module so that per-token tables follow the model's device."""

    per_token = False  # True when ᾱ_t depends on the clean token

    def __init__(self, num_steps: int):
        super().__init__()
        if num_steps < 1:
            raise ValueError(f"the number of diffusion steps T must be >= 1, got {num_steps}")
        self.num_steps = num_steps

    @abstractmethod
    def alpha_bar(self, t: Tensor) -> Tensor:
        """ᾱ_t as float32 for integer steps ``t`` of any shape: shape t.shape + (1,), or t.shape + (K,)
        (one value per clean token) when ``per_token``; broadcastable against (..., K) distributions."""


class MutualInformationSchedule(NoiseSchedule):
    """ᾱ_t = 1 - t/T, i.e. β_t = 1/(T - t + 1)."""

    def alpha_bar(self, t: Tensor) -> Tensor:
        return (1.0 - t.float() / self.num_steps).unsqueeze(-1)


class CosineSchedule(NoiseSchedule):
    """ᾱ_t = cos((t/T + s)/(1 + s) π/2) / cos(s/(1 + s) π/2), and ᾱ_T = 0."""

    def alpha_bar(self, t: Tensor) -> Tensor:
        phase = (t.double() / self.num_steps + COSINE_OFFSET) / (1 + COSINE_OFFSET) * (math.pi / 2)
        alpha = torch.cos(phase) / math.cos(COSINE_OFFSET / (1 + COSINE_OFFSET) * math.pi / 2)
        alpha = torch.where(t >= self.num_steps, torch.zeros_like(alpha), alpha)
        return alpha.float().unsqueeze(-1)


class SpindleSchedule(NoiseSchedule):
    """DiffusionBERT's spindle schedule; ``token_counts`` (K,) are training-corpus frequencies (0 for tokens
    that are never clean values, such as specials and [MASK])."""

    per_token = True

    def __init__(self, num_steps: int, token_counts: Tensor, spindle_lambda: float):
        super().__init__(num_steps)
        if not 0.0 <= spindle_lambda <= 1.0 / math.pi:
            raise ValueError(f"spindle lambda must be in [0, 1/pi] (so that every token's alpha_bar decreases "
                             f"with t), got {spindle_lambda}")
        counts = token_counts.double()
        if counts.min() < 0 or counts.sum() <= 0:
            raise ValueError("the spindle schedule needs non-negative token counts with a positive total")
        weight = torch.log1p(counts)
        weight = weight / weight.max()
        centred = weight - (counts * weight).sum() / counts.sum()
        self.spindle_lambda = spindle_lambda
        self.register_buffer("centred_frequency", centred.float(), persistent=False)

    def alpha_bar(self, t: Tensor) -> Tensor:
        fraction = (t.float() / self.num_steps).unsqueeze(-1)
        spindle = self.spindle_lambda * torch.sin(math.pi * fraction) * self.centred_frequency.float()
        alpha = (1.0 - fraction + spindle).clamp(0.0, 1.0)
        return torch.where(fraction >= 1.0, torch.zeros_like(alpha), alpha)


def make_schedule(name: str, num_steps: int, token_counts: Tensor | None = None,
                  spindle_lambda: float = 0.3) -> NoiseSchedule:
    """The schedule called ``name`` (one of SCHEDULES); ``spindle`` needs ``token_counts``."""
    if name == "mutual_information":
        return MutualInformationSchedule(num_steps)
    if name == "cosine":
        return CosineSchedule(num_steps)
    if name == "spindle":
        if token_counts is None:
            raise ValueError("the spindle schedule needs token counts")
        return SpindleSchedule(num_steps, token_counts, spindle_lambda)
    raise ValueError(f"unknown noise schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
