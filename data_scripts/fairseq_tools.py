"""Running fairseq's command-line programs from the data scripts."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
USER_DIR = REPO_ROOT / "fairseq_plugins"


def fairseq_executable(name: str) -> str:
    """Path of a fairseq console script (e.g. ``fairseq-train``): next to this python, else on PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"error: {name} not found; run `make setup` (it installs fairseq into .venv)")
    return found


def run_fairseq(name: str, args: list[str], stdout_path: Path | None = None) -> None:
    """Run a fairseq program; exit with one clear line when it fails.

    With ``stdout_path`` the program's stdout goes to that file (written under a
    temporary name and renamed on success); stderr (the log) stays on the terminal.
    """
    command = [fairseq_executable(name), *map(str, args)]
    print("+ " + " ".join(command), file=sys.stderr, flush=True)
    if stdout_path is None:
        returncode = subprocess.run(command).returncode
    else:
        stdout_path.parent.mkdir(parents=True, exist_ok=True)
        partial = stdout_path.with_name(stdout_path.name + ".partial")
        with open(partial, "w", encoding="utf-8") as out:
            returncode = subprocess.run(command, stdout=out).returncode
        if returncode == 0:
            os.replace(partial, stdout_path)
    if returncode != 0:
        raise SystemExit(f"error: {name} failed with exit status {returncode} (its log is above)")


def add_training_arguments(parser: argparse.ArgumentParser, save_dir: str, save_dir_help: str,
                           arch_help: str) -> None:
    """The options the training scripts share: data, references, save dir, size, budget, optimizer, seed."""
    parser.add_argument("--data", type=Path, default=Path("data-bin/ding.en-de"), help="binarized data dir")
    parser.add_argument("--reference", type=Path, default=Path("data/ding/test.de"),
                        help="raw (detokenized) reference text of the test split")
    parser.add_argument("--save-dir", type=Path, default=Path(save_dir), help=save_dir_help)
    parser.add_argument("--model-size", choices=("small", "tiny"), default="small", help=arch_help)
    parser.add_argument("--minutes", type=float, default=15.0, help="training wall-clock budget")
    parser.add_argument("--max-update", type=int, default=0, help="stop after this many updates (0: no limit)")
    parser.add_argument("--max-tokens", type=int, default=4096, help="tokens per batch")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup-updates", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--num-workers", type=int, default=1, help="data-loader workers")


def training_options(args: argparse.Namespace) -> list:
    """fairseq-train options from add_training_arguments: Adam, inverse_sqrt, wall-clock budget, CPU."""
    return [
        "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--clip-norm", 0.0,
        "--lr", args.lr, "--lr-scheduler", "inverse_sqrt", "--warmup-updates", args.warmup_updates,
        "--max-tokens", args.max_tokens, "--seed", args.seed, "--num-workers", args.num_workers,
        "--stop-time-hours", args.minutes / 60, "--max-update", args.max_update,
        "--save-dir", args.save_dir, "--no-epoch-checkpoints",
        "--cpu", "--log-format", "simple", "--log-interval", 20,
    ]
