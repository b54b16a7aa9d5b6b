"""What the three generators share of fairseq's generator protocol.

``generate(models, sample)`` gets fairseq's ensemble (the ``--path`` models) and returns, per sentence of the
batch, a list of hypothesis dicts, best first: tokens ending in eos, score, positional_scores (one per token,
eos included) and alignment, which fairseq-generate prints as its H-/D-/P- lines and scores.
"""
from __future__ import annotations

import torch


def single_model(models, generator: str):
    """The one model of ``models``, in eval mode; SystemExit with one line for an ensemble."""
    if len(models) != 1:
        raise SystemExit(f"error: the {generator} generator decodes with one model; pass one --path")
    model = models[0]
    model.eval()
    return model


def hypothesis(tokens: torch.Tensor, positional_scores: torch.Tensor) -> dict:
    """A fairseq hypothesis of ``tokens`` (ending in eos) scored by the mean of its ``positional_scores``."""
    return {"tokens": tokens, "score": positional_scores.mean().item(), "positional_scores": positional_scores,
            "alignment": None}


def refuse_prefix_constraints(prefix_allowed_tokens_fn, generator: str) -> None:
    """fairseq's hub interface may pass a left-to-right constraint; these non-autoregressive decoders have none."""
    if prefix_allowed_tokens_fn is not None:
        raise ValueError(f"the {generator} generator does not support prefix_allowed_tokens_fn (it does not decode "
                         "left to right)")
