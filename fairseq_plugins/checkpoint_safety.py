"""Safe checkpoint loading for fairseq under torch >= 2.6.

torch.load defaults to ``weights_only=True`` since torch 2.6, and fairseq 0.12
checkpoints then fail with "Unsupported global: argparse.Namespace". Rather than
switching that protection off, we register the few non-tensor classes that
fairseq itself pickles into a checkpoint. Anything else in a checkpoint is still
refused by torch's weights-only unpickler.

``guard_checkpoint_loading`` turns the failures of fairseq's loading (a missing,
truncated, corrupted or refused file) into one error line, and ``make_checkpoint_copies_atomic``
keeps a run killed while saving from leaving a half-written checkpoint_last.pt behind.
"""
from __future__ import annotations

import argparse
import functools
import os
import pickle
import re
import shutil
import zipfile
import zlib
from pathlib import Path

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


class DamagedCheckpoint(Exception):
    """A checkpoint file that fails verification; the message says what is wrong with it."""


# torch's legacy (pre-zip) format starts with its pickled magic number: protocol 2, a 10-byte long
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
ZIP_LOCAL_HEADER = b"PK\x03\x04"


def verify_checkpoint_file(path: str | os.PathLike) -> None:
    """Check that ``path`` is a complete torch checkpoint before anything unpickles it.

    torch writes a zip archive with a CRC-32 per member: the archive must have its central directory (a
    truncated file loses it) and every member must match its CRC (a damaged byte changes it). Files in torch's
    legacy format carry no checksums and are passed on to torch. Raises DamagedCheckpoint saying what failed.
    """
    if not os.path.isfile(path):
        raise DamagedCheckpoint("no such file")
    with open(path, "rb") as file:
        head = file.read(len(LEGACY_MAGIC))
    if not head:
        raise DamagedCheckpoint("truncated or corrupted: the file is empty")
    if head == LEGACY_MAGIC:
        return
    if not head.startswith(ZIP_LOCAL_HEADER):
        raise DamagedCheckpoint("truncated or corrupted: not a torch checkpoint (neither a zip archive nor torch's "
                                "legacy format)")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged, names = archive.testzip(), archive.namelist()
    except zipfile.BadZipFile as err:
        raise DamagedCheckpoint(f"truncated or corrupted: the zip archive cannot be read ({err})") from None
    except (OSError, EOFError, ValueError, zlib.error, NotImplementedError) as err:
        raise DamagedCheckpoint(f"truncated or corrupted: reading the zip archive fails "
                                f"({type(err).__name__}: {err})") from None
    if damaged is not None:
        raise DamagedCheckpoint(f"truncated or corrupted: member {damaged} fails its CRC check")
    if not any(name.rpartition("/")[2] == "data.pkl" for name in names):
        raise DamagedCheckpoint("not a torch checkpoint: a zip archive without data.pkl")


