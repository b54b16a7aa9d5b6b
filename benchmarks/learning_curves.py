#!/usr/bin/env python
"""Learning curves: valid BLEU against training minutes and updates, several systems side by side (``make curves``).

    .venv/bin/python benchmarks/learning_curves.py --data data-bin/ding.en-de --minutes 30 --interval 5

1. Each system (``--systems``; their recipes in ``data_scripts/recipes.py``, the benchmark's one batch size) is
   trained in segments: fairseq-train with ``--stop-time-hours`` at ``--interval``, 2 x ``--interval``, ...
   ``--minutes`` (fairseq counts the training time of earlier runs in the save dir, so each segment resumes
   where the last one stopped), and the checkpoint at each time is kept as ``checkpoint_{M}min.pt``. The
   systems take turns, one segment each, so that a slower spell of a shared machine falls on all of them
   rather than on whichever system was training then.
2. Each kept checkpoint is decoded with the system's own decoder (``CURVE_DECODERS``) on the valid split (or
   ``--valid-subset``, a split binarized beside it) and scored with sacreBLEU against its raw references.
3. Derived: the AR transformer's valid BLEU at ``--bar-minutes`` (interpolated along its curve) and the minutes
   each system needs to reach it ("not reached" within the budget).
4. At the budget: the last checkpoint of each system decoded on ``--test-subset`` (and DiffusER also from the AR
   system's test hypotheses, the AR bootstrap), with its BLEU, decoding sentences/s, updates, training tokens/s
   (fairseq's per-epoch ``wps``, weighted by the updates each covers) and peak training memory (the largest of
   the segments'), each also as a ratio to the AR run; DiffusER against the AR system and against the
   Levenshtein Transformer with sacreBLEU's paired bootstrap resampling (1,000 samples: BLEU, 95% interval
   half-widths, p-value).
5. Out of domain: the last checkpoint of each system decoded on ``--ood-source``/``--ood-reference`` (by
   default the newstest2014 sample of ../shared/fixtures/wmt14 when it is there), encoded with the data's
   sentencepiece model and binarized with its dictionaries.
6. Warm start (``--warm-start-minutes W``): DiffusER whose generator and encoder start from the AR
   transformer's checkpoint at W minutes (``--init-generator-from``), trained in the same turns after it, as
   ``diffuser_warm``. Its curve is charged with the AR's training: its point at M minutes has M - W minutes
   (and the updates after the AR's) of its own. At the budget it is compared with the AR system both ways:
   charged (the AR at the budget, the same total time) and not (the AR at M - W minutes, the same time of
   its own); it also post-edits the AR system's test hypotheses at the budget (``diffuser_warm + AR
   bootstrap``, against the AR: what post-editing by M - W minutes of DiffusER training adds to the AR).

Kept checkpoints and decodes are reused on a re-run. Figures: ``--out``.json (the series, one line per system,
one point per kept checkpoint), .md (the table) and .png (BLEU vs minutes and vs updates).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # a script: the imports below need it (noqa: E402)

from benchmarks.common import (command_line, machine, progress_of, snapshot_path, snapshot_training,  # noqa: E402
                               write_results)
from benchmarks.compare_systems import (DECODERS, DIFFUSEQ_ROW, PAPER_BLEU, SPEED_PATTERN,  # noqa: E402
                                        generate_command, run_measured)
from data_scripts.corpus_build import load_sentencepiece  # noqa: E402
from data_scripts.fairseq_tools import fairseq_executable, run_fairseq  # noqa: E402
from data_scripts.recipes import MAX_TOKENS, RECIPES, SIZES, run_arguments  # noqa: E402
from diffuser_mt.data_manifest import read_manifest  # noqa: E402
from diffuser_mt.generation_output import read_hypotheses  # noqa: E402
from diffuser_mt.metrics import corpus_bleu, paired_bootstrap  # noqa: E402
from diffuser_mt.textio import InputError, atomic_write, read_lines  # noqa: E402

# each system's own decoder (a row of compare_systems.DECODERS)
CURVE_DECODERS = {"transformer": "transformer, beam 5",
                  "levenshtein_transformer": "levenshtein_transformer, 9 iterations",
                  "diffuser": "DiffusER, random start, greedy, 12 steps",
                  "diffuser_shared_encoder": "DiffusER, random start, greedy, 12 steps",
                  "diffuser_separate": "DiffusER, random start, greedy, 12 steps",
                  "diffuseq": DIFFUSEQ_ROW[0], "d3pm": "D3PM absorbing, 20 steps"}
BASELINE = "transformer"
WARM = "diffuser_warm"  # DiffusER started from the AR's checkpoint at --warm-start-minutes (not a --systems choice)
CURVE_DECODERS[WARM] = CURVE_DECODERS["diffuser"]


def bootstrap_of(system: str) -> str:
    """The row of a DiffusER system started from the AR system's test hypotheses at the budget."""
    return f"{system} + AR bootstrap"


