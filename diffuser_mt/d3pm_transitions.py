"""D3PM forward processes (Austin et al. 2021) and their closed-form marginals, posteriors and bound terms.

States are the K ids of a vocabulary; a distribution is a (..., K) tensor, a token an integer tensor (...).
Row-vector convention: q(x_t | x_{t-1}) = Cat(x_{t-1} Q_t), [Q_t]_ij = q(x_t = j | x_{t-1} = i).

Both transitions of D3PM's text experiments mix the identity with a stationary distribution π,

    Q_t = (1 - β_t) I + β_t 1 πᵀ,    hence    Q̄_t = Q_1 ... Q_t = ᾱ_t I + (1 - ᾱ_t) 1 πᵀ,

* uniform: π uniform over the clean-token support;
* absorbing: π = e_m, the one-hot of [MASK] (m never leaves itself).

For absorbing diffusion ᾱ may also depend on the clean token (``SpindleSchedule``): row i of Q̄_t is then
ᾱ_t(i) e_i + (1 - ᾱ_t(i)) e_m, still a Markov chain since a masked token stays masked. Jumps of several
steps use Q_{s+1} ... Q_t, the same form with ᾱ_t / ᾱ_s.

The model is x0-parameterised: a network gives p̃(x_0 | x_t), restricted to the clean-token support, and

    p_θ(x_s | x_t) ∝ Σ_{x̃0} q(x_s, x_t | x̃0) p̃(x̃0 | x_t) = q(x_t | x_s) [p̃ Q̄_s](x_s),

which is ``posterior(x_t, p̃, s, t)``; with a one-hot x_0 it is the true posterior q(x_s | x_t, x_0).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffuser_mt.d3pm_schedules import NoiseSchedule, make_schedule

TRANSITIONS = ("absorbing", "uniform")
DEFAULT_SCHEDULES = {"absorbing": "mutual_information", "uniform": "cosine"}
TINY = torch.finfo(torch.float32).tiny


class Transition(nn.Module, ABC):
    """Q̄_t = diag(ᾱ_t) + (1 - ᾱ_t) 1 πᵀ over K states; ``support`` (K,) bool marks the states a clean
    token x_0 may take (the model's x_0 prediction is restricted to them)."""

    default_hybrid_lambda: float  # λ of the hybrid loss L_vb + λ CE that D3PM found best

    def __init__(self, schedule: NoiseSchedule, support: Tensor):
        super().__init__()
        if support.dtype != torch.bool or support.dim() != 1 or not support.any():
            raise ValueError("support must be a non-empty 1-d bool tensor over the K states")
        self.schedule = schedule
        self.register_buffer("support", support.clone(), persistent=False)

    @property
    def num_states(self) -> int:
        return self.support.numel()

    @property
    def num_steps(self) -> int:
        return self.schedule.num_steps

    @abstractmethod
    def stationary(self) -> Tensor:
        """π (K,), the distribution of x_T."""

    @abstractmethod
    def sample_stationary(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        """Tokens drawn from π, on the transition's device; ``generator`` (any device) makes them reproducible."""

    def x0_log_probs(self, logits: Tensor) -> Tensor:
        """log p̃(x_0 | x_t) from the network's logits (..., K): log-softmax over the support, -inf elsewhere."""
        return torch.log_softmax(logits.float().masked_fill(~self.support, float("-inf")), dim=-1)

    def alpha_of(self, alpha: Tensor, tokens: Tensor) -> Tensor:
        """ᾱ of each token, shape tokens.shape, from ``schedule.alpha_bar(t)`` with t of the tokens' rank."""
        alpha = alpha.expand(*tokens.shape, alpha.size(-1))
        if self.schedule.per_token:
            return alpha.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        return alpha.squeeze(-1)

    def keep_probability(self, s: Tensor, t: Tensor) -> Tensor:
        """ᾱ_t / ᾱ_s for s < t (shapes broadcast): the diagonal weight of Q_{s+1} ... Q_t, (..., 1 or K)."""
        return self.schedule.alpha_bar(t) / self.schedule.alpha_bar(s).clamp_min(TINY)

    def marginal(self, x0_probs: Tensor, t: Tensor) -> Tensor:
        """x_0 Q̄_t: q(x_t | x_0) for a one-hot x_0, or Σ_{x0} p(x0) q(x_t | x0) for a distribution (..., K)."""
        alpha = self.schedule.alpha_bar(t)
        moved = (x0_probs * (1.0 - alpha)).sum(-1, keepdim=True)
        return x0_probs * alpha + moved * self.stationary()

    def likelihood(self, x_t: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """q(x_t | x_s = j) for every state j (s < t): column x_t of Q_{s+1} ... Q_t, shape x_t.shape + (K,)."""
        keep = self.keep_probability(s, t)
        stay = F.one_hot(x_t, self.num_states).float()
        return keep * stay + (1.0 - keep) * self.stationary()[x_t].unsqueeze(-1)

    def posterior(self, x_t: Tensor, x0_probs: Tensor, s: Tensor, t: Tensor) -> Tensor:
        """q(x_s | x_t, x_0) for a one-hot ``x0_probs``; p_θ(x_s | x_t) for the model's p̃(x_0 | x_t) (0 <= s < t).

        Both are q(x_t | x_s) [x_0 Q̄_s](x_s), normalised over x_s; every row sums to 1.
        """
        joint = self.likelihood(x_t, s, t) * self.marginal(x0_probs, s)
        return joint / joint.sum(-1, keepdim=True).clamp_min(TINY)

    def sample_marginal(self, x0: Tensor, t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x_t ~ q(x_t | x_0): keep each token with probability ᾱ_t(x_0), else draw it from π."""
        keep = torch.rand(x0.shape, generator=generator, device=x0.device) < self.alpha_of(
            self.schedule.alpha_bar(t), x0)
        return torch.where(keep, x0, self.sample_stationary(tuple(x0.shape), generator))

    def kl_terms(self, x0: Tensor, x_t: Tensor, t: Tensor, x0_log_probs: Tensor) -> Tensor:
        """L_{t-1} per token (shape of x0): KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t)), in nats.

        At t = 1 the true posterior is the one-hot of x_0, and the term is L_0 = -log p_θ(x_0 | x_1).
        """
        q = self.posterior(x_t, F.one_hot(x0, self.num_states).float(), t - 1, t)
        p = self.posterior(x_t, x0_log_probs.exp(), t - 1, t)
        terms = q * (_log(q) - _log(p))
        return torch.where(q > 0, terms, torch.zeros_like(terms)).sum(-1)


class UniformTransition(Transition):
    """Uniform noise: Q_t = (1 - β_t) I + β_t 1 1ᵀ/K over the support (D3PM's hybrid λ for text: 0)."""

    default_hybrid_lambda = 0.0

    def __init__(self, schedule: NoiseSchedule, support: Tensor):
        super().__init__(schedule, support)
        if schedule.per_token:
            raise ValueError("uniform diffusion needs a schedule that does not depend on the token "
                             "(mutual_information or cosine)")
        self.register_buffer("support_ids", support.nonzero().squeeze(1), persistent=False)

    def stationary(self) -> Tensor:
        return self.support.float() / self.support.sum()

    def sample_stationary(self, shape, generator=None):
        device = generator.device if generator is not None else self.support_ids.device
        draws = torch.randint(len(self.support_ids), shape, generator=generator, device=device)
        return self.support_ids[draws.to(self.support_ids.device)]


class AbsorbingTransition(Transition):
    """Absorbing noise: Q_t = (1 - β_t) I + β_t 1 e_mᵀ, m = ``mask_id`` (D3PM's hybrid λ for text: 0.01).

    The bound term has a closed form: for x_t = m, q(x_{t-1} | x_t, x_0) puts
    u = (ᾱ_{t-1} - ᾱ_t) / (1 - ᾱ_t) on x_0 and 1 - u on m; for x_t != m the posterior and the model both stay
    at x_t and the term is 0. With a token-independent ᾱ, p_θ puts p̃(x_0) u on x_0 and 1 - u on m, so

        L_{t-1} = -u log p̃(x_0 | x_t) [x_t = m],   and with ᾱ_t = 1 - t/T:   L_{t-1} = -(1/t) log p̃(x_0 | x_t) [x_t = m]

    (D3PM App. A.3): masked cross-entropy weighted by 1/t.
    """

    default_hybrid_lambda = 0.01

    def __init__(self, schedule: NoiseSchedule, support: Tensor, mask_id: int):
        super().__init__(schedule, support)
        if not 0 <= mask_id < support.numel() or support[mask_id]:
            raise ValueError(f"the mask id {mask_id} must be a state outside the clean-token support")
        self.mask_id = mask_id

    def stationary(self) -> Tensor:
        return F.one_hot(torch.tensor(self.mask_id, device=self.support.device), self.num_states).float()

    def sample_stationary(self, shape, generator=None):
        return torch.full(shape, self.mask_id, dtype=torch.long, device=self.support.device)

    def kl_terms(self, x0, x_t, t, x0_log_probs):
        """The closed form above. For a token-dependent ᾱ, p_θ puts p̃(x_0)(ᾱ_{t-1}(x_0) - ᾱ_t(x_0)) / Z on x_0
        and Σ_v p̃(v)(1 - ᾱ_{t-1}(v)) / Z on m, Z = Σ_v p̃(v)(1 - ᾱ_t(v)) (what ``Transition.kl_terms`` computes)."""
        alpha_s_all, alpha_t_all = self.schedule.alpha_bar(t - 1), self.schedule.alpha_bar(t)
        alpha_s, alpha_t = self.alpha_of(alpha_s_all, x0), self.alpha_of(alpha_t_all, x0)
        unmask = ((alpha_s - alpha_t) / (1.0 - alpha_t).clamp_min(TINY)).clamp(0.0, 1.0)
        log_norm = _log(self._masked_mass(x0_log_probs, alpha_t_all))
        log_p_x0 = x0_log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
        log_model_x0 = log_p_x0 + _log(alpha_s - alpha_t) - log_norm
        log_model_mask = _log(self._masked_mass(x0_log_probs, alpha_s_all)) - log_norm
        terms = (torch.xlogy(unmask, unmask) - unmask * log_model_x0
                 + torch.xlogy(1.0 - unmask, 1.0 - unmask) - (1.0 - unmask) * log_model_mask)
        return torch.where(x_t == self.mask_id, terms, torch.zeros_like(terms))

    def _masked_mass(self, log_probs: Tensor, alpha: Tensor) -> Tensor:
        """Σ_v p(v)(1 - ᾱ(v)) for (..., K) log-distributions; 1 - ᾱ when ᾱ does not depend on the token."""
        if self.schedule.per_token:
            return (log_probs.exp() * (1.0 - alpha)).sum(-1)
        return (1.0 - alpha.squeeze(-1)).expand(log_probs.shape[:-1])


def _log(x: Tensor) -> Tensor:
    """log with 0 -> log(tiny): finite values and gradients where a probability underflows or is exactly 0."""
    return torch.log(x.clamp_min(TINY))


def make_transition(kind: str, support: Tensor, num_steps: int, schedule: str | None = None,
                    mask_id: int | None = None, token_counts: Tensor | None = None,
                    spindle_lambda: float = 0.3) -> Transition:
    """The transition ``kind`` (one of TRANSITIONS) with its schedule (default: DEFAULT_SCHEDULES[kind]);
    absorbing needs ``mask_id``, the spindle schedule ``token_counts``. Invalid settings raise ValueError."""
    if kind not in TRANSITIONS:
        raise ValueError(f"unknown transition {kind!r}; choose one of {', '.join(TRANSITIONS)}")
    noise = make_schedule(schedule or DEFAULT_SCHEDULES[kind], num_steps, token_counts, spindle_lambda)
    if kind == "uniform":
        return UniformTransition(noise, support)
    if mask_id is None:
        raise ValueError("absorbing diffusion needs a mask id")
    return AbsorbingTransition(noise, support, mask_id)
