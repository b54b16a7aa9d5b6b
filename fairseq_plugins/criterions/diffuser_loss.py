"""The ``diffuser_loss`` criterion: tagger cross-entropy + generator cross-entropy.

loss = mean CE of the tags over the positions of [bos] + x_t
     + mean (label-smoothed) CE of the generator over fill tokens and span terminators.
Each term is logged on its own (base 2, like fairseq's losses), with the tag accuracy.

Roll-in (``--rollin-prob`` of the diffuser task flags examples in the data
loader): in training, for each flagged example one token is drawn from the
generator's teacher-forced distribution at every gold fill token, the fills so
written give the model's own hypothesis x̂ (``diffuser_mt.rollin``), and a
second forward pass trains tagger and generator on the edits from x̂ back to
x_0. Both passes' terms are summed into the same means; ``rollin_edit_share``
logs the share of the rolled-in tags that are not KEEP. With
``--rollin-token-share S`` < 1 only a random share S of the fill tokens take the
drawn token (the others keep the gold one): sparse, plausible errors in an
otherwise correct hypothesis, the regime of a post-editor.
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from fairseq.dataclass import FairseqDataclass

from diffuser_mt.edits import NUM_TAGS, TAG_PAD, Tag
from diffuser_mt.rollin import rollin_example
from fairseq_plugins.edit_dataset import collate_examples, example_tensors


@dataclass
class DiffuserLossConfig(FairseqDataclass):
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing of the generator's CE"})
    tagger_weight: float = field(default=1.0, metadata={"help": "weight of the tagger's CE in the loss"})
    rollin_token_share: float = field(
        default=1.0, metadata={"help": "roll-in (the task's --rollin-prob): the share of fill tokens that take the "
                                       "generator's drawn token, the others keep the gold token (1: all drawn; "
                                       "small values give sparse errors)"})


@register_criterion("diffuser_loss", dataclass=DiffuserLossConfig)
class DiffuserLoss(FairseqCriterion):
    def __init__(self, task, label_smoothing, tagger_weight, rollin_token_share=1.0):
        super().__init__(task)
        if not 0.0 < rollin_token_share <= 1.0:
            raise SystemExit(f"error: --rollin-token-share must lie in (0, 1], got {rollin_token_share}")
        self.label_smoothing = label_smoothing
        self.tagger_weight = tagger_weight
        self.rollin_token_share = rollin_token_share

    def forward(self, model, sample, reduce=True):
        net_input = sample["net_input"]
        terms, generator_draws = self.terms(model, net_input, sample["tag_target"], sample["generator_target"],
                                            draw=model.training and bool(sample.get("rollin", torch.zeros(1)).any()))
        logging_output = {"rollin_edits": 0, "rollin_tags": 0}
        if generator_draws is not None:
            rollin = self.rollin_batch(sample, generator_draws)
            rollin_terms, _ = self.terms(model, rollin["net_input"], rollin["tag_target"], rollin["generator_target"])
            terms = {key: terms[key] + rollin_terms[key] for key in terms}
            tags = rollin["tag_target"]
            logging_output.update(rollin_edits=((tags != TAG_PAD) & (tags != Tag.KEEP)).sum().data,
                                  rollin_tags=(tags != TAG_PAD).sum().data)
        loss = (self.tagger_weight * terms["tag_loss_sum"] / terms["n_tags"].clamp(min=1)
                + terms["generator_loss_sum"] / terms["n_generated"].clamp(min=1))
        logging_output.update({
            "loss": loss.data,
            "tagger_loss_sum": terms["tag_loss_sum"].data,
            "tag_correct": terms["tag_correct"].data,
            "n_tags": terms["n_tags"].data,
            "generator_loss_sum": terms["generator_loss_sum"].data,
            "generator_nll_sum": terms["generator_nll_sum"].data,
            "n_generated": terms["n_generated"].data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["target"].size(0),
            "sample_size": 1,
        })
        return loss, 1, logging_output

    def terms(self, model, net_input, tag_target, generator_target, draw=False):
        """Loss sums and counts of one forward pass; with ``draw``, also one token drawn from the generator's
        (detached) distribution at every learned position (B x |Z|-1, pad elsewhere)."""
        tag_logits, generator_features = model(**net_input)
        tag_loss_sum = F.cross_entropy(
            tag_logits.reshape(-1, NUM_TAGS).float(), tag_target.reshape(-1), ignore_index=TAG_PAD, reduction="sum")
        n_tags = (tag_target != TAG_PAD).sum()
        tag_correct = ((tag_logits.argmax(-1) == tag_target) & (tag_target != TAG_PAD)).sum()
        learned = generator_target != self.padding_idx  # fill tokens and span ends; the canvas has no loss
        lprobs = model.generator_log_probs(generator_features[learned])
        generator_loss_sum, generator_nll_sum = label_smoothed_nll_loss(
            lprobs, generator_target[learned], self.label_smoothing, reduce=True)
        draws = None
        if draw:
            draws = torch.full_like(generator_target, self.padding_idx)
            draws[learned] = torch.multinomial(lprobs.detach().float().exp(), 1).squeeze(1)
        terms = {"tag_loss_sum": tag_loss_sum, "tag_correct": tag_correct, "n_tags": n_tags,
                 "generator_loss_sum": generator_loss_sum, "generator_nll_sum": generator_nll_sum,
                 "n_generated": learned.sum()}
        return terms, draws

    def rollin_batch(self, sample, draws) -> dict:
        """The batch of roll-in examples of the flagged rows: the model's hypotheses edited back to x_0.

        A drawn token the generator may not write (a special symbol or sentinel) keeps the gold token, and so
        does each token outside the ``rollin_token_share`` drawn (torch's generator, which fairseq seeds per update).
        """
        task, ids = self.task, self.task.special_ids
        taken = task.fillable.to(draws.device)[draws]
        if self.rollin_token_share < 1.0:
            taken &= torch.rand(draws.shape, device=draws.device) < self.rollin_token_share
        draws = torch.where(taken, draws, sample["generator_target"])
        rows = sample["rollin"].nonzero().squeeze(1)
        items = []
        for row in rows.tolist():
            tags = sample["tag_target"][row]
            tags = tags[tags != TAG_PAD].tolist()
            x_t = sample["net_input"]["tagger_tokens"][row, 1:len(tags)].tolist()
            target = sample["target"][row]
            x0 = target[target != self.padding_idx][:-1].tolist()  # drop eos
            example = rollin_example(x_t, tags, sample["net_input"]["generator_tokens"][row].tolist(),
                                     sample["generator_target"][row].tolist(), draws[row].tolist(), x0, ids,
                                     task.corruption.unit, task.noise_vocab.is_word_start)
            items.append(example_tensors(example))
        stacked = {key: value.to(draws.device) for key, value in collate_examples(items, ids.pad).items()}
        rows = rows.to(draws.device)
        net_input = sample["net_input"]
        return {"net_input": {"src_tokens": net_input["src_tokens"][rows],
                              "src_lengths": net_input["src_lengths"][rows],
                              "tagger_tokens": stacked["tagger_tokens"],
                              "generator_tokens": stacked["generator_tokens"]},
                "tag_target": stacked["tag_target"], "generator_target": stacked["generator_target"]}

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
        if total("rollin_tags"):
            metrics.log_scalar("rollin_edit_share", total("rollin_edits") / total("rollin_tags"), total("rollin_tags"),
                               round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
