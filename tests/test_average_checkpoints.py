"""data_scripts/average_checkpoints.py: the last K checkpoints, averaged, loadable weights-only."""
from __future__ import annotations

import argparse

import pytest
import torch

from data_scripts.average_checkpoints import main


def write_checkpoint(path, value: float, updates: int, extra_key: bool = False) -> None:
    """A checkpoint shaped like fairseq's: args, model parameters (float and integer), optimizer history."""
    model = {"w": torch.full((2, 3), value), "h": torch.full((2,), value, dtype=torch.half),
             "count": torch.tensor([updates], dtype=torch.long)}
    if extra_key:
        model["other"] = torch.zeros(1)
    torch.save({"args": argparse.Namespace(arch="diffuser_tiny"), "model": model,
                "optimizer_history": [{"num_updates": updates}], "extra_state": {}}, path)


@pytest.fixture
def checkpoints(tmp_path):
    for epoch, updates, value in ((1, 2, 1.0), (1, 4, 2.0), (2, 6, 4.0)):
        write_checkpoint(tmp_path / f"checkpoint_{epoch}_{updates}.pt", value, updates)
    write_checkpoint(tmp_path / "checkpoint_last.pt", 100.0, 6)
    return tmp_path


def averaged(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_the_last_k_update_checkpoints_are_averaged(checkpoints):
    main(["--inputs", str(checkpoints), "--num-update-checkpoints", "2", "--output", str(checkpoints / "avg.pt")])
    state = averaged(checkpoints / "avg.pt")
    assert torch.equal(state["model"]["w"], torch.full((2, 3), 3.0))
    assert state["model"]["h"].dtype == torch.half and torch.equal(state["model"]["h"], torch.full((2,), 3.0).half())
    assert state["model"]["count"].tolist() == [5]  # (4 + 6) // 2
    assert state["optimizer_history"][-1]["num_updates"] == 6 and state["args"].arch == "diffuser_tiny"
    assert not list(checkpoints.glob("*.tmp"))


def test_the_upper_bound_and_explicit_files(checkpoints):
    main(["--inputs", str(checkpoints), "--num-update-checkpoints", "2", "--checkpoint-upper-bound", "4",
          "--output", str(checkpoints / "avg.pt")])
    assert torch.equal(averaged(checkpoints / "avg.pt")["model"]["w"], torch.full((2, 3), 1.5))
    main(["--inputs", str(checkpoints / "checkpoint_2_6.pt"), str(checkpoints / "checkpoint_1_2.pt"),
          "--output", str(checkpoints / "avg2.pt")])
    assert torch.equal(averaged(checkpoints / "avg2.pt")["model"]["w"], torch.full((2, 3), 2.5))


def error_line(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message
    return message


@pytest.mark.parametrize("make_bad, words", [
    (lambda d: None, ["3 checkpoints match", "fewer than the 4"]),
    (lambda d: write_checkpoint(d / "checkpoint_3_8.pt", 1.0, 8, extra_key=True), ["checkpoint_2_6.pt", "differ"]),
    (lambda d: (d / "checkpoint_3_8.pt").write_bytes(b"junk"), ["checkpoint_3_8.pt", "not a torch checkpoint"]),
])
def test_bad_inputs_are_one_line_and_write_nothing(capsys, checkpoints, make_bad, words):
    make_bad(checkpoints)
    count = "4" if "fewer than the 4" in words else "2"
    message = error_line(capsys, ["--inputs", str(checkpoints), "--num-update-checkpoints", count,
                                  "--output", str(checkpoints / "avg.pt")])
    assert all(word in message for word in words), message
    assert not (checkpoints / "avg.pt").exists()
