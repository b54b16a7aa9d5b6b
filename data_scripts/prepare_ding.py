#!/usr/bin/env python
"""The bundled default corpus: Ding's English-German sentence pairs, binarized for fairseq.

    python data_scripts/prepare_ding.py     # writes data/ding and data-bin/ding.en-de

1. Finds the Ding dictionary (Debian's ``trans-de-en``, /usr/share/trans/de-en).
   When the default file is missing and we are root with apt-get, installs the
   package (``apt-get update`` first when the plain install fails);
   ``--install-only`` stops there.
2. Parses, cleans and deduplicates the sentence pairs (rules in
   ``data_scripts/ding.py``) and splits them by seed into train / valid / test.
3. Into ``--text-dir``: the raw text (``train.en``, ``train.de``, ...), a joint
   sentencepiece unigram model (``spm.model``, ``spm.vocab``) trained on
   train.en + train.de, and the splits as space-separated pieces (``train.spm.en``, ...).
4. Into ``--dest-dir``: ``fairseq-preprocess --joined-dictionary`` output and
   ``manifest.json`` (pair counts, vocabulary size, seed, Ding version, Debian
   package version (null unless the dictionary is the package's own file)).

Both directories are built under temporary names next to their final place and
renamed into place only when everything succeeded, so a failure leaves the
previous outputs (or nothing) behind; leftovers of an interrupted run are removed
by the next one.
"""
from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import sentencepiece

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: the imports below need it (noqa: E402)

from data_scripts import corpus_build  # noqa: E402
from data_scripts.corpus_build import (  # noqa: E402
    add_output_arguments, binarize, build_and_publish, check_outputs, positive_int, run, train_sentencepiece)
from data_scripts.ding import Extraction, Pair, ding_version, extract_pairs, split_pairs  # noqa: E402
from diffuser_mt.textio import InputError, read_lines  # noqa: E402

DEFAULT_DICTIONARY = Path("/usr/share/trans/de-en")
PACKAGE = "trans-de-en"
SPLITS = ("train", "valid", "test")
LANGUAGES = ("en", "de")
PROGRAM = "prepare_ding"
stage = functools.partial(corpus_build.stage, PROGRAM)  # progress lines "prepare_ding: MESSAGE"


def parse_args(argv=None) -> argparse.Namespace:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dictionary", type=Path, default=DEFAULT_DICTIONARY,
                        help="Ding dictionary file, format `German :: English` (default: %(default)s)")
    add_output_arguments(parser, "data/ding", "data-bin/ding.en-de")
    parser.add_argument("--vocab-size", type=positive_int, default=8000,
                        help="joint sentencepiece vocabulary size (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the split (default: %(default)s)")
    parser.add_argument("--valid-size", type=positive_int, default=500, help="pairs in valid (default: %(default)s)")
    parser.add_argument("--test-size", type=positive_int, default=1000, help="pairs in test (default: %(default)s)")
    parser.add_argument("--workers", type=positive_int, default=2,
                        help="fairseq-preprocess worker processes (default: %(default)s)")
    parser.add_argument("--install-only", action="store_true",
                        help="only make sure the dictionary is installed, then exit")
    return parser.parse_args(argv)


def ensure_dictionary(path: Path) -> None:
    """Install Debian's trans-de-en when the default dictionary is missing; raise InputError if still missing."""
    if path.exists():
        return
    if path == DEFAULT_DICTIONARY and os.geteuid() == 0 and shutil.which("apt-get"):
        install_package()
    if not path.exists():
        raise InputError(
            f"{path} not found; install Debian's Ding dictionary with `apt-get install {PACKAGE}` "
            f"(as root), or pass --dictionary FILE"
        )


def install_package() -> None:
    """``apt-get install`` the dictionary package, with an ``apt-get update`` and a retry on failure."""
    install = ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE]
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    stage(f"{DEFAULT_DICTIONARY} is missing; installing {PACKAGE}")
    if subprocess.run(install, env=environment).returncode != 0:
        subprocess.run(["apt-get", "update"], env=environment)
        subprocess.run(install, env=environment)


def debian_package_version(path: Path) -> str | None:
    """The installed trans-de-en version when ``path`` is the package's file, else None."""
    if path.resolve() != DEFAULT_DICTIONARY.resolve() or shutil.which("dpkg-query") is None:
        return None
    query = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", PACKAGE], capture_output=True, text=True)
    if query.returncode != 0:
        return None
    return query.stdout.strip() or None


