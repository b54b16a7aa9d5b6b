"""Fault injection: checkpoints of every model family truncated at many offsets or with bytes changed are refused
with one line before torch unpickles them (or load exactly as the intact file does), a damaged checkpoint_last.pt
names the checkpoint to resume from, and batching loses no sentence whatever --required-batch-size-multiple says."""
from __future__ import annotations

import argparse
import zipfile

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils
from fairseq_helpers import DIFFUSER_TINY, TINY_FAMILIES, TINY_UPDATES, USER_DIR, fairseq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fairseq_plugins  # noqa: F401  (guards fairseq's checkpoint loading)
from fairseq_plugins.checkpoint_safety import LEGACY_MAGIC, DamagedCheckpoint, verify_checkpoint_file
from fairseq_plugins.complete_batching import complete_batches

FAMILIES = TINY_FAMILIES


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints) -> dict:
    """{family: checkpoint_last.pt after TINY_UPDATES updates}; its copy checkpoint_1_10.pt beside it."""
    return {family: tiny_checkpoints[family] for family in FAMILIES}


def same_state(a, b) -> bool:
    """Whether two loaded checkpoints hold equal tensors (dtype included) and equal everything else."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) or isinstance(b, dict):
        return isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(
            same_state(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_state, a, b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def refusal(path) -> str | None:
    """The error line of loading ``path`` as fairseq does, or None when it loads."""
    try:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    except SystemExit as stop:
        return str(stop)
    return None


def truncation_offsets(path) -> list[int]:
    """0, 1, 60 offsets spread over the file, and 20 inside the central directory and its end record."""
    size = path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        directory = archive.start_dir
    spread = np.linspace(0, size - 1, 60, dtype=np.int64)
    inside = np.linspace(directory, size - 1, 20, dtype=np.int64)
    return sorted({0, 1, *spread.tolist(), *inside.tolist()})


@pytest.mark.parametrize("family", FAMILIES)
def test_every_truncation_is_refused_with_one_line(checkpoints, family, tmp_path):
    intact = checkpoints[family].read_bytes()
    damaged = tmp_path / "checkpoint.pt"
    offsets = truncation_offsets(checkpoints[family])
    assert len(offsets) >= 50
    for offset in offsets:
        damaged.write_bytes(intact[:offset])
        message = refusal(damaged)
        assert message is not None and message.startswith(f"error: checkpoint {damaged}: "), (offset, message)
        assert "truncated or corrupted" in message and "\n" not in message, (offset, message)


@pytest.mark.parametrize("family", FAMILIES)
def test_changed_bytes_are_refused_or_change_nothing(checkpoints, family, tmp_path):
    """200 random 3-byte corruptions: each is refused, or loads to the intact file's tensors and metadata."""
    intact_bytes = checkpoints[family].read_bytes()
    intact = checkpoint_utils.load_checkpoint_to_cpu(str(checkpoints[family]))
    damaged = tmp_path / "checkpoint.pt"
    rng = np.random.default_rng(0)
    refused = 0
    for _ in range(200):
        data = bytearray(intact_bytes)
        for position in rng.choice(len(data), size=3, replace=False):
            data[position] ^= int(rng.integers(1, 256))
        damaged.write_bytes(bytes(data))
        message = refusal(damaged)
        if message is None:
            assert same_state(checkpoint_utils.load_checkpoint_to_cpu(str(damaged)), intact)
        else:
            refused += 1
            assert message.startswith(f"error: checkpoint {damaged}: ") and "\n" not in message, message
    assert refused >= 150  # most bytes of a checkpoint are tensor data or pickled metadata, all under a CRC


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(head=st.binary(max_size=64), tail=st.binary(max_size=4000))
def test_files_that_are_not_checkpoints_are_refused(head, tail, tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(head + tail)
    if path.read_bytes().startswith(LEGACY_MAGIC):
        return  # torch's legacy format has no checksums: passed on to torch (see the next test)
    with pytest.raises(DamagedCheckpoint):
        verify_checkpoint_file(path)


def test_a_damaged_legacy_format_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"model": {"weight": torch.ones(3)}}, path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:-40])
    message = refusal(path)
    assert message is not None and message.startswith(f"error: checkpoint {path}: truncated or corrupted"), message


def test_a_zip_archive_that_is_not_a_torch_checkpoint_is_refused(tmp_path):
    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")
    assert "without data.pkl" in refusal(path)


