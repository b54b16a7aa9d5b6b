"""fairseq checkpoints load with torch's weights-only unpickler; foreign objects are refused."""
import argparse
import collections
import os
import pickle

import numpy as np
import pytest
import torch

import fairseq_plugins  # noqa: F401  (registers the allow-list)


def fairseq_like_state():
    """The kinds of objects fairseq 0.12 puts into a checkpoint."""
    return {
        "args": None,
        "cfg": {"model": argparse.Namespace(arch="transformer", dropout=0.1), "common": {"seed": 1}},
        "model": collections.OrderedDict(weight=torch.ones(2, 2)),
        "extra_state": {"best": np.float64(1.5), "metrics": {"counts": np.arange(4)}},
    }


def test_fairseq_state_loads_weights_only(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save(fairseq_like_state(), path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["cfg"]["model"].arch == "transformer"
    assert state["extra_state"]["best"] == 1.5
    assert torch.equal(state["model"]["weight"], torch.ones(2, 2))


class Exploit:
    """An object whose unpickling would run a command."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_unexpected_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": Exploit()}, path)
    with pytest.raises(pickle.UnpicklingError, match="unsupported GLOBAL posix.system"):
        torch.load(path, map_location="cpu", weights_only=True)


def test_weights_only_is_not_switched_off():
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ


def test_a_copy_interrupted_midway_leaves_the_old_checkpoint_whole(tmp_path, monkeypatch):
    from fairseq import checkpoint_utils

    source, destination = tmp_path / "checkpoint_1_8.pt", tmp_path / "checkpoint_last.pt"
    source.write_bytes(b"new" * 1000)
    destination.write_bytes(b"old checkpoint")

    def copy_half_then_die(src, dst):
        with open(dst, "wb") as out:
            out.write(open(src, "rb").read()[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr("shutil.copyfile", copy_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        checkpoint_utils.PathManager.copy(str(source), str(destination), overwrite=True)
    assert destination.read_bytes() == b"old checkpoint"
    monkeypatch.undo()
    assert checkpoint_utils.PathManager.copy(str(source), str(destination), overwrite=True)
    assert destination.read_bytes() == source.read_bytes()
    assert not checkpoint_utils.PathManager.copy(str(source), str(destination), overwrite=False)
