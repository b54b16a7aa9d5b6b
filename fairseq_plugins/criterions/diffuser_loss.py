"""The ``diffuser_loss`` criterion: tagger cross-entropy + generator cross-entropy.

loss = mean CE of the tags over the positions of [bos] + x_t (``--tag-edit-weight`` W: positions whose target is
       an edit count W times)
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
otherwise correct hypothesis, the regime of a post-editor. With
``--rollin-mode decoded`` x̂ is instead one greedy decoding step of the
model (in eval mode, no gradient) from each flagged x_t: its own tags and
fills, so x̂ holds the model's missing, repeated and extra words too
(``diffuser_mt.rollin.decoded_hypotheses``).

With the model's ``--train-tagger-only`` the generator does not run in
training: the loss is the tagger's term alone and no generator loss is logged
for training (validation reports both).
"""

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from diffuser_mt.edit_model import DecodeVocabulary
from diffuser_mt.edits import NUM_TAGS, TAG_PAD, Tag
from diffuser_mt.rollin import decoded_hypotheses, rollin_example
from diffuser_mt.training_examples import make_postedit_example
from fairseq_plugins.diffuser_generator import FairseqEditModel
from fairseq_plugins.edit_dataset import collate_examples, example_tensors

ROLLIN_MODES = ("sampled", "decoded", "decoded_sampled")


@dataclass
class DiffuserLossConfig(FairseqDataclass):
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing of the generator's CE"})
    tagger_weight: float = field(default=1.0, metadata={"help": "weight of the tagger's CE in the loss"})
    tag_edit_weight: float = field(
        default=1.0, metadata={"help": "weight of a position whose target tag is an edit (not KEEP) in the tagger's "
                                       "CE, against 1 for KEEP: edits are a few percent of the tags of a fluent "
                                       "hypothesis, so a weight > 1 makes finding them count more; the logged "
                                       "tagger_loss stays unweighted"})
    rollin_token_share: float = field(
        default=1.0, metadata={"help": "roll-in (the task's --rollin-prob): the share of fill tokens that take the "
                                       "generator's drawn token, the others keep the gold token (1: all drawn; "
                                       "small values give sparse errors)"})
    rollin_mode: ChoiceEnum(ROLLIN_MODES) = field(
        default="sampled", metadata={"help": "roll-in (the task's --rollin-prob): sampled: x̂ is x_t's gold edits "
                                             "with fill tokens drawn from the teacher-forced generator (cheap; "
                                             "substitutions only); decoded: x̂ is one greedy decoding step of the "
                                             "model from x_t (its own tags and fills; one decoding step per "
                                             "update); decoded_sampled: that step with its tags and fill tokens "
                                             "drawn from the model"})


