#!/usr/bin/env python
"""Learning curves: valid BLEU against training minutes and updates, several systems side by side (``make curves``).

    .venv/bin/python benchmarks/learning_curves.py --data data-bin/ding.en-de --minutes 30 --interval 5

1. Each system (``--systems``; their recipes in ``data_scripts/recipes.py``, the benchmark's one batch size) is
   trained in segments: fairseq-train with ``--stop-time-hours`` at ``--interval``, 2 x ``--interval``, ...
   ``--minutes`` (fairseq counts the training time of earlier runs in the save dir, so each segment resumes
   where the last one stopped), and the checkpoint at each time is kept as ``checkpoint_{M}min.pt``.
2. Each kept checkpoint is decoded with the system's own decoder (``CURVE_DECODERS``) on the valid split (or
   ``--valid-subset``, a split binarized beside it) and scored with sacreBLEU against its raw references.
3. Derived: the AR transformer's valid BLEU at ``--bar-minutes`` (interpolated along its curve) and the minutes
   each system needs to reach it ("not reached" within the budget).
4. Out of domain: the last checkpoint of each system decoded on ``--ood-source``/``--ood-reference`` (by
   default the newstest2014 sample of ../shared/fixtures/wmt14 when it is there), encoded with the data's
   sentencepiece model and binarized with its dictionaries.

Kept checkpoints and decodes are reused on a re-run. Figures: ``--out``.json (the series, one line per system,
one point per kept checkpoint), .md (the table) and .png (BLEU vs minutes and vs updates).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import sys
from pathlib import Path

import torch
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # a script: the imports below need it (noqa: E402)

import fairseq_plugins  # noqa: E402,F401  (the checkpoint allow-list, for torch.load below)
from benchmarks.common import machine, write_results  # noqa: E402
from benchmarks.compare_systems import DECODERS, PAPER_BLEU, generate_command, run_measured  # noqa: E402
from data_scripts.corpus_build import load_sentencepiece  # noqa: E402
from data_scripts.fairseq_tools import fairseq_executable, run_fairseq  # noqa: E402
from data_scripts.recipes import MAX_TOKENS, RECIPES, SIZES, run_arguments  # noqa: E402
from diffuser_mt.data_manifest import read_manifest  # noqa: E402
from diffuser_mt.generation_output import read_hypotheses  # noqa: E402
from diffuser_mt.metrics import corpus_bleu  # noqa: E402
from diffuser_mt.textio import InputError, read_lines  # noqa: E402

# each system's own decoder (a row of compare_systems.DECODERS)
CURVE_DECODERS = {"transformer": "transformer, beam 5",
                  "levenshtein_transformer": "levenshtein_transformer, 9 iterations",
                  "diffuser": "DiffusER, random start, greedy, 12 steps",
                  "diffuser_shared_encoder": "DiffusER, random start, greedy, 12 steps",
                  "diffuser_separate": "DiffusER, random start, greedy, 12 steps",
                  "diffuseq": "DiffuSeq, 200 DDIM steps", "d3pm": "D3PM absorbing, 20 steps"}
BASELINE = "transformer"
OOD_SAMPLE = REPO_ROOT.parent / "shared/fixtures/wmt14/newstest2014.300"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "data-bin/ding.en-de", help="binarized data dir")
    parser.add_argument("--valid-subset", default="valid", help="the split every checkpoint is decoded on")
    parser.add_argument("--valid-reference", type=Path, default=REPO_ROOT / "data/ding/valid.de",
                        help="raw (detokenized) references of that split")
    parser.add_argument("--ood-source", type=Path, default=OOD_SAMPLE.with_suffix(".en"),
                        help="out-of-domain source sentences, one per line (skipped when absent)")
    parser.add_argument("--ood-reference", type=Path, default=OOD_SAMPLE.with_suffix(".de"),
                        help="their references")
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall-clock budget of every system")
    parser.add_argument("--interval", type=float, default=5.0, help="minutes of training between kept checkpoints")
    parser.add_argument("--bar-minutes", type=float, default=15.0,
                        help="the AR transformer's valid BLEU at this many minutes is the bar the others must reach")
    parser.add_argument("--systems", nargs="+", choices=list(CURVE_DECODERS),
                        default=["transformer", "levenshtein_transformer", "diffuser"],
                        help="recipes to train (the transformer always: it sets the bar)")
    parser.add_argument("--size", choices=SIZES, default="small", help="model size class")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="training batch size, every system")
    parser.add_argument("--batch-size", type=int, default=64, help="decoding batch size in sentences")
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "checkpoints/curves",
                        help="one folder per system: checkpoints, train.log, decodes")
    parser.add_argument("--num-workers", type=int, default=1, help="data-loader workers of every training")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/learning_curves",
                        help="results: OUT.json, OUT.md, OUT.png")
    args = parser.parse_args(argv)
    if args.interval <= 0 or args.minutes < args.interval:
        parser.error("--interval must be > 0 and at most --minutes")
    if BASELINE not in args.systems:
        args.systems = [BASELINE, *args.systems]
    return args


def snapshot_minutes(minutes: float, interval: float) -> list[float]:
    """interval, 2 x interval, ..., and ``minutes`` itself (rounded to seconds)."""
    count = math.ceil(minutes / interval - 1e-9)
    return [round(min((k + 1) * interval, minutes), 4) for k in range(count)]


def snapshot_path(save_dir: Path, minutes: float) -> Path:
    return save_dir / f"checkpoint_{minutes:g}min.pt"


def train_until(system: str, minutes: float, args: argparse.Namespace) -> Path:
    """The system's checkpoint after ``minutes`` of training, trained (resuming the last segment) unless kept."""
    save_dir = args.work_dir / system
    snapshot = snapshot_path(save_dir, minutes)
    if snapshot.exists():
        return snapshot
    recipe = dataclasses.replace(RECIPES[system], max_tokens=args.max_tokens)
    command = [fairseq_executable("fairseq-train"), *recipe.train_arguments(args.data, args.size),
               *run_arguments(save_dir, minutes, args.seed, args.num_workers)]
    run_measured(command, save_dir / "train.log", append=True)
    partial = snapshot.with_name(snapshot.name + ".partial")
    shutil.copyfile(save_dir / "checkpoint_last.pt", partial)
    os.replace(partial, snapshot)
    return snapshot


