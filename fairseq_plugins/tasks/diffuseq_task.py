"""The ``diffuseq`` task: translation data for DiffuSeq, and its reverse-process sampler.

Reads the binarized language-pair data of ``fairseq-preprocess`` (the same data as the ``translation``,
``diffuser`` and ``d3pm`` tasks). Each pair becomes one joint sequence ``x </s> y </s> </s> ...`` of
``--sequence-length`` tokens (``diffuser_mt.joint_sequence``); noising happens in the model's forward pass and
the loss in the criterion (``diffuseq_loss``). ``build_generator`` returns the DiffuSeq sampler, so
``fairseq-generate`` and ``--eval-bleu`` validation decode with it; the schedule, T and L come from the
checkpoint's model, the decoding options below from the task.
"""

from dataclasses import dataclass, field

import numpy as np
from fairseq.data import FairseqDataset
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task

from diffuser_mt.diffuseq_diffusion import VARIANCES, DecodeConfig
from fairseq_plugins.complete_batching import CompletelyBatched
from fairseq_plugins.diffuseq_generator import DiffuSeqGenerator
from fairseq_plugins.generator_protocol import refuse_prefix_constraints
from fairseq_plugins.tasks.language_pair_task import (LanguagePairConfig, LanguagePairTask, check_decode_steps,
                                                      core_config, strided_decode_steps)

SWITCH = ("on", "off")


@dataclass
class DiffuSeqTaskConfig(LanguagePairConfig):
    sequence_length: int = field(
        default=128,
        metadata={"help": "L, tokens of the joint sequence x </s> y </s> ... (DiffuSeq: 128); recorded in the model "
                          "at training. A source must fit in L - 2 tokens (longer ones are refused or, with "
                          "--skip-invalid-size-inputs-valid-test, skipped); a longer target is cut to fit and "
                          "counted in the logged 'truncated'"})
    decode_steps: int = strided_decode_steps(
        200, ": N = T is ancestral DDPM sampling as in DiffuSeq, N < T deterministic DDIM")
    diffuseq_clamping: ChoiceEnum(SWITCH) = field(
        default="on", metadata={"help": "decoding: snap every z_0 estimate to its nearest word embedding "
                                        "(DiffuSeq's clamping trick)"})
    diffuseq_mbr_samples: int = field(
        default=1,
        metadata={"help": "decoding: k samples per sentence; with k > 1 the output is the sample with the best mean "
                          "sentence BLEU against the other k - 1 (DiffuSeq's MBR, which reports k = 10)"})
    diffuseq_variance: ChoiceEnum(VARIANCES) = field(
        default="beta",
        metadata={"help": "decoding, ancestral DDPM only: the reverse noise variance, beta_t (DiffuSeq) or the "
                          "posterior's"})


@register_task("diffuseq", dataclass=DiffuSeqTaskConfig)
class DiffuSeqTask(LanguagePairTask):
    """DiffuSeq on a language pair: the target part of each joint sequence is noised, the source anchors it."""

    cfg: DiffuSeqTaskConfig
    DECODING_OPTIONS = ("decode_steps", "diffuseq_clamping", "diffuseq_mbr_samples", "diffuseq_variance")

    def __init__(self, cfg: DiffuSeqTaskConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        if len(src_dict) != len(tgt_dict) or src_dict.symbols != tgt_dict.symbols:
            raise SystemExit("error: the diffuseq task embeds source and target with one matrix and needs a joined "
                             "dictionary (fairseq-preprocess --joined-dictionary)")
        if cfg.sequence_length < 3:
            raise SystemExit(f"error: --sequence-length must be >= 3, got {cfg.sequence_length}")
        decode_config(self.decoding_options(None))  # validate the decoding options before any work

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        super().load_dataset(split, epoch=epoch, combine=combine, **kwargs)
        self.datasets[split] = JointRowDataset(self.datasets[split], self.cfg.sequence_length)

    def max_positions(self):
        return (self.cfg.sequence_length - 1, self.cfg.max_target_positions)

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, prefix_allowed_tokens_fn=None):
        """The DiffuSeq sampler. ``args`` may override the task's decoding options of the same names, e.g.
        '{"decode_steps": 20}'."""
        refuse_prefix_constraints(prefix_allowed_tokens_fn, "diffuseq")
        config = decode_config(self.decoding_options(args))
        for model in models:
            check_decode_steps(model.schedule.num_steps, config.steps)
        return DiffuSeqGenerator(self.tgt_dict, config, seed=self.cfg.seed)


class JointRowDataset(CompletelyBatched):
    """A language-pair dataset whose every example costs one joint row of ``row_length`` positions, so that
    ``--max-tokens`` bounds rows x L, the size of the tensors the model sees (the pair's own lengths would let
    a batch of short sentences hold many times more positions)."""

    def __init__(self, dataset, row_length: int):
        super().__init__(dataset)
        self.row_length = row_length

    def num_tokens(self, index):
        return self.row_length

    def num_tokens_vec(self, indices):
        return np.full(len(indices), self.row_length, dtype=np.int64)

    def batches(self, indices, max_tokens, max_sentences, required_batch_size_multiple):
        """fairseq's batching over these row sizes (BaseWrapperDataset would batch by the wrapped pair sizes)."""
        return FairseqDataset.batch_by_size(self, indices, max_tokens, max_sentences, required_batch_size_multiple)


def decode_config(options: dict) -> DecodeConfig:
    """The core's DecodeConfig from the values of DiffuSeqTask.DECODING_OPTIONS; one clear line if invalid."""
    return core_config(lambda: DecodeConfig(steps=options["decode_steps"],
                                            clamp=str(options["diffuseq_clamping"]) == "on",
                                            mbr_samples=options["diffuseq_mbr_samples"],
                                            variance=str(options["diffuseq_variance"])), "diffuseq decoding option")
