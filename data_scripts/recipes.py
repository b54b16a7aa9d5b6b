"""One recipe per system: the fairseq-train arguments that say what is trained and how it is optimized.

A recipe is a system's task, arch, criterion and their own options, its optimizer, learning-rate schedule and
batch size; the size class (``tiny`` for tests, ``small`` for CPU runs) picks the arch. What a run spends and
where it writes (minutes, --max-update, --save-dir, seed, workers, logging) stays with the caller;
``run_arguments`` is the form the training scripts and ``benchmarks/compare_systems.py`` share.

Every script that trains a system reads its recipe here: ``data_scripts/ar_baseline.py``, ``train_diffuser.py``
and ``train_diffusion_baseline.py`` (and ``ar_bootstrap.py`` through the first two),
``benchmarks/compare_systems.py`` and ``benchmarks/train_throughput.py``.

A variant is one more entry of ``RECIPES``, derived from the recipe it changes, e.g.

    "diffuser_shared_encoder": DIFFUSER.with_options({"--share-encoder": True}),
    "diffuser_wide": dataclasses.replace(DIFFUSER, arch="diffuser_wide_{size}", lr=5e-4),

``train_diffuser.py --recipe NAME`` (and ``ar_bootstrap.py --diffuser-recipe NAME``) trains any entry whose
task is ``diffuser``; ``compare_systems.py --systems NAME`` trains any entry and decodes it with the
``DECODERS`` rows of that name. ``with_options`` also adds arguments on the fly.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from data_scripts.fairseq_tools import USER_DIR

SIZES = ("small", "tiny")
# warm-up of a DiffusER warm-started from an AR checkpoint: its generator is trained already, its tagger is new and
# learns little in a 400-update ramp (300 updates on the default corpus: random-start greedy BLEU 4.21 with 400,
# 4.74 with 50, p 0.04; benchmarks/README.md, "Noise schedule, repetition noise and the warm start's warm-up")
WARM_START_WARMUP_UPDATES = 50
# every recipe's batch size in tokens, and the benchmarks' one batch size for all systems
MAX_TOKENS = 4096

OptionValue = Union[str, int, float, bool]


@dataclass(frozen=True)
class Recipe:
    """The fairseq-train arguments of one system, without the budget; ``arguments(size)`` renders them."""

    task: str = field(metadata={"help": "fairseq task of training; fairseq-generate decodes with it too"})
    arch: str = field(metadata={"help": "fairseq arch; {size} stands for the size class (small or tiny)"})
    criterion: str = field(metadata={"help": "fairseq criterion"})
    options: dict[str, OptionValue] = field(
        default_factory=dict,
        metadata={"help": "the task's, model's and criterion's own options, in order: option -> value, True for "
                          "a flag"})
    optimizer: str = field(default="adam", metadata={"help": "fairseq optimizer"})
    adam_betas: str = field(default="(0.9, 0.98)", metadata={"help": "Adam's (beta1, beta2)"})
    clip_norm: float = field(default=0.0, metadata={"help": "gradient norm clipping (0: none)"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate"})
    lr_scheduler: str = field(default="inverse_sqrt", metadata={"help": "fairseq learning-rate scheduler"})
    warmup_updates: int = field(default=400, metadata={"help": "linear warm-up to --lr over this many updates"})
    max_tokens: int = field(default=MAX_TOKENS, metadata={"help": "batch size in tokens"})

    def with_options(self, options: dict[str, OptionValue | None]) -> Recipe:
        """This recipe with ``options`` set: a new value replaces the old one in place, a new option comes last,
        None removes an option."""
        merged = {**self.options, **options}
        return dataclasses.replace(self, options={key: value for key, value in merged.items() if value is not None})

    def warm_started(self, checkpoint) -> Recipe:
        """This DiffusER recipe with its generator and encoder started from an AR transformer's ``checkpoint``
        (``--init-generator-from``) and the short warm-up of a warm start (``WARM_START_WARMUP_UPDATES``)."""
        return dataclasses.replace(self.with_options({"--init-generator-from": str(checkpoint)}),
                                   warmup_updates=WARM_START_WARMUP_UPDATES)

    def arguments(self, size: str) -> list[str]:
        """The fairseq-train arguments of the size class (no data, user dir or budget)."""
        if size not in SIZES:
            raise ValueError(f"size class {size!r} is not one of {', '.join(SIZES)}")
        own = [item for key, value in self.options.items() for item in ([key] if value is True else [key, value])]
        return list(map(str, [
            "--task", self.task, "--arch", self.arch.format(size=size), "--criterion", self.criterion, *own,
            "--optimizer", self.optimizer, "--adam-betas", self.adam_betas, "--clip-norm", self.clip_norm,
            "--lr", self.lr, "--lr-scheduler", self.lr_scheduler, "--warmup-updates", self.warmup_updates,
            "--max-tokens", self.max_tokens,
        ]))

    def train_arguments(self, data: Path, size: str) -> list[str]:
        """``arguments(size)`` after the data dir and the plugins' --user-dir: fairseq-train's command line up to
        the caller's budget."""
        return [str(data), "--user-dir", str(USER_DIR), *self.arguments(size)]


