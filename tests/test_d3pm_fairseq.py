"""fairseq-train / fairseq-generate --task d3pm on a tiny model and a slice of the real default corpus."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from corpus_helpers import REPO_ROOT
from fairseq_helpers import D3PM_TINY, USER_DIR, fairseq, json_log, lines_of

import fairseq_plugins  # noqa: F401  (the checkpoint allow-list, for torch.load below)

VALID_SENTENCES = 100


def train(small_corpus, save_dir, *options, check=True):
    return fairseq("fairseq-train", small_corpus / "bin", *D3PM_TINY, "--save-dir", save_dir,
                   "--no-epoch-checkpoints", "--log-format", "json", "--log-interval", "5", *options, check=check)


def generate(small_corpus, checkpoint, *options, check=True):
    """fairseq-generate on the valid split, at fairseq's default --required-batch-size-multiple (8), which must
    lose none of its 100 sentences at --batch-size 32."""
    return fairseq("fairseq-generate", small_corpus / "bin", "--user-dir", USER_DIR, "--task", "d3pm",
                   "--path", checkpoint, "--gen-subset", "valid", "--cpu", "--seed", "3",
                   "--batch-size", "32", "--max-len-b", "20",
                   "--decode-steps", "5", *options, check=check)


@pytest.fixture(scope="module")
def absorbing_run(small_corpus, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("d3pm_absorbing")
    result = train(small_corpus, save_dir, "--max-update", "40")
    return save_dir, result


def test_training_logs_every_term_and_the_loss_goes_down(absorbing_run):
    _, result = absorbing_run
    records = json_log(result.stdout, "train_inner")
    for term in ("loss", "kl", "ce", "nelbo", "length_loss", "length_accuracy"):
        assert term in records[0], term
    first, last = records[0], records[-1]
    assert float(last["ce"]) < float(first["ce"]) - 0.5
    assert float(last["loss"]) < float(first["loss"])
    assert float(last["nelbo"]) == pytest.approx(50 * float(last["kl"]), rel=0.02)
    valid = json_log(result.stdout, "valid")[-1]
    assert float(valid["valid_kl"]) >= 0


def test_checkpoint_records_the_forward_process(absorbing_run):
    save_dir, _ = absorbing_run
    state = torch.load(save_dir / "checkpoint_last.pt", weights_only=True)
    model_args = state["args"] if state.get("args") is not None else state["cfg"]["model"]
    assert model_args.transition == "absorbing"
    assert model_args.noise_schedule is None  # the transition's default, mutual_information
    assert model_args.num_diffusion_timesteps == 50


@pytest.mark.parametrize("mode", ["argmax", "sample"])
def test_generate_writes_fairseq_lines_for_every_sentence(absorbing_run, small_corpus, mode):
    save_dir, _ = absorbing_run
    stdout = generate(small_corpus, save_dir / "checkpoint_last.pt", "--d3pm-decoding", mode).stdout
    for kind in ("S", "T", "H", "D", "P"):
        assert sorted(lines_of(stdout, kind)) == list(range(VALID_SENTENCES)), kind
    for sentence_id, (score, text) in lines_of(stdout, "H").items():
        positional = lines_of(stdout, "P")[sentence_id][0].split()
        assert len(positional) == len(text.split()) + 1  # + eos
        assert float(score) <= 0
        assert "<mask>" not in text


@pytest.mark.parametrize("mode", ["argmax", "sample"])
def test_outputs_do_not_depend_on_the_batch_size(absorbing_run, small_corpus, mode):
    checkpoint = absorbing_run[0] / "checkpoint_last.pt"
    outputs = [lines_of(generate(small_corpus, checkpoint, "--d3pm-decoding", mode, "--batch-size", size).stdout,
                          "D")
               for size in ("1", "32")]
    assert {i: text for i, (_, text) in outputs[0].items()} == {i: text for i, (_, text) in outputs[1].items()}


def test_sampling_follows_the_seed(absorbing_run, small_corpus):
    checkpoint = absorbing_run[0] / "checkpoint_last.pt"
    runs = [lines_of(generate(small_corpus, checkpoint, "--d3pm-decoding", "sample", "--seed", seed,
                              "--d3pm-temperature", "3").stdout, "D") for seed in ("3", "3", "4")]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_uniform_transition_with_its_cosine_schedule_trains_and_decodes(small_corpus, tmp_path):
    result = train(small_corpus, tmp_path, "--max-update", "3", "--transition", "uniform")
    assert json_log(result.stdout, "train")
    stdout = generate(small_corpus, tmp_path / "checkpoint_last.pt").stdout
    assert sorted(lines_of(stdout, "H")) == list(range(VALID_SENTENCES))


def test_spindle_schedule_trains(small_corpus, tmp_path):
    result = train(small_corpus, tmp_path, "--max-update", "3", "--noise-schedule", "spindle")
    assert json_log(result.stdout, "train")


@pytest.mark.parametrize("options, message", [
    (["--transition", "uniform", "--noise-schedule", "spindle"], "uniform diffusion needs a schedule"),
    (["--noise-schedule", "spindle", "--spindle-lambda", "0.5"], "spindle lambda must be in [0, 1/pi]"),
    (["--hybrid-lambda", "-1"], "--hybrid-lambda must be >= 0"),
    (["--d3pm-temperature", "0"], "the temperature must be > 0"),
])
def test_invalid_training_options_stop_with_one_clear_line(small_corpus, tmp_path, options, message):
    result = train(small_corpus, tmp_path, "--max-update", "1", *options, check=False)
    assert result.returncode != 0
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "checkpoint_last.pt").exists()


@pytest.mark.parametrize("options, message", [
    (["--decode-steps", "51"], "must be in 1..T = 1..50"),
    (["--decode-steps", "0"], "must be >= 1"),
])
def test_invalid_decoding_options_stop_with_one_clear_line(absorbing_run, small_corpus, options, message):
    result = generate(small_corpus, absorbing_run[0] / "checkpoint_last.pt", *options, check=False)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert message in last_line and last_line.startswith("error:")


def test_baseline_script_trains_decodes_and_scores(small_corpus, tmp_path):
    command = [sys.executable, str(REPO_ROOT / "data_scripts" / "train_diffusion_baseline.py"), "--method", "d3pm",
               "--data", small_corpus / "bin", "--reference", small_corpus / "text" / "test.de",
               "--spm-model", small_corpus / "text" / "spm.model", "--save-dir", tmp_path, "--model-size", "tiny",
               "--max-update", "5", "--diffusion-steps", "20", "--decode-steps", "4", "--num-workers", "0"]
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["system"] == "d3pm" and results["transition"] == "absorbing"
    assert results["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert f"sacreBLEU signature: {results['signature']}" in result.stdout
    assert len(lines_of((tmp_path / "generate-test.txt").read_text(encoding="utf-8"), "D")) == 200
