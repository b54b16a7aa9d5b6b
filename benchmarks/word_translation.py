#!/usr/bin/env python
"""Does DiffusER refine where its generator knows the answer? A word-for-word translation check.

    .venv/bin/python benchmarks/word_translation.py --work-dir checkpoints/word_translation

On the default corpus a few hundred CPU updates give a generator that rarely
writes the right word, which hides whether the tagger learns to find errors.
This check removes that: a synthetic corpus in which target word i is a fixed
dictionary's translation of source word i (``--words`` words, 4-10 per
sentence), over a joined dictionary that also holds ``--unused`` symbols no
sentence uses, as a real vocabulary holds many that a given sentence does not
(so uniform corruption noise is almost never a plausible word). ``diffuser_tiny``
trains on it side by side, same seed and updates, once per training variant
(``VARIANTS``: corruption alone, the three roll-in modes, plausible noise by
the targets' token counts alone, with the linear schedule and with roll-in), and
each model is then measured:

* the step sweep: the test sources decoded from random starts with 1, 2, 4
  and 8 greedy steps (share of exact translations, token accuracy), and from
  an empty start (``--init-mode null``: the first step writes the whole
  sentence, as an AR model would) with 1 and 2 steps;
* post-editing: the test targets with one error (a word substituted by another
  target word, dropped, duplicated, or two neighbours swapped; seeded), decoded
  with ``--init-mode file`` for 2 steps: the share restored exactly, and left
  unchanged.

Figures go to ``benchmarks/results/word_translation.json`` and ``.md``;
trainings are reused on a re-run.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # a script: the imports below need it (noqa: E402)

from benchmarks.common import command_line, write_results  # noqa: E402
from data_scripts.fairseq_tools import USER_DIR, fairseq_executable, run_fairseq  # noqa: E402
from diffuser_mt.generation_output import read_hypotheses  # noqa: E402

VARIANTS = {"corruption": [], "rollin": ["--rollin-prob", "0.5"],
            "decoded_rollin": ["--rollin-prob", "0.5", "--rollin-mode", "decoded"],
            "sampled_step_rollin": ["--rollin-prob", "0.5", "--rollin-mode", "decoded_sampled"],
            "unigram": ["--noise-distribution", "unigram"],
            "linear_unigram": ["--noise-schedule", "linear", "--noise-distribution", "unigram"],
            "unigram_rollin": ["--noise-distribution", "unigram", "--rollin-prob", "0.5"]}
ERROR_KINDS = ("substitute", "drop", "duplicate", "swap")
SWEEP_STEPS = (1, 2, 4, 8)
EMPTY_START_STEPS = (1, 2)
TEST_PAIRS = 200


def build_corpus(out: Path, words: int, unused: int, train: int, seed: int = 0) -> Path:
    """Raw splits ``{train,valid,test}.{src,tgt}`` and fairseq's binarized ``out/bin`` (joined dictionary of
    s0.., t0.. and the unused u0..); returns ``out/bin``."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    dictionary = list(range(words))
    rng.shuffle(dictionary)
    for split, count in (("train", train), ("valid", 50), ("test", TEST_PAIRS)):
        sources = [[rng.randrange(words) for _ in range(rng.randint(4, 10))] for _ in range(count)]
        (out / f"{split}.src").write_text("".join(" ".join(f"s{k}" for k in s) + "\n" for s in sources))
        (out / f"{split}.tgt").write_text("".join(" ".join(f"t{dictionary[k]}" for k in s) + "\n" for s in sources))
    symbols = [f"s{k}" for k in range(words)] + [f"t{k}" for k in range(words)] + [f"u{k}" for k in range(unused)]
    (out / "dict.txt").write_text("".join(f"{symbol} 1\n" for symbol in symbols))
    run_fairseq("fairseq-preprocess", [
        "--source-lang", "src", "--target-lang", "tgt", "--trainpref", out / "train", "--validpref", out / "valid",
        "--testpref", out / "test", "--srcdict", out / "dict.txt", "--tgtdict", out / "dict.txt",
        "--destdir", out / "bin", "--workers", "1"], stdout_path=out / "preprocess.log")
    return out / "bin"


def with_error(words: list[str], kind: str, rng: random.Random, vocabulary: list[str]) -> list[str]:
    """``words`` with one error of ``kind`` (ERROR_KINDS); a swap needs two different neighbours where it can."""
    words = list(words)
    position = rng.randrange(len(words))
    if kind == "substitute":
        words[position] = rng.choice([word for word in vocabulary if word != words[position]])
    elif kind == "drop":
        del words[position]
    elif kind == "duplicate":
        words.insert(position, words[position])
    elif kind == "swap":
        pairs = [i for i in range(len(words) - 1) if words[i] != words[i + 1]] or [0]
        i = rng.choice(pairs)
        words[i], words[i + 1] = words[i + 1], words[i]
    else:
        raise ValueError(f"kind must be one of {ERROR_KINDS}, got {kind!r}")
    return words


def train_side_by_side(data: Path, work_dir: Path, updates: int, seed: int,
                       variants: dict[str, list[str]] | None = None) -> dict[str, Path]:
    """fairseq-train of every variant ({name: options}, default VARIANTS) at once, one thread each;
    {variant: last checkpoint} (reused if there)."""
    variants = VARIANTS if variants is None else variants
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = {}
    for name, options in variants.items():
        if (work_dir / name / "checkpoint_last.pt").exists():
            continue
        command = [fairseq_executable("fairseq-train"), str(data), "--user-dir", USER_DIR, "--task", "diffuser",
                   "--arch", "diffuser_tiny", "-s", "src", "-t", "tgt", "--criterion", "diffuser_loss",
                   "--optimizer", "adam", "--lr", "3e-3", "--max-tokens", "2000", "--cpu", "--no-progress-bar",
                   "--num-workers", "0", "--seed", str(seed), "--max-update", str(updates), "--disable-validation",
                   "--no-epoch-checkpoints", "--save-dir", str(work_dir / name), *options]
        log = open(work_dir / f"{name}.train.log", "w")
        processes[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log)
    for name, (process, log) in processes.items():
        process.wait()
        log.close()
        if process.returncode != 0:
            raise SystemExit(f"error: fairseq-train of {name} failed; see {work_dir / name}.train.log")
    return {name: work_dir / name / "checkpoint_last.pt" for name in variants}


