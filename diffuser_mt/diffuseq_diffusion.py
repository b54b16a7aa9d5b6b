"""DiffuSeq (Gong et al. 2022): Gaussian diffusion over the embeddings of z = x ⊕ y with partial noising.

A sentence pair is one sequence z = [source; target] of L positions, embedded with one shared matrix Emb (V x D)
whose transpose is also the LM head (``logits_fn``, the "rounding" from vectors to words). ``target_mask``
(B x L, bool) marks the positions that are noised and generated; the others (the source) are the anchor that
conditions the model. Steps t are 0-based (t = 0..T-1, ᾱ_t = ``schedule.alphas_cumprod[t]``, ᾱ_{-1} = 1; see
``diffuser_mt.diffuseq_schedules``), as in DiffuSeq's code; our t is the paper's t - 1.

Forward process (partial noising):

    z_0 = Emb(w) + sqrt(1 - ᾱ_0) ε_0                                            (``z0_from_embeddings``)
    z_t = sqrt(ᾱ_t) z_0 + sqrt(1 - ᾱ_t) ε   at target positions,   z_t = z_0   elsewhere   (``q_sample``)

Posterior (``q_posterior_mean_variance``), with α_t = 1 - β_t:

    q(z_{t-1} | z_t, z_0) = N(μ̃_t, β̃_t I),
    μ̃_t = β_t sqrt(ᾱ_{t-1}) / (1 - ᾱ_t) z_0 + (1 - ᾱ_{t-1}) sqrt(α_t) / (1 - ᾱ_t) z_t,
    β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t).

Training (``training_terms``): the network f predicts z_0 from z_t. Per sentence, each term a mean over the
counted positions (target and not padding) and the D dimensions:

* ``mse``: ||f(z_t, t) - z_0||², with target Emb(w) instead of z_0 at t = 0 (the paper's first-step term);
* ``tT``: ||sqrt(ᾱ_{T-1}) z_0||², the prior term: the squared mean of q(z_{T-1} | z_0), which
  KL(q(z_{T-1} | z_0) || N(0, I)) penalises (it keeps the embeddings from growing);
* ``rounding_nll``: -log p(w | z_0) = CE(logits_fn(z_0), w);
* ``nll``: CE(logits_fn(f(z_t, t)), w), detached: logged, not optimised (as in DiffuSeq).

The loss is mse + tT + rounding_nll (``TrainingTerms.loss``). [code] DiffuSeq's code averages mse, tT and
rounding_nll over **all** L positions, source included (issue #26), so the model is also trained to copy the
source anchor it is given and the target's share of the loss shrinks with the source length; here they are
restricted to the target, as in the paper's Eq. 2. In DiffuSeq the target includes its PAD filler up to the
fixed length (the model predicts the length through PADs); whether filler counts is the caller's choice of
``target_mask``; ``padding_mask`` marks batch padding, which counts for nothing.

Timesteps (``UniformSampler``, ``LossAwareSampler``): t ~ p_t, and each sentence's loss is weighted by
1/(T p_t), an unbiased estimate of the mean over t. DiffuSeq's ``lossaware`` sampler draws t uniformly until
every t has 10 recorded losses, then p_t ∝ sqrt(E[L_t²]) over that history, mixed with 0.001 uniform.

Self-conditioning (``self_condition_input``; not in DiffuSeq): the network also receives a previous x_0
estimate; in training, with probability 1/2 (one coin per batch, as in Chen et al. 2022, "Analog Bits"), the
estimate of a first pass without gradients that itself received zeros, else zeros.

Sampling (``sample_reverse``): N <= T steps on the grid T = τ_0 > τ_1 > ... > τ_N = 0 of
``d3pm_sampling.timestep_grid``; step i calls the network at t = τ_i - 1 and moves to s = τ_{i+1} - 1.

* N = T: ancestral DDPM sampling, z_{t-1} = μ̃_t(x̂_0, z_t) + σ_t ε, no noise at t = 0. σ_t² = β_t
  (``variance="beta"``, DiffuSeq's code, Ho et al.'s "fixed large") or β̃_t (``"posterior"``: with an exact
  x̂_0 every z_t then follows q(z_t | z_0)).
* N < T: DDIM with η = 0: ε̂ = (z_t - sqrt(ᾱ_t) x̂_0) / sqrt(1 - ᾱ_t) and z_s = sqrt(ᾱ_s) x̂_0 + sqrt(1 - ᾱ_s) ε̂.
  [code] DiffuSeq's strided DDIM moves to ᾱ_{t-1} whatever the stride (its ``alphas_cumprod_prev[t]``), so
  z_s carries more noise than the step s the network is told next; here z_s uses ᾱ_s of the next grid time.

Optionally x̂_0 is first snapped to its nearest embedding row (``clamp_to_embeddings``, DiffuSeq's clamping
trick, applied at every step). After every step the source positions are set back to the anchor. The last
step would land on s = -1 (ᾱ = 1, no noise), where both updates give z = x̂_0: it returns x̂_0.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from diffuser_mt.d3pm_sampling import timestep_grid
from diffuser_mt.diffuseq_schedules import GaussianSchedule

VARIANCES = ("beta", "posterior")


@dataclass(frozen=True)
class DecodeConfig:
    """steps: reverse steps N (1 <= N <= T; N = T is ancestral DDPM, else DDIM); clamp: snap every x_0 estimate
    to its nearest embedding; mbr_samples: k samples per sentence, of which MBR keeps one (1 = no MBR);
    variance: the ancestral noise (one of VARIANCES)."""

    steps: int = 200
    clamp: bool = True
    mbr_samples: int = 1
    variance: str = "beta"

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"the number of decoding steps must be >= 1, got {self.steps}")
        if self.mbr_samples < 1:
            raise ValueError(f"the number of MBR samples must be >= 1, got {self.mbr_samples}")
        if self.variance not in VARIANCES:
            raise ValueError(f"unknown reverse variance {self.variance!r}; choose one of {', '.join(VARIANCES)}")

# denoise(z_t (B, L, D), t (B,) long 0-based, prev_x0 (B, L, D) or None) -> x_0 estimate (B, L, D)
Denoiser = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]


def _at(table: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """table[t] (t of shape (B,)) as ``like``'s dtype and device, shaped (B, 1, ..., 1) to broadcast against it."""
    return table.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def z0_from_embeddings(schedule: GaussianSchedule, emb_w: Tensor, noise: Tensor) -> Tensor:
    """z_0 = Emb(w) + sqrt(1 - ᾱ_0) ε_0 (DiffuSeq's ``_get_x_start``); ``emb_w`` and ``noise`` (B, L, D)."""
    return emb_w + (1.0 - schedule.alphas_cumprod[0].item()) ** 0.5 * noise


