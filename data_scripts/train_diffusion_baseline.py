#!/usr/bin/env python
"""A diffusion baseline (D3PM or DiffuSeq) on a binarized corpus: train, decode the test split, score.

    python data_scripts/train_diffusion_baseline.py --method d3pm --minutes 15

1. ``fairseq-train --user-dir fairseq_plugins --task METHOD --arch METHOD_small --criterion METHOD_loss``: the
   method's recipe (``data_scripts/recipes.py``) with the options below, for a wall-clock budget (``--minutes``;
   fairseq's ``--stop-time-hours`` counts the time of earlier runs in the same ``--save-dir``, so re-running a
   finished run only decodes again) or a number of updates;
2. ``fairseq-generate --task METHOD`` on the test split (output in ``SAVE_DIR/generate-test.txt``);
3. sacreBLEU of the detokenized hypotheses against the raw references, printed with its signature and
   written to ``SAVE_DIR/results.json``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: the imports below need it (noqa: E402)

from data_scripts.fairseq_tools import USER_DIR, generate_hypotheses, run_fairseq, write_scores  # noqa: E402
from data_scripts.recipes import (D3PM, DIFFUSEQ, RECIPES, add_training_arguments, parse_training_args,  # noqa: E402
                                  training_command)
from diffuser_mt.d3pm_sampling import DECODING_MODES  # noqa: E402
from diffuser_mt.d3pm_transitions import TRANSITIONS  # noqa: E402
from diffuser_mt.metrics import corpus_bleu  # noqa: E402
from diffuser_mt.textio import InputError, read_lines  # noqa: E402

METHODS = ("d3pm", "diffuseq")
# reverse steps when decoding, per method (the scripts' defaults when not given)
DEFAULT_DECODE_STEPS = {"d3pm": 20, "diffuseq": 200}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=METHODS, required=True, help="which diffusion model")
    add_training_arguments(parser, "", "checkpoints, generate output and results (default: checkpoints/METHOD)",
                           "arch METHOD_small (3+3 layers, d 256) or METHOD_tiny (tests)")
    parser.add_argument("--spm-model", type=Path, default=Path("data/ding/spm.model"),
                        help="sentencepiece model of the data (detokenizes the output)")
    parser.add_argument("--diffusion-steps", type=int,
                        help="T, the length of the forward chain (default: the recipe's, d3pm "
                             f"{D3PM.options['--num-diffusion-timesteps']}, diffuseq "
                             f"{DIFFUSEQ.options['--num-diffusion-timesteps']})")
    parser.add_argument("--decode-steps", type=int,
                        help="reverse steps when decoding, <= T (default: d3pm 20, diffuseq 200)")
    parser.add_argument("--transition", choices=TRANSITIONS, default=D3PM.options["--transition"],
                        help="d3pm: forward process")
    parser.add_argument("--decoding", choices=DECODING_MODES, default="argmax", help="d3pm: argmax or sample")
    parser.add_argument("--sequence-length", type=int, default=DIFFUSEQ.options["--sequence-length"],
                        help="diffuseq: tokens of the joint sequence x </s> y </s> ... (longer sources are skipped "
                             "in training and refused in decoding)")
    parser.add_argument("--mbr-samples", type=int, default=1, help="diffuseq: samples per sentence for MBR")
    parser.add_argument("--clamping", choices=("on", "off"), default="on", help="diffuseq: the clamping trick")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per decoding batch")
    parser.add_argument("--max-len-a", type=float, default=1.2, help="length cap: a * source length + b")
    parser.add_argument("--max-len-b", type=int, default=10, help="length cap: a * source length + b")
    args = parse_training_args(parser, argv)
    if args.save_dir == Path(""):
        args.save_dir = Path("checkpoints") / args.method
    args.diffusion_steps = args.diffusion_steps or RECIPES[args.method].options["--num-diffusion-timesteps"]
    args.decode_steps = args.decode_steps or DEFAULT_DECODE_STEPS[args.method]
    return args


def train_command(args: argparse.Namespace) -> list[str]:
    """The method's recipe with T and the method's options of the command line."""
    method_options = {
        "d3pm": {"--transition": args.transition},
        "diffuseq": {"--sequence-length": args.sequence_length},
    }[args.method]
    recipe = RECIPES[args.method].with_options({"--num-diffusion-timesteps": args.diffusion_steps, **method_options})
    return training_command(recipe, args)


def generate_command(args: argparse.Namespace, checkpoint: Path) -> list:
    method_options = {
        "d3pm": ["--decode-steps", args.decode_steps, "--d3pm-decoding", args.decoding],
        "diffuseq": ["--decode-steps", args.decode_steps, "--diffuseq-mbr-samples", args.mbr_samples,
                     "--diffuseq-clamping", args.clamping],
    }[args.method]
    return [args.data, "--user-dir", USER_DIR, "--task", args.method, "--gen-subset", "test", "--path", checkpoint,
            *method_options, "--max-len-a", args.max_len_a, "--max-len-b", args.max_len_b,
            "--bpe", "sentencepiece", "--sentencepiece-model", args.spm_model,
            "--batch-size", args.batch_size, "--required-batch-size-multiple", 1, "--cpu", "--seed", args.seed]


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        references = read_lines(args.reference, allow_empty_lines=False)
        run_fairseq("fairseq-train", train_command(args))
        output = args.save_dir / "generate-test.txt"
        hypotheses = generate_hypotheses(generate_command(args, args.save_dir / "checkpoint_best.pt"), output,
                                         args.reference, references)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    results = {"system": args.method, "model_size": args.model_size, "decode_steps": args.decode_steps,
               "generate_output": str(output), **corpus_bleu(hypotheses, references)}
    if args.method == "d3pm":
        results.update(transition=args.transition, decoding=args.decoding, diffusion_steps=args.diffusion_steps)
    if args.method == "diffuseq":
        results.update(diffusion_steps=args.diffusion_steps, sequence_length=args.sequence_length,
                       mbr_samples=args.mbr_samples, clamping=args.clamping)
    write_scores(args.save_dir / "results.json", results,
                 f"{args.method} ({args.model_size}, {args.decode_steps} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