def progress_of(checkpoint: Path) -> dict:
    """Updates and training minutes (fairseq's cumulative training time) stored in a checkpoint."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return {"updates": int(state["optimizer_history"][-1]["num_updates"]),
            "training_minutes": float(state["extra_state"]["previous_training_time"]) / 60}


def decoded_bleu(system: str, checkpoint: Path, data: Path, split: str, references: list[str], name: str,
                 args: argparse.Namespace) -> dict:
    """BLEU of the system's decoder on ``split`` of ``data`` (decoded unless its output, named ``name``, is
    kept)."""
    output = checkpoint.with_name(f"{checkpoint.stem}.generate-{name}.txt")
    if not output.exists():
        command = generate_command(system, checkpoint, data, split, DECODERS[CURVE_DECODERS[system]].options, args)
        partial = output.with_name(output.name + ".partial")
        run_measured(command, partial)
        os.replace(partial, output)
    hypotheses = read_hypotheses(output, prefix="D")
    if len(hypotheses) != len(references):
        raise InputError(f"{output}: {len(hypotheses)} hypotheses for {len(references)} references")
    return {"sentences": len(hypotheses), **corpus_bleu(hypotheses, references)}


def binarize_out_of_domain(args: argparse.Namespace) -> Path:
    """WORK_DIR/ood/bin: the out-of-domain pair as a test split, encoded with the data's sentencepiece model and
    binarized with its dictionaries (made once)."""
    bin_dir = args.work_dir / "ood" / "bin"
    if (bin_dir / "manifest.json").exists():
        return bin_dir
    manifest = read_manifest(args.data) or {}
    spm_model = Path(manifest.get("sentencepiece_model") or "")
    spm_model = spm_model if spm_model.is_absolute() or spm_model.is_file() else REPO_ROOT / spm_model
    pieces = load_sentencepiece(spm_model)
    text_dir = args.work_dir / "ood" / "text"
    text_dir.mkdir(parents=True, exist_ok=True)
    for side, path in (("en", args.ood_source), ("de", args.ood_reference)):
        lines = read_lines(path, allow_empty_lines=False)
        (text_dir / f"test.spm.{side}").write_text("".join(" ".join(pieces.encode(line, out_type=str)) + "\n"
                                                            for line in lines), encoding="utf-8")
    staging = bin_dir.with_name("bin.partial")
    shutil.rmtree(staging, ignore_errors=True)
    run_fairseq("fairseq-preprocess", ["--source-lang", "en", "--target-lang", "de", "--testpref",
                                       text_dir / "test.spm", "--srcdict", args.data / "dict.en.txt", "--tgtdict",
                                       args.data / "dict.de.txt", "--destdir", staging, "--workers", 1])
    shutil.copyfile(args.data / "manifest.json", staging / "manifest.json")
    os.replace(staging, bin_dir)
    return bin_dir


def bleu_at(series: list[dict], minutes: float) -> float | None:
    """The curve's BLEU at ``minutes``, linearly interpolated between its points; None outside them."""
    for left, right in zip(series, series[1:]):
        if left["minutes"] <= minutes <= right["minutes"]:
            share = (minutes - left["minutes"]) / (right["minutes"] - left["minutes"])
            return left["valid_bleu"] + share * (right["valid_bleu"] - left["valid_bleu"])
    exact = [point["valid_bleu"] for point in series if point["minutes"] == minutes]
    return exact[0] if exact else None


