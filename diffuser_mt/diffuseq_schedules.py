"""Gaussian noise schedules for DiffuSeq (Gong et al. 2022): the rates β_t and ᾱ_t = (1 - β_0) ... (1 - β_t).

Steps are 0-based as in DiffuSeq's (and improved-diffusion's) code: t = 0..T-1 indexes the T noising steps,
``alphas_cumprod[t]`` is ᾱ_t, the signal kept after t + 1 steps, so q(z_t | z_0) = N(sqrt(ᾱ_t) z_0, (1 - ᾱ_t) I)
and the last step, t = T - 1, is the prior's. ᾱ_{-1} = 1 (``alphas_cumprod_prev[0]``) stands for "no noise".

* ``sqrt`` (DiffuSeq, after Diffusion-LM): ᾱ(u) = 1 - sqrt(u + s), s = 1e-4, discretised as
  β_i = min(1 - ᾱ((i+1)/T) / ᾱ(i/T), 0.999). It starts with much more noise than ``linear`` or ``cosine``:
  small noise barely changes which word an embedding rounds to, so those early steps would teach little
  (Diffusion-LM's rationale). Uncapped, the product telescopes: ᾱ_t = ᾱ((t+1)/T) / ᾱ(0).
  The last β is always capped (ᾱ(1) < 0), so ᾱ_{T-1} is small but not 0.
* ``linear`` (Ho et al. 2020): β linear from 1e-4 * 1000/T to 0.02 * 1000/T (DDPM's range, scaled so that
  the schedule is about the same for any T); needs T > 20 for β < 1.
* ``cosine`` (Nichol & Dhariwal 2021): ᾱ(u) = cos²((u + 0.008)/1.008 * π/2), discretised like ``sqrt``.

The tables are float64 on the CPU, as in DiffuSeq; the diffusion functions
(``diffuser_mt.diffuseq_diffusion``) read them per batch.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

SCHEDULES = ("sqrt", "linear", "cosine")
MAX_BETA = 0.999
SQRT_OFFSET = 1e-4
COSINE_OFFSET = 0.008


class GaussianSchedule(ABC):
    """β_t and the tables derived from it, for t = 0..T-1 (float64 tensors of length T):

    * ``betas``: β_t, the variance added by step t;
    * ``alphas_cumprod``: ᾱ_t = Π_{i<=t} (1 - β_i);
    * ``alphas_cumprod_prev``: ᾱ_{t-1}, with ᾱ_{-1} = 1;
    * ``posterior_variance``: β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t), the variance of q(z_{t-1} | z_t, z_0)
      (0 at t = 0, where z_{-1} = z_0).
    """

    def __init__(self, num_steps: int):
        if num_steps < 1:
            raise ValueError(f"the number of diffusion steps T must be >= 1, got {num_steps}")
        self.num_steps = num_steps
        self.betas = self.make_betas(num_steps)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)

    @abstractmethod
    def make_betas(self, num_steps: int) -> Tensor:
        """β_0..β_{T-1}, float64 (T,), each in (0, 1)."""


class AlphaBarSchedule(GaussianSchedule):
    """A schedule given by a continuous ᾱ(u), u in [0, 1]: β_i = min(1 - ᾱ((i+1)/T) / ᾱ(i/T), 0.999)."""

    @abstractmethod
    def alpha_bar(self, u: Tensor) -> Tensor:
        """ᾱ(u) for float64 fractions u of the chain."""

    def make_betas(self, num_steps):
        u = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        alpha = self.alpha_bar(u)
        return (1.0 - alpha[1:] / alpha[:-1]).clamp(max=MAX_BETA)


class SqrtSchedule(AlphaBarSchedule):
    """DiffuSeq's ᾱ(u) = 1 - sqrt(u + 1e-4)."""

    def alpha_bar(self, u):
        return 1.0 - torch.sqrt(u + SQRT_OFFSET)


class CosineSchedule(AlphaBarSchedule):
    """Nichol & Dhariwal's ᾱ(u) = cos²((u + 0.008)/1.008 * π/2)."""

    def alpha_bar(self, u):
        return torch.cos((u + COSINE_OFFSET) / (1 + COSINE_OFFSET) * (math.pi / 2)) ** 2


class LinearSchedule(GaussianSchedule):
    """DDPM's β linear from 1e-4 to 0.02 for T = 1000, scaled by 1000/T."""

    def make_betas(self, num_steps):
        scale = 1000.0 / num_steps
        if 0.02 * scale >= 1.0:
            raise ValueError(f"the linear schedule needs T > 20 (its last beta is 20/T), got T = {num_steps}")
        return torch.linspace(1e-4 * scale, 0.02 * scale, num_steps, dtype=torch.float64)


def make_schedule(name: str, num_steps: int) -> GaussianSchedule:
    """The schedule called ``name`` (one of SCHEDULES) over T = ``num_steps`` steps."""
    if name == "sqrt":
        return SqrtSchedule(num_steps)
    if name == "linear":
        return LinearSchedule(num_steps)
    if name == "cosine":
        return CosineSchedule(num_steps)
    raise ValueError(f"unknown noise schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
