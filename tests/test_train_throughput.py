"""benchmarks/train_throughput.py: DiffusER's layouts measured beside the transformer, with peak memory."""
from __future__ import annotations

import json

import pytest

from benchmarks import train_throughput


@pytest.mark.slow
def test_the_layouts_are_measured_against_the_transformer(small_corpus, tmp_path):
    out = tmp_path / "throughput"
    train_throughput.main(["--data", str(small_corpus / "bin"), "--size", "tiny", "--updates", "10",
                           "--corruption-sentences", "50", "--systems", "diffuser_separate", "--out", str(out)])
    results = json.loads(out.with_suffix(".json").read_text())
    assert list(results["systems"]) == ["transformer", "diffuser", "diffuser_separate"]
    for figures in results["systems"].values():
        assert figures["words_per_second"] > 0 and figures["train_peak_rss_mib"] > 0
    assert results["systems"]["transformer"]["ratio_to_transformer"] == 1.0
    # diffuser_tiny's defaults are the separate layout: the same model
    assert results["systems"]["diffuser"]["parameters"] == results["systems"]["diffuser_separate"]["parameters"]
    assert "memory ratio" in out.with_suffix(".md").read_text()
