"""The diffuser task's dataset: seeded corruption and length-aware batching, on the real corpus slice."""
import argparse

import numpy as np
import pytest
import torch
from fairseq import options, tasks, utils
from fairseq.data import data_utils

from corpus_helpers import REPO_ROOT


def diffuser_task(data, *options_):
    utils.import_user_module(argparse.Namespace(user_dir=str(REPO_ROOT / "fairseq_plugins")))
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(data), "--task", "diffuser", "--arch", "diffuser_tiny",
                                                "--seed", "3", *options_])
    return tasks.setup_task(args)


@pytest.fixture(scope="module")
def train_set(small_corpus):
    task = diffuser_task(small_corpus / "bin")
    task.load_dataset("train")
    return task.datasets["train"]


def test_same_seed_and_epoch_give_the_same_example(train_set):
    train_set.set_epoch(1)
    first = train_set[5]
    again = train_set[5]
    assert torch.equal(first["tagger_tokens"], again["tagger_tokens"])
    train_set.set_epoch(2)
    other_epochs = [train_set[i]["tagger_tokens"] for i in range(5, 25)]
    train_set.set_epoch(1)
    assert any(not torch.equal(a, train_set[i]["tagger_tokens"]) for i, a in zip(range(5, 25), other_epochs))


def test_batching_sizes_are_the_corrupted_lengths(train_set):
    train_set.set_epoch(1)
    for index in range(0, 300, 7):
        item = train_set[index]
        expected = max(len(item["tagger_tokens"]), len(item["generator_inputs"]), len(item["source"]))
        assert train_set.num_tokens(index) == expected


def test_batches_respect_max_tokens_on_the_padded_tensors(train_set):
    train_set.set_epoch(2)
    with data_utils.numpy_seed(5):
        order = train_set.ordered_indices()
    sizes = train_set.epoch_sizes()
    assert np.all(np.diff(sizes[order]) >= 0)
    for batch in train_set.batch_by_size(order, max_tokens=600)[:20]:
        collated = train_set.collater([train_set[i] for i in batch])
        for key in ("tagger_tokens", "generator_tokens", "src_tokens"):
            assert collated["net_input"][key].numel() <= 600