BOOTSTRAP = bootstrap_of("diffuser")
BOOTSTRAP_OPTIONS = ["--init-mode", "file", "--init-file", "{ar_output}", "--init-spm-model", "{spm_model}"]
# the comparisons at the budget, each with its paired bootstrap test: (system, baseline)
COMPARISONS = [("diffuser", "transformer"), (BOOTSTRAP, "transformer"), ("diffuser", "levenshtein_transformer")]
OOD_SAMPLE = REPO_ROOT.parent / "shared/fixtures/wmt14"  # newstest2014.300.en / .de


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "data-bin/ding.en-de", help="binarized data dir")
    parser.add_argument("--valid-subset", default="valid", help="the split every checkpoint is decoded on")
    parser.add_argument("--valid-reference", type=Path, default=REPO_ROOT / "data/ding/valid.de",
                        help="raw (detokenized) references of that split")
    parser.add_argument("--test-subset", default="test", help="the split the last checkpoints are decoded on")
    parser.add_argument("--test-reference", type=Path, default=REPO_ROOT / "data/ding/test.de",
                        help="raw (detokenized) references of that split")
    parser.add_argument("--ood-source", type=Path, default=OOD_SAMPLE / "newstest2014.300.en",
                        help="out-of-domain source sentences, one per line (skipped when absent)")
    parser.add_argument("--ood-reference", type=Path, default=OOD_SAMPLE / "newstest2014.300.de",
                        help="their references")
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall-clock budget of every system")
    parser.add_argument("--interval", type=float, default=5.0, help="minutes of training between kept checkpoints")
    parser.add_argument("--bar-minutes", type=float, default=15.0,
                        help="the AR transformer's valid BLEU at this many minutes is the bar the others must reach")
    parser.add_argument("--systems", nargs="+", choices=[system for system in CURVE_DECODERS if system != WARM],
                        default=["transformer", "levenshtein_transformer", "diffuser"],
                        help="recipes to train (the transformer always: it sets the bar)")
    parser.add_argument("--warm-start-minutes", type=float, default=0.0, metavar="W",
                        help="also train DiffusER warm-started from the AR transformer's checkpoint at W minutes (one "
                             "of the kept ones), its curve charged with those W minutes (0: not)")
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
    if args.warm_start_minutes:
        if args.warm_start_minutes not in snapshot_minutes(args.minutes, args.interval)[:-1]:
            parser.error("--warm-start-minutes must be one of the kept checkpoints' times before --minutes")
        if round(args.minutes - args.warm_start_minutes, 4) not in snapshot_minutes(args.minutes, args.interval):
            parser.error("--minutes minus --warm-start-minutes must be one of the kept checkpoints' times (the AR "
                         "checkpoint the warm-started DiffusER is compared with on its own training time)")
        args.systems.append(WARM)
    return args


def recipe_of(system: str) -> str:
    """The name of the system's recipe in data_scripts/recipes.py (the warm-started DiffusER: DiffusER's)."""
    return "diffuser" if system == WARM else system


def own_minutes(system: str, minutes: float, args: argparse.Namespace) -> float:
    """The system's own training minutes at the curve's ``minutes`` (the warm-started DiffusER's exclude the AR's)."""
    return round(minutes - args.warm_start_minutes, 4) if system == WARM else minutes


def snapshot_minutes(minutes: float, interval: float) -> list[float]:
    """interval, 2 x interval, ..., and ``minutes`` itself (rounded to seconds)."""
    count = math.ceil(minutes / interval - 1e-9)
    return [round(min((k + 1) * interval, minutes), 4) for k in range(count)]