@pytest.mark.parametrize("family", FAMILIES)
def test_fairseq_generate_refuses_a_truncated_checkpoint_with_one_line(checkpoints, small_corpus, family, tmp_path):
    damaged = tmp_path / "checkpoint.pt"
    damaged.write_bytes(checkpoints[family].read_bytes()[:20000])
    task = FAMILIES[family][FAMILIES[family].index("--task") + 1]
    result = fairseq("fairseq-generate", small_corpus / "bin", "--user-dir", USER_DIR, "--task", task, "--path",
                     damaged, "--gen-subset", "valid", "--cpu", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: checkpoint {damaged}: truncated or corrupted")
    assert not any(line.startswith("H-") for line in result.stdout.splitlines())


def test_resuming_from_a_damaged_checkpoint_last_names_the_intact_one_and_it_resumes(checkpoints, small_corpus):
    save_dir = checkpoints["diffuser"].parent
    intact = save_dir / f"checkpoint_1_{TINY_UPDATES}.pt"
    assert intact.exists()
    last = save_dir / "checkpoint_last.pt"
    kept = last.read_bytes()
    damaged = bytearray(kept)
    damaged[len(damaged) // 2] ^= 0xFF
    last.write_bytes(bytes(damaged))
    command = ["fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--save-dir", save_dir, "--max-update",
               TINY_UPDATES + 1,
               "--no-epoch-checkpoints", "--disable-validation", "--no-save"]
    try:
        refused = fairseq(*command, check=False)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
        line = refused.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: checkpoint {last}: truncated or corrupted") and "CRC" in line, line
        assert line.endswith(f"(--restore-file {intact})"), line
        resumed = fairseq(*command, "--restore-file", intact)
        assert "Loaded checkpoint" in resumed.stdout and f"@ {TINY_UPDATES} updates" in resumed.stdout
    finally:
        last.write_bytes(kept)


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=70), batch_size=st.sampled_from([1, 8, 32, None]),
       max_tokens=st.sampled_from([None, 60, 400]), multiple=st.sampled_from([1, 3, 8]))
def test_batches_hold_every_index_once_within_the_limits(sizes, batch_size, max_tokens, multiple):
    from fairseq.data import data_utils

    sizes = np.array(sizes, dtype=np.int64)
    if batch_size is None and max_tokens is None:
        batch_size = 8

    def batch_by_size(indices, tokens, sentences, required_multiple):
        return data_utils.batch_by_size(indices, lambda i: sizes[i], max_tokens=tokens, max_sentences=sentences,
                                        required_batch_size_multiple=required_multiple,
                                        num_tokens_vec=sizes[indices])

    order = np.argsort(sizes, kind="mergesort")
    batches = complete_batches(batch_by_size, order, max_tokens, batch_size, multiple)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(sizes)))
    for batch in batches:
        assert batch_size is None or len(batch) <= batch_size
        assert max_tokens is None or len(batch) == 1 or len(batch) * sizes[batch].max() <= max_tokens


@pytest.mark.parametrize("family", ["diffuser", "d3pm", "diffuseq"])
def test_the_project_datasets_batch_every_sentence_of_splits_of_1_to_70(small_corpus, family):
    """The datasets of the project's tasks, as fairseq-generate batches them with the default multiple of 8."""
    from fairseq import options, tasks

    parser = options.get_generation_parser()
    args = options.parse_args_and_arch(parser, [str(small_corpus / "bin"), *FAMILIES[family][:4]])
    task = tasks.setup_task(args)
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    order = dataset.ordered_indices()
    for count in range(1, 71):
        indices = order[np.isin(order, np.arange(count))]
        for batch_size in (1, 8, 32):
            batches = dataset.batch_by_size(indices, max_sentences=batch_size, required_batch_size_multiple=8)
            assert sorted(np.concatenate(batches).tolist()) == list(range(count)), (count, batch_size)


def test_hypotheses_encoded_by_another_sentencepiece_model_are_one_line(small_corpus, tmp_path):
    """--init-file / --postedit-file text whose pieces the data's dictionary mostly lacks (another model)."""
    from fairseq.data import Dictionary

    from fairseq_plugins.tasks.diffuser_task import read_hypothesis_tokens

    dictionary = Dictionary()
    for symbol in ("\u2581Das", "\u2581ist"):
        dictionary.add_symbol(symbol)
    hypotheses = tmp_path / "hypotheses.de"
    hypotheses.write_text("Das ist ein kleines Haus.\n", encoding="utf-8")
    cfg = argparse.Namespace(init_spm_model=str(small_corpus / "text" / "spm.model"), max_target_positions=1024)
    with pytest.raises(SystemExit, match=r"--init-file .*hypotheses.de: \d+% of its pieces are not in the data's"):
        read_hypothesis_tokens(cfg, str(hypotheses), "--init-file", dictionary, 1, None)
