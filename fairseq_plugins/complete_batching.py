"""Batches that hold every example: fairseq's ``batch_by_size`` drops the examples that do not fill a batch of
``--required-batch-size-multiple`` (default 8) sentences; 496 of 500 sentences at --batch-size 32, and with
size-sorted indices the longest ones. Without a word, fairseq-generate would then decode fewer sentences than the
split holds, validation would score fewer, and training would never see the longest examples.

``CompletelyBatched`` wraps a dataset and puts what fairseq's batching dropped into extra batches (batched
again with a multiple of 1, so --max-tokens and --batch-size still hold). The project's datasets derive from it.
"""
from __future__ import annotations

import numpy as np
from fairseq.data import BaseWrapperDataset


def complete_batches(batch_by_size, indices, max_tokens, max_sentences, required_batch_size_multiple) -> list:
    """``batch_by_size(indices, max_tokens, max_sentences, multiple)`` plus, batched with a multiple of 1, the
    indices it left out: every index is in exactly one batch, in fairseq's order, the left-out ones last."""
    indices = np.asarray(indices, dtype=np.int64)
    batches = list(batch_by_size(indices, max_tokens, max_sentences, required_batch_size_multiple))
    batched = np.concatenate(batches) if batches else np.empty(0, dtype=np.int64)
    if len(batched) == len(indices):
        return batches
    left_out = indices[~np.isin(indices, batched)]
    return batches + list(batch_by_size(left_out, max_tokens, max_sentences, 1))


class CompletelyBatched(BaseWrapperDataset):
    """A wrapped dataset whose batches hold all the indices they are given (see the module docstring)."""

    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        return complete_batches(self.batches, indices, max_tokens, max_sentences, required_batch_size_multiple)

    def batches(self, indices, max_tokens, max_sentences, required_batch_size_multiple) -> list:
        """fairseq's batching over the sizes of the wrapped dataset; a wrapper with sizes of its own batches over
        those (FairseqDataset.batch_by_size on itself)."""
        return self.dataset.batch_by_size(indices, max_tokens, max_sentences, required_batch_size_multiple)
