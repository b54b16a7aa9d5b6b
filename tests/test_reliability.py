"""Reliability: a killed training resumes to the same parameters, runs are deterministic, and broken checkpoints,
mismatched dictionaries and broken binarized data stop fairseq-train/fairseq-generate with one clear line."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
import torch
from fairseq_helpers import DIFFUSER_TINY, USER_DIR, fairseq, json_log

from data_scripts.fairseq_tools import fairseq_executable

import fairseq_plugins  # noqa: F401  (the checkpoint allow-list, for torch.load below)

RESUMABLE = ["--max-update", "24", "--save-interval-updates", "8", "--no-epoch-checkpoints", "--log-format", "json",
             "--log-interval", "4"]


def train_command(small_corpus, save_dir, *options) -> list[str]:
    return [fairseq_executable("fairseq-train"), str(small_corpus / "bin"), *DIFFUSER_TINY, "--save-dir",
            str(save_dir), *options]


def model_tensors(save_dir):
    return torch.load(save_dir / "checkpoint_last.pt", weights_only=True)["model"]


def updates_of(checkpoint) -> int:
    return torch.load(checkpoint, weights_only=True)["optimizer_history"][-1]["num_updates"]


def assert_one_clear_line(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(fragment in last for fragment in fragments), last


@pytest.fixture(scope="module")
def reference_run(small_corpus, tmp_path_factory):
    """An uninterrupted 24-update run (checkpoints every 8 updates)."""
    save_dir = tmp_path_factory.mktemp("uninterrupted")
    result = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--save-dir", save_dir, *RESUMABLE)
    return save_dir, result


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_parameters(reference_run, small_corpus, tmp_path):
    command = train_command(small_corpus, tmp_path, *RESUMABLE)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "checkpoint_last.pt"
    deadline = time.time() + 300
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and updates_of(checkpoint) == 8  # killed between the first and second save
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Loaded checkpoint" in resumed.stdout and "@ 8 updates" in resumed.stdout
    reference, after_resume = model_tensors(reference_run[0]), model_tensors(tmp_path)
    assert updates_of(checkpoint) == 24
    assert reference.keys() == after_resume.keys()
    for name in reference:
        assert torch.equal(reference[name], after_resume[name]), name


def test_the_same_seed_gives_the_same_training_curve_and_parameters(reference_run, small_corpus, tmp_path):
    again = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--save-dir", tmp_path, *RESUMABLE)
    curve = [{k: v for k, v in record.items() if k not in ("wps", "ups", "wall", "train_wall")}
             for record in json_log(again.stdout, "train_inner")]
    assert curve == [{k: v for k, v in record.items() if k not in ("wps", "ups", "wall", "train_wall")}
                     for record in json_log(reference_run[1].stdout, "train_inner")]
    reference, repeated = model_tensors(reference_run[0]), model_tensors(tmp_path)
    assert all(torch.equal(reference[name], repeated[name]) for name in reference)


def generate(small_corpus, checkpoint, data=None):
    return fairseq("fairseq-generate", data or small_corpus / "bin", "--user-dir", USER_DIR, "--task", "diffuser",
                   "--path", checkpoint, "--gen-subset", "valid", "--cpu", "--batch-size", "50",
                   "--required-batch-size-multiple", "1", "--decode-steps", "1", check=False)


class Exploit:
    """An object whose unpickling would run a command."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def truncated(checkpoint, path):
    path.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])


def random_bytes(_, path):
    path.write_bytes(os.urandom(5000))


def pickled_command(_, path):
    torch.save({"model": {}, "payload": Exploit()}, path)


@pytest.mark.parametrize("make_checkpoint, fragments", [
    (None, ("no such file",)),
    (truncated, ("truncated or corrupted",)),
    (random_bytes, ("truncated or corrupted",)),
    (pickled_command, ("refused", "posix.system")),
])
def test_generate_refuses_a_broken_checkpoint_with_one_line(reference_run, small_corpus, tmp_path, make_checkpoint,
                                                            fragments):
    path = tmp_path / "checkpoint.pt"
    if make_checkpoint is not None:
        make_checkpoint(reference_run[0] / "checkpoint_last.pt", path)
    result = generate(small_corpus, path)
    assert_one_clear_line(result, f"checkpoint {path}", *fragments)
    assert not any(line.startswith("H-") for line in result.stdout.splitlines())


def data_with_a_larger_dictionary(small_corpus, tmp_path):
    data = tmp_path / "bin"
    shutil.copytree(small_corpus / "bin", data)
    for side in ("en", "de"):
        with open(data / f"dict.{side}.txt", "a", encoding="utf-8") as dictionary:
            dictionary.writelines(f"extra{i} 1\n" for i in range(8))
    return data


def test_generate_with_another_dictionary_names_the_misfit(reference_run, small_corpus, tmp_path):
    data = data_with_a_larger_dictionary(small_corpus, tmp_path)
    result = generate(small_corpus, reference_run[0] / "checkpoint_last.pt", data=data)
    assert_one_clear_line(result, "does not fit the model", "embed_tokens", "dictionary")


def test_fairseqs_own_transformer_with_another_dictionary_is_one_line(small_corpus, tmp_path):
    fairseq("fairseq-train", small_corpus / "bin", "--user-dir", USER_DIR, "--task", "translation", "--arch",
            "transformer_cpu_tiny", "--share-all-embeddings", "--optimizer", "adam", "--max-tokens", "2000",
            "--max-update", "1", "--cpu", "--num-workers", "0", "--save-dir", tmp_path / "ar", "--no-epoch-checkpoints")
    result = fairseq("fairseq-generate", data_with_a_larger_dictionary(small_corpus, tmp_path), "--user-dir",
                     USER_DIR, "--path", tmp_path / "ar" / "checkpoint_last.pt", "--gen-subset", "valid", "--cpu",
                     check=False)
    assert_one_clear_line(result, "does not fit the model", "embed_tokens", "dictionary")


def test_training_refuses_to_resume_from_a_truncated_checkpoint(reference_run, small_corpus, tmp_path):
    truncated(reference_run[0] / "checkpoint_last.pt", tmp_path / "checkpoint_last.pt")
    result = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--save-dir", tmp_path,
                     "--max-update", "30", check=False)
    assert_one_clear_line(result, "checkpoint_last.pt", "truncated or corrupted")


def test_a_split_whose_sides_differ_in_length_is_one_line(small_corpus, tmp_path):
    data = tmp_path / "bin"
    shutil.copytree(small_corpus / "bin", data)
    for suffix in ("bin", "idx"):  # the valid split's German side replaced by the (longer) test split's
        shutil.copy(data / f"test.en-de.de.{suffix}", data / f"valid.en-de.de.{suffix}")
    result = fairseq("fairseq-train", data, *DIFFUSER_TINY, "--save-dir", tmp_path / "save", "--max-update", "1",
                     check=False)
    assert_one_clear_line(result, "valid split", "same number of examples")
    assert not (tmp_path / "save" / "checkpoint_last.pt").exists()


def test_a_missing_split_is_one_line(small_corpus, tmp_path):
    result = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--save-dir", tmp_path,
                     "--valid-subset", "dev", "--max-update", "1", check=False)
    assert_one_clear_line(result, "Dataset not found: dev")