def train_until(system: str, minutes: float, args: argparse.Namespace) -> Path:
    """The system's checkpoint at the curve's ``minutes`` (``own_minutes`` of its own training), trained
    (resuming the last segment) unless kept."""
    save_dir = args.work_dir / system
    snapshot = snapshot_path(save_dir, minutes)
    if snapshot.exists():
        return snapshot
    budget = own_minutes(system, minutes, args)
    last = save_dir / "checkpoint_last.pt"
    if last.exists() and (trained := progress_of(last)["training_minutes"]) > budget:
        raise InputError(f"{save_dir} holds a run of {trained:.1f} training minutes, past the {budget:g}-minute "
                         "checkpoint asked for (kept with another --interval?): use another --work-dir")
    recipe = dataclasses.replace(RECIPES[recipe_of(system)], max_tokens=args.max_tokens)
    if system == WARM:
        recipe = recipe.warm_started(snapshot_path(args.work_dir / BASELINE, args.warm_start_minutes))
    command = [fairseq_executable("fairseq-train"), *recipe.train_arguments(args.data, args.size),
               *run_arguments(save_dir, budget, args.seed, args.num_workers)]
    peak = run_measured(command, save_dir / "train.log", append=True)
    with atomic_write(snapshot.with_suffix(".json")) as stream:  # the segment's peak memory, for the table
        json.dump({"train_peak_rss_mib": peak}, stream)
    partial = snapshot.with_name(snapshot.name + ".partial")
    shutil.copyfile(save_dir / "checkpoint_last.pt", partial)
    os.replace(partial, snapshot)
    return snapshot


def decode(system: str, checkpoint: Path, data: Path, split: str, name: str, args: argparse.Namespace,
           options: list | None = None) -> Path:
    """fairseq-generate's output of the system's decoder (or ``options``) on ``split`` of ``data``, named
    ``name`` beside the checkpoint (decoded unless kept)."""
    output = checkpoint.with_name(f"{checkpoint.stem}.generate-{name}.txt")
    if not output.exists():
        options = DECODERS[CURVE_DECODERS[system]].options if options is None else options
        command = generate_command(recipe_of(system), checkpoint, data, split, options, args)
        partial = output.with_name(output.name + ".partial")
        run_measured(command, partial)
        os.replace(partial, output)
    return output


def scored(output: Path, references: list[str]) -> dict:
    """sacreBLEU of a fairseq-generate output and its decoding speed; its hypotheses under "hypotheses"."""
    hypotheses = read_hypotheses(output, prefix="D")
    if len(hypotheses) != len(references):
        raise InputError(f"{output}: {len(hypotheses)} hypotheses for {len(references)} references")
    speed = SPEED_PATTERN.search(output.read_text(encoding="utf-8"))
    sentences, _, seconds = (float(group.replace(",", "")) for group in speed.groups()) if speed else (0, 0, 0)
    return {"sentences": len(hypotheses), "sentences_per_second": sentences / seconds if seconds else None,
            "hypotheses": hypotheses, **corpus_bleu(hypotheses, references)}


def ratio(value: float | None, baseline: float | None) -> float | None:
    return None if value is None or not baseline else value / baseline


def sentencepiece_model(data: Path) -> Path:
    """The sentencepiece model named by the data dir's manifest (a relative path: from the repository root)."""
    spm_model = Path((read_manifest(data) or {}).get("sentencepiece_model") or "")
    return spm_model if spm_model.is_absolute() or spm_model.is_file() else REPO_ROOT / spm_model


def charged(point: dict, start: dict) -> dict:
    """A warm-started run's curve point with the AR's training up to ``start`` (its point at the warm start)
    added to its updates and training minutes; its own are kept as ``own_updates``, ``own_training_minutes``."""
    return {**point, "updates": start["updates"] + point["updates"],
            "training_minutes": start["training_minutes"] + point["training_minutes"],
            "own_updates": point["updates"], "own_training_minutes": point["training_minutes"]}


def ar_at(minutes: float) -> str:
    """The name of the AR system's row at ``minutes`` (the warm-started DiffusER's own-time comparison)."""
    return f"{BASELINE} at {minutes:g} min"


