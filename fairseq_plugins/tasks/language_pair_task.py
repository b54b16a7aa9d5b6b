"""What the ``diffuser``, ``d3pm`` and ``diffuseq`` tasks share: the base task LanguagePairTask and its config.

All three read the binarized language-pair data of ``fairseq-preprocess`` (as the ``translation`` task does)
and check it before any work (``load_language_pairs``), draw validation randomness from a seed fixed per
batch, and decode with a generator of their own whose options (``DECODING_OPTIONS``, among them
``decode_steps``) ``fairseq-generate`` or ``--eval-bleu-args`` may override (``decoding_options``).
"""

from dataclasses import dataclass, field
from typing import Callable, TypeVar

import numpy as np
from fairseq import utils
from fairseq.tasks.translation import TranslationConfig, TranslationTask
from omegaconf import II

from diffuser_mt.d3pm_sampling import timestep_grid
from fairseq_plugins.interactive_input import InteractiveLines, RenumberedDataset

Config = TypeVar("Config")


@dataclass
class LanguagePairConfig(TranslationConfig):
    seed: int = II("common.seed")


class LanguagePairTask(TranslationTask):
    """A translation task whose splits are checked when loaded, and whose validation is seeded per batch."""

    cfg: LanguagePairConfig
    DECODING_OPTIONS: tuple[str, ...] = ()  # task options of the generator, which build_generator's args override

    def __init__(self, cfg, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.interactive = InteractiveLines()

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        load_language_pairs(self, split, epoch=epoch, combine=combine, **kwargs)

    def get_interactive_tokens_and_lengths(self, lines, encode_fn):
        """fairseq-interactive's next input lines as source ids; a line that cannot be translated is reported on
        stderr (``InteractiveLines.encode``) and left out, and the others are translated."""
        tokens = self.interactive.encode(lines, lambda line: self.source_dictionary.encode_line(
            encode_fn(line), add_if_not_exist=False).long(), self.cfg.max_source_positions)
        return tokens, [len(ids) for ids in tokens]

    def build_dataset_for_inference(self, src_tokens, src_lengths, constraints=None):
        """fairseq's; after ``get_interactive_tokens_and_lengths`` its ids are the input lines' positions in
        their buffer (the lines left out have none), which fairseq-interactive prints them by."""
        dataset = super().build_dataset_for_inference(src_tokens, src_lengths, constraints=constraints)
        positions = self.interactive.take_positions()
        return dataset if positions is None else RenumberedDataset(dataset, positions)

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """fairseq's; fairseq-interactive's batches carry no sentence ids, so they are looked up by source."""
        if "id" not in sample:
            sample = {**sample, "id": self.interactive.sentence_ids(sample["net_input"]["src_tokens"],
                                                                    self.source_dictionary.pad())}
        return super().inference_step(generator, models, sample, prefix_tokens=prefix_tokens,
                                      constraints=constraints)

    def valid_step(self, sample, model, criterion):
        """Validation draws the randomness of model and criterion (D3PM's and DiffuSeq's timesteps and noise;
        DiffusER's corruption is seeded by its dataset) from a seed fixed per batch, so the valid loss is
        comparable across epochs; torch's generator is restored afterwards."""
        with utils.set_torch_seed(self.cfg.seed * 1_000_003 + int(sample["id"][0])):
            return super().valid_step(sample, model, criterion)

    def decoding_options(self, args) -> dict:
        """{name: value} of DECODING_OPTIONS: from ``args`` (fairseq's generation options, or --eval-bleu-args
        during training) where it sets the name, else the task's; ``args`` None gives the task's."""
        options = {name: getattr(args, name, None) for name in self.DECODING_OPTIONS}
        return {name: getattr(self.cfg, name) if value is None else value for name, value in options.items()}


def core_config(make: Callable[[], Config], what: str) -> Config:
    """``make()``, a core config; the ValueError of an invalid value stops fairseq with one line naming ``what``."""
    try:
        return make()
    except ValueError as err:
        raise SystemExit(f"error: invalid {what}: {err}") from None


def strided_decode_steps(default: int, detail: str = ""):
    """The ``decode_steps`` field of a task that samples a strided reverse process (D3PM, DiffuSeq): N steps
    on an evenly strided grid of the model's T diffusion steps (``check_decode_steps``); ``detail`` ends the
    help."""
    return field(default=default, metadata={"help": "decoding: reverse steps N on an evenly strided grid "
                                                    "T = t_0 > ... > t_N = 0, T the model's --num-diffusion-timesteps "
                                                    f"(1 <= N <= T){detail}"})


def check_decode_steps(num_steps: int, decode_steps: int) -> None:
    """A strided reverse process of ``decode_steps`` steps needs 1 <= decode_steps <= T = ``num_steps``."""
    try:
        timestep_grid(num_steps, decode_steps)
    except ValueError as err:
        raise SystemExit(f"error: --decode-steps: {err}") from None


def load_language_pairs(task: TranslationTask, split: str, **kwargs) -> None:
    """TranslationTask.load_dataset, then check_lengths; a missing split or one whose source and target sides
    differ in length stops fairseq with one clear line."""
    try:
        TranslationTask.load_dataset(task, split, **kwargs)
    except AssertionError as err:  # LanguagePairDataset: "Source and target must contain the same number ..."
        raise SystemExit(f"error: {split} split of {task.cfg.data}: {err or 'its source and target do not match'}") \
            from None
    except FileNotFoundError as err:  # "Dataset not found: SPLIT (DATA)"
        raise SystemExit(f"error: {err}") from None
    check_lengths(task.datasets[split], split, task.cfg)


def check_lengths(pairs, split: str, cfg: TranslationConfig) -> None:
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
