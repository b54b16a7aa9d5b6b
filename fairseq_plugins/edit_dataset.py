"""fairseq dataset adapter: corrupts each target inside the data loader.

Wraps a LanguagePairDataset. ``__getitem__`` runs
``diffuser_mt.training_examples.make_training_example`` (so data-loader
workers carry the corruption cost) with a generator seeded by
(seed, epoch, index): the same seed gives the same corruption, every epoch
draws fresh corruption, and validation splits use a fixed epoch so their loss
is comparable across epochs.
"""
from __future__ import annotations

import numpy as np
import torch
from fairseq.data import BaseWrapperDataset, data_utils

from diffuser_mt.canvas import SpecialIds
from diffuser_mt.corruption import CorruptionConfig, NoiseVocabulary
from diffuser_mt.training_examples import make_training_example

TAG_PAD = -100  # ignore_index of the tagger's cross-entropy


class EditCorruptionDataset(BaseWrapperDataset):
    """Adds tagger and generator inputs/targets to each LanguagePairDataset sample."""

    def __init__(self, dataset, config: CorruptionConfig, noise_vocab: NoiseVocabulary, ids: SpecialIds,
                 seed: int, fixed_epoch: int | None = None):
        super().__init__(dataset)
        self.config, self.noise_vocab, self.ids = config, noise_vocab, ids
        self.seed, self.fixed_epoch = seed, fixed_epoch
        self.epoch = fixed_epoch or 1

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False  # the corruption changes with the epoch

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.epoch = self.fixed_epoch or epoch

    def __getitem__(self, index):
        item = self.dataset[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        x0 = item["target"][:-1].tolist()  # drop eos
        example = make_training_example(x0, self.config, self.noise_vocab, self.ids, rng)
        item.update(
            tagger_tokens=torch.tensor(example.tagger_tokens, dtype=torch.long),
            tag_targets=torch.tensor(example.tag_targets, dtype=torch.long),
            generator_inputs=torch.tensor(example.generator_inputs, dtype=torch.long),
            generator_targets=torch.tensor(example.generator_targets, dtype=torch.long),
        )
        return item

    def collater(self, samples):
        batch = self.dataset.collater(samples)
        if not samples:
            return batch
        by_id = {sample["id"]: sample for sample in samples}
        ordered = [by_id[int(i)] for i in batch["id"]]

        def stack(key, pad):
            return data_utils.collate_tokens([s[key] for s in ordered], pad, left_pad=False)

        batch["net_input"]["tagger_tokens"] = stack("tagger_tokens", self.ids.pad)
        batch["net_input"]["generator_tokens"] = stack("generator_inputs", self.ids.pad)
        batch["tag_target"] = stack("tag_targets", TAG_PAD)
        batch["generator_target"] = stack("generator_targets", self.ids.pad)
        return batch