def at_budget(series: dict[str, list[dict]], times: list[float], args: argparse.Namespace) -> tuple[dict, list]:
    """{system: figures of its last checkpoint, also as ratios to the AR run} and the COMPARISONS' paired
    bootstrap tests, on ``--test-subset``; with the warm-started DiffusER also the AR's checkpoint at the
    warm-started run's own training time, and both comparisons of it."""
    references = read_lines(args.test_reference, allow_empty_lines=False)
    decoded = {}  # row name: (system, curve minutes, fairseq-generate output)
    for system, points in series.items():
        decoded[system] = (system, times[-1], decode(system, Path(points[-1]["checkpoint"]), args.data,
                                                     args.test_subset, args.test_subset, args))
    comparisons = list(COMPARISONS)
    if WARM in series:
        own = own_minutes(WARM, times[-1], args)
        decoded[ar_at(own)] = (BASELINE, own, decode(BASELINE, snapshot_path(args.work_dir / BASELINE, own),
                                                     args.data, args.test_subset, args.test_subset, args))
        comparisons += [(WARM, BASELINE), (WARM, ar_at(own)), (bootstrap_of(WARM), BASELINE)]
    options = [option.format(ar_output=decoded[BASELINE][2], spm_model=sentencepiece_model(args.data)) for option in
               [*DECODERS[CURVE_DECODERS["diffuser"]].options, *BOOTSTRAP_OPTIONS]]
    for system in ("diffuser", WARM):
        if system in series:
            decoded[bootstrap_of(system)] = (system, times[-1], decode(
                system, Path(series[system][-1]["checkpoint"]), args.data, args.test_subset,
                f"{args.test_subset}-ar-bootstrap", args, options))
    figures, hypotheses = {}, {}
    for name, (system, minutes, output) in decoded.items():
        score, training = scored(output, references), snapshot_training(args.work_dir / system, minutes)
        hypotheses[name] = score.pop("hypotheses")
        point = next(point for point in series[system] if point["minutes"] == minutes)
        figures[name] = {"system": system, "minutes": minutes, "test_bleu": score["bleu"],
                         "sentences": score["sentences"], "sentences_per_second": score["sentences_per_second"],
                         "updates": point["updates"],
                         **{key: training[key] for key in ("train_tokens_per_second", "train_peak_rss_mib")}}
    base = figures[BASELINE]
    for row in figures.values():
        for key in ("sentences_per_second", "updates", "train_tokens_per_second", "train_peak_rss_mib"):
            row[f"{key}_x_ar"] = ratio(row[key], base[key])
    tests = []
    for system, baseline in comparisons:
        if system in hypotheses and baseline in hypotheses:
            test = paired_bootstrap(hypotheses[baseline], hypotheses[system], references, seed=args.seed)
            tests.append({"system": system, "baseline": baseline, "bleu": test["bleu"],
                          "baseline_bleu": test["baseline_bleu"], "difference": test["bleu"] - test["baseline_bleu"],
                          "ci": test["ci"], "baseline_ci": test["baseline_ci"], "p_value": test["p_value"]})
    return figures, tests