def is_legacy_format(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts like a checkpoint in torch's legacy (pre-zip, unchecksummed) format."""
    with open(path, "rb") as file:
        return file.read(len(LEGACY_MAGIC)) == LEGACY_MAGIC


def newest_intact_checkpoint(damaged: str | os.PathLike) -> Path | None:
    """The most recently written ``checkpoint*.pt`` beside ``damaged`` that passes verification, if any."""
    damaged = Path(damaged)
    others = [path for path in damaged.parent.glob("checkpoint*.pt") if path.resolve() != damaged.resolve()]
    for path in sorted(others, key=lambda path: path.stat().st_mtime, reverse=True):
        try:
            verify_checkpoint_file(path)
        except DamagedCheckpoint:
            continue
        return path
    return None


def guard_checkpoint_loading() -> None:
    """Make fairseq's checkpoint loading fail with one clear line instead of a traceback (idempotent).

    Wraps ``fairseq.checkpoint_utils.load_checkpoint_to_cpu`` (fairseq-generate's ``--path``, the warm start) and
    ``load_model_ensemble_and_task``, and ``Trainer.load_checkpoint`` (fairseq-train resuming): each file is verified
    (verify_checkpoint_file) before torch reads it, and a file that fails, or holds a pickled object outside the
    allow-list, stops the program with ``error: checkpoint PATH: ...``, naming the newest intact checkpoint beside
    it. Resuming, an optimizer state over other parameters than the model trains is one line too (it
    names ``--reset-optimizer``). The loading itself is fairseq's.
    """
    from fairseq import checkpoint_utils, trainer

    for name in ("load_checkpoint_to_cpu", "load_model_ensemble_and_task"):
        function = getattr(checkpoint_utils, name)
        if not getattr(function, "guarded", False):
            setattr(checkpoint_utils, name, _with_clear_errors(function))
    if not getattr(trainer.Trainer.load_checkpoint, "guarded", False):
        trainer.Trainer.load_checkpoint = _resume_with_clear_errors(trainer.Trainer.load_checkpoint)


def _refusal(path, reason: str, resuming: bool) -> SystemExit:
    newest = newest_intact_checkpoint(path) if os.path.isfile(path) else None
    if newest is not None:
        flag = "--restore-file" if resuming else "--path"
        advice = f"; the newest intact checkpoint beside it is {newest} ({flag} {newest})"
    else:
        advice = "; remove it to train from scratch" if resuming else ""
    return SystemExit(f"error: checkpoint {path}: {reason}{advice}")


def _verified(path, resuming: bool) -> None:
    try:
        verify_checkpoint_file(path)
    except DamagedCheckpoint as err:
        raise _refusal(path, str(err), resuming) from None


def _explained_failure(path: str, err: Exception, legacy: bool) -> SystemExit | None:
    """The one-line exit for an error torch or fairseq raised while loading a verified file; None if unforeseen."""
    refused = re.search(r"[Uu]nsupported (?:global|GLOBAL):? (?:GLOBAL )?([\w.]+)", str(err))
    if isinstance(err, pickle.UnpicklingError) and refused:
        return SystemExit(f"error: checkpoint {path}: refused: it holds a pickled {refused.group(1)}, which fairseq "
                          "checkpoints do not contain (weights-only loading; see checkpoint_safety.py)")
    misfit = re.search(r"size mismatch for ([\w.]+): copying a param with shape (.*) from checkpoint, "
                       r"the shape in current model is (.*)\.", str(err))
    if isinstance(err, RuntimeError) and misfit:  # a model without StateDictFitCheck (fairseq's own)
        name, theirs, ours = misfit.groups()
        return SystemExit(f"error: checkpoint {path} does not fit the model: {name} is {theirs} in the checkpoint "
                          f"and {ours} here; are the dictionary and options those it was trained with?")
    unreadable = re.match(r"PytorchStreamReader failed ([^.:]+)(?:: ([^.]+))?", str(err))
    if isinstance(err, RuntimeError) and unreadable:  # damage the member checksums cannot see (zip headers)
        return SystemExit(f"error: checkpoint {path}: truncated or corrupted: torch cannot read its zip archive "
                          f"({': '.join(filter(None, unreadable.groups()))})")
    if legacy:  # no checksums to verify beforehand: any failure to unpickle is damage
        return SystemExit(f"error: checkpoint {path}: truncated or corrupted: torch's legacy format cannot be read "
                          f"({type(err).__name__}: {str(err)[:120]})")
    return None


def _with_clear_errors(load):
    @functools.wraps(load)
    def guarded(paths, *args, **kwargs):
        listed = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        for path in listed:
            _verified(path, resuming=False)
        path = ", ".join(map(str, listed))
        try:
            return load(paths, *args, **kwargs)
        except Exception as err:
            explained = _explained_failure(path, err, legacy=any(map(is_legacy_format, listed)))
            if explained is None:
                raise
            raise explained from None

    guarded.guarded = True
    return guarded


# torch's optimizer, loading the state of an optimizer over other parameters
OPTIMIZER_MISFIT = "doesn't match the size of optimizer's group"


def _resume_with_clear_errors(load_checkpoint):
    @functools.wraps(load_checkpoint)
    def guarded(self, filename, *args, **kwargs):
        if os.path.isfile(filename):  # without a file fairseq trains from scratch
            _verified(filename, resuming=True)
        try:
            return load_checkpoint(self, filename, *args, **kwargs)
        except ValueError as err:
            if OPTIMIZER_MISFIT not in str(err):
                raise
            raise SystemExit(f"error: checkpoint {filename}: its optimizer state is for another set of trained "
                             "parameters (e.g. a joint run resumed with --train-tagger-only, or the reverse); add "
                             "--reset-optimizer") from None

    guarded.guarded = True
    return guarded


def make_checkpoint_copies_atomic() -> None:
    """Make the copies fairseq's ``save_checkpoint`` makes of a saved checkpoint atomic (idempotent).

    fairseq writes the first checkpoint of a save atomically (a .tmp file, then a rename) but copies it to the
    others (checkpoint_best.pt, checkpoint_last.pt) with ``shutil.copyfile``, in place: a run killed during
    that copy (a pre-empted job) leaves a truncated checkpoint_last.pt, and the resumed run stops on it. Here
    each copy to a local path is written beside its destination and renamed onto it, so the destination always
    holds a whole checkpoint, the old one or the new one.
    """
    from fairseq import checkpoint_utils

    if not getattr(checkpoint_utils.PathManager, "atomic_copies", False):
        checkpoint_utils.PathManager = _atomic_copies(checkpoint_utils.PathManager)


def _atomic_copies(path_manager):
    class AtomicCopyPathManager(path_manager):
        atomic_copies = True

        @staticmethod
        def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
            if path_manager.path_requires_pathmanager(dst_path):
                return path_manager.copy(src_path, dst_path, overwrite=overwrite)
            if os.path.exists(dst_path) and not overwrite:
                return False
            shutil.copyfile(src_path, dst_path + ".tmp")
            os.replace(dst_path + ".tmp", dst_path)
            return True

    return AtomicCopyPathManager


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
