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
    tests = {(test["system"], test["baseline"]): test for test in results["significance"]}
    assert set(tests) == {("DiffusER, random start, greedy, 12 steps", "transformer, beam 5"),
                          ("DiffusER, random start, 2D beam b=5 r=3, 12 steps", "transformer, beam 5"),
                          ("DiffusER + AR bootstrap, greedy, 12 steps", "transformer, beam 5")}  # no LevT here
    assert all(0 <= test["p_value"] <= 1 and test["difference"] == test["bleu"] - test["baseline_bleu"]
               for test in tests.values())
    assert "| comparison (paired bootstrap, 1,000 samples) |" in table


@pytest.mark.slow
def test_learning_curves_keep_a_checkpoint_per_interval_and_plot_one_line_per_system(small_corpus, tmp_path):
    out, work = tmp_path / "results" / "curves", tmp_path / "work"
    for side in ("en", "de"):  # out of domain: here 20 test sentences stand in for newstest2014
        lines = (small_corpus / "text" / f"test.{side}").read_text(encoding="utf-8").splitlines()[:20]
        (tmp_path / f"ood.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    command = [sys.executable, REPO_ROOT / "benchmarks" / "learning_curves.py", "--data", small_corpus / "bin",
               "--ood-source", tmp_path / "ood.en", "--ood-reference", tmp_path / "ood.de",
               "--valid-reference", small_corpus / "text" / "valid.de", "--systems", "diffuser", "--size", "tiny",
               "--minutes", "0.2", "--interval", "0.1", "--bar-minutes", "0.15", "--max-tokens", "2000",
               "--num-workers", "0", "--work-dir", work, "--out", out]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.with_suffix(".json").read_text())
    assert list(results["series"]) == ["transformer", "diffuser"] and results["snapshot_minutes"] == [0.1, 0.2]
    for system, points in results["series"].items():
        assert [point["minutes"] for point in points] == [0.1, 0.2]
        assert [os.path.basename(point["checkpoint"]) for point in points] == ["checkpoint_0.1min.pt",
                                                                               "checkpoint_0.2min.pt"]
        assert all((work / system / f"checkpoint_{m}min.pt").exists() for m in ("0.1", "0.2"))
        assert all(point["training_minutes"] >= point["minutes"] for point in points)  # fairseq stops after it
        assert 0 < points[0]["updates"] < points[1]["updates"]
        assert all(0 <= point["valid_bleu"] <= 100 for point in points)
    assert results["valid_sentences"] == 100
    assert {system: score["sentences"] for system, score in results["out_of_domain"].items()} == {
        "transformer": 20, "diffuser": 20}
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| diffuser |" in out.with_suffix(".md").read_text()
    again = subprocess.run(list(map(str, command)), capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "fairseq-train" not in again.stderr  # kept checkpoints and decodes reused
    assert json.loads(out.with_suffix(".json").read_text())["series"] == results["series"]


@pytest.mark.parametrize("points, bar, expected", [
    ([(1, 0.0), (2, 2.0), (3, 4.0)], 3.0, 2.5),
    ([(1, 5.0), (2, 6.0)], 3.0, 1),
    ([(1, 0.0), (2, 1.0)], 3.0, None),
])
def test_minutes_to_reach_interpolates_between_points(points, bar, expected):
    from benchmarks.learning_curves import bleu_at, minutes_to_reach

    series = [{"minutes": minutes, "valid_bleu": bleu} for minutes, bleu in points]
    assert minutes_to_reach(series, bar) == expected
    assert bleu_at(series, points[0][0]) == points[0][1] and bleu_at(series, 99) is None


def test_snapshot_times_end_at_the_budget():
    from benchmarks.learning_curves import snapshot_minutes

    assert snapshot_minutes(30, 5) == [5, 10, 15, 20, 25, 30]
    assert snapshot_minutes(12, 5) == [5, 10, 12]
