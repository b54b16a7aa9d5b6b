"""Safe checkpoint loading for fairseq under torch >= 2.6.

torch.load defaults to ``weights_only=True`` since torch 2.6, and fairseq 0.12
checkpoints then fail with "Unsupported global: argparse.Namespace". Rather than
switching that protection off, we register the few non-tensor classes that
fairseq itself pickles into a checkpoint. Anything else in a checkpoint is still
refused by torch's weights-only unpickler.

``guard_checkpoint_loading`` turns the failures of fairseq's loading (a missing,
truncated, corrupted or refused file) into one error line.
"""
from __future__ import annotations

import argparse
import functools
import os
import pickle
import re

import numpy as np
import torch

FAIRSEQ_CHECKPOINT_GLOBALS = (
    # the legacy ``args`` of a checkpoint, and the ``model`` section of ``cfg`` for
    # models registered with add_args (fairseq's transformer among them)
    argparse.Namespace,
    # numpy arrays and scalars that fairseq's meters hold (e.g. the BLEU counts
    # logged with --eval-bleu) and ``best`` metric values may be
    np.ndarray,
    np._core.multiarray._reconstruct,
    np.dtype,
    np.float64,
    np.float32,
    np.int64,
    np.dtypes.Float64DType,
    np.dtypes.Float32DType,
    np.dtypes.Int64DType,
    np._core.multiarray.scalar,
)


def allow_fairseq_checkpoint_globals() -> None:
    """Add fairseq's checkpoint classes to torch's weights-only allow-list (idempotent)."""
    torch.serialization.add_safe_globals(list(FAIRSEQ_CHECKPOINT_GLOBALS))


def guard_checkpoint_loading() -> None:
    """Make fairseq's checkpoint loading fail with one clear line instead of a traceback (idempotent).

    Wraps ``fairseq.checkpoint_utils.load_checkpoint_to_cpu`` (used when fairseq-train resumes and when
    fairseq-generate loads ``--path``) and ``load_model_ensemble_and_task`` (which checks that the file exists
    first), so that a missing, truncated or corrupted checkpoint, or one holding a pickled object outside the
    allow-list, stops the program with ``error: checkpoint PATH: ...``. The loading itself is fairseq's.
    """
    from fairseq import checkpoint_utils

    for name in ("load_checkpoint_to_cpu", "load_model_ensemble_and_task"):
        function = getattr(checkpoint_utils, name)
        if not getattr(function, "guarded", False):
            setattr(checkpoint_utils, name, _with_clear_errors(function))


def _with_clear_errors(load):
    @functools.wraps(load)
    def guarded(paths, *args, **kwargs):
        path = paths if isinstance(paths, (str, os.PathLike)) else ", ".join(map(str, paths))
        try:
            return load(paths, *args, **kwargs)
        except OSError as err:  # fairseq: "Model file not found: PATH"; open(): FileNotFoundError
            if not (isinstance(err, FileNotFoundError) or "Model file not found" in str(err)):
                raise
            raise SystemExit(f"error: checkpoint {path}: no such file") from None
        except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
            message = str(err)
            misfit = re.search(r"size mismatch for ([\w.]+): copying a param with shape (.*) from checkpoint, "
                               r"the shape in current model is (.*)\.", message)
            if misfit:  # a model without StateDictFitCheck (fairseq's own) built from another dictionary
                name, theirs, ours = misfit.groups()
                raise SystemExit(f"error: checkpoint {path} does not fit the model: {name} is {theirs} in the "
                                 f"checkpoint and {ours} here; are the dictionary and options those it was trained "
                                 "with?") from None
            if not any(sign in message for sign in LOAD_FAILURES):
                raise
            if "Unsupported global" in message or "unsupported GLOBAL" in message:
                found = re.search(r"[Uu]nsupported (?:global|GLOBAL):? (?:GLOBAL )?([\w.]+)", message)
                refused = found.group(1) if found else "an object"
                raise SystemExit(f"error: checkpoint {path}: refused: it holds a pickled {refused}, which "
                                 "fairseq checkpoints do not contain (weights-only loading; see checkpoint_safety.py)"
                                 ) from None
            raise SystemExit(f"error: checkpoint {path}: truncated or corrupted, it cannot be read "
                             f"({message.splitlines()[0][:120]}); use another checkpoint") from None

    guarded.guarded = True
    return guarded


# what torch.load says about a file it cannot read or refuses to unpickle
LOAD_FAILURES = ("PytorchStreamReader", "Weights only load failed", "invalid load key", "Ran out of input",
                 "unsupported GLOBAL", "Unsupported global", "failed finding central directory", "EOF")


class StateDictFitCheck:
    """Mixin for the plugin's models: a checkpoint whose tensors do not fit the model built from the data stops
    with one line naming the first misfit, instead of torch's list of size mismatches. The usual cause is a data
    directory whose dictionary is not the one the checkpoint was trained with."""

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        own = self.state_dict()
        for name, tensor in state_dict.items():
            if name in own and own[name].shape != tensor.shape:
                cause = ("the dictionary of the data is not the one it was trained with (use that data directory)"
                         if "embed" in name or "output_projection" in name else "the model options differ")
                raise SystemExit(f"error: the checkpoint does not fit the model: {name} is {tuple(tensor.shape)} in "
                                 f"the checkpoint and {tuple(own[name].shape)} here; {cause}")
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)
