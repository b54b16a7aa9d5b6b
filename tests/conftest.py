"""Session fixtures: a small binarized slice of the real default corpus."""
from __future__ import annotations

import pytest

from corpus_helpers import REAL_DICTIONARY, run_prepare, write_dictionary
from data_scripts.ding import sentence_pairs


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
