"""What the corpus scripts (``prepare_*.py``) share: argument types, progress lines, staging directories,
joint sentencepiece, fairseq binarization and the manifest, and the entry point.

Every script builds its two outputs (text and binarized data) in staging directories next to the final ones
(``.NAME.PROGRAM.partial``) and renames them into place only when everything succeeded
(``build_and_publish``), so a failure leaves the previous outputs (or nothing) behind; the next run removes
what an interrupted run left. Bad input is an ``InputError``, which ``run`` turns into one ``error:`` line
and exit status 1.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

import sentencepiece

from data_scripts.fairseq_tools import run_fairseq
from diffuser_mt.textio import InputError, current_umask

PARTIAL, OLD = "partial", "old"


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def add_output_arguments(parser: argparse.ArgumentParser, text_dir: str, dest_dir: str) -> None:
    """``--text-dir`` and ``--dest-dir``, the two outputs of every corpus script."""
    parser.add_argument("--text-dir", type=Path, default=Path(text_dir),
                        help="raw and sentencepiece-encoded splits and spm.model (default: %(default)s)")
    parser.add_argument("--dest-dir", type=Path, default=Path(dest_dir),
                        help="fairseq-preprocess output and manifest.json (default: %(default)s)")


def add_parallelism_arguments(parser: argparse.ArgumentParser) -> None:
    """``--threads`` (sentencepiece) and ``--workers`` (fairseq-preprocess), all CPUs by default."""
    parser.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1,
                        help="sentencepiece training/encoding threads (default: all CPUs)")
    parser.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1,
                        help="fairseq-preprocess worker processes (default: all CPUs)")


def stage(program: str, message: str) -> None:
    """Print a one-line progress message, prefixed by the program's name."""
    print(f"{program}: {message}", file=sys.stderr, flush=True)


def run(prepare: Callable[[argparse.Namespace], None], parse_args: Callable[[list | None], argparse.Namespace],
        argv: list | None = None) -> None:
    """A corpus script's entry point: ``prepare(parse_args(argv))``; one clear line and exit status 1 on bad
    input."""
    try:
        prepare(parse_args(argv))
    except InputError as err:
        sys.exit(f"error: {err}")


def check_output_dir(path: Path) -> None:
    """Raise InputError when an output path exists and is not a directory."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a directory")


def check_outputs(text_dir: Path, dest_dir: Path) -> None:
    """Raise InputError unless both outputs can be directories and are not the same one."""
    for output in (text_dir, dest_dir):
        check_output_dir(output)
    if text_dir.resolve() == dest_dir.resolve():
        raise InputError(f"--text-dir and --dest-dir must differ (both are {text_dir})")


def _suffix(program: str, kind: str) -> str:
    return f".{program}.{kind}"


def remove_leftovers(final: Path, program: str) -> None:
    """Remove the staging directories of ``final`` that an interrupted run of ``program`` left behind."""
    if not final.parent.is_dir():
        return
    suffixes = (_suffix(program, PARTIAL), _suffix(program, OLD))
    for leftover in final.parent.glob(f".{final.name}.*"):
        if leftover.is_dir() and leftover.name.endswith(suffixes):
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def staging_directory(final: Path, program: str) -> Iterator[Path]:
    """A fresh temporary directory next to ``final``, removed on exit unless published."""
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(final, program)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=_suffix(program, PARTIAL)))
    staging.chmod(0o777 & ~current_umask())
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, final: Path, program: str) -> None:
    """Rename a complete staging directory onto ``final``, replacing what was there."""
    if not final.exists():
        os.replace(staging, final)
        return
    previous = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=_suffix(program, OLD)))
    os.replace(final, previous / final.name)
    os.replace(staging, final)
    shutil.rmtree(previous)


def build_and_publish(program: str, text_dir: Path, dest_dir: Path,
                      build: Callable[[Path, Path], None]) -> None:
    """``build(text_staging, dest_staging)`` into two staging directories, then both published onto
    ``text_dir`` and ``dest_dir``."""
    with staging_directory(text_dir, program) as text_staging, staging_directory(dest_dir, program) as dest_staging:
        build(text_staging, dest_staging)
        publish(text_staging, text_dir, program)
        publish(dest_staging, dest_dir, program)
    stage(program, f"done: text in {text_dir}, binarized data in {dest_dir}")


def train_sentencepiece(inputs: Iterable[Path], prefix: Path, vocab_size: int, seed: int,
                        user_defined_symbols: tuple[str, ...] = (), input_sentence_size: int = 0,
                        num_threads: int = 1) -> Path:
    """Train a joint unigram model on the ``inputs`` text files; return ``PREFIX.model``.

    ``user_defined_symbols`` are always single pieces (e.g. the ``<n>`` sentence
    separator); ``input_sentence_size`` > 0 trains on that many randomly chosen lines.
    """
    sentencepiece.set_random_generator_seed(seed)
    try:
        sentencepiece.SentencePieceTrainer.train(
            input=",".join(str(path) for path in inputs),
            model_prefix=str(prefix),
            model_type="unigram",
            vocab_size=vocab_size,
            character_coverage=1.0,
            user_defined_symbols=list(user_defined_symbols),
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True,
            num_threads=num_threads,
            minloglevel=2,
        )
    except RuntimeError as err:
        message = " ".join(str(err).split())
        raise InputError(f"sentencepiece training failed (see --vocab-size): {message}") from None
    return prefix.with_suffix(".model")


def load_sentencepiece(model: Path) -> sentencepiece.SentencePieceProcessor:
    """A sentencepiece processor; InputError when ``model`` is missing or not a model."""
    if not model.is_file():
        raise InputError(f"{model}: no such sentencepiece model")
    try:
        return sentencepiece.SentencePieceProcessor(model_file=str(model))
    except (OSError, RuntimeError):
        raise InputError(f"{model}: not a sentencepiece model") from None


def binarize(program: str, text_dir: Path, dest_dir: Path, workers: int, languages: tuple[str, str],
             manifest: dict) -> None:
    """``fairseq-preprocess --joined-dictionary`` on ``TEXT_DIR/SPLIT.spm.{source,target}`` (the two
    ``languages``) into ``dest_dir``, with ``manifest`` (what the corpus holds, how it was made) beside it."""
    stage(program, "binarizing with fairseq-preprocess")
    source_lang, target_lang = languages
    prefixes = {"train": "--trainpref", "valid": "--validpref", "test": "--testpref"}
    run_fairseq("fairseq-preprocess", [
        "--source-lang", source_lang, "--target-lang", target_lang,
        *[item for split, prefix in prefixes.items() for item in (prefix, text_dir / f"{split}.spm")],
        "--destdir", dest_dir,
        "--joined-dictionary",
        "--workers", workers,
    ])
    with open(dest_dir / "manifest.json", "w", encoding="utf-8") as out:
        json.dump(manifest, out, indent=2, ensure_ascii=False)
        out.write("\n")
