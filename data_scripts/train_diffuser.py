#!/usr/bin/env python
"""DiffusER on a binarized corpus: train ``diffuser_*``, decode the test split, score with sacreBLEU.

    python data_scripts/train_diffuser.py --data data-bin/ding.en-de --minutes 15

1. ``fairseq-train --user-dir fairseq_plugins --task diffuser --arch diffuser_small`` with
   DiffusER's recipe or a variant's (``--recipe``, ``data_scripts/recipes.py``), for a
   wall-clock budget (``--minutes``, fairseq's ``--stop-time-hours``, which counts the
   time of earlier runs in the same ``--save-dir``: re-running a finished run only
   decodes again) or a number of updates.
2. ``fairseq-generate --task diffuser`` of ``checkpoint_best.pt`` (``checkpoint_last.pt``
   where fairseq wrote no best) on the test split with the edit decoder
   (start state, steps and searches as options), with ``--print-edit-history``
   so ``diffuser-mt trace`` can show the edits; output in
   ``SAVE_DIR/generate-test.NAME.txt``.
3. sacreBLEU of the detokenized hypotheses against the raw references; printed
   with its signature and written to ``SAVE_DIR/results.NAME.json``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: the imports below need it (noqa: E402)

from data_scripts.fairseq_tools import USER_DIR, generate_hypotheses, run_fairseq, write_scores  # noqa: E402
from data_scripts.recipes import RECIPES, add_training_arguments, parse_training_args, training_command  # noqa: E402
from diffuser_mt.metrics import corpus_bleu  # noqa: E402
from diffuser_mt.start_states import START_MODES  # noqa: E402
from diffuser_mt.textio import InputError, read_lines  # noqa: E402

# the recipes this script trains: DiffusER and its variants
DIFFUSER_RECIPES = [name for name, recipe in RECIPES.items() if recipe.task == "diffuser"]


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decode-steps", type=int, default=12, help="reverse steps of the edit decoder")
    parser.add_argument("--init-mode", choices=START_MODES, default="random", help="start state x_T")
    parser.add_argument("--init-file", type=Path, help="hypotheses for --init-mode file")
    parser.add_argument("--token-beam", type=int, default=1, help="token beam b (1 = greedy)")
    parser.add_argument("--revision-beam", type=int, default=1, help="revision beam r (> 1: 2D beam)")
    parser.add_argument("--nucleus-p", type=float, default=0.0, help="nucleus sampling of fill tokens (0 = off)")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per decoding batch")
    parser.add_argument("--max-len-a", type=float, default=1.2, help="length cap: a * source length + b")
    parser.add_argument("--max-len-b", type=int, default=10, help="length cap: a * source length + b")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_arguments(parser, "checkpoints/diffuser", "checkpoints, generate outputs and results",
                           "arch diffuser_small (3+3 layers, d 256, per model) or diffuser_tiny (tests)")
    parser.add_argument("--recipe", choices=DIFFUSER_RECIPES, default="diffuser",
                        help="DiffusER's recipe or a variant's (data_scripts/recipes.py)")
    parser.add_argument("--spm-model", type=Path, default=Path("data/ding/spm.model"),
                        help="sentencepiece model of the data (detokenizes the output, encodes --init-file)")
    parser.add_argument("--init-generator-from", type=Path, metavar="CKPT",
                        help="warm start: the generator (and shared encoder) from this fairseq transformer checkpoint "
                             "of the generator's size, trained on --data (e.g. ar_baseline.py's checkpoint_best.pt)")
    parser.add_argument("--name", default="greedy", help="names this decoding's output and results files")
    add_decoding_arguments(parser)
    return parse_training_args(parser, argv)


def train_command(args: argparse.Namespace) -> list[str]:
    recipe = RECIPES[args.recipe]
    if args.init_generator_from is not None:
        recipe = recipe.warm_started(args.init_generator_from)
    return training_command(recipe, args)


def generate_command(args: argparse.Namespace, checkpoint: Path) -> list:
    command = [
        args.data, "--user-dir", USER_DIR, "--task", "diffuser", "--gen-subset", "test", "--path", checkpoint,
        "--decode-steps", args.decode_steps, "--init-mode", args.init_mode,
        "--token-beam", args.token_beam, "--revision-beam", args.revision_beam, "--nucleus-p", args.nucleus_p,
        "--max-len-a", args.max_len_a, "--max-len-b", args.max_len_b,
        "--print-edit-history", "--bpe", "sentencepiece", "--sentencepiece-model", args.spm_model,
        "--batch-size", args.batch_size, "--required-batch-size-multiple", 1, "--cpu", "--seed", args.seed,
    ]
    if args.init_file is not None:
        command += ["--init-file", args.init_file, "--init-spm-model", args.spm_model]
    return command


def decode_and_score(args: argparse.Namespace, checkpoint: Path, references: list[str]) -> None:
    """fairseq-generate with the edit decoder; the scores written to results.NAME.json and printed."""
    output = args.save_dir / f"generate-test.{args.name}.txt"
    hypotheses = generate_hypotheses(generate_command(args, checkpoint), output, args.reference, references)
    score = corpus_bleu(hypotheses, references)
    results = {"system": "diffuser", "recipe": args.recipe, "model_size": args.model_size, "decoding": args.name,
               "generator_initialised_from": args.init_generator_from and str(args.init_generator_from),
               "decode_steps": args.decode_steps, "init_mode": args.init_mode, "token_beam": args.token_beam,
               "revision_beam": args.revision_beam, "nucleus_p": args.nucleus_p, "generate_output": str(output),
               **score}
    write_scores(args.save_dir / f"results.{args.name}.json", results,
                 f"DiffusER ({args.model_size}, {args.name}, start {args.init_mode}, {args.decode_steps} steps)")


def checkpoint_to_decode(save_dir: Path) -> Path:
    """checkpoint_best.pt, or checkpoint_last.pt where fairseq wrote no best: a run restored from another
    (``--restore-file``, a ``--train-tagger-only`` stage) keeps that run's best valid score and writes a best
    checkpoint only when it beats it."""
    best = save_dir / "checkpoint_best.pt"
    return best if best.exists() else save_dir / "checkpoint_last.pt"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        references = read_lines(args.reference, allow_empty_lines=False)
        run_fairseq("fairseq-train", train_command(args))
        decode_and_score(args, checkpoint_to_decode(args.save_dir), references)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