def q_sample(schedule: GaussianSchedule, z0: Tensor, t: Tensor, noise: Tensor, target_mask: Tensor) -> Tensor:
    """z_t ~ q(z_t | z_0) at target positions and z_0 elsewhere; z0, noise (B, L, D), t (B,) in 0..T-1,
    target_mask (B, L) bool."""
    alpha = schedule.alphas_cumprod
    noised = _at(alpha.sqrt(), t, z0) * z0 + _at((1.0 - alpha).sqrt(), t, z0) * noise
    return torch.where(target_mask.unsqueeze(-1), noised, z0)


def q_posterior_mean_variance(schedule: GaussianSchedule, z0: Tensor, z_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (B, L, D) and variance (B, 1, 1) of q(z_{t-1} | z_t, z_0); t (B,) in 0..T-1. At t = 0 the mean is
    z_0 and the variance 0."""
    alpha, alpha_prev = schedule.alphas_cumprod, schedule.alphas_cumprod_prev
    coef_z0 = schedule.betas * alpha_prev.sqrt() / (1.0 - alpha)
    coef_zt = (1.0 - alpha_prev) * (1.0 - schedule.betas).sqrt() / (1.0 - alpha)
    mean = _at(coef_z0, t, z0) * z0 + _at(coef_zt, t, z_t) * z_t
    return mean, _at(schedule.posterior_variance, t, z0)


@dataclass(frozen=True)
class TrainingTerms:
    """Per-sentence terms (B,), each a mean over the counted positions and the D dimensions (0 for a sentence
    without counted positions); ``nll`` is detached."""

    mse: Tensor
    tT: Tensor
    rounding_nll: Tensor
    nll: Tensor

    @property
    def loss(self) -> Tensor:
        """The optimised per-sentence loss mse + tT + rounding_nll (B,)."""
        return self.mse + self.tT + self.rounding_nll


def training_terms(schedule: GaussianSchedule, emb_w: Tensor, z0: Tensor, x0_pred: Tensor, t: Tensor,
                   tokens: Tensor, target_mask: Tensor, padding_mask: Tensor,
                   logits_fn: Callable[[Tensor], Tensor]) -> TrainingTerms:
    """DiffuSeq's training terms for one sampled t per sentence.

    emb_w: Emb(w) (B, L, D); z0: ``z0_from_embeddings`` of it; x0_pred: f(z_t, t) (B, L, D); t (B,) in 0..T-1;
    tokens: w (B, L); target_mask: the generated positions, padding_mask: batch padding (both (B, L) bool,
    only target positions that are not padding count); logits_fn: embeddings (B, L, D) -> logits (B, L, V).
    """
    counted = target_mask & ~padding_mask
    count = counted.sum(1).clamp_min(1)

    def mean(values: Tensor) -> Tensor:  # (B, L) -> (B,), over the counted positions
        return torch.where(counted, values, torch.zeros_like(values)).sum(1) / count

    def cross_entropy(vectors: Tensor) -> Tensor:  # (B, L, D) -> (B, L), projecting only the counted positions
        values = torch.zeros(tokens.shape, dtype=torch.float32, device=tokens.device)
        values[counted] = F.cross_entropy(logits_fn(vectors[counted]).float(), tokens[counted], reduction="none")
        return values

    target = torch.where((t == 0).view(-1, 1, 1), emb_w, z0)
    mse = mean(((x0_pred - target) ** 2).mean(-1))
    tT = mean((schedule.alphas_cumprod[-1].item() * z0 ** 2).mean(-1))
    rounding_nll = mean(cross_entropy(z0))
    with torch.no_grad():
        nll = mean(cross_entropy(x0_pred))
    return TrainingTerms(mse=mse, tT=tT, rounding_nll=rounding_nll, nll=nll)


def self_condition_input(denoise: Denoiser, z_t: Tensor, t: Tensor,
                         generator: torch.Generator | None = None) -> Tensor:
    """prev_x0 for a self-conditioned training step: with probability 1/2 (one draw per batch) the network's
    own x_0 estimate from a first pass without gradients, given zeros as its previous estimate; else zeros."""
    zeros = torch.zeros_like(z_t)
    if torch.rand((), generator=generator).item() >= 0.5:
        return zeros
    with torch.no_grad():
        return denoise(z_t, t, zeros).detach()


class TimestepSampler(ABC):
    """A distribution p over t = 0..T-1 for training; ``sample`` returns importance weights 1/(T p_t), so that
    the weighted mean of per-sentence losses estimates the mean over t without bias."""

    def __init__(self, num_steps: int):
        if num_steps < 1:
            raise ValueError(f"the number of diffusion steps T must be >= 1, got {num_steps}")
        self.num_steps = num_steps

    @abstractmethod
    def probabilities(self) -> Tensor:
        """p_t, float64 (T,), summing to 1."""

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """t (batch_size,) long ~ p and the weights 1/(T p_t) (batch_size,) float32, on the CPU."""
        p = self.probabilities()
        t = torch.multinomial(p, batch_size, replacement=True, generator=generator)
        return t, (1.0 / (self.num_steps * p[t])).float()

    def update(self, t: Tensor, losses: Tensor) -> None:
        """Record the per-sentence losses (B,) of timesteps t (B,); only a loss-aware sampler uses them."""


class UniformSampler(TimestepSampler):
    """p_t = 1/T; every weight is 1."""

    def probabilities(self):
        return torch.full((self.num_steps,), 1.0 / self.num_steps, dtype=torch.float64)


class LossAwareSampler(TimestepSampler):
    """DiffuSeq's ``lossaware`` sampler (improved-diffusion's ``LossSecondMomentResampler``): uniform until
    every t has ``history`` recorded losses, then p_t ∝ sqrt(mean of L_t² over the last ``history`` losses of t),
    mixed as (1 - uniform_mix) p + uniform_mix / T.

    DiffuSeq all-gathers (t, loss) across ranks before ``update`` so that every rank holds the same sampler;
    the weights are unbiased for any rank's own p either way.
    """

    def __init__(self, num_steps: int, history: int = 10, uniform_mix: float = 0.001):
        super().__init__(num_steps)
        if history < 1:
            raise ValueError(f"the loss history per timestep must be >= 1, got {history}")
        if not 0.0 < uniform_mix <= 1.0:
            raise ValueError(f"uniform_mix must be in (0, 1] (so that every t keeps a finite weight), "
                             f"got {uniform_mix}")
        self.history = history
        self.uniform_mix = uniform_mix
        self.losses = torch.zeros(num_steps, history, dtype=torch.float64)
        self.counts = torch.zeros(num_steps, dtype=torch.long)

    @property
    def warmed_up(self) -> bool:
        return bool((self.counts == self.history).all())

    def probabilities(self):
        uniform = torch.full((self.num_steps,), 1.0 / self.num_steps, dtype=torch.float64)
        if not self.warmed_up:
            return uniform
        root_mean_square = self.losses.pow(2).mean(-1).sqrt()
        return (1.0 - self.uniform_mix) * root_mean_square / root_mean_square.sum() + self.uniform_mix * uniform

    def update(self, t, losses):
        for step, loss in zip(t.tolist(), losses.detach().double().tolist()):
            if self.counts[step] == self.history:
                self.losses[step] = torch.roll(self.losses[step], -1)
                self.losses[step, -1] = loss
            else:
                self.losses[step, self.counts[step]] = loss
                self.counts[step] += 1


def clamp_to_embeddings(x0_hat: Tensor, embedding_weight: Tensor) -> tuple[Tensor, Tensor]:
    """Snap every vector of x0_hat (..., D) to its nearest (L2) row of ``embedding_weight`` (V, D).

    Returns the snapped vectors (..., D) and the row ids (...).
    """
    flat = x0_hat.reshape(-1, x0_hat.size(-1)).to(embedding_weight.dtype)
    distance = embedding_weight.pow(2).sum(-1) - 2.0 * flat @ embedding_weight.T  # ||x - e||² - ||x||²
    ids = distance.argmin(-1).view(x0_hat.shape[:-1])
    return embedding_weight[ids].to(x0_hat.dtype), ids


@torch.no_grad()
def sample_reverse(schedule: GaussianSchedule, denoise: Denoiser, z_T: Tensor, anchor: Tensor, target_mask: Tensor,
                   steps: int, generators: Sequence[torch.Generator], clamp_embeddings: Tensor | None = None,
                   self_condition: bool = False, variance: str = "beta") -> Tensor:
    """Run the reverse process from z_T and return the final x_0 estimate (B, L, D), source positions = anchor.

    z_T: the start (B, L, D), N(0, I) at target positions; anchor: the clean source embeddings (B, L, D), only
    read where ``target_mask`` (B, L) is False; steps: N in 1..T (ancestral DDPM when N = T, else DDIM η = 0);
    generators: one CPU generator per row, which draws that row's ancestral noise (so a row's sample does not
    depend on the other rows of its batch); clamp_embeddings: the embedding matrix (V, D) that every
    x_0 estimate is snapped to, or None; self_condition: pass the previous step's (unclamped) x_0 estimate to
    ``denoise`` (zeros at the first step) instead of None; variance: one of VARIANCES (DDPM only).
    """
    if variance not in VARIANCES:
        raise ValueError(f"unknown reverse variance {variance!r}; choose one of {', '.join(VARIANCES)}")
    if len(generators) != z_T.size(0):
        raise ValueError(f"sampling needs one generator per row: {len(generators)} for {z_T.size(0)} rows")
    times = timestep_grid(schedule.num_steps, steps)
    keep = target_mask.unsqueeze(-1)
    z = torch.where(keep, z_T, anchor)
    prev_x0 = torch.zeros_like(z) if self_condition else None
    for now, nxt in zip(times, times[1:]):
        t = torch.full((z.size(0),), now - 1, dtype=torch.long, device=z.device)
        x0 = denoise(z, t, prev_x0)
        if self_condition:
            prev_x0 = x0
        if clamp_embeddings is not None:
            x0, _ = clamp_to_embeddings(x0, clamp_embeddings)
        if nxt == 0:  # both updates land on x_0 (ᾱ_{-1} = 1, no noise)
            break
        if steps == schedule.num_steps:
            z = _ancestral_step(schedule, x0, z, now - 1, variance, generators)
        else:
            z = _ddim_step(schedule, x0, z, now - 1, nxt - 1)
        z = torch.where(keep, z, anchor)
    return torch.where(keep, x0, anchor)


def _ancestral_step(schedule: GaussianSchedule, x0: Tensor, z_t: Tensor, t: int, variance: str,
                    generators: Sequence[torch.Generator]) -> Tensor:
    """z_{t-1} = μ̃_t(x0, z_t) + σ_t ε for t >= 1, σ_t² = β_t or β̃_t; row i's ε from generators[i]."""
    mean, _ = q_posterior_mean_variance(schedule, x0, z_t, torch.full((z_t.size(0),), t, device=z_t.device))
    table = schedule.betas if variance == "beta" else schedule.posterior_variance
    noise = row_normal(z_t.shape, generators, z_t.dtype).to(z_t.device)
    return mean + table[t].item() ** 0.5 * noise


def row_normal(shape: Sequence[int], generators: Sequence[torch.Generator], dtype=torch.float32) -> Tensor:
    """A standard normal tensor of ``shape`` (B, ...) on the CPU whose row i is drawn from generators[i]."""
    return torch.stack([torch.randn(tuple(shape[1:]), generator=generator, dtype=dtype) for generator in generators])


def _ddim_step(schedule: GaussianSchedule, x0: Tensor, z_t: Tensor, t: int, s: int) -> Tensor:
    """Deterministic DDIM (η = 0) from t to 0 <= s < t."""
    alpha_t, alpha_s = schedule.alphas_cumprod[t].item(), schedule.alphas_cumprod[s].item()
    eps = (z_t - alpha_t ** 0.5 * x0) / (1.0 - alpha_t) ** 0.5
    return alpha_s ** 0.5 * x0 + (1.0 - alpha_s) ** 0.5 * eps
