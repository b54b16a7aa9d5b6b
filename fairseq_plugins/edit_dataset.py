"""fairseq dataset adapter: corrupts each target inside the data loader.

Wraps a LanguagePairDataset. ``__getitem__`` runs
``diffuser_mt.training_examples.make_training_example`` (so data-loader
workers carry the corruption cost) with a generator seeded by
(seed, epoch, index): the same seed gives the same corruption, every epoch
draws fresh corruption, and validation splits use a fixed epoch so their loss
is comparable across epochs.

Post-editing pairs and roll-in: with ``hypotheses`` (an external system's
output for every target, e.g. an AR model's decode of the train split), an
example is, with probability ``postedit_prob``, that hypothesis with the edits
that take it to x_0 instead of a corruption of x_0. With ``rollin_prob``, an
example is flagged (``sample["rollin"]``) for the criterion to train again on
what the model makes of it. With ``masking_prob``, an example is a masking
example (``make_masking_example``: a uniform number of x_0's tokens, or words
with ``--edit-unit word``, replaced one for one, a share ``masking_unchanged``
of them left as they are) instead of a corruption. With ``word_errors_prob``,
an example is x_0 with 1..``word_errors_max`` word errors
(``make_word_error_example``) instead of a corruption. The draws are seeded by
(seed, epoch, index) on streams of their own, so the corruption of the other
examples does not change.

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
from fairseq.data import FairseqDataset, data_utils

from diffuser_mt.canvas import SpecialIds
from diffuser_mt.corruption import CorruptionConfig, NoiseVocabulary
from diffuser_mt.edits import TAG_PAD
from diffuser_mt.training_examples import (DiffuserExample, make_masking_example, make_postedit_example,
                                           make_training_example, make_word_error_example)
from diffuser_mt.word_errors import WordVocabulary
from fairseq_plugins.complete_batching import CompletelyBatched

# seed-sequence suffixes of the per-example draws
POSTEDIT_STREAM, ROLLIN_STREAM, MASKING_STREAM, WORD_ERRORS_STREAM = 1, 2, 3, 4


class EditCorruptionDataset(CompletelyBatched):
    """Adds tagger and generator inputs/targets to each LanguagePairDataset sample."""

    def __init__(self, dataset, config: CorruptionConfig, noise_vocab: NoiseVocabulary, ids: SpecialIds,
                 seed: int, fixed_epoch: int | None = None, length_aware: bool = True,
                 hypotheses: list[list[int]] | None = None, postedit_prob: float = 0.0, rollin_prob: float = 0.0,
                 masking_prob: float = 0.0, masking_unchanged: float = 0.0, words: WordVocabulary | None = None,
                 word_errors_prob: float = 0.0, word_errors_max: int = 3):
        super().__init__(dataset)
        if hypotheses is not None and len(hypotheses) != len(dataset):
            raise ValueError(f"{len(hypotheses)} hypotheses for {len(dataset)} examples")
        if word_errors_prob > 0 and (words is None or noise_vocab.is_word_start is None):
            raise ValueError("word errors need a word vocabulary and the noise vocabulary's word starts")
        self.config, self.noise_vocab, self.ids = config, noise_vocab, ids
        self.seed, self.fixed_epoch, self.length_aware = seed, fixed_epoch, length_aware
        self.hypotheses, self.postedit_prob, self.rollin_prob = hypotheses, postedit_prob, rollin_prob
        self.masking_prob, self.masking_unchanged = masking_prob, masking_unchanged
        self.words, self.word_errors_prob, self.word_errors_max = words, word_errors_prob, word_errors_max
        self.epoch = fixed_epoch or 1
        self._epoch_sizes = None  # (epoch, int64 array of padded sizes per index)

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return False  # the corruption, hence the batches, change with the epoch

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self.epoch = self.fixed_epoch or epoch

    def _coin(self, index, stream: int, probability: float) -> bool:
        """A seeded coin flip of ``probability`` for (seed, epoch, index) on its own stream."""
        return probability > 0 and np.random.default_rng([self.seed, self.epoch, index, stream]).random() < probability

    def example(self, index) -> DiffuserExample:
        """The example of ``index`` in the current epoch (deterministic)."""
        x0 = self.dataset.tgt[index][:-1].tolist()  # drop eos
        if self.hypotheses is not None and self._coin(index, POSTEDIT_STREAM, self.postedit_prob):
            return make_postedit_example(self.hypotheses[index], x0, self.ids, self.config.unit,
                                         self.noise_vocab.is_word_start)
        if self._coin(index, MASKING_STREAM, self.masking_prob):
            rng = np.random.default_rng([self.seed, self.epoch, index, MASKING_STREAM])
            return make_masking_example(x0, self.noise_vocab, self.ids, rng, self.masking_unchanged,
                                        self.config.unit)
        if self._coin(index, WORD_ERRORS_STREAM, self.word_errors_prob):
            rng = np.random.default_rng([self.seed, self.epoch, index, WORD_ERRORS_STREAM])
            return make_word_error_example(x0, self.words, self.ids, rng, self.word_errors_max,
                                           self.noise_vocab.is_word_start, self.config.unit)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return make_training_example(x0, self.config, self.noise_vocab, self.ids, rng)

    def __getitem__(self, index):
        item = self.dataset[index]
        example = self.example(index)
        item.update(example_tensors(example))
        item["rollin"] = self._coin(index, ROLLIN_STREAM, self.rollin_prob)
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

    def batches(self, indices, max_tokens, max_sentences, required_batch_size_multiple):
        # FairseqDataset's, which reads this dataset's num_tokens_vec (the wrapper's would read the inner one's)
        return FairseqDataset.batch_by_size(self, indices, max_tokens, max_sentences, required_batch_size_multiple)

    def collater(self, samples):
        batch = self.dataset.collater(samples)
        if not samples:
            return batch
        by_id = {sample["id"]: sample for sample in samples}
        ordered = [by_id[int(i)] for i in batch["id"]]
        stacked = collate_examples(ordered, self.ids.pad)
        batch["net_input"]["tagger_tokens"] = stacked["tagger_tokens"]
        batch["net_input"]["generator_tokens"] = stacked["generator_tokens"]
        batch["tag_target"] = stacked["tag_target"]
        batch["generator_target"] = stacked["generator_target"]
        batch["rollin"] = torch.tensor([bool(s["rollin"]) for s in ordered], dtype=torch.bool)
        return batch


def example_tensors(example: DiffuserExample) -> dict[str, torch.Tensor]:
    """The example's four token lists as 1-D long tensors, keyed as the dataset's items."""
    return {key: torch.tensor(getattr(example, key), dtype=torch.long)
            for key in ("tagger_tokens", "tag_targets", "generator_inputs", "generator_targets")}


def collate_examples(items: list[dict], pad: int) -> dict[str, torch.Tensor]:
    """Right-padded B x L tensors of ``example_tensors`` items: the model's inputs and the two targets."""
    def stack(key, pad_value):
        return data_utils.collate_tokens([item[key] for item in items], pad_value, left_pad=False)

    return {"tagger_tokens": stack("tagger_tokens", pad), "generator_tokens": stack("generator_inputs", pad),
            "tag_target": stack("tag_targets", TAG_PAD), "generator_target": stack("generator_targets", pad)}
