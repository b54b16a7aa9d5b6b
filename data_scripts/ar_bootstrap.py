#!/usr/bin/env python
"""AR alone vs DiffusER vs DiffusER + AR bootstrap, on one corpus, with edit traces (``make demo``).

    python data_scripts/ar_bootstrap.py --minutes 15 --traces 3 --html checkpoints/demo/trace.html

1. fairseq's ``transformer`` (``data_scripts/ar_baseline.py``): trained for
   ``--minutes``, or reused from ``--ar-dir`` when that run is finished; its
   beam-5 test output ``generate-test.txt`` is the AR system's hypotheses.
2. DiffusER ``diffuser_small`` (``data_scripts/train_diffuser.py``, DiffusER's recipe or
   ``--diffuser-recipe``): trained for the same ``--minutes``, decoded from random
   tokens (greedy, 12 steps). Its generator starts from the AR transformer of
   step 1 (``--init-generator-from``; ``--no-warm-start``: from scratch).
3. DiffusER again, starting from the AR hypotheses (``--init-mode file``).
4. A table of the three sacreBLEU scores (with the signature), written to
   ``OUT_DIR/results.json``; the edit traces of the first ``--traces`` test
   sentences of step 2 in the terminal and, with ``--html``, as one HTML page.

Finished training runs are reused: fairseq's ``--stop-time-hours`` counts the
time of earlier runs in a save dir, so re-running only decodes again.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: the imports below need it (noqa: E402)

from data_scripts import ar_baseline, train_diffuser  # noqa: E402
from data_scripts.fairseq_tools import INTERRUPTED_EXIT_STATUS  # noqa: E402
from data_scripts.recipes import SIZES  # noqa: E402
from diffuser_mt.textio import InputError, atomic_write, read_lines  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data-bin/ding.en-de"), help="binarized data dir")
    parser.add_argument("--reference", type=Path, default=Path("data/ding/test.de"), help="raw test references")
    parser.add_argument("--spm-model", type=Path, default=Path("data/ding/spm.model"), help="sentencepiece model")
    parser.add_argument("--ar-dir", type=Path, default=Path("checkpoints/ar_baseline"),
                        help="save dir of the AR transformer (trained here unless finished)")
    parser.add_argument("--diffuser-dir", type=Path, default=Path("checkpoints/diffuser"),
                        help="save dir of DiffusER (trained here unless finished)")
    parser.add_argument("--out-dir", type=Path, default=Path("checkpoints/demo"), help="results.json and traces")
    parser.add_argument("--model-size", choices=SIZES, default="small", help="size class of both models")
    parser.add_argument("--diffuser-recipe", choices=train_diffuser.DIFFUSER_RECIPES, default="diffuser",
                        help="DiffusER's recipe or a variant's (data_scripts/recipes.py)")
    parser.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=True,
                        help="start DiffusER's generator (and shared encoder) from the AR transformer just trained "
                             "(its checkpoint_best.pt), so DiffusER's budget includes the AR's training "
                             "(--no-warm-start: DiffusER from scratch)")
    parser.add_argument("--minutes", type=float, default=15.0, help="training wall-clock budget of each model")
    parser.add_argument("--max-update", type=int, default=0, help="also stop each training here (0: no limit)")
    parser.add_argument("--decode-steps", type=int, default=12, help="DiffusER's reverse steps")
    parser.add_argument("--traces", type=int, default=3, help="print the edit traces of this many test sentences")
    parser.add_argument("--html", type=Path, help="also write the traced sentences as one HTML page here")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--num-workers", type=int, default=1, help="data-loader workers")
    return parser.parse_args(argv)


def shared_options(args: argparse.Namespace) -> list[str]:
    return ["--data", args.data, "--reference", args.reference, "--model-size", args.model_size,
            "--minutes", args.minutes, "--max-update", args.max_update, "--seed", args.seed,
            "--num-workers", args.num_workers]


def diffuser_options(args: argparse.Namespace, name: str, *decoding) -> list[str]:
    warm_start = ["--init-generator-from", args.ar_dir / "checkpoint_best.pt"] if args.warm_start else []
    return [*shared_options(args), "--save-dir", args.diffuser_dir, "--recipe", args.diffuser_recipe, *warm_start,
            "--spm-model", args.spm_model, "--decode-steps", args.decode_steps, "--name", name, *decoding]


def run_step(title: str, main, options: list) -> None:
    print(f"\n=== {title} ===", flush=True)
    if main(list(map(str, options))) != 0:
        raise SystemExit(f"error: {title} failed (see above)")


def table(rows: list[tuple[str, dict]]) -> str:
    lines = ["| system | test BLEU |", "|---|---|"]
    lines += [f"| {name} | {result['bleu']:.2f} |" for name, result in rows]
    return "\n".join(lines) + f"\n\nsacreBLEU signature: {rows[0][1]['signature']}"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        read_lines(args.reference, allow_empty_lines=False)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    run_step("AR transformer: train, decode (beam 5), score", ar_baseline.main,
             [*shared_options(args), "--save-dir", args.ar_dir])
    run_step("DiffusER: train, decode from random tokens, score", train_diffuser.main,
             diffuser_options(args, "random-greedy"))
    run_step("DiffusER + AR bootstrap: decode from the AR hypotheses, score", train_diffuser.main,
             diffuser_options(args, "ar-bootstrap", "--init-mode", "file",
                              "--init-file", args.ar_dir / "generate-test.txt"))
    rows = [("fairseq transformer (AR), beam 5", json.loads((args.ar_dir / "results.json").read_text())),
            (f"DiffusER{' (warm-started from the AR)' if args.warm_start else ''}, random start, greedy, "
             f"{args.decode_steps} steps",
             json.loads((args.diffuser_dir / "results.random-greedy.json").read_text())),
            (f"DiffusER + AR bootstrap, greedy, {args.decode_steps} steps",
             json.loads((args.diffuser_dir / "results.ar-bootstrap.json").read_text()))]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out_dir / "results.json") as out:
        json.dump({name: result for name, result in rows}, out, indent=2)
    print("\n" + table(rows), flush=True)

    random_start_output = args.diffuser_dir / "generate-test.random-greedy.txt"
    if args.traces > 0:
        trace = [sys.executable, "-m", "diffuser_mt.cli", "trace", random_start_output,
                 "--first", max(args.traces, 0), "--color", "auto"]
        if args.html:
            trace += ["--html", args.html]
        print(f"\n=== edit traces of the first {args.traces} test sentences (DiffusER from random tokens) ===",
              flush=True)
        if subprocess.run(list(map(str, trace))).returncode != 0:
            return 1
        if args.html:
            print(f"HTML trace of these sentences: {args.html}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # between the fairseq runs (run_fairseq reports an interrupted one itself)
        print("error: interrupted (Ctrl-C); run the same command again to continue: finished runs are reused",
              file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_STATUS)
