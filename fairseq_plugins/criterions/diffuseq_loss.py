"""The ``diffuseq_loss`` criterion: DiffuSeq's loss mse + tT + rounding NLL over the target region.

Per batch: each pair becomes a joint sequence (``diffuser_mt.joint_sequence``), each sentence draws its
timestep from the timestep sampler (``--timestep-sampler``; uniform in validation), the model noises and
denoises (``DiffuSeqModel.forward``), and ``diffuser_mt.diffuseq_diffusion.training_terms`` gives the
per-sentence terms. The optimised loss is the sum over sentences of (1 / (T p_t)) (mse + tT + rounding_nll),
normalised by the number of sentences (fairseq's sample size).

Logged per sentence (natural units, since the loss mixes squared errors and log-likelihoods): ``loss``,
``mse``, ``tT``, ``rounding_nll``, ``nll`` (the CE of the rounded z_0 estimate: logged, not optimised, as in
DiffuSeq) and ``truncated`` (share of targets cut to fit --sequence-length).

The loss-aware sampler's history lives in this process and starts empty after a restart (it then draws t
uniformly until it has 10 losses for every t again).
"""

from dataclasses import dataclass, field

import torch
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from diffuser_mt.diffuseq_diffusion import LossAwareSampler, TimestepSampler, UniformSampler, training_terms
from diffuser_mt.joint_sequence import joint_batch, unpadded

SAMPLERS = {"uniform": UniformSampler, "lossaware": LossAwareSampler}
TERMS = ("mse", "tT", "rounding_nll", "nll")


@dataclass
class DiffuSeqLossConfig(FairseqDataclass):
    timestep_sampler: ChoiceEnum(list(SAMPLERS)) = field(
        default="lossaware",
        metadata={"help": "training timesteps: uniform, or lossaware (DiffuSeq: p_t ∝ sqrt(E[L_t²]) over the last "
                          "10 losses of each t, once every t has them); losses are weighted by 1/(T p_t)"})


@register_criterion("diffuseq_loss", dataclass=DiffuSeqLossConfig)
class DiffuSeqLoss(FairseqCriterion):
    def __init__(self, task, timestep_sampler):
        super().__init__(task)
        self.sampler_name = str(timestep_sampler)
        self.sampler: TimestepSampler | None = None  # built at the first batch, when T is known

    def forward(self, model, sample, reduce=True):
        dictionary = self.task.target_dictionary
        pad, eos = dictionary.pad(), dictionary.eos()
        batch = joint_batch(unpadded(sample["net_input"]["src_tokens"], pad, eos), unpadded(sample["target"], pad, eos),
                            model.sequence_length, separator=eos, filler=eos)
        tokens, target_mask = batch.tokens.to(sample["target"].device), batch.target_mask.to(sample["target"].device)
        schedule = model.schedule
        if self.sampler is None:
            self.sampler = SAMPLERS[self.sampler_name](schedule.num_steps)
        sampler = self.sampler if model.training else UniformSampler(schedule.num_steps)
        t, weights = sampler.sample(tokens.size(0))
        t, weights = t.to(tokens.device), weights.to(tokens.device)
        emb_w, z0, x0_pred = model(tokens, target_mask, t)
        terms = training_terms(schedule, emb_w, z0, x0_pred, t, tokens, target_mask,
                               padding_mask=torch.zeros_like(target_mask), logits_fn=model.logits)
        if model.training:
            sampler.update(t.cpu(), terms.loss.detach().cpu())
        loss = (weights * terms.loss).sum()
        logging_output = {
            "loss": loss.data,
            **{f"{name}_sum": getattr(terms, name).sum().data for name in TERMS},
            "truncated": batch.truncated,
            "ntokens": sample["ntokens"],
            "nsentences": tokens.size(0),
            "sample_size": tokens.size(0),
        }
        return loss, tokens.size(0), logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(float(log.get(key, 0)) for log in logging_outputs)

        sentences = max(total("nsentences"), 1.0)
        metrics.log_scalar("loss", total("loss") / max(total("sample_size"), 1.0), sentences, round=4)
        for name in TERMS:
            metrics.log_scalar(name, total(f"{name}_sum") / sentences, sentences, round=4)
        metrics.log_scalar("truncated", total("truncated") / sentences, sentences, round=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
