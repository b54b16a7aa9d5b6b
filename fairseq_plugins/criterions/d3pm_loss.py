"""The ``d3pm_loss`` criterion: D3PM's hybrid loss L_{t-1} + λ CE, plus the length predictor's CE.

Per batch: one t ~ U{1..T} per sentence and x_t ~ q(x_t | x_0) for every target token (eos excluded),
drawn from torch's generator, which fairseq seeds per update; the terms are
``diffuser_mt.d3pm_losses.bound_terms``. The optimised loss is

    (L_{t-1} + λ CE) / target tokens  +  length_loss_factor * length CE / sentences.

Logged, base 2 like fairseq's losses: ``loss``, ``kl`` (L_{t-1} per token), ``ce`` (-log p̃(x_0 | x_t) per
token), ``nelbo`` (T L_{t-1} per token: the estimate of -ELBO, the model's bits per token),
``length_loss`` and ``length_accuracy``.
"""

import math
from dataclasses import dataclass, field
from typing import Optional

import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from diffuser_mt.d3pm_losses import bound_terms, sample_training_inputs


@dataclass
class D3PMLossConfig(FairseqDataclass):
    hybrid_lambda: Optional[float] = field(
        default=None,
        metadata={"help": "λ of the hybrid loss L_vb + λ CE (default: the transition's, 0.01 for absorbing and "
                          "0 for uniform, as D3PM found best)"})
    length_loss_factor: float = field(default=0.1, metadata={"help": "weight of the length predictor's CE"})


@register_criterion("d3pm_loss", dataclass=D3PMLossConfig)
class D3PMLoss(FairseqCriterion):
    def __init__(self, task, hybrid_lambda, length_loss_factor):
        super().__init__(task)
        if hybrid_lambda is not None and hybrid_lambda < 0:
            raise SystemExit(f"error: --hybrid-lambda must be >= 0, got {hybrid_lambda}")
        self.hybrid_lambda = hybrid_lambda
        self.length_loss_factor = length_loss_factor

    def forward(self, model, sample, reduce=True):
        target = sample["target"]
        x0 = target.masked_fill(target == self.task.tgt_dict.eos(), self.padding_idx)
        is_token = x0 != self.padding_idx
        transition = model.transition
        t, x_t = sample_training_inputs(transition, x0, is_token)
        net_input = sample["net_input"]
        x0_logits, length_logits = model(net_input["src_tokens"], net_input["src_lengths"], x_t, t)
        terms = bound_terms(transition, x0, x_t, t, x0_logits, is_token)
        hybrid_lambda = transition.default_hybrid_lambda if self.hybrid_lambda is None else self.hybrid_lambda

        lengths = is_token.sum(1)
        length_loss_sum = F.cross_entropy(length_logits.float(), lengths, reduction="sum")
        length_correct = (length_logits.argmax(-1) == lengths).sum()
        n_tokens, n_sentences = is_token.sum(), target.size(0)
        loss = terms.hybrid(hybrid_lambda) / n_tokens + self.length_loss_factor * length_loss_sum / n_sentences
        logging_output = {
            "loss": loss.data,
            "kl_sum": terms.kl.data,
            "ce_sum": terms.ce.data,
            "nelbo_sum": terms.nelbo.data,
            "length_loss_sum": length_loss_sum.data,
            "length_correct": length_correct.data,
            "ntokens": n_tokens.data,
            "nsentences": n_sentences,
            "sample_size": 1,
        }
        return loss, 1, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(float(log.get(key, 0)) for log in logging_outputs)

        sample_size, n_tokens, n_sentences = total("sample_size"), max(total("ntokens"), 1.0), max(
            total("nsentences"), 1.0)
        metrics.log_scalar("loss", total("loss") / sample_size / math.log(2), sample_size, round=3)
        for name in ("kl", "ce", "nelbo"):
            metrics.log_scalar(name, total(f"{name}_sum") / n_tokens / math.log(2), n_tokens, round=3)
        metrics.log_scalar("length_loss", total("length_loss_sum") / n_sentences / math.log(2), n_sentences, round=3)
        metrics.log_scalar("length_accuracy", total("length_correct") / n_sentences, n_sentences, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

