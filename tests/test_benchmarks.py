"""The side-by-side benchmark runs end to end on tiny models (its figures are not checked: they are benchmarks)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from corpus_helpers import REPO_ROOT


@pytest.fixture(scope="module")
def curves(small_corpus, tmp_path_factory):
    """benchmarks/learning_curves.py on tiny models, the transformer and DiffusER, 0.2 minutes each:
    (command, results, out, work dir)."""
    tmp_path = tmp_path_factory.mktemp("curves")
    out, work = tmp_path / "results" / "curves", tmp_path / "work"
    for side in ("en", "de"):  # out of domain: here 20 test sentences stand in for newstest2014
        lines = (small_corpus / "text" / f"test.{side}").read_text(encoding="utf-8").splitlines()[:20]
        (tmp_path / f"ood.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    command = [sys.executable, REPO_ROOT / "benchmarks" / "learning_curves.py", "--data", small_corpus / "bin",
               "--ood-source", tmp_path / "ood.en", "--ood-reference", tmp_path / "ood.de",
               "--valid-reference", small_corpus / "text" / "valid.de", "--test-reference",
               small_corpus / "text" / "test.de", "--systems", "diffuser", "--size", "tiny",
               "--minutes", "0.2", "--interval", "0.1", "--bar-minutes", "0.15", "--warm-start-minutes", "0.1",
               "--max-tokens", "2000",
               "--num-workers", "0", "--work-dir", work, "--out", out]
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return command, json.loads(out.with_suffix(".json").read_text()), out, work


@pytest.mark.slow
def test_learning_curves_keep_a_checkpoint_per_interval_and_plot_one_line_per_system(curves):
    command, results, out, work = curves
    assert list(results["series"]) == ["transformer", "diffuser", "diffuser_warm"]
    assert results["snapshot_minutes"] == [0.1, 0.2]
    series = results["series"]
    for system in ("transformer", "diffuser"):
        points = series[system]
        assert [point["minutes"] for point in points] == [0.1, 0.2]
        assert [os.path.basename(point["checkpoint"]) for point in points] == ["checkpoint_0.1min.pt",
                                                                               "checkpoint_0.2min.pt"]
        assert all((work / system / f"checkpoint_{m}min.pt").exists() for m in ("0.1", "0.2"))
        assert all(point["training_minutes"] >= point["minutes"] for point in points)  # fairseq stops after it
        assert 0 < points[0]["updates"] < points[1]["updates"]
    assert all(0 <= point["valid_bleu"] <= 100 for points in series.values() for point in points)
    [warm] = series["diffuser_warm"]  # from the transformer's 0.1-minute checkpoint, charged with its training
    assert warm["minutes"] == 0.2 and os.path.basename(warm["checkpoint"]) == "checkpoint_0.2min.pt"
    assert warm["updates"] == series["transformer"][0]["updates"] + warm["own_updates"] and warm["own_updates"] > 0
    assert warm["training_minutes"] == pytest.approx(series["transformer"][0]["training_minutes"]
                                                     + warm["own_training_minutes"])
    assert warm["own_training_minutes"] >= 0.1  # its own budget, 0.2 - 0.1 minutes; fairseq stops after it
    start = work / "transformer" / "checkpoint_0.1min.pt"
    assert f"init_generator_from='{start}'" in (work / "diffuser_warm" / "train.log").read_text()
    assert results["valid_sentences"] == 100
    trained = sorted(work.glob("*/checkpoint_*min.pt"), key=lambda path: path.stat().st_mtime_ns)
    assert [f"{path.parent.name} {path.name}" for path in trained] == [  # the systems take turns
        "transformer checkpoint_0.1min.pt", "diffuser checkpoint_0.1min.pt",
        "transformer checkpoint_0.2min.pt", "diffuser checkpoint_0.2min.pt", "diffuser_warm checkpoint_0.2min.pt"]
    budget = results["at_budget"]
    assert list(budget) == ["transformer", "diffuser", "diffuser_warm", "transformer at 0.1 min",
                            "diffuser + AR bootstrap", "diffuser_warm + AR bootstrap"]
    assert budget["transformer at 0.1 min"]["updates"] == series["transformer"][0]["updates"]
    for name, row in budget.items():
        assert row["sentences"] == 200 and 0 <= row["test_bleu"] <= 100 and row["sentences_per_second"] > 0
        assert row["train_peak_rss_mib"] > 0 and row["train_tokens_per_second"] is not None
        [point] = [point for point in series[row["system"]] if point["minutes"] == row["minutes"]]
        assert row["updates"] == point["updates"] and row["minutes"] == (0.1 if name.endswith(" at 0.1 min") else 0.2)
    assert all(budget["transformer"][f"{key}_x_ar"] == 1.0 for key in ("sentences_per_second", "updates",
                                                                       "train_peak_rss_mib"))
    assert budget["diffuser"]["updates_x_ar"] == budget["diffuser"]["updates"] / budget["transformer"]["updates"]
    tests = {(test["system"], test["baseline"]): test for test in results["significance"]}
    assert set(tests) == {("diffuser", "transformer"), ("diffuser + AR bootstrap", "transformer"),  # no LevT
                          ("diffuser_warm", "transformer"), ("diffuser_warm", "transformer at 0.1 min"),
                          ("diffuser_warm + AR bootstrap", "transformer")}
    assert all(0 <= test["p_value"] <= 1 and test["bleu"] == pytest.approx(budget[test["system"]]["test_bleu"])
               for test in tests.values())
    assert {system: score["sentences"] for system, score in results["out_of_domain"].items()} == {
        "transformer": 20, "diffuser": 20, "diffuser_warm": 20}
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| diffuser |" in out.with_suffix(".md").read_text()
    again = subprocess.run(list(map(str, command)), capture_output=True, text=True)
    assert again.returncode == 0 and "fairseq-train" not in again.stderr  # kept checkpoints and decodes reused
    assert json.loads(out.with_suffix(".json").read_text())["series"] == results["series"]


@pytest.mark.slow
def test_compare_systems_takes_the_curves_checkpoints_trains_the_rest_and_writes_its_tables(small_corpus, curves,
                                                                                             tmp_path):
    _, curve_results, _, curve_work = curves
    out = tmp_path / "results" / "compare"
    command = [sys.executable, REPO_ROOT / "benchmarks" / "compare_systems.py", "--data", small_corpus / "bin",
               "--reference", small_corpus / "text" / "test.de", "--spm-model", small_corpus / "text" / "spm.model",
               "--systems", "transformer", "diffuser", "d3pm", "--size", "tiny", "--minutes", "0.2",
               "--from-curves", curve_work, "--curve-minutes", "0.2", "--max-tokens", "2000", "--sweep-steps", "1",
               "2", "--num-workers", "0", "--work-dir", tmp_path / "work", "--out", out]
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.with_suffix(".json").read_text())
    training = results["training"]
    assert set(training) == {"transformer", "diffuser", "d3pm"}
    for system in ("transformer", "diffuser"):  # taken from the curves, not trained again
        assert training[system]["from_curves"] and training[system]["checkpoint"].endswith("checkpoint_0.2min.pt")
        assert training[system]["updates"] == curve_results["series"][system][-1]["updates"]
        assert not (tmp_path / "work" / system / "train.log").exists()
    assert "from_curves" not in training["d3pm"] and (tmp_path / "work" / "d3pm" / "checkpoint_best.pt").exists()
    assert [row["system"] for row in results["rows"].values()] == ["transformer"] + ["diffuser"] * 4 + ["d3pm"]
    assert results["rows"]["transformer, beam 5"]["decode_ratio_to_ar"] == 1.0
    for row in results["rows"].values():
        assert 0 <= row["bleu"] <= 100 and row["sentences_per_second"] > 0 and row["decode_peak_rss_mib"] > 0
    assert all(stats["updates"] >= 1 and stats["parameters"] > 0 and stats["train_tokens_per_second"] > 0
               for stats in training.values())
    assert [point["steps"] for point in results["step_sweep"]] == [1, 2]
    assert (out.parent / "step_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = out.with_suffix(".md").read_text()
    assert "| DiffusER + AR bootstrap, greedy, 12 steps |" in table and "DiffusER training >= 0.7x" in table
    assert "| transformer, beam 5 | " in table and " | 0.2 | " in table  # the train-minutes column
    tests = {(test["system"], test["baseline"]): test for test in results["significance"]}
    assert set(tests) == {("DiffusER, random start, greedy, 12 steps", "transformer, beam 5"),
                          ("DiffusER, random start, 2D beam b=5 r=3, 12 steps", "transformer, beam 5"),
                          ("DiffusER + AR bootstrap, greedy, 12 steps", "transformer, beam 5")}  # no LevT here
    assert all(0 <= test["p_value"] <= 1 and test["difference"] == test["bleu"] - test["baseline_bleu"]
               for test in tests.values())
    assert "| comparison (paired bootstrap, 1,000 samples) |" in table


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


@pytest.mark.parametrize("steps", [200, 50])
def test_the_diffuseq_row_decodes_the_asked_ddim_steps_and_says_so(steps):
    from benchmarks.compare_systems import DECODERS, with_diffuseq_steps

    decoders = with_diffuseq_steps(DECODERS, steps)
    diffuseq = {name: decoder for name, decoder in decoders.items() if decoder.system == "diffuseq"}
    assert list(diffuseq) == [f"DiffuSeq, {steps} DDIM steps"]
    assert diffuseq[f"DiffuSeq, {steps} DDIM steps"].options == ["--decode-steps", str(steps)]
    others = {name: decoder for name, decoder in decoders.items() if decoder.system != "diffuseq"}
    assert others == {name: decoder for name, decoder in DECODERS.items() if decoder.system != "diffuseq"}


def test_snapshot_times_end_at_the_budget():
    from benchmarks.learning_curves import snapshot_minutes

    assert snapshot_minutes(30, 5) == [5, 10, 15, 20, 25, 30]
    assert snapshot_minutes(12, 5) == [5, 10, 12]


def test_a_curve_dir_trained_past_the_asked_checkpoint_is_one_error_not_a_mislabelled_copy(tmp_path):
    import argparse

    import torch
    from benchmarks.learning_curves import train_until
    from diffuser_mt.textio import InputError

    save_dir = tmp_path / "transformer"
    save_dir.mkdir()
    torch.save({"optimizer_history": [{"num_updates": 40}], "extra_state": {"previous_training_time": 600.0}},
               save_dir / "checkpoint_last.pt")  # 10 training minutes, left by a run with another interval
    with pytest.raises(InputError, match="holds a run of 10.0 training minutes, past the 4-minute checkpoint"):
        train_until("transformer", 4.0, argparse.Namespace(work_dir=tmp_path))
    assert sorted(path.name for path in save_dir.iterdir()) == ["checkpoint_last.pt"]


def test_the_default_out_of_domain_pair_is_the_shared_newstest2014_sample():
    from benchmarks.learning_curves import OOD_SAMPLE, parse_args

    args = parse_args([])
    assert (args.ood_source.name, args.ood_reference.name) == ("newstest2014.300.en", "newstest2014.300.de")
    if OOD_SAMPLE.is_dir():  # ../shared is beside the checkout here, not on every machine
        assert args.ood_source.is_file() and args.ood_reference.is_file()


@pytest.mark.parametrize("summaries, expected", [
    ([(2000.0, 100), (1000.0, 200)], 1500.0),  # two equal epochs
    ([(1500.0, 74), (155.0, 75), (1500.0, 149)], (1500 * 148 + 155) / 149),  # a one-update piece counts once
    ([], None),
])
def test_training_tokens_per_second_weights_each_epoch_summary_by_its_updates(summaries, expected):
    from benchmarks.common import tokens_per_second

    log = "".join(f"| train | epoch {k:03d} | loss 5 | wps {wps} | ups 1 | num_updates {updates} | lr 1\n"
                  for k, (wps, updates) in enumerate(summaries, 1))
    assert tokens_per_second(log) == (None if expected is None else pytest.approx(expected))
