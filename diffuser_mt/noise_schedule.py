"""Noise schedules of the corruption chain: the edit mix E_t of each forward step.

A schedule maps step i of a T-step chain (1 <= i <= T) to the (keep, replace,
insert, delete) probabilities of that step's spans. What it controls is how
much of x_0 survives t steps. A span consumes units unless it inserts, so one
step keeps a share ``s = keep / (keep + replace + delete)`` of its input's
units (in expectation, ignoring the truncated last span), and about
``prod_{i<=t} s_i`` of x_0's units survive t steps.

* ``ConstantSchedule`` (the paper's): every step uses the base mix. With the
  default (0.6, 0.2, 0.1, 0.1) one step keeps 2/3 of its input, so even x_1
  has a third of x_0 edited and, with t ~ U{1..T}, the average training input
  keeps about a sixth of x_0: the model never sees a sentence with one or two
  wrong words, the state its later decoding steps and a post-editor start from.
* ``LinearSchedule``: the keep share of step i is chosen so that a share
  ``1 - t/T`` of x_0 survives t steps (MDLM's and D3PM's linear schedules of
  the clean share), the other edit types in the base mix's proportions. Noise
  levels are then spread evenly over the chain: x_1 has about 1/T of x_0
  edited, x_T none of it left.
"""
from __future__ import annotations

import abc

# indices into an edit mix (corruption.ForwardEdit's values)
KEEP, REPLACE, INSERT, DELETE = range(4)

Mix = tuple[float, float, float, float]


class NoiseSchedule(abc.ABC):
    """The edit mix of each step of a T-step chain, built on a base mix (E_t of the config)."""

    name: str

    @abc.abstractmethod
    def step_mix(self, base_mix: Mix, step: int, num_steps: int) -> Mix:
        """The (keep, replace, insert, delete) probabilities of forward step ``step`` (1..num_steps)."""


class ConstantSchedule(NoiseSchedule):
    """Every step uses the base mix (the paper's chain)."""

    name = "constant"

    def step_mix(self, base_mix: Mix, step: int, num_steps: int) -> Mix:
        return tuple(base_mix)


class LinearSchedule(NoiseSchedule):
    """A share 1 - t/T of x_0 survives t steps: step i keeps (T - i) / (T - i + 1) of its input's units."""

    name = "linear"

    def step_mix(self, base_mix: Mix, step: int, num_steps: int) -> Mix:
        edits = 1.0 - base_mix[KEEP]
        if edits <= 0 or base_mix[REPLACE] + base_mix[DELETE] <= 0:
            raise ValueError(f"the linear schedule needs replace or delete mass in the edit mix, got {base_mix}")
        survival = (num_steps - step) / (num_steps - step + 1)
        consumed = (base_mix[REPLACE] + base_mix[DELETE]) / edits  # units a non-keep span consumes, per unit length
        keep = survival * consumed / (1.0 - survival + survival * consumed)
        scale = (1.0 - keep) / edits
        return (keep, base_mix[REPLACE] * scale, base_mix[INSERT] * scale, base_mix[DELETE] * scale)


SCHEDULES = {schedule.name: schedule for schedule in (ConstantSchedule(), LinearSchedule())}


def survival_share(mix: Mix) -> float:
    """Expected share of a step's input units that a step with ``mix`` keeps (truncation ignored)."""
    consumed = mix[KEEP] + mix[REPLACE] + mix[DELETE]
    return mix[KEEP] / consumed