def binarize_out_of_domain(args: argparse.Namespace) -> Path:
    """WORK_DIR/ood/bin: the out-of-domain pair as a test split, encoded with the data's sentencepiece model and
    binarized with its dictionaries (made once)."""
    bin_dir = args.work_dir / "ood" / "bin"
    if (bin_dir / "manifest.json").exists():
        return bin_dir
    pieces = load_sentencepiece(sentencepiece_model(args.data))
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
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # importing fairseq leaves the root logger at DEBUG
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
        bleu = {point["minutes"]: f"{point['valid_bleu']:.2f}" for point in points}
        lines.append(f"| {system} | " + " | ".join(bleu.get(m, "") for m in results["snapshot_minutes"])
                     + f" | {points[-1]['updates']} | {'not reached' if reach is None else f'{reach:.1f}'} |")
    lines += ["", f"At the budget ({results['minutes']:g} minutes), the last checkpoints on the "
              f"{results['test_subset']} split; x AR: the ratio to the transformer's figure.", "",
              *warm_start_note(results),
              "| system | test BLEU | sentences/s | x AR | updates | x AR | train tokens/s | x AR "
              "| peak train MiB | x AR |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in results["at_budget"].items():
        cells = [f"{row['test_bleu']:.2f}"]
        for key, spec in (("sentences_per_second", ".1f"), ("updates", "d"), ("train_tokens_per_second", ".0f"),
                          ("train_peak_rss_mib", "d")):
            ratio = row[f"{key}_x_ar"]
            cells += ["n/a" if row[key] is None else format(row[key], spec),
                      "n/a" if ratio is None else f"{ratio:.2f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if results["significance"]:
        lines += ["", "| comparison (paired bootstrap, 1,000 samples) | BLEU | baseline | difference | p |",
                  "|---|---|---|---|---|"]
        lines += [f"| {test['system']} vs {test['baseline']} | {test['bleu']:.2f} (+-{test['ci']:.2f}) | "
                  f"{test['baseline_bleu']:.2f} (+-{test['baseline_ci']:.2f}) | {test['difference']:+.2f} | "
                  f"{test['p_value']:.4f} |" for test in results["significance"]]
    if results["out_of_domain"]:
        lines += ["", f"Out of domain ({results['out_of_domain_source']}), the last checkpoints:", "",
                  "| system | BLEU | sentences |", "|---|---|---|"]
        lines += [f"| {system} | {score['bleu']:.2f} | {score['sentences']} |"
                  for system, score in results["out_of_domain"].items()]
    lines += ["", f"sacreBLEU signature: {results['signature']}"]
    return "\n".join(lines) + "\n"


def warm_start_note(results: dict) -> list[str]:
    """The lines that say how the warm-started DiffusER is counted (none without it)."""
    warm = results.get("warm_start_minutes")
    if not warm:
        return []
    own = results["minutes"] - warm
    return [f"{WARM}: DiffusER whose generator starts from the {BASELINE}'s {warm:g}-minute checkpoint; its minutes "
            f"and updates include those of the {BASELINE} (charged). {ar_at(own)}: the {BASELINE} after the "
            f"{own:g} minutes the warm-started run trained itself (not charged).", ""]


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        references = read_lines(args.valid_reference, allow_empty_lines=False)
        times = snapshot_minutes(args.minutes, args.interval)
        series, signature, sentences = {system: [] for system in args.systems}, None, 0
        for minutes in tqdm(times, desc="training minutes"):  # round-robin: a slower spell hits every system
            for system in tqdm(args.systems, desc=f"{minutes:g} min", leave=False):
                if own_minutes(system, minutes, args) <= 0:
                    continue  # the warm start is later
                checkpoint = train_until(system, minutes, args)
                score = scored(decode(system, checkpoint, args.data, args.valid_subset, args.valid_subset, args),
                               references)
                signature, sentences = score["signature"], score["sentences"]
                point = {"minutes": minutes, **progress_of(checkpoint), "valid_bleu": score["bleu"],
                         "checkpoint": str(checkpoint)}
                if system == WARM:
                    start = next(p for p in series[BASELINE] if p["minutes"] == args.warm_start_minutes)
                    point = charged(point, start)
                series[system].append(point)
        budget, significance = at_budget(series, times, args)
        out_of_domain = {}
        if not (args.ood_source.is_file() and args.ood_reference.is_file()):
            print(f"out of domain: {args.ood_source} or {args.ood_reference} absent, not decoded", file=sys.stderr)
        else:
            ood_data, ood_references = binarize_out_of_domain(args), read_lines(args.ood_reference)
            for system, points in series.items():
                score = scored(decode(system, Path(points[-1]["checkpoint"]), ood_data, "test", "ood", args),
                               ood_references)
                out_of_domain[system] = {"bleu": score["bleu"], "sentences": score["sentences"],
                                         "minutes": points[-1]["minutes"]}
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    bar = bleu_at(series[BASELINE], args.bar_minutes)
    results = {"command": command_line("benchmarks/learning_curves.py", argv),
               "machine": machine(), "minutes": args.minutes, "interval": args.interval,
               "snapshot_minutes": times, "bar_minutes": args.bar_minutes, "bar": bar, "size": args.size,
               "warm_start_minutes": args.warm_start_minutes,
               "max_tokens": args.max_tokens, "valid_subset": args.valid_subset, "valid_sentences": sentences,
               "series": series, "signature": signature, "test_subset": args.test_subset, "at_budget": budget,
               "significance": significance, "out_of_domain": out_of_domain,
               "out_of_domain_source": args.ood_source.name if out_of_domain else None,
               "minutes_to_reach": {system: None if bar is None else minutes_to_reach(points, bar)
                                    for system, points in series.items()}}
    write_results(args.out, results, markdown(results))
    plot(series, args.out.with_suffix(".png"), bar)
    return 0


if __name__ == "__main__":
    sys.exit(main())
