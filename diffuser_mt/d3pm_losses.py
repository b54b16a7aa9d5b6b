"""D3PM's training objective on a batch of target sentences: noised inputs and the variational-bound terms.

One timestep t ~ U{1..T} per sentence (as D3PM's released code does). The terms, summed over target tokens:

* ``kl``: L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t)), which at t = 1 is L_0 = -log p_θ(x_0 | x_1);
* ``ce``: -log p̃_θ(x_0 | x_t) at every target position (the auxiliary loss of the hybrid objective).

The prior term L_T is 0 (every schedule ends at ᾱ_T = 0), so T * L_{t-1} is an unbiased one-sample estimate
of L_vb = -ELBO (``nelbo``). The optimised loss follows the released code's convention,
L_{t-1} + λ CE (``hybrid``): this is L_λ = L_vb + λ E[CE] with L_vb divided by T, the convention in which
D3PM's λ = 0.01 (absorbing) and λ = 0 (uniform) were chosen.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffuser_mt.d3pm_transitions import Transition


def sample_training_inputs(transition: Transition, x0: Tensor, is_token: Tensor,
                           generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """t (B,) ~ U{1..T} per sentence and x_t ~ q(x_t | x_0) (B x L); positions where ``is_token`` is False
    (padding) keep their value from ``x0``."""
    t = torch.randint(1, transition.num_steps + 1, (x0.size(0),), generator=generator, device=x0.device)
    x_t = transition.sample_marginal(x0, t.unsqueeze(1), generator)
    return t, torch.where(is_token, x_t, x0)


@dataclass(frozen=True)
class BoundTerms:
    """Sums over the target tokens of a batch, in nats (0-d tensors)."""

    kl: Tensor
    ce: Tensor
    num_steps: int

    def hybrid(self, hybrid_lambda: float) -> Tensor:
        """The optimised loss L_{t-1} + λ CE."""
        return self.kl + hybrid_lambda * self.ce

    @property
    def nelbo(self) -> Tensor:
        """T * L_{t-1}: the one-sample estimate of -ELBO (L_T = 0)."""
        return self.num_steps * self.kl


def bound_terms(transition: Transition, x0: Tensor, x_t: Tensor, t: Tensor, logits: Tensor,
                is_token: Tensor) -> BoundTerms:
    """Bound terms for clean targets x0 (B x L), their noised x_t, timesteps t (B,) and the network's x_0
    logits (B x L x K); only positions where ``is_token`` is True count."""
    log_probs = transition.x0_log_probs(logits)
    kl = transition.kl_terms(x0, x_t, t.unsqueeze(1), log_probs)
    ce = -log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    zero = torch.zeros_like(kl)
    return BoundTerms(kl=torch.where(is_token, kl, zero).sum(), ce=torch.where(is_token, ce, zero).sum(),
                      num_steps=transition.num_steps)
