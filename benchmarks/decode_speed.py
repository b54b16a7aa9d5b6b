#!/usr/bin/env python
"""Decoding speed, side by side in one run: DiffusER (greedy, 2D beam) vs fairseq's transformer and LevT.

    .venv/bin/python benchmarks/decode_speed.py --data data-bin/ding.en-de

Every system decodes the same split with ``fairseq-generate --user-dir
fairseq_plugins``, one after the other on the same machine, with the same batch
size. Speed is fairseq's own figure ("Translated N sentences ... in Xs"): the
time spent inside generation, without loading. Each row is also given as a
ratio to the AR transformer with beam 5 measured in the same run.

Checkpoints: the AR transformer and DiffusER of ``make demo``
(``checkpoints/ar_baseline``, ``checkpoints/diffuser``) and a LevT in
``checkpoints/levt``; a missing one is trained here for ``--train-minutes`` at
the same size (the ``*_cpu_small`` archs), so decode lengths come from trained
models, not from random ones.

Figures go to ``benchmarks/results/decode_speed.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.train_throughput import SYSTEMS, machine, write_results  # noqa: E402
from data_scripts.fairseq_tools import USER_DIR, fairseq_executable  # noqa: E402

SPEED_PATTERN = re.compile(r"Translated ([\d,]+) sentences \(([\d,]+) tokens\) in ([\d.]+)s")
CHECKPOINT_DIRS = {"transformer": "checkpoints/ar_baseline", "levenshtein_transformer": "checkpoints/levt",
                   "diffuser": "checkpoints/diffuser"}
DECODERS = {
    "transformer, beam 5": ("transformer", ["--task", "translation", "--beam", "5"]),
    "levenshtein_transformer, 9 iterations": (
        "levenshtein_transformer", ["--task", "translation_lev", "--iter-decode-max-iter", "9",
                                    "--iter-decode-eos-penalty", "0", "--beam", "1"]),
    "DiffusER greedy, 12 steps": ("diffuser", ["--task", "diffuser", "--decode-steps", "12"]),
    "DiffusER 2D beam b=5 r=3, 12 steps": (
        "diffuser", ["--task", "diffuser", "--decode-steps", "12", "--token-beam", "5", "--revision-beam", "3"]),
}
BASELINE = "transformer, beam 5"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "data-bin/ding.en-de")
    parser.add_argument("--subset", default="test", help="split to decode")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch, for every system")
    parser.add_argument("--train-minutes", type=float, default=15.0, help="training budget of a missing model")
    parser.add_argument("--only", nargs="*", choices=sorted(DECODERS), help="decode with these rows only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/decode_speed")
    return parser.parse_args(argv)


def ensure_checkpoint(system: str, args: argparse.Namespace) -> Path:
    """The system's checkpoint_best.pt, trained for ``--train-minutes`` when missing."""
    save_dir = REPO_ROOT / CHECKPOINT_DIRS[system]
    checkpoint = save_dir / "checkpoint_best.pt"
    if checkpoint.exists():
        return checkpoint
    command = [fairseq_executable("fairseq-train"), args.data, "--user-dir", USER_DIR,
               *[option.format(size="small") for option in SYSTEMS[system]],
               "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", "1e-3", "--clip-norm", "0.0",
               "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "400", "--max-tokens", "4096",
               "--stop-time-hours", args.train_minutes / 60, "--seed", args.seed, "--cpu",
               "--save-dir", save_dir, "--no-epoch-checkpoints", "--log-format", "simple", "--log-interval", "50"]
    if subprocess.run(list(map(str, command))).returncode != 0:
        raise SystemExit(f"error: training {system} failed (its log is above)")
    return checkpoint


def decode(row: str, checkpoint: Path, args: argparse.Namespace) -> dict:
    """fairseq-generate with the row's options; sentences/s and tokens/s of generation."""
    _, options = DECODERS[row]
    command = [fairseq_executable("fairseq-generate"), args.data, "--user-dir", USER_DIR, *options,
               "--path", checkpoint, "--gen-subset", args.subset, "--batch-size", args.batch_size,
               "--required-batch-size-multiple", "1", "--cpu", "--seed", args.seed, "--quiet"]
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True)
    match = SPEED_PATTERN.search(result.stdout + result.stderr)
    if result.returncode != 0 or match is None:
        raise SystemExit(f"error: decoding '{row}' failed:\n{result.stderr[-2000:]}")
    sentences, tokens, seconds = (float(group.replace(",", "")) for group in match.groups())
    return {"sentences": int(sentences), "seconds": seconds, "sentences_per_second": sentences / seconds,
            "tokens_per_second": tokens / seconds, "checkpoint": str(checkpoint.relative_to(REPO_ROOT))}


def markdown(results: dict) -> str:
    rows = ["| decoder | sentences/s | x AR beam 5 |", "|---|---|---|"]
    for name, figures in results["rows"].items():
        rows.append(f"| {name} | {figures['sentences_per_second']:.1f} | {figures['ratio_to_ar_beam5']:.2f} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    chosen = args.only or list(DECODERS)
    if BASELINE not in chosen:
        chosen = [BASELINE, *chosen]
    checkpoints = {system: ensure_checkpoint(system, args) for system in {DECODERS[row][0] for row in chosen}}
    rows = {row: decode(row, checkpoints[DECODERS[row][0]], args) for row in tqdm(chosen, desc="decoders")}
    for figures in rows.values():
        figures["ratio_to_ar_beam5"] = figures["sentences_per_second"] / rows[BASELINE]["sentences_per_second"]
    results = {
        "benchmark": f"decoding speed on the {args.subset} split of {args.data.name}",
        "command": "benchmarks/decode_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "settings": {"batch_size": args.batch_size, "subset": args.subset, "seed": args.seed},
        "rows": rows,
    }
    write_results(args.out, results, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
