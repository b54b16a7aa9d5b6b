"""End-to-end runs of fairseq's own programs with --user-dir fairseq_plugins, on the real default corpus."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import torch
from corpus_helpers import REPO_ROOT
from fairseq_helpers import DIFFUSER_TINY, USER_DIR, fairseq, json_log

import fairseq_plugins  # noqa: F401  (the checkpoint allow-list, for torch.load below)


@pytest.fixture(scope="module")
def ar_run(small_corpus, tmp_path_factory):
    """data_scripts/ar_baseline.py with a tiny transformer and 30 updates."""
    save_dir = tmp_path_factory.mktemp("ar")
    command = [sys.executable, str(REPO_ROOT / "data_scripts" / "ar_baseline.py"),
               "--data", small_corpus / "bin", "--reference", small_corpus / "text" / "test.de",
               "--save-dir", save_dir, "--model-size", "tiny", "--max-update", "30", "--warmup-updates", "10",
               "--max-tokens", "2000", "--num-workers", "0"]
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return save_dir, result


def test_ar_baseline_trains_decodes_and_scores(ar_run, small_corpus):
    save_dir, result = ar_run
    results = json.loads((save_dir / "results.json").read_text())
    assert results["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert 0.0 <= results["bleu"] <= 100.0
    assert f"sacreBLEU signature: {results['signature']}" in result.stdout
    hypotheses = (save_dir / "hypotheses.test.de").read_text(encoding="utf-8").splitlines()
    assert len(hypotheses) == 200


def test_generate_loads_the_checkpoint_only_through_the_allow_list(ar_run, small_corpus):
    save_dir, _ = ar_run
    common = [small_corpus / "bin", "--path", save_dir / "checkpoint_best.pt", "--gen-subset", "valid",
              "--beam", "2", "--cpu", "--batch-size", "50", "--max-len-b", "5", "--required-batch-size-multiple", "1"]
    with_plugins = fairseq("fairseq-generate", *common, "--user-dir", USER_DIR)
    assert sum(line.startswith("H-") for line in with_plugins.stdout.splitlines()) == 100
    without_plugins = fairseq("fairseq-generate", *common, check=False)
    assert without_plugins.returncode != 0
    assert "Unsupported global" in without_plugins.stderr and "argparse.Namespace" in without_plugins.stderr


@pytest.fixture(scope="module")
def diffuser_run(small_corpus, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("diffuser")
    result = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "30",
                     "--save-dir", save_dir, "--log-format", "json", "--log-interval", "5")
    return save_dir, result


def test_diffuser_tagger_and_generator_losses_go_down(diffuser_run):
    _, result = diffuser_run
    records = json_log(result.stdout, "train_inner")
    assert len(records) >= 5
    first, last = records[0], records[-1]
    assert float(last["tagger_loss"]) < float(first["tagger_loss"])
    assert float(last["generator_loss"]) < float(first["generator_loss"]) - 0.5  # bits per token
    valid = json_log(result.stdout, "valid")
    assert {"valid_tagger_loss", "valid_generator_loss", "valid_tag_accuracy"} <= set(valid[-1])


def test_diffuser_checkpoint_resumes_and_reloads(diffuser_run, small_corpus):
    save_dir, _ = diffuser_run
    resumed = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "35",
                      "--save-dir", save_dir, "--log-format", "json")
    assert "Loaded checkpoint" in resumed.stdout and "@ 30 updates" in resumed.stdout
    state = torch.load(save_dir / "checkpoint_last.pt", map_location="cpu", weights_only=True)
    assert state["optimizer_history"][-1]["num_updates"] == 35
    assert any(key.startswith("tagger.decoder.output_projection") for key in state["model"])


@pytest.mark.parametrize(
    "options, message",
    [
        (["--corruption-keep", "0.7"], "sum to 1"),
        (["--corruption-delete", "-0.1", "--corruption-keep", "0.8"], "negative"),
        (["--span-lambda", "0"], "lambda"),
        (["--diffusion-steps", "0"], "num_steps"),
        (["--edit-unit", "sentence"], "invalid choice"),
    ],
)
def test_invalid_diffuser_options_stop_with_one_clear_line(small_corpus, tmp_path, options, message):
    result = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "1",
                     "--save-dir", tmp_path, *options, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_ranks_end_with_identical_parameters(small_corpus, tmp_path):
    port = free_port()
    ranks = []
    for rank in range(2):
        command = [sys.executable, str(REPO_ROOT / "tests" / "distributed_worker.py"), tmp_path / f"rank{rank}.pt",
                   small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "8", "--save-dir", tmp_path / "ckpt",
                   "--distributed-world-size", "2", "--distributed-backend", "gloo",
                   "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--distributed-no-spawn",
                   "--ddp-backend", "legacy_ddp", "--distributed-rank", rank]
        ranks.append(subprocess.Popen(list(map(str, command)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outputs = [process.communicate(timeout=600) for process in ranks]
    for process, (_, stderr) in zip(ranks, outputs):
        assert process.returncode == 0, stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    assert (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


@pytest.mark.parametrize(
    "german, options, message",
    [
        ("", [], "empty target line 3"),
        ("ein sehr langer Satz mit vielen Wörtern .", ["--max-target-positions", "6"], "target line 3 has"),
    ],
)
def test_empty_or_over_long_lines_stop_training_before_it_starts(tmp_path, german, options, message):
    english = ["a b c .", "d e f .", "g h i .", "j k l ."]
    germans = ["x y .", "z y .", german, "y x ."]
    (tmp_path / "train.en").write_text("\n".join(english) + "\n", encoding="utf-8")
    (tmp_path / "train.de").write_text("\n".join(germans) + "\n", encoding="utf-8")
    fairseq("fairseq-preprocess", "--source-lang", "en", "--target-lang", "de", "--trainpref", tmp_path / "train",
            "--validpref", tmp_path / "train", "--destdir", tmp_path / "bin", "--joined-dictionary", "--workers", "1")
    result = fairseq("fairseq-train", tmp_path / "bin", *DIFFUSER_TINY, "--max-update", "1",
                     "--save-dir", tmp_path / "ckpt", *options, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


def test_word_unit_corruption_trains(small_corpus, tmp_path):
    result = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--edit-unit", "word",
                     "--max-update", "3", "--save-dir", tmp_path, "--log-format", "json", "--log-interval", "1")
    assert len(json_log(result.stdout, "train_inner")) == 3