TRANSFORMER = Recipe("translation", "transformer_cpu_{size}", "label_smoothed_cross_entropy",
                     {"--share-all-embeddings": True, "--label-smoothing": 0.1})
LEVENSHTEIN_TRANSFORMER = Recipe("translation_lev", "levenshtein_transformer_cpu_{size}", "nat_loss",
                                 {"--noise": "random_delete", "--share-all-embeddings": True,
                                  "--label-smoothing": 0.1})
DIFFUSER = Recipe("diffuser", "diffuser_{size}", "diffuser_loss")
DIFFUSEQ = Recipe("diffuseq", "diffuseq_{size}", "diffuseq_loss",
                  {"--num-diffusion-timesteps": 2000, "--sequence-length": 64,
                   "--skip-invalid-size-inputs-valid-test": True})
D3PM = Recipe("d3pm", "d3pm_{size}", "d3pm_loss", {"--transition": "absorbing", "--num-diffusion-timesteps": 1000})

RECIPES = {
    "transformer": TRANSFORMER,
    "levenshtein_transformer": LEVENSHTEIN_TRANSFORMER,
    "diffuser": DIFFUSER,
    # half the examples trained again on the generator's own sampled fills (benchmarks/refinement.py measures it)
    "diffuser_rollin": DIFFUSER.with_options({"--rollin-prob": 0.5}),
    # the same with sparse errors: 15% of the fill tokens drawn, the others gold
    "diffuser_rollin_sparse": DIFFUSER.with_options({"--rollin-prob": 0.5, "--rollin-token-share": 0.15}),
    # half the examples trained again on one greedy decoding step of the model itself (LevT's roll-in): its own
    # missing, repeated and extra words, not only substitutions
    "diffuser_decoded_rollin": DIFFUSER.with_options({"--rollin-prob": 0.5, "--rollin-mode": "decoded"}),
    # half the examples CMLM-style masking (a few tokens rewritten in context), for --remask-share decoding
    "diffuser_masking": DIFFUSER.with_options({"--masking-prob": 0.5}),
    # the same with the replaced tokens visible to the generator and a fifth of the masked tokens unchanged, so
    # that it learns which of the tokens it re-edits are right
    "diffuser_visible": DIFFUSER.with_options({"--masking-prob": 0.5, "--masking-unchanged": 0.2,
                                               "--visible-replaced": True}),
    # the fill section read at the positions of the spans it fills (GLM's infilling positions)
    "diffuser_canvas": DIFFUSER.with_options({"--canvas-positions": True}),
    "diffuser_masking_canvas": DIFFUSER.with_options({"--masking-prob": 0.5, "--canvas-positions": True}),
    # with a warm start (--init-generator-from): the fill sentinels start as the transformer's start symbol
    "diffuser_canvas_eos": DIFFUSER.with_options({"--canvas-positions": True, "--init-sentinels-as-eos": True}),
    # replace/insert noise and random starts drawn by the corpus' token frequencies: plausible wrong words
    "diffuser_unigram": DIFFUSER.with_options({"--noise-distribution": "unigram"}),
    # with a warm start (--init-generator-from): the tagger's decoder layer also starts from the transformer's
    "diffuser_tagger_init": DIFFUSER.with_options({"--init-tagger-from-generator": True}),
    # the linear noise schedule: training also shows lightly corrupted sentences (one or two wrong words), the
    # state a later decoding step or a post-editor starts from
    "diffuser_linear": DIFFUSER.with_options({"--noise-schedule": "linear"}),
    "diffuser_linear_canvas": DIFFUSER.with_options({"--noise-schedule": "linear", "--canvas-positions": True}),
    # the same with noise drawn by the corpus' token frequencies: plausible wrong words, harder to spot
    "diffuser_linear_unigram": DIFFUSER.with_options({"--noise-schedule": "linear", "--noise-distribution": "unigram"}),
    # the same with a third of the noise spans repeating the tokens before them (a weak generator's repetitions)
    "diffuser_linear_repeat": DIFFUSER.with_options({"--noise-schedule": "linear", "--repetition-noise": 0.3}),
    "diffuseq": DIFFUSEQ,
    "d3pm": D3PM,
}
# the systems the benchmarks compare (RECIPES may hold variants beyond them)
SYSTEMS = ("transformer", "levenshtein_transformer", "diffuser", "diffuseq", "d3pm")


