"""Session fixtures: a small binarized slice of the real default corpus, and tiny checkpoints of every family."""
from __future__ import annotations

import os

import pytest
import torch

from corpus_helpers import REAL_DICTIONARY, run_prepare, write_dictionary
from fairseq_helpers import TINY_FAMILIES, TINY_UPDATES, fairseq
from data_scripts.ding import sentence_pairs

# One intra-op thread, in this process and in every program a test starts (they inherit the environment): the test
# models are tiny, and two threads on a busy 2-core machine make every small op wait for a time slice (a one-step
# decode of 12 sentences: 0.8 s with one thread, 21 s with two beside a training run).
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """prepare_ding.py run on the first 3000 sentence-pair lines of the real dictionary.

    Layout: ``text/`` (raw and spm splits, spm.model) and ``bin/`` (fairseq data, manifest.json);
    100 valid and 200 test pairs, joint sentencepiece vocabulary of 500.
    """
    if not REAL_DICTIONARY.exists():
        pytest.fail(f"{REAL_DICTIONARY} is absent: run `make test` (it installs trans-de-en) "
                    "or apt-get install trans-de-en")
    out = tmp_path_factory.mktemp("ding")
    lines = REAL_DICTIONARY.read_text(encoding="utf-8").splitlines()
    sentence_lines = [line for line in lines if sentence_pairs(line)][:3000]
    dictionary = write_dictionary(out / "de-en", lines[:1] + sentence_lines)
    result = run_prepare(dictionary, out, "--vocab-size", "500", "--valid-size", "100", "--test-size", "200",
                         "--workers", "1")
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def tiny_checkpoints(small_corpus, tmp_path_factory) -> dict:
    """{family: checkpoint_last.pt after TINY_UPDATES updates on small_corpus} (``fairseq_helpers.TINY_FAMILIES``),
    its copy checkpoint_1_10.pt beside it. For tests of loading and decoding, not of quality; a test that changes
    a file restores it."""
    saved = {}
    for family, options in TINY_FAMILIES.items():
        save_dir = tmp_path_factory.mktemp(f"tiny_{family}")
        fairseq("fairseq-train", small_corpus / "bin", *options, "--save-dir", save_dir, "--max-update", TINY_UPDATES,
                "--save-interval-updates", TINY_UPDATES, "--keep-interval-updates", "1", "--no-epoch-checkpoints",
                "--disable-validation")
        saved[family] = save_dir / "checkpoint_last.pt"
    return saved
