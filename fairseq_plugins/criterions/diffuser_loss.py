"""The ``diffuser_loss`` criterion: tagger cross-entropy + generator cross-entropy.

loss = mean CE of the tags over the positions of [bos] + x_t
     + mean (label-smoothed) CE of the generator over fill tokens and span terminators.
Each term is logged on its own (base 2, like fairseq's losses), with the tag accuracy.
"""

import math
from dataclasses import dataclass, field

import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from fairseq.dataclass import FairseqDataclass

from diffuser_mt.edits import NUM_TAGS, TAG_PAD


@dataclass
class DiffuserLossConfig(FairseqDataclass):
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing of the generator's CE"})
    tagger_weight: float = field(default=1.0, metadata={"help": "weight of the tagger's CE in the loss"})


@register_criterion("diffuser_loss", dataclass=DiffuserLossConfig)
class DiffuserLoss(FairseqCriterion):
    def __init__(self, task, label_smoothing, tagger_weight):
        super().__init__(task)
        self.label_smoothing = label_smoothing
        self.tagger_weight = tagger_weight

    def forward(self, model, sample, reduce=True):
        tag_logits, generator_features = model(**sample["net_input"])
        tag_target = sample["tag_target"]
        tag_loss_sum = F.cross_entropy(
            tag_logits.reshape(-1, NUM_TAGS).float(), tag_target.reshape(-1), ignore_index=TAG_PAD, reduction="sum")
        n_tags = (tag_target != TAG_PAD).sum()
        tag_correct = ((tag_logits.argmax(-1) == tag_target) & (tag_target != TAG_PAD)).sum()

        generator_target = sample["generator_target"]
        learned = generator_target != self.padding_idx  # fill tokens and span ends; the canvas has no loss
        lprobs = model.generator_log_probs(generator_features[learned])
        generator_loss_sum, generator_nll_sum = label_smoothed_nll_loss(
            lprobs, generator_target[learned], self.label_smoothing, reduce=True)
        n_generated = learned.sum()

        loss = (self.tagger_weight * tag_loss_sum / n_tags.clamp(min=1)
                + generator_loss_sum / n_generated.clamp(min=1))
        logging_output = {
            "loss": loss.data,
            "tagger_loss_sum": tag_loss_sum.data,
            "tag_correct": tag_correct.data,
            "n_tags": n_tags.data,
            "generator_loss_sum": generator_loss_sum.data,
            "generator_nll_sum": generator_nll_sum.data,
            "n_generated": n_generated.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["target"].size(0),
            "sample_size": 1,
        }
        return loss, 1, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(float(log.get(key, 0)) for log in logging_outputs)

        sample_size = total("sample_size")
        n_tags, n_generated = max(total("n_tags"), 1.0), max(total("n_generated"), 1.0)
        metrics.log_scalar("loss", total("loss") / sample_size / math.log(2), sample_size, round=3)
        metrics.log_scalar("tagger_loss", total("tagger_loss_sum") / n_tags / math.log(2), n_tags, round=3)
        metrics.log_scalar("tag_accuracy", total("tag_correct") / n_tags, n_tags, round=3)
        metrics.log_scalar("generator_loss", total("generator_loss_sum") / n_generated / math.log(2),
                           n_generated, round=3)
        metrics.log_scalar("generator_nll_loss", total("generator_nll_sum") / n_generated / math.log(2),
                           n_generated, round=3)
        metrics.log_derived("generator_ppl", lambda meters: 2 ** meters["generator_nll_loss"].avg)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