@dataclass
class Corpus:
    """The dictionary's clean pairs, its Ding version and the pairs split by seed."""

    extraction: Extraction
    ding_version: str | None
    splits: dict[str, list[Pair]]


def read_dictionary(args: argparse.Namespace) -> Corpus:
    """Read, clean, deduplicate and split the dictionary's sentence pairs."""
    stage(f"reading and cleaning {args.dictionary}")
    lines = read_lines(args.dictionary)
    version = ding_version(lines[0]) if lines else None
    extraction = extract_pairs(lines)
    try:
        splits = split_pairs(extraction.pairs, args.seed, args.valid_size, args.test_size)
    except InputError as err:
        raise InputError(f"{args.dictionary}: {err}") from None
    counts = {split: len(pairs) for split, pairs in splits.items()}
    stage(f"{len(extraction.pairs)} clean pairs ({extraction.dropped} dropped); split {counts}")
    return Corpus(extraction, version, splits)


def write_text(text_dir: Path, splits: dict[str, list[Pair]]) -> None:
    """Write each split as line-aligned ``SPLIT.en`` and ``SPLIT.de``."""
    for split, pairs in splits.items():
        for index, language in enumerate(LANGUAGES):
            with open(text_dir / f"{split}.{language}", "w", encoding="utf-8") as out:
                out.writelines(f"{pair[index]}\n" for pair in pairs)


def train_ding_sentencepiece(text_dir: Path, vocab_size: int, seed: int) -> Path:
    """Train the joint unigram model on train.en + train.de; return the model path."""
    return train_sentencepiece([text_dir / f"train.{language}" for language in LANGUAGES], text_dir / "spm",
                               vocab_size, seed)


def encode_splits(text_dir: Path, model: Path) -> None:
    """Write every raw split as space-separated sentencepiece pieces (``SPLIT.spm.LANG``)."""
    processor = sentencepiece.SentencePieceProcessor(model_file=str(model))
    for split in SPLITS:
        for language in LANGUAGES:
            lines = read_lines(text_dir / f"{split}.{language}")
            with open(text_dir / f"{split}.spm.{language}", "w", encoding="utf-8") as out:
                out.writelines(" ".join(pieces) + "\n" for pieces in processor.encode(lines, out_type=str))


def manifest(args: argparse.Namespace, corpus: Corpus) -> dict:
    """What the corpus holds and how it was made."""
    extraction = corpus.extraction
    return {
        "corpus": "Ding dictionary English-German sentence pairs (GPL-2+)",
        "dictionary": str(args.dictionary),
        "ding_version": corpus.ding_version,
        "debian_package": PACKAGE,
        "debian_package_version": debian_package_version(args.dictionary),
        "seed": args.seed,
        "vocab_size": args.vocab_size,
        "text_dir": str(args.text_dir),
        "sentencepiece_model": str(args.text_dir / "spm.model"),
        "pairs": {split: len(pairs) for split, pairs in corpus.splits.items()},
        "candidate_subentries": extraction.candidates,
        "clean_pairs": len(extraction.pairs),
        "dropped": extraction.dropped,
        "dropped_unclean": extraction.unclean,
        "dropped_duplicates": extraction.duplicates,
    }


def build(args: argparse.Namespace, corpus: Corpus, text_dir: Path, dest_dir: Path) -> None:
    """Write the text, sentencepiece and binarized corpus into the two (staging) directories."""
    write_text(text_dir, corpus.splits)
    stage(f"training the sentencepiece model (vocabulary {args.vocab_size})")
    encode_splits(text_dir, train_ding_sentencepiece(text_dir, args.vocab_size, args.seed))
    binarize(PROGRAM, text_dir, dest_dir, args.workers, LANGUAGES, manifest(args, corpus))


def prepare(args: argparse.Namespace) -> None:
    """Check the inputs, build both directories under temporary names, then publish them."""
    ensure_dictionary(args.dictionary)
    if args.install_only:
        stage(f"{args.dictionary} is installed")
        return
    check_outputs(args.text_dir, args.dest_dir)
    corpus = read_dictionary(args)
    build_and_publish(PROGRAM, args.text_dir, args.dest_dir, functools.partial(build, args, corpus))


def main(argv=None) -> None:
    """Entry point: one clear line and exit status 1 on bad input."""
    run(prepare, parse_args, argv)


if __name__ == "__main__":
    main()
