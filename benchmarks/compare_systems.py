#!/usr/bin/env python
"""Every system side by side in one run, at one model size and one wall-clock training budget (``make bench``).

    .venv/bin/python benchmarks/compare_systems.py --data data-bin/ding.en-de --minutes 15

1. Trains fairseq's ``transformer`` and ``levenshtein_transformer``, DiffusER, DiffuSeq and D3PM with
   ``fairseq-train --user-dir fairseq_plugins`` on the same data, at the CPU size class (the ``*_small`` archs:
   d 256, FFN 1024, 4 heads; 3+3 layers, DiffusER's tagger and generator each, DiffuSeq 6 encoder layers), each
   with its recipe (``data_scripts/recipes.py``: the same optimizer, Adam, lr 1e-3, inverse_sqrt, 400 warm-up
   updates), the same batch size (--max-tokens) and budget
   (``--minutes``, fairseq's --stop-time-hours). A finished run in ``--work-dir/SYSTEM`` is reused. With
   ``--from-curves DIR``, a system whose learning curve (benchmarks/learning_curves.py) kept a checkpoint at
   ``--curve-minutes`` in DIR/SYSTEM is not trained again: that checkpoint and its run's figures stand in
   (``make bench``: the AR transformer, LevT and DiffusER at the curves' budget, the others at ``--minutes``).
2. Decodes the test split with each system's decoders (``DECODERS``; DiffusER from random tokens greedy and 2D
   beam, and from the transformer's beam-5 output: the AR bootstrap) with ``fairseq-generate``, one after the
   other, at the same batch size, and scores the detokenized output with sacreBLEU against the raw references.
3. Sweeps DiffusER's number of steps (``--sweep-steps``, greedy from random tokens, every step run: without
   ``--force-decode-steps`` a sentence stops once a step changes nothing, with the same output): BLEU and
   decoding time per step count, plotted like the paper's Figure 4 (``step_sweep.png``).

Per row: sacreBLEU (and its signature), training target tokens/s (fairseq's wps, averaged over the run, weighted
by updates), updates done in the budget, parameters, decoding sentences/s (fairseq's time inside generation),
peak resident memory of the training and of the decoding process, and speeds as ratios to the transformer of
the same run.
Figures go to ``--out`` (.json with the machine, .md with the tables the README shows) and the plot beside it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # a script: the imports below need it (noqa: E402)

from benchmarks.common import (EPOCH_PATTERN, PARAMS_PATTERN, command_line, machine, snapshot_path,  # noqa: E402
                               snapshot_training, tokens_per_second, write_results)
from data_scripts.fairseq_tools import USER_DIR, fairseq_executable  # noqa: E402
from data_scripts.recipes import MAX_TOKENS, RECIPES, SIZES, SYSTEMS, run_arguments  # noqa: E402
from diffuser_mt.generation_output import read_hypotheses  # noqa: E402
from diffuser_mt.metrics import corpus_bleu, paired_bootstrap  # noqa: E402
from diffuser_mt.textio import InputError, atomic_write, read_lines  # noqa: E402

SPEED_PATTERN = re.compile(r"Translated ([\d,]+) sentences \(([\d,]+) tokens\) in ([\d.]+)s")

@dataclass(frozen=True)
class Decoder:
    """One row of the table: a system decoded with fairseq-generate options (``{ar_output}``: the AR run's
    output, for the bootstrap)."""

    system: str
    options: list = field(default_factory=list)


def diffuseq_row(steps: int) -> tuple[str, Decoder]:
    """DiffuSeq's row of the table: its name, which says how many DDIM steps it decodes, and its decoder."""
    return f"DiffuSeq, {steps} DDIM steps", Decoder("diffuseq", ["--decode-steps", str(steps)])