def minutes_to_reach(series: list[dict], bar: float) -> float | None:
    """The first time the curve reaches ``bar`` (linear between points), or None if it never does."""
    previous = None
    for point in series:
        if point["valid_bleu"] >= bar:
            if previous is None or previous["valid_bleu"] == point["valid_bleu"]:
                return point["minutes"]
            share = (bar - previous["valid_bleu"]) / (point["valid_bleu"] - previous["valid_bleu"])
            return previous["minutes"] + share * (point["minutes"] - previous["minutes"])
        previous = point
    return None


def plot(series: dict[str, list[dict]], path: Path, bar: float | None) -> None:
    """Valid BLEU against training minutes and against updates, one line per system; the paper's WMT'14 BLEU
    of each system as text (another data set and scale, so not a point on these axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for system, points in series.items():
        for axis, key in zip(axes, ("minutes", "updates")):
            axis.plot([point[key] for point in points], [point["valid_bleu"] for point in points], marker="o",
                      label=system)
    for axis, label in zip(axes, ("training minutes (CPU)", "updates")):
        axis.set(xlabel=label, ylabel="valid sacreBLEU")
        axis.grid(alpha=0.3)
        if bar is not None:
            axis.axhline(bar, color="grey", linestyle=":", linewidth=1)
    axes[0].legend(fontsize=8)
    paper = "; ".join(f"{system} {PAPER_BLEU[CURVE_DECODERS[system]]}" for system in series
                      if CURVE_DECODERS[system] in PAPER_BLEU)
    if paper:
        figure.text(0.01, 0.01, f"paper, WMT'14 En-De on GPUs (not comparable): {paper}", fontsize=7)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.png")
    figure.savefig(partial, dpi=120)
    os.replace(partial, path)


def markdown(results: dict) -> str:
    bar = results["bar"]
    lines = [f"BLEU on the {results['valid_subset']} split ({results['valid_sentences']} sentences) after each "
             f"{results['interval']:g} minutes of training, {results['minutes']:g} in all.",
             "", "| system | " + " | ".join(f"{m:g} min" for m in results["snapshot_minutes"])
             + " | updates at the end | minutes to reach the AR's BLEU at "
             f"{results['bar_minutes']:g} min ({'n/a' if bar is None else f'{bar:.2f}'}) |",
             "|---|" + "---|" * (len(results["snapshot_minutes"]) + 2)]
    for system, points in results["series"].items():
        reach = results["minutes_to_reach"][system]
        lines.append(f"| {system} | " + " | ".join(f"{point['valid_bleu']:.2f}" for point in points)
                     + f" | {points[-1]['updates']} | {'not reached' if reach is None else f'{reach:.1f}'} |")
    if results["out_of_domain"]:
        lines += ["", f"Out of domain ({results['out_of_domain_source']}), the last checkpoints:", "",
                  "| system | BLEU | sentences |", "|---|---|---|"]
        lines += [f"| {system} | {score['bleu']:.2f} | {score['sentences']} |"
                  for system, score in results["out_of_domain"].items()]
    lines += ["", f"sacreBLEU signature: {results['signature']}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        references = read_lines(args.valid_reference, allow_empty_lines=False)
        times = snapshot_minutes(args.minutes, args.interval)
        series, signature, sentences = {}, None, 0
        for system in tqdm(args.systems, desc="systems"):
            points = []
            for minutes in tqdm(times, desc=system, leave=False):
                checkpoint = train_until(system, minutes, args)
                score = decoded_bleu(system, checkpoint, args.data, args.valid_subset, references,
                                     args.valid_subset, args)
                signature, sentences = score["signature"], score["sentences"]
                points.append({"minutes": minutes, **progress_of(checkpoint), "valid_bleu": score["bleu"],
                               "checkpoint": str(checkpoint)})
            series[system] = points
        out_of_domain = {}
        if args.ood_source.is_file() and args.ood_reference.is_file():
            ood_data, ood_references = binarize_out_of_domain(args), read_lines(args.ood_reference)
            for system, points in series.items():
                score = decoded_bleu(system, Path(points[-1]["checkpoint"]), ood_data, "test", ood_references,
                                     "ood", args)
                out_of_domain[system] = {"bleu": score["bleu"], "sentences": score["sentences"],
                                         "minutes": points[-1]["minutes"]}
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    bar = bleu_at(series[BASELINE], args.bar_minutes)
    results = {"machine": machine(), "minutes": args.minutes, "interval": args.interval,
               "snapshot_minutes": times, "bar_minutes": args.bar_minutes, "bar": bar, "size": args.size,
               "max_tokens": args.max_tokens, "valid_subset": args.valid_subset, "valid_sentences": sentences,
               "series": series, "signature": signature, "out_of_domain": out_of_domain,
               "out_of_domain_source": str(args.ood_source) if out_of_domain else None,
               "minutes_to_reach": {system: None if bar is None else minutes_to_reach(points, bar)
                                    for system, points in series.items()}}
    write_results(args.out, results, markdown(results))
    plot(series, args.out.with_suffix(".png"), bar)
    return 0


if __name__ == "__main__":
    sys.exit(main())