@register_criterion("diffuser_loss", dataclass=DiffuserLossConfig)
class DiffuserLoss(FairseqCriterion):
    def __init__(self, task, label_smoothing, tagger_weight, rollin_token_share=1.0, rollin_mode="sampled",
                 tag_edit_weight=1.0):
        super().__init__(task)
        if tag_edit_weight <= 0:
            raise SystemExit(f"error: --tag-edit-weight must be > 0, got {tag_edit_weight}")
        if not 0.0 < rollin_token_share <= 1.0:
            raise SystemExit(f"error: --rollin-token-share must lie in (0, 1], got {rollin_token_share}")
        if rollin_mode not in ROLLIN_MODES:
            raise SystemExit(f"error: --rollin-mode must be one of {ROLLIN_MODES}, got {rollin_mode!r}")
        self.label_smoothing = label_smoothing
        self.tagger_weight = tagger_weight
        self.rollin_token_share = rollin_token_share
        self.rollin_mode = rollin_mode
        self.tag_edit_weight = tag_edit_weight

    def forward(self, model, sample, reduce=True):
        net_input = sample["net_input"]
        rolling_in = model.training and bool(sample.get("rollin", torch.zeros(1)).any())
        terms, generator_draws = self.terms(model, net_input, sample["tag_target"], sample["generator_target"],
                                            draw=rolling_in and self.rollin_mode == "sampled")
        logging_output = {"rollin_edits": 0, "rollin_tags": 0}
        if rolling_in:
            rollin = (self.sampled_rollin_batch(sample, generator_draws) if self.rollin_mode == "sampled"
                      else self.decoded_rollin_batch(model, sample, draw=self.rollin_mode == "decoded_sampled"))
            rollin_terms, _ = self.terms(model, rollin["net_input"], rollin["tag_target"], rollin["generator_target"])
            terms = {key: terms[key] + rollin_terms[key] for key in terms}
            tags = rollin["tag_target"]
            logging_output.update(rollin_edits=((tags != TAG_PAD) & (tags != Tag.KEEP)).sum().data,
                                  rollin_tags=(tags != TAG_PAD).sum().data)
        loss = (self.tagger_weight * terms["tag_objective_sum"] / terms["n_tags"].clamp(min=1)
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
        (detached) distribution at every learned position (B x |Z|-1, pad elsewhere). When the generator did
        not run (``--train-tagger-only`` in training) its terms are 0 over 0 tokens."""
        tag_logits, generator_features = model(**net_input)
        tag_losses = F.cross_entropy(
            tag_logits.reshape(-1, NUM_TAGS).float(), tag_target.reshape(-1), ignore_index=TAG_PAD, reduction="none")
        edits = (tag_target.reshape(-1) != TAG_PAD) & (tag_target.reshape(-1) != Tag.KEEP)
        tag_loss_sum = tag_losses.sum()
        terms = {"tag_loss_sum": tag_loss_sum,
                 "tag_objective_sum": tag_loss_sum + (self.tag_edit_weight - 1.0) * tag_losses[edits].sum(),
                 "tag_correct": ((tag_logits.argmax(-1) == tag_target) & (tag_target != TAG_PAD)).sum(),
                 "n_tags": (tag_target != TAG_PAD).sum()}
        learned = generator_target != self.padding_idx  # fill tokens and span ends; the canvas has no loss
        if generator_features is None:  # --train-tagger-only: the generator did not run
            if draw:
                raise SystemExit("error: --rollin-mode sampled draws from the generator, which "
                                 "--train-tagger-only does not run; use --rollin-mode decoded")
            zero = terms["tag_loss_sum"].new_zeros(())
            terms.update(generator_loss_sum=zero, generator_nll_sum=zero, n_generated=terms["n_tags"].new_zeros(()))
            return terms, None
        lprobs = model.generator_log_probs(generator_features[learned])
        generator_loss_sum, generator_nll_sum = label_smoothed_nll_loss(
            lprobs, generator_target[learned], self.label_smoothing, reduce=True)
        draws = None
        if draw:
            draws = torch.full_like(generator_target, self.padding_idx)
            draws[learned] = torch.multinomial(lprobs.detach().float().exp(), 1).squeeze(1)
        terms.update(generator_loss_sum=generator_loss_sum, generator_nll_sum=generator_nll_sum,
                     n_generated=learned.sum())
        return terms, draws

    def sampled_rollin_batch(self, sample, draws) -> dict:
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
            x_t, x0 = self._x_t(sample, row), self._x0(sample, row)
            tags = sample["tag_target"][row]
            example = rollin_example(x_t, tags[tags != TAG_PAD].tolist(),
                                     sample["net_input"]["generator_tokens"][row].tolist(),
                                     sample["generator_target"][row].tolist(), draws[row].tolist(), x0, ids,
                                     task.corruption.unit, task.noise_vocab.is_word_start)
            items.append(example_tensors(example))
        return self._rollin_inputs(sample, rows, items)

    @torch.no_grad()
    def decoded_rollin_batch(self, model, sample, draw: bool = False) -> dict:
        """As ``sampled_rollin_batch``, with x̂ one greedy decoding step of ``model`` (in eval mode) from x_t,
        at most twice x_0's length + 10 tokens; with ``draw``, a step with tags and fill tokens drawn from the
        model (numpy generators seeded from torch's, which fairseq seeds per update)."""
        task, ids = self.task, self.task.special_ids
        rows = sample["rollin"].nonzero().squeeze(1)
        rngs = None
        if draw:
            rngs = [np.random.default_rng(seed) for seed in torch.randint(2 ** 31, (len(rows),)).tolist()]
        x_ts = [self._x_t(sample, row) for row in rows.tolist()]
        x0s = [self._x0(sample, row) for row in rows.tolist()]
        net_input = sample["net_input"]
        model.eval()
        try:
            edit_model = FairseqEditModel(model, net_input["src_tokens"][rows], net_input["src_lengths"][rows],
                                          ids.bos, ids.pad)
            hypotheses = decoded_hypotheses(edit_model, x_ts, DecodeVocabulary(ids, task.fillable),
                                            [2 * len(x0) + 10 for x0 in x0s], rngs)
        finally:
            model.train()
        items = [example_tensors(make_postedit_example(hypothesis, x0, ids, task.corruption.unit,
                                                       task.noise_vocab.is_word_start))
                 for hypothesis, x0 in zip(hypotheses, x0s)]
        return self._rollin_inputs(sample, rows, items)

    @staticmethod
    def _x_t(sample, row: int) -> list[int]:
        """x_t of a batch row: the tagger's tokens without bos and padding."""
        tags = sample["tag_target"][row]
        return sample["net_input"]["tagger_tokens"][row, 1:int((tags != TAG_PAD).sum())].tolist()

    def _x0(self, sample, row: int) -> list[int]:
        """x_0 of a batch row: the target without padding and eos."""
        target = sample["target"][row]
        return target[target != self.padding_idx][:-1].tolist()

    def _rollin_inputs(self, sample, rows, items) -> dict:
        """The collated roll-in ``items`` of the batch ``rows``, with those rows' sources."""
        device = sample["target"].device
        stacked = {key: value.to(device) for key, value in collate_examples(items, self.task.special_ids.pad).items()}
        rows = rows.to(device)
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
        if total("n_generated"):  # none when only the tagger trains (--train-tagger-only)
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
