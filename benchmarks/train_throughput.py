#!/usr/bin/env python
"""Training throughput, side by side in one run: fairseq's transformer and LevT, DiffusER, DiffuSeq and D3PM.

    .venv/bin/python benchmarks/train_throughput.py --data data-bin/ding.en-de

Each system trains with ``fairseq-train --user-dir fairseq_plugins`` on the same
data, with its recipe (``data_scripts/recipes.py``) at the same size class (the
``small`` archs: d 256; 3+3 layers, for each of DiffusER's tagger and generator),
the same batch size, optimizer and number of updates. Throughput is fairseq's
own ``wps`` (target tokens of the original sentences per second), averaged over
the ``train_inner`` records after the first; memory is the training process'
peak resident set.

DiffusER is measured in three layouts: ``diffuser`` (the arch's defaults: one
shared encoder and a 1-layer tagger decoder), ``diffuser_shared_encoder`` (shared
encoder, tagger as deep as the generator) and ``diffuser_separate`` (the
paper's two full encoder-decoder models). ``diffuser_rollin`` is the default layout with
``--rollin-prob 0.5`` (the criterion's second pass on the roll-in rows).

The corruption share: the time the data loader spends building DiffusER
examples (``EditCorruptionDataset.__getitem__``: corruption, tags, canvas) per
target token, over the time of a DiffusER training step per target token.

Figures go to ``benchmarks/results/train_throughput.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # a script: the imports below need it (noqa: E402)

from benchmarks.common import PARAMS_PATTERN, command_line, machine, write_results  # noqa: E402
from benchmarks.compare_systems import run_measured  # noqa: E402
from data_scripts.fairseq_tools import USER_DIR, fairseq_executable  # noqa: E402
from data_scripts.recipes import DIFFUSER, MAX_TOKENS, RECIPES, SIZES, SYSTEMS, Recipe  # noqa: E402
from fairseq_plugins.models.cpu_sizes import SIZES as ARCH_SIZES  # noqa: E402

# DiffusER layouts measured beside the arch's defaults, both with the tagger as deep as the generator
DIFFUSER_LAYOUTS = {"diffuser_shared_encoder": "--share-encoder", "diffuser_separate": "--no-share-encoder"}
# and DiffusER trained on its own sampled fills half the time (the cost of roll-in per update)
MEASURED = (*SYSTEMS, *DIFFUSER_LAYOUTS, "diffuser_rollin")


def measured_recipe(system: str, size: str) -> Recipe:
    """The system's recipe; a DiffusER layout is the DiffusER recipe with its encoder and tagger options."""
    if system not in DIFFUSER_LAYOUTS:
        return RECIPES[system]
    return DIFFUSER.with_options({DIFFUSER_LAYOUTS[system]: True, "--tagger-layers": ARCH_SIZES[size]["layers"]})


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "data-bin/ding.en-de")
    parser.add_argument("--size", choices=SIZES, default="small", help="the recipes' size class")
    parser.add_argument("--updates", type=int, default=40, help="training updates per system")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="batch size in tokens, every system")
    parser.add_argument("--corruption-sentences", type=int, default=2000,
                        help="training sentences timed through the DiffusER data loader")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--systems", nargs="+", choices=list(MEASURED), default=list(MEASURED),
                        help="systems to measure; the transformer (the ratios are to it) and diffuser (the data "
                             "loader's share is of its step) always are")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/train_throughput")
    args = parser.parse_args(argv)
    always = ["transformer", "diffuser"]
    args.systems = always + [system for system in args.systems if system not in always]
    return args


def train_command(system: str, args: argparse.Namespace, save_dir: Path) -> list[str]:
    """fairseq-train's arguments: the system's recipe at ``--size`` with the benchmark's batch size, for
    ``--updates`` updates, without validation or checkpoints, a JSON log line every 5 updates."""
    recipe = dataclasses.replace(measured_recipe(system, args.size), max_tokens=args.max_tokens)
    return [*recipe.train_arguments(args.data, args.size), "--max-update", str(args.updates), "--seed", str(args.seed),
            "--cpu", "--disable-validation", "--no-save", "--save-dir", str(save_dir),
            "--log-format", "json", "--log-interval", "5"]