DIFFUSEQ_STEPS = 200
DIFFUSEQ_ROW = diffuseq_row(DIFFUSEQ_STEPS)
DECODERS = {
    "transformer, beam 5": Decoder("transformer", ["--beam", "5"]),
    "levenshtein_transformer, 9 iterations": Decoder(
        "levenshtein_transformer", ["--iter-decode-max-iter", "9", "--iter-decode-eos-penalty", "0", "--beam", "1"]),
    "DiffusER, random start, greedy, 12 steps": Decoder("diffuser", ["--decode-steps", "12"]),
    "DiffusER, random start, greedy, all 12 steps forced": Decoder(
        "diffuser", ["--decode-steps", "12", "--force-decode-steps"]),
    "DiffusER, random start, 2D beam b=5 r=3, 12 steps": Decoder(
        "diffuser", ["--decode-steps", "12", "--token-beam", "5", "--revision-beam", "3"]),
    "DiffusER + AR bootstrap, greedy, 12 steps": Decoder(
        "diffuser", ["--decode-steps", "12", "--init-mode", "file", "--init-file", "{ar_output}"]),
    DIFFUSEQ_ROW[0]: DIFFUSEQ_ROW[1],
    "D3PM absorbing, 20 steps": Decoder("d3pm", ["--decode-steps", "20"]),
}
BASELINE = "transformer, beam 5"
# the BLEU comparisons the targets and the README state: (system row, baseline row), each with sacreBLEU's
# paired bootstrap resampling (1,000 samples)
COMPARISONS = [("DiffusER, random start, greedy, 12 steps", "transformer, beam 5"),
               ("DiffusER, random start, 2D beam b=5 r=3, 12 steps", "transformer, beam 5"),
               ("DiffusER + AR bootstrap, greedy, 12 steps", "transformer, beam 5"),
               ("DiffusER, random start, 2D beam b=5 r=3, 12 steps", "levenshtein_transformer, 9 iterations")]
# the paper's Table 1 (WMT'14 En-De, GPUs): BLEU of the rows it has
PAPER_BLEU = {"transformer, beam 5": 27.3, "levenshtein_transformer, 9 iterations": 23.7,
              "DiffusER, random start, 2D beam b=5 r=3, 12 steps": 27.2,
              "DiffusER, random start, greedy, 12 steps": 26.3, "DiffusER + AR bootstrap, greedy, 12 steps": 28.8}
# the paper's Figure 4 (WMT'14 En-De, 2D beam, random start), read off the plot (+-0.5 BLEU): steps -> BLEU
PAPER_STEP_BLEU = {1: 6.3, 2: 18.0, 4: 25.5, 8: 26.5, 16: 27.4}


def with_diffuseq_steps(decoders: dict, steps: int) -> dict:
    """``decoders`` with DiffuSeq's row decoding ``steps`` DDIM steps instead (``diffuseq_row``)."""
    row = diffuseq_row(steps)
    return dict(row if decoder.system == "diffuseq" else (name, decoder) for name, decoder in decoders.items())


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "data-bin/ding.en-de", help="binarized data dir")
    parser.add_argument("--reference", type=Path, default=REPO_ROOT / "data/ding/test.de",
                        help="raw (detokenized) references of the test split")
    parser.add_argument("--spm-model", type=Path, default=REPO_ROOT / "data/ding/spm.model",
                        help="sentencepiece model of the data (detokenizes outputs, encodes the AR bootstrap)")
    parser.add_argument("--minutes", type=float, default=15.0, help="training wall-clock budget of every system")
    parser.add_argument("--from-curves", type=Path, default=None,
                        help="a learning curves' work dir: systems with a checkpoint at --curve-minutes there are "
                             "taken from it instead of trained")
    parser.add_argument("--curve-minutes", type=float, default=None,
                        help="which of the curves' checkpoints (default: --minutes)")
    parser.add_argument("--size", choices=SIZES, default="small", help="model size class")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS,
                        help="training batch size in tokens, every system")
    parser.add_argument("--batch-size", type=int, default=64, help="decoding batch size in sentences, every system")
    parser.add_argument("--sweep-steps", type=int, nargs="*", default=[1, 2, 4, 8, 12, 16],
                        help="DiffusER step counts of the sweep (none: no sweep)")
    parser.add_argument("--diffuseq-steps", type=int, default=DIFFUSEQ_STEPS,
                        help="DDIM steps of DiffuSeq's decode (on 2 CPU cores about 5.5 s per step for the 1,000 "
                             "test sentences)")
    parser.add_argument("--systems", nargs="*", choices=list(RECIPES), default=list(SYSTEMS),
                        help="train these recipes (data_scripts/recipes.py) and decode them with their DECODERS "
                             "(the transformer always: it is the ratios' baseline)")
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "checkpoints/bench",
                        help="one folder per system: checkpoints, train.log, generate outputs")
    parser.add_argument("--num-workers", type=int, default=1, help="data-loader workers of every training")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/compare_systems",
                        help="results: OUT.json, OUT.md and step_sweep.png beside them")
    args = parser.parse_args(argv)
    if "transformer" not in args.systems:
        args.systems = ["transformer", *args.systems]
    if args.curve_minutes is None:
        args.curve_minutes = args.minutes
    return args


