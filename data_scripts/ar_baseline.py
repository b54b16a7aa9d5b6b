#!/usr/bin/env python
"""The autoregressive baseline: fairseq's ``transformer`` trained, decoded with beam 5, scored.

    python data_scripts/ar_baseline.py --data data-bin/ding.en-de --minutes 15

1. ``fairseq-train --user-dir fairseq_plugins --arch transformer`` with the transformer's recipe
   (``data_scripts/recipes.py``) at a CPU size class, for a bounded wall-clock time (``--minutes``; fairseq's
   ``--stop-time-hours``) or number of updates. Re-running with the same
   ``--save-dir`` resumes from its last checkpoint, so a finished run is reused.
2. ``fairseq-generate`` with beam 5 on the test split, subwords removed with
   ``--post-process sentencepiece``, the length cap of DiffusER's decoder (1.2 x source + 10); the full
   output is kept in ``generate-test.txt``.
3. The hypotheses, in corpus order, scored with sacreBLEU against the raw
   reference text; the score and its signature are printed and written to
   ``results.json`` in the save dir.

The hypotheses file is the input of DiffusER's AR bootstrap (``--init-mode file``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: the imports below need it (noqa: E402)

from data_scripts.fairseq_tools import USER_DIR, generate_hypotheses, run_fairseq, write_scores  # noqa: E402
from data_scripts.recipes import TRANSFORMER, add_training_arguments, parse_training_args, training_command  # noqa: E402
from diffuser_mt.metrics import corpus_bleu  # noqa: E402
from diffuser_mt.textio import InputError, atomic_write, read_lines  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_arguments(parser, "checkpoints/ar_baseline",
                           "checkpoints, generate output, hypotheses and results.json",
                           "fairseq arch transformer_cpu_small (3+3 layers, d 256) or transformer_cpu_tiny (tests)")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--max-len-a", type=float, default=1.2,
                        help="length cap a * source length + b, as DiffusER's decoder and the benchmarks cut theirs: "
                             "a post-editor started from these hypotheses then cuts none of them (a cut alone "
                             "raises the BLEU of run-away outputs)")
    parser.add_argument("--max-len-b", type=int, default=10, help="length cap: a * source length + b")
    return parse_training_args(parser, argv)


def train_command(args: argparse.Namespace) -> list[str]:
    return training_command(TRANSFORMER, args)


def generate_command(args: argparse.Namespace) -> list:
    return [
        args.data, "--user-dir", USER_DIR, "--task", "translation", "--gen-subset", "test",
        "--path", args.save_dir / "checkpoint_best.pt", "--beam", args.beam,
        "--post-process", "sentencepiece", "--batch-size", 64, "--cpu", "--seed", args.seed,
        "--max-len-a", args.max_len_a, "--max-len-b", args.max_len_b,
        # fairseq-generate silently skips the last sentences when the set is not a multiple of
        # --required-batch-size-multiple (default 8): 496 of 500 valid sentences were decoded
        "--required-batch-size-multiple", 1,
    ]


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        references = read_lines(args.reference, allow_empty_lines=False)
        run_fairseq("fairseq-train", train_command(args))
        hypotheses = generate_hypotheses(generate_command(args), args.save_dir / "generate-test.txt", args.reference,
                                         references)
        with atomic_write(args.save_dir / "hypotheses.test.de") as out:
            out.writelines(h + "\n" for h in hypotheses)
        score = corpus_bleu(hypotheses, references)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    write_scores(args.save_dir / "results.json",
                 {"system": "transformer", "model_size": args.model_size, "beam": args.beam, **score},
                 f"AR transformer ({args.model_size}, beam {args.beam})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