def train(system: str, args: argparse.Namespace, save_dir: Path) -> dict:
    """Train one system for ``args.updates`` updates; return its mean wps, parameter count and peak memory."""
    command = [fairseq_executable("fairseq-train"), *train_command(system, args, save_dir)]
    log_path = save_dir / "train.log"
    peak = run_measured(command, log_path)
    log = log_path.read_text(encoding="utf-8")
    records = [json.loads(line.split("| train_inner | ", 1)[1])
               for line in log.splitlines() if "| train_inner | " in line]
    if len(records) < 2:
        raise SystemExit(f"error: {system}: too few train_inner records; raise --updates")
    steady = records[1:]
    return {
        "words_per_second": sum(float(r["wps"]) for r in steady) / len(steady),
        "updates": args.updates,
        "parameters": int(PARAMS_PATTERN.search(log).group(1).replace(",", "")),
        "train_peak_rss_mib": peak,
    }


def corruption_seconds_per_token(args: argparse.Namespace) -> float:
    """Seconds the DiffusER data loader spends per target token (one process, no training)."""
    from fairseq import options, tasks, utils

    utils.import_user_module(argparse.Namespace(user_dir=str(USER_DIR)))
    parser = options.get_training_parser()
    cfg_args = options.parse_args_and_arch(parser, [*DIFFUSER.train_arguments(args.data, args.size),
                                                    "--seed", str(args.seed)])
    task = tasks.setup_task(cfg_args)
    task.load_dataset("train")
    dataset = task.datasets["train"]
    count = min(args.corruption_sentences, len(dataset))
    tokens = 0
    start = time.perf_counter()
    for index in tqdm(range(count), desc="DiffusER data loader", leave=False):
        tokens += len(dataset[index]["target"])
    return (time.perf_counter() - start) / tokens


def markdown(results: dict) -> str:
    rows = ["| system | parameters | target tokens/s | ratio to transformer | peak MiB | memory ratio |",
            "|---|---|---|---|---|---|"]
    for system, figures in results["systems"].items():
        rows.append(f"| {system} | {figures['parameters']:,} | {figures['words_per_second']:.0f} | "
                    f"{figures['ratio_to_transformer']:.2f} | {figures['train_peak_rss_mib']} | "
                    f"{figures['memory_ratio_to_transformer']:.2f} |")
    share = results["diffuser_corruption"]
    rows.append("")
    rows.append(f"DiffusER data loader: {share['microseconds_per_token']:.1f} µs per target token, "
                f"{100 * share['share_of_step']:.1f}% of a DiffusER training step's time per token.")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    corruption = corruption_seconds_per_token(args)
    systems = {}
    with tempfile.TemporaryDirectory() as scratch:
        for system in tqdm(args.systems, desc="systems"):
            systems[system] = train(system, args, Path(scratch) / system)
    transformer = systems["transformer"]
    for figures in systems.values():
        figures["ratio_to_transformer"] = figures["words_per_second"] / transformer["words_per_second"]
        figures["memory_ratio_to_transformer"] = figures["train_peak_rss_mib"] / transformer["train_peak_rss_mib"]
    step = 1.0 / systems["diffuser"]["words_per_second"]
    results = {
        "benchmark": "training throughput on the default corpus",
        "command": command_line("benchmarks/train_throughput.py", argv),
        "machine": machine(),
        "settings": {"size": args.size, "updates": args.updates, "max_tokens": args.max_tokens, "seed": args.seed},
        "systems": systems,
        "diffuser_corruption": {"microseconds_per_token": 1e6 * corruption, "share_of_step": corruption / step},
    }
    write_results(args.out, results, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
