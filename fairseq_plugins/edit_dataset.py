"""fairseq dataset adapter: corrupts each target inside the data loader.

Wraps a LanguagePairDataset. ``__getitem__`` runs
``diffuser_mt.training_examples.make_training_example`` (so data-loader
workers carry the corruption cost) with a generator seeded by
(seed, epoch, index): the same seed gives the same corruption, every epoch
draws fresh corruption, and validation splits use a fixed epoch so their loss
is comparable across epochs.

Length-aware batching: after t corruption steps x_t and the generator's
sequence can be much longer than x_0, and padding every batch to its longest
x_t wastes most of a step. Because an example depends only on (seed, epoch,
index), its padded sizes are known before batching: with ``length_aware``
on, the dataset builds every example of the epoch once in the main process
(~10 µs per target token) and sorts and batches by those sizes.
"""
from __future__ import annotations

import numpy as np
import torch
from fairseq.data import BaseWrapperDataset, FairseqDataset, data_utils

from diffuser_mt.canvas import SpecialIds
from diffuser_mt.corruption import CorruptionConfig, NoiseVocabulary
from diffuser_mt.edits import TAG_PAD
from diffuser_mt.training_examples import DiffuserExample, make_training_example


class EditCorruptionDataset(BaseWrapperDataset):
    """Adds tagger and generator inputs/targets to each LanguagePairDataset sample."""

    def __init__(self, dataset, config: CorruptionConfig, noise_vocab: NoiseVocabulary, ids: SpecialIds,
                 seed: int, fixed_epoch: int | None = None, length_aware: bool = True):
        super().__init__(dataset)
        self.config, self.noise_vocab, self.ids = config, noise_vocab, ids
        self.seed, self.fixed_epoch, self.length_aware = seed, fixed_epoch, length_aware
        self.epoch = fixed_epoch or 1
        self._epoch_sizes = None  # (epoch, int64 array of padded sizes per index)

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False  # the corruption, hence the batches, change with the epoch

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.epoch = self.fixed_epoch or epoch

    def example(self, index) -> DiffuserExample:
        """The example of ``index`` in the current epoch (deterministic)."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        x0 = self.dataset.tgt[index][:-1].tolist()  # drop eos
        return make_training_example(x0, self.config, self.noise_vocab, self.ids, rng)

    def __getitem__(self, index):
        item = self.dataset[index]
        example = self.example(index)
        item.update(
            tagger_tokens=torch.tensor(example.tagger_tokens, dtype=torch.long),
            tag_targets=torch.tensor(example.tag_targets, dtype=torch.long),
            generator_inputs=torch.tensor(example.generator_inputs, dtype=torch.long),
            generator_targets=torch.tensor(example.generator_targets, dtype=torch.long),
        )
        return item

    def epoch_sizes(self) -> np.ndarray:
        """Per index: the longest of source, tagger and generator sequences in this epoch."""
        if self._epoch_sizes is None or self._epoch_sizes[0] != self.epoch:
            sizes = np.array([max(len(example.tagger_tokens), len(example.generator_inputs))
                              for example in map(self.example, range(len(self)))], dtype=np.int64)
            self._epoch_sizes = (self.epoch, np.maximum(sizes, self.dataset.src_sizes))
        return self._epoch_sizes[1]

    def num_tokens(self, index):
        return int(self.epoch_sizes()[index]) if self.length_aware else self.dataset.num_tokens(index)

    def num_tokens_vec(self, indices):
        return self.epoch_sizes()[indices] if self.length_aware else self.dataset.num_tokens_vec(indices)

    def ordered_indices(self):
        """Shuffled (fairseq seeds numpy per epoch), then stably sorted by this epoch's sizes."""
        if not self.length_aware:
            return self.dataset.ordered_indices()
        order = np.random.permutation(len(self))
        return order[np.argsort(self.epoch_sizes()[order], kind="mergesort")]

    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        # FairseqDataset's, which reads this dataset's num_tokens_vec (the wrapper's would read the inner one's)
        return FairseqDataset.batch_by_size(self, indices, max_tokens, max_sentences, required_batch_size_multiple)

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
