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
from fairseq import utils
from fairseq.data import BaseWrapperDataset, FairseqDataset
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask
from omegaconf import II

from diffuser_mt.d3pm_sampling import timestep_grid
from diffuser_mt.diffuseq_diffusion import VARIANCES, DecodingConfig
from fairseq_plugins.diffuseq_generator import DiffuSeqGenerator
from fairseq_plugins.tasks.diffuser_task import load_language_pairs

SWITCH = ("on", "off")


@dataclass
class DiffuSeqTaskConfig(TranslationConfig):
    sequence_length: int = field(
        default=128,
        metadata={"help": "L, tokens of the joint sequence x </s> y </s> ... (DiffuSeq: 128); recorded in the model "
                          "at training. A source must fit in L - 2 tokens (longer ones are refused or, with "
                          "--skip-invalid-size-inputs-valid-test, skipped); a longer target is cut to fit and "
                          "counted in the logged 'truncated'"})
    diffuseq_decode_steps: int = field(
        default=200,
        metadata={"help": "decoding: reverse steps N on an evenly strided grid (1 <= N <= T): N = T is ancestral "
                          "DDPM sampling as in DiffuSeq, N < T deterministic DDIM"})
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
    seed: int = II("common.seed")


@register_task("diffuseq", dataclass=DiffuSeqTaskConfig)
class DiffuSeqTask(TranslationTask):
    """DiffuSeq on a language pair: the target part of each joint sequence is noised, the source anchors it."""

    cfg: DiffuSeqTaskConfig

    def __init__(self, cfg: DiffuSeqTaskConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        if len(src_dict) != len(tgt_dict) or src_dict.symbols != tgt_dict.symbols:
            raise SystemExit("error: the diffuseq task embeds source and target with one matrix and needs a joined "
                             "dictionary (fairseq-preprocess --joined-dictionary)")
        if cfg.sequence_length < 3:
            raise SystemExit(f"error: --sequence-length must be >= 3, got {cfg.sequence_length}")
        decoding_config(cfg)  # validate the decoding options before any work

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        load_language_pairs(self, split, epoch=epoch, combine=combine, **kwargs)
        self.datasets[split] = JointRowDataset(self.datasets[split], self.cfg.sequence_length)

    def max_positions(self):
        return (self.cfg.sequence_length - 1, self.cfg.max_target_positions)

    def valid_step(self, sample, model, criterion):
        """Validation draws its timesteps and noise from a seed fixed per batch, so the valid loss is comparable
        across epochs."""
        with utils.set_torch_seed(self.cfg.seed * 1_000_003 + int(sample["id"][0])):
            return super().valid_step(sample, model, criterion)

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None):
        """The DiffuSeq sampler. ``args`` (fairseq's generation options, or --eval-bleu-args during training) may
        override the task's decoding options of the same names, e.g. '{"diffuseq_decode_steps": 20}'."""
        options = {name: getattr(args, name, None) for name in DECODING_OPTIONS}
        options = {name: getattr(self.cfg, name) if value is None else value for name, value in options.items()}
        config = decoding_config(options)
        for model in models:
            try:
                timestep_grid(model.schedule.num_steps, config.steps)
            except ValueError as err:
                raise SystemExit(f"error: --diffuseq-decode-steps: {err}") from None
        return DiffuSeqGenerator(self.tgt_dict, config, seed=self.cfg.seed)


DECODING_OPTIONS = ("diffuseq_decode_steps", "diffuseq_clamping", "diffuseq_mbr_samples", "diffuseq_variance")


class JointRowDataset(BaseWrapperDataset):
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

    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        """fairseq's batching over these row sizes (BaseWrapperDataset would batch by the wrapped pair sizes)."""
        return FairseqDataset.batch_by_size(self, indices, max_tokens, max_sentences, required_batch_size_multiple)


def decoding_config(options) -> DecodingConfig:
    """The core's DecodingConfig from a config or a dict of DECODING_OPTIONS; one clear line if invalid."""
    if not isinstance(options, dict):
        options = {name: getattr(options, name) for name in DECODING_OPTIONS}
    try:
        return DecodingConfig(steps=options["diffuseq_decode_steps"], clamp=str(options["diffuseq_clamping"]) == "on",
                              mbr_samples=options["diffuseq_mbr_samples"], variance=str(options["diffuseq_variance"]))
    except ValueError as err:
        raise SystemExit(f"error: invalid diffuseq decoding option: {err}") from None
