"""The ``d3pm`` task: translation data for D3PM, and its strided reverse-process sampler.

Reads the binarized language-pair data of ``fairseq-preprocess`` (the same data as the ``translation`` and
``diffuser`` tasks) and adds the absorbing state ``<mask>`` to the dictionaries. Noising happens in the
criterion (``d3pm_loss``: one draw per token, on the training device). ``build_generator`` returns the
D3PM sampler, so ``fairseq-generate`` and ``--eval-bleu`` validation decode with it; the transition, its
schedule and T come from the checkpoint's model (``--transition`` etc. are model options), the decoding
options below from the task. All diffusion maths is in ``diffuser_mt.d3pm_*``.
"""

from dataclasses import dataclass, field

import numpy as np
import torch
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task

from diffuser_mt.d3pm_sampling import DECODING_MODES, DecodeConfig
from fairseq_plugins.complete_batching import CompletelyBatched
from fairseq_plugins.d3pm_generator import D3PMGenerator
from fairseq_plugins.generator_protocol import refuse_prefix_constraints
from fairseq_plugins.tasks.language_pair_task import (LanguagePairConfig, LanguagePairTask, check_decode_steps,
                                                      core_config, strided_decode_steps)

MASK_SYMBOL = "<mask>"


@dataclass
class D3PMTaskConfig(LanguagePairConfig):
    decode_steps: int = strided_decode_steps(20)
    d3pm_decoding: ChoiceEnum(DECODING_MODES) = field(
        default="argmax",
        metadata={"help": "decoding: argmax: each step takes the most likely clean tokens x0 and draws x_{t-1} "
                          "from q(x_{t-1} | x_t, x0) (which positions change is random, what they become is "
                          "not); sample: ancestral sampling from p(x_{t-1} | x_t)"})
    d3pm_temperature: float = field(
        default=1.0, metadata={"help": "decoding: temperature dividing the model's x0 logits (> 0)"})


@register_task("d3pm", dataclass=D3PMTaskConfig)
class D3PMTask(LanguagePairTask):
    """D3PM on a language pair: targets are noised by the model's transition, sources stay clean."""

    cfg: D3PMTaskConfig
    DECODING_OPTIONS = ("decode_steps", "d3pm_decoding", "d3pm_temperature")

    def __init__(self, cfg: D3PMTaskConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        for dictionary in (src_dict, tgt_dict):
            dictionary.add_symbol(MASK_SYMBOL)
        self.mask_idx = tgt_dict.index(MASK_SYMBOL)
        decode_config(self.decoding_options(None))  # validate the decoding options before any work

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        super().load_dataset(split, epoch=epoch, combine=combine, **kwargs)
        self.datasets[split] = CompletelyBatched(self.datasets[split])

    def x0_support(self) -> torch.Tensor:
        """(K,) bool: the target symbols a clean token may be; not bos, pad, eos, <mask> or fairseq's padding
        words (unk stays: a reference may hold it)."""
        dictionary = self.tgt_dict
        support = torch.tensor([not symbol.startswith("madeupword") for symbol in dictionary.symbols])
        support[[dictionary.bos(), dictionary.pad(), dictionary.eos(), self.mask_idx]] = False
        return support

    def token_counts(self) -> torch.Tensor:
        """(K,) target-dictionary counts (from the training data of fairseq-preprocess), 0 off the support;
        the spindle schedule's token frequencies."""
        counts = torch.tensor(np.asarray(self.tgt_dict.count, dtype=np.float64))
        return torch.where(self.x0_support(), counts, torch.zeros_like(counts))

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, prefix_allowed_tokens_fn=None):
        """The D3PM sampler. ``args`` may override the task's decoding options of the same names, e.g.
        '{"decode_steps": 4}'."""
        refuse_prefix_constraints(prefix_allowed_tokens_fn, "d3pm")
        config = decode_config(self.decoding_options(args))
        for model in models:
            check_decode_steps(model.transition.num_steps, config.steps)
        return D3PMGenerator(self.tgt_dict, config, seed=self.cfg.seed, max_len_a=getattr(args, "max_len_a", 0.0),
                             max_len_b=getattr(args, "max_len_b", 200))


def decode_config(options: dict) -> DecodeConfig:
    """The core's DecodeConfig from the values of D3PMTask.DECODING_OPTIONS; one clear line if invalid."""
    return core_config(lambda: DecodeConfig(steps=options["decode_steps"], mode=str(options["d3pm_decoding"]),
                                            temperature=options["d3pm_temperature"]), "d3pm decoding option")