def run_measured(command: list, log_path: Path, append: bool = False) -> int:
    """Run a command with stdout and stderr to ``log_path``; return its peak resident memory in MiB."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a" if append else "w", encoding="utf-8") as log:
        process = subprocess.Popen(list(map(str, command)), stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
        raise SystemExit(f"error: {command[0]} failed; the end of {log_path}:\n" + "\n".join(tail))
    return usage.ru_maxrss // 1024  # Linux reports KiB


def train_command(system: str, args: argparse.Namespace) -> list[str]:
    """fairseq-train's arguments: the system's recipe at ``--size`` with the benchmark's batch size, for the
    budget, in ``--work-dir/SYSTEM``."""
    recipe = dataclasses.replace(RECIPES[system], max_tokens=args.max_tokens)
    return [*recipe.train_arguments(args.data, args.size),
            *run_arguments(args.work_dir / system, args.minutes, args.seed, args.num_workers)]


def train(system: str, args: argparse.Namespace) -> dict:
    """Train (or resume) one system for the budget, or take its learning curve's checkpoint (``--from-curves``);
    its training figures (under "checkpoint": the one to decode), also kept in train_stats.json."""
    if args.from_curves is not None and snapshot_path(args.from_curves / system, args.curve_minutes).exists():
        stats = snapshot_training(args.from_curves / system, args.curve_minutes)
        if not stats["train_tokens_per_second"]:
            raise SystemExit(f"error: {args.from_curves / system}/train.log times no training epoch")
        return {"minutes": args.curve_minutes, "size": args.size, "from_curves": True,
                "checkpoint": str(snapshot_path(args.from_curves / system, args.curve_minutes)), **stats}
    save_dir = args.work_dir / system
    stats_path = save_dir / "train_stats.json"
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
        if stats["minutes"] == args.minutes and stats["size"] == args.size:
            return {"checkpoint": str(save_dir / "checkpoint_best.pt"), **stats}
    command = [fairseq_executable("fairseq-train"), *train_command(system, args)]
    log_path = save_dir / "train.log"
    peak = run_measured(command, log_path, append=True)
    log = log_path.read_text(encoding="utf-8")
    epochs = EPOCH_PATTERN.findall(log)  # fairseq's summary of every epoch, the last one cut by the budget
    if not epochs:
        raise SystemExit(f"error: {system} logged no finished training epoch in {log_path}")
    params = PARAMS_PATTERN.findall(log)
    words_per_second = tokens_per_second(log)
    if not words_per_second:  # fairseq times updates from the second one on
        raise SystemExit(f"error: {system} did {epochs[-1][1]} update(s) in the budget, too few to time; "
                         "raise --minutes")
    stats = {"minutes": args.minutes, "size": args.size, "checkpoint": str(save_dir / "checkpoint_best.pt"),
             "updates": int(epochs[-1][1]),
             "train_tokens_per_second": words_per_second,
             "parameters": int(params[-1].replace(",", "")), "train_peak_rss_mib": peak}
    with atomic_write(stats_path) as out:
        json.dump(stats, out, indent=2)
    return stats


def generate_command(system: str, checkpoint: Path, data: Path, split: str, options: list,
                     args: argparse.Namespace) -> list:
    """fairseq-generate of ``system``'s checkpoint on ``split`` with decoder ``options``, as every benchmark
    decodes: subwords removed, every sentence kept (fairseq's own tasks would drop some otherwise), length cap
    1.2 x source + 10, CPU, ``args.batch_size`` and ``args.seed``."""
    return [fairseq_executable("fairseq-generate"), data, "--user-dir", USER_DIR, "--task", RECIPES[system].task,
            "--path", checkpoint, "--gen-subset", split, *options, "--post-process", "sentencepiece",
            "--batch-size", args.batch_size, "--required-batch-size-multiple", 1, "--max-len-a", 1.2,
            "--max-len-b", 10, "--cpu", "--seed", args.seed]


def decode(name: str, options: list, system: str, checkpoint: Path, args: argparse.Namespace,
           references: list[str]) -> dict:
    """Decode the test split with fairseq-generate; BLEU, speed and peak memory."""
    save_dir = args.work_dir / system
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    output = save_dir / f"generate-test.{slug}.txt"
    command = generate_command(system, checkpoint, args.data, "test", options, args)
    if RECIPES[system].task == "diffuser":
        command += ["--init-spm-model", args.spm_model]
    peak = run_measured(command, output)
    text = output.read_text(encoding="utf-8")
    match = SPEED_PATTERN.search(text)
    hypotheses = read_hypotheses(output, prefix="D")
    if match is None or len(hypotheses) != len(references):
        raise SystemExit(f"error: {output}: {len(hypotheses)} hypotheses for {len(references)} references")
    sentences, tokens, seconds = (float(group.replace(",", "")) for group in match.groups())
    return {"system": system, "output": str(output.relative_to(REPO_ROOT)) if output.is_relative_to(REPO_ROOT)
            else str(output), "sentences_per_second": sentences / seconds, "decode_seconds": seconds,
            "decode_peak_rss_mib": peak, **corpus_bleu(hypotheses, references)}


def step_sweep(args: argparse.Namespace, references: list[str], rows: dict, checkpoint: Path) -> list[dict]:
    """BLEU and decoding time per step count; a step count that a table row already decoded with the same
    options (the forced 12 steps) reuses that row."""
    decoded = {tuple(DECODERS[name].options): row for name, row in rows.items() if row["system"] == "diffuser"}
    points = []
    for steps in tqdm(args.sweep_steps, desc="DiffusER step sweep"):
        options = ["--decode-steps", str(steps), "--force-decode-steps"]
        result = decoded.get(tuple(options)) or decode(f"sweep greedy {steps} steps", options, "diffuser",
                                                       checkpoint, args, references)
        points.append({"steps": steps, "bleu": result["bleu"], "decode_seconds": result["decode_seconds"]})
    return points


def plot_sweep(points: list[dict], path: Path) -> None:
    """BLEU and decoding time against the number of steps, as the paper's Figure 4 plots BLEU."""
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # importing fairseq leaves the root logger at DEBUG
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [point["steps"] for point in points]
    figure, (bleu_axis, time_axis) = plt.subplots(1, 2, figsize=(9, 3.5))
    bleu_axis.plot(steps, [point["bleu"] for point in points], marker="o")
    bleu_axis.set(xlabel="diffusion steps", ylabel="sacreBLEU", title="DiffusER, greedy, random start")
    time_axis.plot(steps, [point["decode_seconds"] for point in points], marker="o", color="tab:orange")
    time_axis.set(xlabel="diffusion steps", ylabel="decoding seconds (test split)", title="decoding time")
    for axis, key in ((bleu_axis, "bleu"), (time_axis, "decode_seconds")):
        axis.grid(alpha=0.3)
        axis.set_xticks(steps)
        axis.set_ylim(0, 1.15 * max(max(point[key] for point in points), 0.1))  # a flat line stays visible
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.png")
    figure.savefig(partial, dpi=120)
    os.replace(partial, path)


def significance(rows: dict, references: list[str], seed: int) -> list[dict]:
    """COMPARISONS between decoded rows: both BLEU scores, the difference, its bootstrap 95% interval
    half-widths and the paired bootstrap p-value (``diffuser_mt.metrics.paired_bootstrap``)."""
    results = []
    for system, baseline in COMPARISONS:
        if system in rows and baseline in rows:
            hypotheses = [read_hypotheses(REPO_ROOT / rows[name]["output"], prefix="D") for name in (baseline, system)]
            test = paired_bootstrap(*hypotheses, references, seed=seed)
            results.append({"system": system, "baseline": baseline, "bleu": test["bleu"],
                            "baseline_bleu": test["baseline_bleu"], "difference": test["bleu"] - test["baseline_bleu"],
                            "ci": test["ci"], "baseline_ci": test["baseline_ci"], "p_value": test["p_value"]})
    return results


def targets(rows: dict, training: dict, tests: list[dict]) -> list[tuple[str, bool, str]]:
    """The issue's targets: (statement, met, measured); BLEU comparisons with their paired bootstrap p-value."""
    def bleu(name):
        return rows[name]["bleu"] if name in rows else None

    def p_value(system, baseline):
        found = [test["p_value"] for test in tests if (test["system"], test["baseline"]) == (system, baseline)]
        return f" (p {found[0]:.3f})" if found and found[0] is not None else ""

    checks = []
    greedy, levt = "DiffusER, random start, greedy, 12 steps", "levenshtein_transformer, 9 iterations"
    boot, beam2d = "DiffusER + AR bootstrap, greedy, 12 steps", "DiffusER, random start, 2D beam b=5 r=3, 12 steps"
    if bleu(beam2d) is not None and bleu(levt) is not None:
        checks.append(("DiffusER (2D beam) >= LevT + 3 BLEU", bleu(beam2d) >= bleu(levt) + 3,
                       f"{bleu(beam2d):.2f} vs {bleu(levt):.2f}{p_value(beam2d, levt)}"))
    if bleu(boot) is not None:
        checks.append(("DiffusER + AR bootstrap >= AR + 1 BLEU", bleu(boot) >= bleu(BASELINE) + 1,
                       f"{bleu(boot):.2f} vs {bleu(BASELINE):.2f}{p_value(boot, BASELINE)}"))
    if greedy in rows:
        ratio = rows[greedy]["decode_ratio_to_ar"]
        checks.append(("DiffusER greedy decoding >= 1.0x AR beam-5 sentences/s", ratio >= 1.0, f"{ratio:.2f}x"))
    if greedy in rows and beam2d in rows:
        slowdown = rows[greedy]["sentences_per_second"] / rows[beam2d]["sentences_per_second"]
        checks.append(("DiffusER 2D beam decoding time <= 10x greedy", slowdown <= 10, f"{slowdown:.1f}x"))
    if "diffuser" in training:
        ratio = training["diffuser"]["train_ratio_to_ar"]
        checks.append(("DiffusER training >= 0.7x AR tokens/s", ratio >= 0.7, f"{ratio:.2f}x"))
    return checks


def markdown(results: dict) -> str:
    training, rows = results["training"], results["rows"]
    lines = ["| system, decoder | test BLEU | decode sent/s | x AR | train tok/s | x AR | train min | updates | "
             "parameters | peak MiB train / decode | paper (WMT'14) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        train_row = training[row["system"]]
        paper = PAPER_BLEU.get(name)
        lines.append(f"| {name} | {row['bleu']:.2f} | {row['sentences_per_second']:.1f} | "
                     f"{row['decode_ratio_to_ar']:.2f} | {train_row['train_tokens_per_second']:.0f} | "
                     f"{train_row['train_ratio_to_ar']:.2f} | {train_row['minutes']:g} | {train_row['updates']} | "
                     f"{train_row['parameters']:,} | "
                     f"{train_row['train_peak_rss_mib']} / {row['decode_peak_rss_mib']} | "
                     f"{'' if paper is None else paper} |")
    lines.append("")
    lines.append(f"sacreBLEU signature: {rows[BASELINE]['signature']}")
    sweep = results.get("step_sweep")
    if sweep:
        lines += ["", "| DiffusER steps (greedy, all forced) | " + " | ".join(str(p["steps"]) for p in sweep) + " |",
                  "|---|" + "---|" * len(sweep),
                  "| test BLEU | " + " | ".join(f"{p['bleu']:.2f}" for p in sweep) + " |",
                  "| decoding seconds | " + " | ".join(f"{p['decode_seconds']:.1f}" for p in sweep) + " |",
                  "| paper, WMT'14, 2D beam (Fig. 4) | "
                  + " | ".join(str(PAPER_STEP_BLEU.get(p["steps"], "")) for p in sweep) + " |"]
    if results.get("significance"):
        lines += ["", "| comparison (paired bootstrap, 1,000 samples) | BLEU | baseline | difference | p |",
                  "|---|---|---|---|---|"]
        lines += [f"| {test['system']} vs {test['baseline']} | {test['bleu']:.2f} (+-{test['ci']:.2f}) | "
                  f"{test['baseline_bleu']:.2f} (+-{test['baseline_ci']:.2f}) | {test['difference']:+.2f} | "
                  f"{test['p_value']:.4f} |" for test in results["significance"]]
    lines += ["", "| target | met | measured |", "|---|---|---|"]
    lines += [f"| {statement} | {'yes' if met else '**no**'} | {measured} |"
              for statement, met, measured in results["targets"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        references = read_lines(args.reference, allow_empty_lines=False)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    training = {system: train(system, args) for system in tqdm(args.systems, desc="training")}
    ar_tokens_per_second = training["transformer"]["train_tokens_per_second"]
    for stats in training.values():
        stats["train_ratio_to_ar"] = stats["train_tokens_per_second"] / ar_tokens_per_second
    chosen = {name: decoder for name, decoder in with_diffuseq_steps(DECODERS, args.diffuseq_steps).items()
              if decoder.system in training}
    rows = {}
    for name, decoder in tqdm(chosen.items(), desc="decoding"):
        ar_output = args.work_dir / "transformer" / "generate-test.transformer-beam-5.txt"
        options = [option.format(ar_output=ar_output) for option in decoder.options]
        rows[name] = decode(name, options, decoder.system, Path(training[decoder.system]["checkpoint"]), args,
                            references)
    for row in rows.values():
        row["decode_ratio_to_ar"] = row["sentences_per_second"] / rows[BASELINE]["sentences_per_second"]
    sweep = (step_sweep(args, references, rows, Path(training["diffuser"]["checkpoint"]))
             if "diffuser" in training and args.sweep_steps else [])
    if sweep:
        plot_sweep(sweep, args.out.with_name("step_sweep.png"))
    results = {
        "benchmark": f"all systems on {args.data.name}, {args.minutes:g} training minutes each"
                     + "".join(f"; {system} {stats['minutes']:g} (its learning curve's)"
                               for system, stats in training.items() if stats.get("from_curves")),
        "command": command_line("benchmarks/compare_systems.py", argv),
        "machine": machine(),
        "settings": {"minutes": args.minutes, "size": args.size, "max_tokens": args.max_tokens,
                     "decode_batch_size": args.batch_size, "seed": args.seed},
        "training": training,
        "rows": rows,
        "step_sweep": sweep,
    }
    results["significance"] = significance(rows, references, args.seed)
    results["targets"] = targets(rows, training, results["significance"])
    write_results(args.out, results, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
