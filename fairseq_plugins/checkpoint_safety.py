"""Safe checkpoint loading for fairseq under torch >= 2.6.

torch.load defaults to ``weights_only=True`` since torch 2.6, and fairseq 0.12
checkpoints then fail with "Unsupported global: argparse.Namespace". Rather than
switching that protection off, we register the few non-tensor classes that
fairseq itself pickles into a checkpoint. Anything else in a checkpoint is still
refused by torch's weights-only unpickler.
"""
from __future__ import annotations

import argparse

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
