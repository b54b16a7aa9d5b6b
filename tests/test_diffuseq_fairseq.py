"""fairseq-train / fairseq-generate --task diffuseq on a tiny model and a slice of the real default corpus."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from corpus_helpers import REPO_ROOT
from fairseq_helpers import DIFFUSEQ_TIMESTEPS, DIFFUSEQ_TINY, USER_DIR, fairseq, json_log, lines_of

import fairseq_plugins  # noqa: F401  (the checkpoint allow-list, for torch.load below)

T = DIFFUSEQ_TIMESTEPS
VALID_SENTENCES = 100


def train(small_corpus, save_dir, *options, check=True):
    return fairseq("fairseq-train", small_corpus / "bin", *DIFFUSEQ_TINY, "--save-dir", save_dir,
                   "--no-epoch-checkpoints", "--log-format", "json", "--log-interval", "5", *options, check=check)


def generate(small_corpus, checkpoint, *options, check=True):
    """fairseq-generate on the valid split, at fairseq's default --required-batch-size-multiple (8), which must
    lose none of its 100 sentences at --batch-size 32."""
    return fairseq("fairseq-generate", small_corpus / "bin", "--user-dir", USER_DIR, "--task", "diffuseq",
                   "--path", checkpoint, "--gen-subset", "valid", "--cpu", "--seed", "3",
                   "--batch-size", "32", "--decode-steps", "5",
                   *options, check=check)


@pytest.fixture(scope="module")
def trained(small_corpus, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("diffuseq")
    result = train(small_corpus, save_dir, "--max-update", "40")
    return save_dir, result


def test_training_logs_every_term_and_the_loss_goes_down(trained):
    _, result = trained
    records = json_log(result.stdout, "train_inner")
    for term in ("loss", "mse", "tT", "rounding_nll", "nll", "truncated"):
        assert term in records[0], term
    def mean(term, chosen):
        return sum(float(record[term]) for record in chosen) / len(chosen)

    assert mean("loss", records[-3:]) < 0.8 * float(records[0]["loss"])  # each record: the mean of 5 updates
    assert mean("mse", records[-3:]) < 0.9 * float(records[0]["mse"])
    valid = json_log(result.stdout, "valid")[-1]
    assert float(valid["valid_mse"]) >= 0 and float(valid["valid_rounding_nll"]) >= 0


def test_max_tokens_bounds_the_joint_rows(small_corpus, tmp_path):
    """--max-tokens counts every example as one row of --sequence-length positions (64 here), not the pair's
    own few tokens: 640 tokens are at most 10 rows (the short sentences would fit the --batch-size of 16)."""
    result = train(small_corpus, tmp_path, "--max-tokens", "640", "--max-update", "4", "--log-interval", "1",
                   "--disable-validation", "--no-save")
    sizes = [float(record["bsz"]) for record in json_log(result.stdout, "train_inner")]
    assert sizes and max(sizes) <= 10


def test_checkpoint_records_the_forward_process_and_the_sequence_length(trained):
    state = torch.load(trained[0] / "checkpoint_last.pt", weights_only=True)
    model_args = state["args"] if state.get("args") is not None else state["cfg"]["model"]
    assert (model_args.noise_schedule, model_args.num_diffusion_timesteps, model_args.sequence_length) == (
        "sqrt", T, 64)


@pytest.mark.parametrize("options", [[], ["--diffuseq-clamping", "off"], ["--decode-steps", str(T)]])
def test_generate_writes_fairseq_lines_for_every_sentence(trained, small_corpus, options):
    stdout = generate(small_corpus, trained[0] / "checkpoint_last.pt", *options).stdout
    for kind in ("S", "T", "H", "D", "P"):
        assert sorted(lines_of(stdout, kind)) == list(range(VALID_SENTENCES)), kind
    for sentence_id, fields in lines_of(stdout, "H").items():
        score, text = fields if len(fields) == 2 else (fields[0], "")
        positional = lines_of(stdout, "P")[sentence_id][0].split()
        assert len(positional) == len(text.split()) + 1  # + eos
        assert float(score) <= 0


@pytest.mark.parametrize("options", [[], ["--decode-steps", str(T)]])  # DDIM and ancestral DDPM
def test_outputs_do_not_depend_on_the_batch_size(trained, small_corpus, options):
    checkpoint = trained[0] / "checkpoint_last.pt"
    outputs = [lines_of(generate(small_corpus, checkpoint, *options, "--batch-size", size).stdout, "D")
               for size in ("1", "32")]
    assert outputs[0] == outputs[1]


def test_mbr_keeps_one_of_the_samples(trained, small_corpus):
    checkpoint = trained[0] / "checkpoint_last.pt"
    ancestral = ["--decode-steps", str(T)]
    mbr = lines_of(generate(small_corpus, checkpoint, *ancestral, "--diffuseq-mbr-samples", "3").stdout, "D")
    first_sample = lines_of(generate(small_corpus, checkpoint, *ancestral).stdout, "D")
    assert sorted(mbr) == list(range(VALID_SENTENCES))
    assert sum(mbr[i] == first_sample[i] for i in mbr) >= VALID_SENTENCES // 3


def test_self_conditioning_trains_and_decodes(small_corpus, tmp_path):
    result = train(small_corpus, tmp_path, "--max-update", "3", "--self-condition", "--timestep-sampler", "uniform")
    assert json_log(result.stdout, "train")
    stdout = generate(small_corpus, tmp_path / "checkpoint_last.pt").stdout
    assert sorted(lines_of(stdout, "H")) == list(range(VALID_SENTENCES))


@pytest.mark.parametrize("options, message", [
    (["--sequence-length", "2"], "--sequence-length must be >= 3"),
    (["--noise-schedule", "linear"], "the linear schedule needs T > 20"),
    (["--diffuseq-mbr-samples", "0"], "the number of MBR samples must be >= 1"),
])
def test_invalid_training_options_stop_with_one_clear_line(small_corpus, tmp_path, options, message):
    if "--noise-schedule" in options:
        options = [*options, "--num-diffusion-timesteps", "10"]
    result = train(small_corpus, tmp_path, "--max-update", "1", *options, check=False)
    assert result.returncode != 0
    assert message in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "checkpoint_last.pt").exists()


@pytest.mark.parametrize("options, message", [
    (["--decode-steps", str(T + 1)], f"must be in 1..T = 1..{T}"),
    (["--diffuseq-variance", "large"], "invalid choice"),
])
def test_invalid_decoding_options_stop_with_one_clear_line(trained, small_corpus, options, message):
    result = generate(small_corpus, trained[0] / "checkpoint_last.pt", *options, check=False)
    assert result.returncode != 0
    assert message in result.stderr.strip().splitlines()[-1]


def test_baseline_script_trains_decodes_and_scores(small_corpus, tmp_path):
    command = [sys.executable, str(REPO_ROOT / "data_scripts" / "train_diffusion_baseline.py"), "--method",
               "diffuseq", "--data", small_corpus / "bin", "--reference", small_corpus / "text" / "test.de",
               "--spm-model", small_corpus / "text" / "spm.model", "--save-dir", tmp_path, "--model-size", "tiny",
               "--max-update", "3", "--diffusion-steps", "20", "--decode-steps", "4", "--num-workers", "0",
               "--sequence-length", "64"]
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["system"] == "diffuseq" and results["sequence_length"] == 64
    assert results["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert len(lines_of((tmp_path / "generate-test.txt").read_text(encoding="utf-8"), "D")) == 200
