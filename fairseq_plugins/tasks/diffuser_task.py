"""The ``diffuser`` task: translation/summarization data with edit corruption.

Reads the binarized language-pair data of ``fairseq-preprocess`` (as the
``translation`` task does), adds the span sentinels to the dictionary and
wraps each split in an EditCorruptionDataset. All corruption maths is in
``diffuser_mt``.
"""

from dataclasses import dataclass, field

import numpy as np
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask
from omegaconf import II

from diffuser_mt.canvas import SpecialIds
from diffuser_mt.corruption import UNITS, CorruptionConfig, NoiseVocabulary
from fairseq_plugins.edit_dataset import EditCorruptionDataset

SENTINEL_FORMAT = "<span:{}>"
WORD_START = "\u2581"  # sentencepiece's word-start marker


@dataclass
class DiffuserConfig(TranslationConfig):
    corruption_keep: float = field(default=0.6, metadata={"help": "E_t: share of corruption spans kept"})
    corruption_replace: float = field(
        default=0.2, metadata={"help": "E_t: share of corruption spans replaced by random tokens"})
    corruption_insert: float = field(
        default=0.1, metadata={"help": "E_t: share of corruption spans that insert random tokens"})
    corruption_delete: float = field(default=0.1, metadata={"help": "E_t: share of corruption spans deleted"})
    span_lambda: float = field(
        default=3.0, metadata={"help": "E_l: Poisson mean of span lengths (paper: 3 for MT, 8 for summarization)"})
    diffusion_steps: int = field(
        default=12, metadata={"help": "T: length of the corruption chain; training draws t from 1..T"})
    edit_unit: ChoiceEnum(UNITS) = field(
        default="token",
        metadata={"help": "unit of an edit span: subword tokens, or whole words (sentencepiece word starts)"})
    max_spans: int = field(
        default=64, metadata={"help": "number of span sentinels; a step with more spans is coarsened losslessly"})
    batch_by_clean_length: bool = field(
        default=False,
        metadata={"help": "batch by the clean target's length, as the translation task does; by default "
                          "batches follow the corrupted sequences' lengths (built once per epoch in the main "
                          "process, ~10 us per target token)"})
    persistent_workers: bool = field(
        default=False,
        metadata={"help": "keep data-loader workers alive across epochs; off by default, since each epoch "
                          "starts fresh workers that see the new epoch's corruption seed"})
    seed: int = II("common.seed")


@register_task("diffuser", dataclass=DiffuserConfig)
class DiffuserTask(TranslationTask):
    """DiffusER training on a language pair: targets are corrupted, sources stay clean."""

    cfg: DiffuserConfig

    def __init__(self, cfg: DiffuserConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        for dictionary in (src_dict, tgt_dict):
            for k in range(cfg.max_spans):
                dictionary.add_symbol(SENTINEL_FORMAT.format(k))
        self.corruption = corruption_config(cfg)
        self.special_ids = SpecialIds(
            bos=tgt_dict.bos(), eos=tgt_dict.eos(), pad=tgt_dict.pad(),
            sentinels=tuple(tgt_dict.index(SENTINEL_FORMAT.format(k)) for k in range(cfg.max_spans)),
        )
        self.noise_vocab = noise_vocabulary(tgt_dict, self.special_ids, word_starts=cfg.edit_unit == "word")

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        super().load_dataset(split, epoch=epoch, combine=combine, **kwargs)
        pairs = self.datasets[split]
        check_lengths(pairs, split, self.cfg)
        self.datasets[split] = EditCorruptionDataset(
            pairs, self.corruption, self.noise_vocab, self.special_ids, seed=self.cfg.seed,
            fixed_epoch=None if split == self.cfg.train_subset else 1,
            length_aware=not self.cfg.batch_by_clean_length,
        )

    def max_positions(self):
        return (self.cfg.max_source_positions, self.cfg.max_target_positions)


def corruption_config(cfg: DiffuserConfig) -> CorruptionConfig:
    """The core's CorruptionConfig; an invalid setting stops fairseq with one clear line."""
    try:
        return CorruptionConfig(
            edit_mix=(cfg.corruption_keep, cfg.corruption_replace, cfg.corruption_insert, cfg.corruption_delete),
            span_lambda=cfg.span_lambda, num_steps=cfg.diffusion_steps, unit=str(cfg.edit_unit),
        )
    except ValueError as err:
        raise SystemExit(f"error: invalid diffuser task option: {err}") from None


def noise_vocabulary(dictionary, ids: SpecialIds, word_starts: bool) -> NoiseVocabulary:
    """Noise is drawn from real subwords: no special symbol, sentinel or fairseq padding word."""
    symbols = dictionary.symbols
    special = {dictionary.bos(), dictionary.pad(), dictionary.eos(), dictionary.unk(), *ids.sentinels}
    special |= {i for i, symbol in enumerate(symbols) if symbol.startswith("madeupword")}
    is_word_start = None
    if word_starts:
        is_word_start = np.array([symbol.startswith(WORD_START) for symbol in symbols])
        if not is_word_start.any():
            raise SystemExit("error: --edit-unit word needs a sentencepiece dictionary (no symbol starts with ▁)")
    return NoiseVocabulary(len(dictionary), special_ids=special, is_word_start=is_word_start)


def check_lengths(pairs, split: str, cfg: DiffuserConfig) -> None:
    """Empty or over-long sentences stop training before it starts, naming the split and line."""
    for side, sizes, limit in (("source", pairs.src_sizes, cfg.max_source_positions),
                               ("target", pairs.tgt_sizes, cfg.max_target_positions)):
        empty = np.flatnonzero(sizes <= 1)  # only the eos symbol
        if empty.size:
            raise SystemExit(f"error: {split} split: empty {side} line {empty[0] + 1} "
                             f"({empty.size} empty {side} lines in all); remove them and binarize again")
        too_long = np.flatnonzero(sizes > limit)
        if too_long.size:
            raise SystemExit(f"error: {split} split: {side} line {too_long[0] + 1} has {sizes[too_long[0]]} tokens, "
                             f"over --max-{side}-positions {limit} ({too_long.size} such lines)")
