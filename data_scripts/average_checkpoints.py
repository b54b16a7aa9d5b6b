#!/usr/bin/env python
"""Average the parameters of the last K fairseq checkpoints (what fairseq's scripts/average_checkpoints.py does).

    python data_scripts/average_checkpoints.py --inputs checkpoints/diffuser_wmt14_en_de \\
        --num-update-checkpoints 10 --output checkpoints/diffuser_wmt14_en_de/checkpoint_avg10.pt

The fairseq-fixed wheel does not ship fairseq's scripts/ folder, so this is the
project's own. The checkpoints are found with fairseq's
``checkpoint_utils.checkpoint_paths`` (``checkpoint_EPOCH_UPDATES.pt`` from
``--save-interval-updates``, or ``checkpointEPOCH.pt``), loaded with torch's
weights-only unpickler and the allow-list of ``fairseq_plugins`` (no other
pickled object is executed), averaged (floating-point tensors by their mean,
integer tensors by floor division) and saved, through a temporary name, as the
newest checkpoint with its model parameters replaced (written to a
temporary name and renamed when complete).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from fairseq import checkpoint_utils

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: the imports below need it (noqa: E402)

import fairseq_plugins  # noqa: E402,F401  (the checkpoint allow-list)
from diffuser_mt.textio import InputError  # noqa: E402
from fairseq_plugins.checkpoint_safety import DamagedCheckpoint, verify_checkpoint_file  # noqa: E402

UPDATE_PATTERN = r"checkpoint_\d+_(\d+)\.pt"
EPOCH_PATTERN = r"checkpoint(\d+)\.pt"


def parse_args(argv=None) -> argparse.Namespace:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=Path, nargs="+", required=True,
                        help="checkpoint files, or one checkpoint directory with --num-*-checkpoints")
    count = parser.add_mutually_exclusive_group()
    count.add_argument("--num-update-checkpoints", type=int,
                       help="average the last N checkpoint_EPOCH_UPDATES.pt of the directory")
    count.add_argument("--num-epoch-checkpoints", type=int,
                       help="average the last N checkpointEPOCH.pt of the directory")
    parser.add_argument("--checkpoint-upper-bound", type=int,
                        help="with --num-*-checkpoints: only checkpoints of at most this epoch/update number")
    parser.add_argument("--output", type=Path, required=True, help="the averaged checkpoint")
    return parser.parse_args(argv)


def last_checkpoints(directory: Path, count: int, pattern: str, upper_bound: int | None) -> list[Path]:
    """The ``count`` newest checkpoints of ``directory`` matching ``pattern`` (newest first)."""
    if not directory.is_dir():
        raise InputError(f"{directory}: not a checkpoint directory")
    if count < 1:
        raise InputError(f"the number of checkpoints to average must be at least 1, got {count}")
    found = [Path(path) for path, number in checkpoint_utils.checkpoint_paths(str(directory), pattern, keep_match=True)
             if upper_bound is None or number <= upper_bound]
    if len(found) < count:
        raise InputError(f"{directory}: {len(found)} checkpoints match {pattern}"
                         f"{'' if upper_bound is None else f' up to {upper_bound}'}, fewer than the {count} asked for")
    return found[:count]


def input_checkpoints(args: argparse.Namespace) -> list[Path]:
    """The checkpoint files to average, from --inputs and the --num-*-checkpoints options."""
    count = args.num_update_checkpoints or args.num_epoch_checkpoints
    if count is None:
        missing = [path for path in args.inputs if not path.is_file()]
        if missing:
            raise InputError(f"{missing[0]}: no such checkpoint file (pass a directory with --num-update-checkpoints "
                             "or --num-epoch-checkpoints to choose the last ones)")
        return list(args.inputs)
    if len(args.inputs) != 1:
        raise InputError("--num-update-checkpoints/--num-epoch-checkpoints take one checkpoint directory in --inputs")
    pattern = UPDATE_PATTERN if args.num_update_checkpoints is not None else EPOCH_PATTERN
    return last_checkpoints(args.inputs[0], count, pattern, args.checkpoint_upper_bound)


def load(path: Path) -> dict:
    """A fairseq checkpoint, verified (zip CRCs) and loaded weights-only; InputError naming the file when it is not
    one."""
    try:
        verify_checkpoint_file(path)
    except DamagedCheckpoint as err:
        raise InputError(f"{path}: {err}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated files, foreign pickles and non-checkpoints all mean "not usable"
        raise InputError(f"{path}: not a loadable fairseq checkpoint ({' '.join(str(err).split())[:200]})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise InputError(f"{path}: not a fairseq checkpoint (no model parameters)")
    return state


def average(paths: list[Path]) -> dict:
    """The first (newest) checkpoint with its model parameters replaced by the average over ``paths``."""
    newest = load(paths[0])
    sums = {name: tensor.double() if tensor.is_floating_point() else tensor.clone()
            for name, tensor in newest["model"].items()}
    for path in paths[1:]:
        model = load(path)["model"]
        if model.keys() != sums.keys():
            raise InputError(f"{path}: its parameters differ from those of {paths[0]} (another model?)")
        for name, tensor in model.items():
            if tensor.shape != sums[name].shape:
                raise InputError(f"{path}: parameter {name} has shape {tuple(tensor.shape)}, "
                                 f"{tuple(sums[name].shape)} in {paths[0]}")
            sums[name] += tensor.double() if tensor.is_floating_point() else tensor
    averaged = {}
    for name, total in sums.items():
        dtype = newest["model"][name].dtype
        averaged[name] = (total / len(paths)).to(dtype) if total.is_floating_point() else total // len(paths)
    return {**newest, "model": averaged}


def save(state: dict, output: Path) -> None:
    """Write ``state`` with fairseq's torch_persistent_save (to ``OUTPUT.tmp``, then renamed onto ``output``)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    checkpoint_utils.torch_persistent_save(state, str(output))


def main(argv=None) -> None:
    """Entry point: one clear line and exit status 1 on bad input."""
    args = parse_args(argv)
    try:
        paths = input_checkpoints(args)
        print(f"averaging {len(paths)} checkpoints: {', '.join(str(path) for path in paths)}", file=sys.stderr)
        save(average(paths), args.output)
    except InputError as err:
        sys.exit(f"error: {err}")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
