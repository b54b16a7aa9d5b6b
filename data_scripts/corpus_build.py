"""What the corpus scripts share: staging directories, joint sentencepiece, fairseq binarization.

Every script builds its outputs in a staging directory next to the final one
(``.NAME.PROGRAM.partial``) and renames it into place only when everything
succeeded (``publish``), so a failure leaves the previous output (or nothing)
behind; the next run removes what an interrupted run left.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import sentencepiece

from data_scripts.fairseq_tools import run_fairseq
from diffuser_mt.textio import InputError, current_umask

PARTIAL, OLD = "partial", "old"


def check_output_dir(path: Path) -> None:
    """Raise InputError when an output path exists and is not a directory."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a directory")


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


def binarize(text_dir: Path, dest_dir: Path, workers: int, source_lang: str, target_lang: str,
             splits: tuple[str, ...] = ("train", "valid", "test")) -> None:
    """``fairseq-preprocess --joined-dictionary`` on ``TEXT_DIR/SPLIT.spm.{source,target}_lang``."""
    prefixes = {"train": "--trainpref", "valid": "--validpref", "test": "--testpref"}
    run_fairseq("fairseq-preprocess", [
        "--source-lang", source_lang, "--target-lang", target_lang,
        *[item for split in splits for item in (prefixes[split], text_dir / f"{split}.spm")],
        "--destdir", dest_dir,
        "--joined-dictionary",
        "--workers", workers,
    ])
