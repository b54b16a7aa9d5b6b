"""The side-by-side benchmark runs end to end on tiny models (its figures are not checked: they are benchmarks)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from corpus_helpers import REPO_ROOT


@pytest.mark.slow
def test_compare_systems_trains_decodes_sweeps_and_writes_its_tables(small_corpus, tmp_path):
    out = tmp_path / "results" / "compare"
    command = [sys.executable, REPO_ROOT / "benchmarks" / "compare_systems.py", "--data", small_corpus / "bin",
               "--reference", small_corpus / "text" / "test.de", "--spm-model", small_corpus / "text" / "spm.model",
               "--systems", "transformer", "diffuser", "--size", "tiny", "--minutes", "0.5", "--max-tokens", "2000",
               "--sweep-steps", "1", "2", "--num-workers", "0", "--work-dir", tmp_path / "work", "--out", out]
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.with_suffix(".json").read_text())
    assert set(results["training"]) == {"transformer", "diffuser"}
    assert [row["system"] for row in results["rows"].values()] == ["transformer"] + ["diffuser"] * 4
    assert results["rows"]["transformer, beam 5"]["decode_ratio_to_ar"] == 1.0
    for row in results["rows"].values():
        assert 0 <= row["bleu"] <= 100 and row["sentences_per_second"] > 0 and row["decode_peak_rss_mib"] > 0
    assert results["training"]["diffuser"]["updates"] >= 1 and results["training"]["diffuser"]["parameters"] > 0
    assert [point["steps"] for point in results["step_sweep"]] == [1, 2]
    assert (out.parent / "step_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = out.with_suffix(".md").read_text()
    assert "| DiffusER + AR bootstrap, greedy, 12 steps |" in table and "DiffusER training >= 0.7x" in table