def decode(data: Path, checkpoint: Path, output: Path, *options) -> list[str]:
    """fairseq-generate on the test split; the hypotheses in corpus order."""
    run_fairseq("fairseq-generate", [data, "--user-dir", USER_DIR, "--task", "diffuser", "-s", "src", "-t", "tgt",
                                     "--gen-subset", "test", "--path", checkpoint, "--batch-size", 64, "--cpu",
                                     *options], stdout_path=output)
    return read_hypotheses(output, prefix="D")


def exact_share(outputs: list[str], targets: list[str]) -> float:
    """The share of outputs equal to the target line of the same index (a reference, or a draft: unchanged)."""
    return sum(output == target for output, target in zip(outputs, targets)) / len(targets)


def measure(data: Path, checkpoint: Path, work_dir: Path, name: str, references: list[str], words: int) -> dict:
    """The step sweep and the post-editing shares of one model."""
    sweep = {}
    for steps in SWEEP_STEPS:
        outputs = decode(data, checkpoint, work_dir / f"{name}.random{steps}.txt", "--init-mode", "random",
                         "--decode-steps", steps)
        correct = sum(a == b for out, ref in zip(outputs, references) for a, b in zip(out.split(), ref.split()))
        sweep[steps] = {"exact": exact_share(outputs, references),
                        "token_accuracy": correct / sum(len(ref.split()) for ref in references)}
    empty_start = {}
    for steps in EMPTY_START_STEPS:
        outputs = decode(data, checkpoint, work_dir / f"{name}.null{steps}.txt", "--init-mode", "null",
                         "--decode-steps", steps)
        empty_start[steps] = exact_share(outputs, references)
    vocabulary = [f"t{k}" for k in range(words)]
    postedit = {}
    for kind in ERROR_KINDS:
        rng = random.Random(1)
        drafts = [" ".join(with_error(ref.split(), kind, rng, vocabulary)) for ref in references]
        draft_file = work_dir / f"drafts.{kind}.tgt"
        draft_file.write_text("".join(f"{draft}\n" for draft in drafts))
        outputs = decode(data, checkpoint, work_dir / f"{name}.{kind}.txt", "--init-mode", "file", "--init-file",
                         draft_file, "--decode-steps", 2)
        postedit[kind] = {"restored": exact_share(outputs, references),
                          "unchanged": exact_share(outputs, drafts)}
    return {"step_sweep": sweep, "empty_start": empty_start, "postedit": postedit}


def table(results: dict, command: str) -> str:
    lines = [f"Word-for-word translation check (`{command}`): {results['words']} words, {results['unused']} unused "
             f"symbols, {results['train']} training pairs, `diffuser_tiny`, {results['updates']} updates, "
             f"{TEST_PAIRS} test pairs", "",
             "| training | random start, exact after " + " / ".join(map(str, SWEEP_STEPS)) + " steps | "
             "empty start, after " + " / ".join(map(str, EMPTY_START_STEPS)) + " | "
             + " | ".join(f"{kind}: restored / unchanged" for kind in ERROR_KINDS) + " |",
             "|---|---|---|" + "---|" * len(ERROR_KINDS)]
    for name, row in results["variants"].items():
        sweep = " / ".join(f"{row['step_sweep'][steps]['exact']:.1%}" for steps in SWEEP_STEPS)
        empty = " / ".join(f"{row['empty_start'][steps]:.1%}" for steps in EMPTY_START_STEPS)
        edits = " | ".join(f"{row['postedit'][kind]['restored']:.1%} / {row['postedit'][kind]['unchanged']:.1%}"
                           for kind in ERROR_KINDS)
        lines.append(f"| {name} ({' '.join(VARIANTS[name]) or 'corruption only'}) | {sweep} | {empty} | {edits} |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("checkpoints/word_translation"),
                        help="corpus, checkpoints and decodes (reused on a re-run)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/word_translation"),
                        help="results path without suffix (.json and .md are written)")
    parser.add_argument("--words", type=int, default=40, help="words of each language")
    parser.add_argument("--unused", type=int, default=400, help="dictionary symbols no sentence uses")
    parser.add_argument("--train", type=int, default=2000, help="training pairs")
    parser.add_argument("--updates", type=int, default=1000, help="updates of each training")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    data = args.work_dir / "corpus" / "bin"
    if not (data / "dict.tgt.txt").exists():
        build_corpus(args.work_dir / "corpus", args.words, args.unused, args.train)
    references = (args.work_dir / "corpus" / "test.tgt").read_text().splitlines()
    checkpoints = train_side_by_side(data, args.work_dir, args.updates, args.seed)
    variants = {name: measure(data, checkpoint, args.work_dir, name, references, args.words)
                for name, checkpoint in checkpoints.items()}
    results = {"words": args.words, "unused": args.unused, "train": args.train, "updates": args.updates,
               "seed": args.seed, "variants": variants}
    command = command_line("benchmarks/word_translation.py", argv)
    write_results(args.out, results, table(results, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