def run_arguments(save_dir: Path, minutes: float, seed: int, num_workers: int, max_update: int = 0) -> list[str]:
    """A wall-clock budget (fairseq's --stop-time-hours, which counts the time of earlier runs in ``save_dir``:
    re-running a finished run stops at once) or ``max_update`` updates (0: no limit), last and best checkpoints
    only, CPU, a simple log line every 20 updates."""
    return list(map(str, [
        "--stop-time-hours", minutes / 60, "--max-update", max_update, "--seed", seed, "--num-workers", num_workers,
        "--save-dir", save_dir, "--no-epoch-checkpoints", "--cpu", "--log-format", "simple", "--log-interval", 20,
        # no background prefetch thread (the data-loader workers prefetch): fairseq's thread is still alive
        # when a re-run of a finished budget exits at once, and the interpreter then aborts (exit status 134)
        "--data-buffer-size", 0,
    ]))


def add_training_arguments(parser: argparse.ArgumentParser, save_dir: str, save_dir_help: str,
                           arch_help: str) -> None:
    """The options the training scripts share: data, references, save dir, size class, budget, seed, and the
    recipe's learning rate, warm-up and batch size (each the recipe's unless given)."""
    parser.add_argument("--data", type=Path, default=Path("data-bin/ding.en-de"), help="binarized data dir")
    parser.add_argument("--reference", type=Path, default=Path("data/ding/test.de"),
                        help="raw (detokenized) reference text of the test split")
    parser.add_argument("--save-dir", type=Path, default=Path(save_dir), help=save_dir_help)
    parser.add_argument("--model-size", choices=SIZES, default="small", help=arch_help)
    parser.add_argument("--minutes", type=float, default=15.0, help="training wall-clock budget")
    parser.add_argument("--max-update", type=int, default=0, help="stop after this many updates (0: no limit)")
    parser.add_argument("--max-tokens", type=int, help=f"tokens per batch (default: the recipe's, {MAX_TOKENS})")
    parser.add_argument("--lr", type=float, help=f"peak learning rate (default: the recipe's, {Recipe.lr})")
    parser.add_argument("--warmup-updates", type=int,
                        help=f"warm-up updates (default: the recipe's, {Recipe.warmup_updates})")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--num-workers", type=int, default=1, help="data-loader workers")


# option names stay out of it: tests/test_doc_commands.py reads a script's options off its --help
FAIRSEQ_PASSTHROUGH_HELP = """\
Arguments after a lone -- go to fairseq-train as they are, after the recipe's
and the budget's; fairseq keeps an option's last value, so they override both
(a higher dropout, early stopping by patience, checkpoint_best.pt chosen by
another valid metric). fairseq-train refuses an option it does not know."""


def parse_training_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser``'s options before a lone ``--``; the arguments after it are ``args.fairseq_args``, which
    ``training_command`` passes to fairseq-train last (``FAIRSEQ_PASSTHROUGH_HELP``, the --help epilog)."""
    parser.epilog = FAIRSEQ_PASSTHROUGH_HELP
    argv = sys.argv[1:] if argv is None else list(map(str, argv))
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    args.fairseq_args = argv[cut + 1:]
    return args


def training_command(recipe: Recipe, args: argparse.Namespace) -> list[str]:
    """fairseq-train's arguments for the options of ``add_training_arguments``: the recipe at ``--model-size``,
    with ``--lr``, ``--warmup-updates`` and ``--max-tokens`` where given, the scripts' budget, and last the
    arguments given after ``--`` (``parse_training_args``)."""
    given = {name: getattr(args, name) for name in ("lr", "warmup_updates", "max_tokens")
             if getattr(args, name) is not None}
    return [*dataclasses.replace(recipe, **given).train_arguments(args.data, args.model_size),
            *run_arguments(args.save_dir, args.minutes, args.seed, args.num_workers, args.max_update),
            *args.fairseq_args]
