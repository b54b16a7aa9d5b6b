#!/usr/bin/env python
"""WMT'14 English-German (Europarl v7 + Common Crawl + News Commentary v9; newstest2013; newstest2014 full) for fairseq.

    python data_scripts/prepare_wmt14_en_de.py                 # downloads into data/wmt14_en_de/raw
    python data_scripts/prepare_wmt14_en_de.py --from DIR      # the same files, already on disk

1. Inputs: with ``--from DIR``, the files as the statmt.org archives unpack
   (``data_scripts/wmt14.py`` lists them); otherwise each archive missing from
   ``--raw-dir`` is downloaded (from statmt.org or ``--mirror``) under a
   temporary name, renamed when complete, and the files we read are unpacked
   from it into the same layout, which is then read as with ``--from``.
   newstest2014 may be the SGM files of test-full.tgz or plain text.
2. Into ``--text-dir``: valid/test as plain text (``valid.en``, ``test.de``, ...,
   the references that sacreBLEU scores against), the cleaned training pairs
   (``train.en``, ``train.de``), a joint sentencepiece unigram model
   (``spm.model``; ``--vocab-size``, trained on a sample of the training text;
   or ``--spm-model`` reused) and every split as space-separated pieces
   (``train.spm.en``, ...).
3. Into ``--dest-dir``: ``fairseq-preprocess --joined-dictionary`` output and
   ``manifest.json`` (``"task": "translation"``, pair counts, what cleaning dropped).

Both output folders are built under temporary names next to their final place and
renamed into place only when everything succeeded; a re-run after a failure
starts cleanly. Any missing input is one error line naming the file.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: the imports below need it (noqa: E402)

from data_scripts import corpus_build  # noqa: E402
from data_scripts.corpus_build import (  # noqa: E402
    add_output_arguments, add_parallelism_arguments, binarize, build_and_publish, check_outputs, load_sentencepiece,
    positive_int, run, train_sentencepiece)
from data_scripts.wmt14 import (  # noqa: E402
    ARCHIVES, SOURCE, TARGET, TEST_FULL_SEGMENTS, Archive, Cleaning, Inputs, decode_pair, length_rule, locate,
    raw_pairs, read_evaluation_pair)
from diffuser_mt.textio import InputError  # noqa: E402

PROGRAM = "prepare_wmt14_en_de"
LANGUAGES = (SOURCE, TARGET)
ENCODE_CHUNK = 20_000  # pairs encoded at a time
PREFILTER = "train.prefilter"  # normalized training text before the length rules (removed at the end)
stage = functools.partial(corpus_build.stage, PROGRAM)  # progress lines "prepare_wmt14_en_de: MESSAGE"


def parse_args(argv=None) -> argparse.Namespace:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="from_dir", type=Path,
                        help="folder holding the WMT'14 files as the archives unpack (no download)")
    parser.add_argument("--raw-dir", type=Path, default=Path("data/wmt14_en_de/raw"),
                        help="without --from: where the archives are downloaded and unpacked (default: %(default)s)")
    parser.add_argument("--mirror", help="without --from: fetch each archive as MIRROR/ARCHIVE_NAME instead of from "
                                         "statmt.org (any URL urllib reads, file:// included)")
    add_output_arguments(parser, "data/wmt14_en_de", "data-bin/wmt14.en-de")
    parser.add_argument("--vocab-size", type=positive_int, default=32000,
                        help="joint sentencepiece vocabulary size (default: %(default)s)")
    parser.add_argument("--spm-model", type=Path,
                        help="use this existing sentencepiece model instead of training one")
    parser.add_argument("--spm-sample", type=positive_int, default=2_000_000,
                        help="sentencepiece trains on this many randomly chosen training lines (default: %(default)s)")
    parser.add_argument("--max-length", type=positive_int, default=250,
                        help="drop training pairs with a side of more pieces than this (default: %(default)s)")
    parser.add_argument("--max-ratio", type=float, default=1.5,
                        help="drop training pairs whose longer side has more than this times the pieces of the "
                             "shorter (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of sentencepiece's sampling (default: %(default)s)")
    add_parallelism_arguments(parser)
    return parser.parse_args(argv)


def download(raw_dir: Path, mirror: str | None) -> Path:
    """Fetch and unpack every archive whose files are not all in ``raw_dir`` yet; return ``raw_dir``."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    for archive in ARCHIVES:
        if all((raw_dir / member).is_file() for member in archive.members):
            continue
        path = raw_dir / archive.name
        if not path.is_file():
            fetch(archive_url(archive, mirror), path)
        unpack(path, archive, raw_dir)
    return raw_dir


def archive_url(archive: Archive, mirror: str | None) -> str:
    """Where ``archive`` is fetched from."""
    return archive.url if mirror is None else f"{mirror.rstrip('/')}/{archive.name}"


def fetch(url: str, path: Path) -> None:
    """Download ``url`` to ``path`` through ``PATH.partial``; InputError naming the URL on failure."""
    partial = path.with_name(path.name + ".partial")
    stage(f"downloading {url}")
    try:
        with urllib.request.urlopen(url) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, file=sys.stderr) as progress:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    progress.update(len(block))
    except (urllib.error.URLError, OSError, ValueError) as err:
        partial.unlink(missing_ok=True)
        reason = getattr(err, "reason", err)
        raise InputError(f"download of {url} failed: {reason}") from None
    os.replace(partial, path)


def unpack(path: Path, archive: Archive, raw_dir: Path) -> None:
    """Extract the members we read from ``path`` into ``raw_dir``, each through a temporary name."""
    stage(f"unpacking {path}")
    wanted = set(archive.members)
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name not in wanted or not member.isfile():
                    continue
                destination = raw_dir / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                partial = destination.with_name(destination.name + ".partial")
                with tar.extractfile(member) as source, open(partial, "wb") as out:
                    shutil.copyfileobj(source, out)
                os.replace(partial, destination)
                wanted.discard(name)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise InputError(f"{path}: cannot be unpacked ({err}); delete it to download it again") from None
    if wanted:
        raise InputError(f"{path}: has no {', '.join(sorted(wanted))}")


def write_lines(path: Path, lines) -> None:
    """Write one line per item."""
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(f"{line}\n" for line in lines)


def write_evaluation_sets(inputs: Inputs, text_dir: Path) -> dict[str, int]:
    """valid.{en,de} and test.{en,de} as normalized plain text; returns the segment count of each."""
    counts = {}
    for split, (source, target) in (("valid", inputs.valid), ("test", inputs.test)):
        pairs = read_evaluation_pair(source, target)
        for index, language in enumerate(LANGUAGES):
            write_lines(text_dir / f"{split}.{language}", (pair[index] for pair in pairs))
        counts[split] = len(pairs)
    if counts["test"] != TEST_FULL_SEGMENTS:
        stage(f"note: {inputs.test[0]} has {counts['test']} segments; newstest2014 (full) has {TEST_FULL_SEGMENTS}")
    return counts


def write_prefiltered_training_text(inputs: Inputs, text_dir: Path, cleaning: Cleaning) -> None:
    """Every valid, non-empty training pair, normalized, into ``train.prefilter.{en,de}``."""
    with open(text_dir / f"{PREFILTER}.{SOURCE}", "w", encoding="utf-8") as source_out, \
            open(text_dir / f"{PREFILTER}.{TARGET}", "w", encoding="utf-8") as target_out:
        for source, target in inputs.train:
            corpus = source.with_suffix("").name
            before = cleaning.read
            for raw in tqdm(raw_pairs(source, target), desc=corpus, unit=" pairs", file=sys.stderr):
                pair = decode_pair(*raw, cleaning)
                if pair is not None:
                    source_out.write(pair[0] + "\n")
                    target_out.write(pair[1] + "\n")
            cleaning.per_corpus[corpus] = cleaning.read - before
    if cleaning.read == cleaning.empty + cleaning.invalid_utf8:
        raise InputError(f"no usable training pairs in {', '.join(str(source) for source, _ in inputs.train)}")


def sentencepiece_model(args: argparse.Namespace, text_dir: Path) -> Path:
    """``TEXT_DIR/spm.model``: trained on the prefiltered training text, or a copy of --spm-model."""
    model = text_dir / "spm.model"
    if args.spm_model is not None:
        load_sentencepiece(args.spm_model)  # fails early on a bad file
        shutil.copyfile(args.spm_model, model)
        vocab = args.spm_model.with_suffix(".vocab")
        if vocab.is_file():
            shutil.copyfile(vocab, text_dir / "spm.vocab")
        return model
    stage(f"training the sentencepiece model (vocabulary {args.vocab_size}, {args.spm_sample} sampled lines)")
    return train_sentencepiece([text_dir / f"{PREFILTER}.{language}" for language in LANGUAGES], text_dir / "spm",
                               args.vocab_size, args.seed, input_sentence_size=args.spm_sample,
                               num_threads=args.threads)


def encode_training_pairs(args: argparse.Namespace, text_dir: Path, model: Path, cleaning: Cleaning) -> None:
    """Encode the prefiltered pairs, apply the length rules, write ``train.{en,de}`` and ``train.spm.{en,de}``."""
    processor = load_sentencepiece(model)
    prefiltered = [text_dir / f"{PREFILTER}.{language}" for language in LANGUAGES]
    names = (f"train.{SOURCE}", f"train.{TARGET}", f"train.spm.{SOURCE}", f"train.spm.{TARGET}")
    with contextlib.ExitStack() as files:
        sources, targets = (files.enter_context(open(path, encoding="utf-8")) for path in prefiltered)
        outputs = [files.enter_context(open(text_dir / name, "w", encoding="utf-8")) for name in names]
        progress = files.enter_context(tqdm(total=cleaning.read - cleaning.empty - cleaning.invalid_utf8,
                                            desc="encoding", unit=" pairs", file=sys.stderr))
        lines = zip(sources, targets)
        while chunk := [(s.rstrip("\n"), t.rstrip("\n")) for s, t in itertools.islice(lines, ENCODE_CHUNK)]:
            write_encoded_chunk(args, processor, chunk, outputs, cleaning)
            progress.update(len(chunk))
    for path in prefiltered:
        path.unlink()
    if cleaning.kept == 0:
        raise InputError("every training pair was dropped by --max-length/--max-ratio")


def write_encoded_chunk(args: argparse.Namespace, processor, chunk: list[tuple[str, str]], outputs,
                        cleaning: Cleaning) -> None:
    """Encode one chunk of (en, de) pairs; write those that pass the length rules, count the others."""
    source_pieces = processor.encode([pair[0] for pair in chunk], out_type=str, num_threads=args.threads)
    target_pieces = processor.encode([pair[1] for pair in chunk], out_type=str, num_threads=args.threads)
    source_text, target_text, source_spm, target_spm = outputs
    for (source, target), source_encoded, target_encoded in zip(chunk, source_pieces, target_pieces):
        reason = length_rule(len(source_encoded), len(target_encoded), args.max_length, args.max_ratio)
        if reason is not None:
            setattr(cleaning, reason, getattr(cleaning, reason) + 1)
            continue
        source_text.write(source + "\n")
        target_text.write(target + "\n")
        source_spm.write(" ".join(source_encoded) + "\n")
        target_spm.write(" ".join(target_encoded) + "\n")


def encode_evaluation_sets(text_dir: Path, model: Path, threads: int) -> None:
    """valid/test as space-separated pieces (``SPLIT.spm.LANG``); never filtered."""
    processor = load_sentencepiece(model)
    for split in ("valid", "test"):
        for language in LANGUAGES:
            lines = (text_dir / f"{split}.{language}").read_text(encoding="utf-8").splitlines()
            encoded = processor.encode(lines, out_type=str, num_threads=threads)
            write_lines(text_dir / f"{split}.spm.{language}", (" ".join(pieces) for pieces in encoded))


def manifest(args: argparse.Namespace, inputs: Inputs, counts: dict[str, int], cleaning: Cleaning,
             folder: Path) -> dict:
    """What the corpus holds and how it was made."""
    return {
        "task": "translation",
        "corpus": "WMT'14 English-German (Europarl v7, Common Crawl, News Commentary v9; newstest2013; "
                  "newstest2014 full)",
        "source_lang": SOURCE,
        "target_lang": TARGET,
        "inputs": str(folder),
        "train_files": [[str(source), str(target)] for source, target in inputs.train],
        "valid_files": [str(path) for path in inputs.valid],
        "test_files": [str(path) for path in inputs.test],
        "pairs": {"train": cleaning.kept, **counts},
        "test_full_segments": TEST_FULL_SEGMENTS,
        "train_pairs_read": cleaning.per_corpus,
        "dropped": {"empty": cleaning.empty, "invalid_utf8": cleaning.invalid_utf8,
                    "too_long": cleaning.too_long, "ratio": cleaning.ratio},
        "max_length": args.max_length,
        "max_ratio": args.max_ratio,
        "vocab_size": None if args.spm_model else args.vocab_size,
        "spm_model_from": str(args.spm_model) if args.spm_model else None,
        "spm_sample": args.spm_sample,
        "seed": args.seed,
        "text_dir": str(args.text_dir),
        "sentencepiece_model": str(args.text_dir / "spm.model"),
    }


def build(args: argparse.Namespace, inputs: Inputs, folder: Path, text_dir: Path, dest_dir: Path) -> None:
    """Write text, sentencepiece and binarized data into the two (staging) directories."""
    stage("reading newstest2013 (valid) and newstest2014 (test)")
    counts = write_evaluation_sets(inputs, text_dir)
    cleaning = Cleaning()
    stage("reading and normalizing the training corpora")
    write_prefiltered_training_text(inputs, text_dir, cleaning)
    model = sentencepiece_model(args, text_dir)
    stage("encoding and length-filtering the training pairs")
    encode_training_pairs(args, text_dir, model, cleaning)
    encode_evaluation_sets(text_dir, model, args.threads)
    stage(f"{cleaning.kept} training pairs of {cleaning.read} (dropped: {cleaning.empty} empty, "
          f"{cleaning.invalid_utf8} invalid UTF-8, {cleaning.too_long} over {args.max_length} pieces, "
          f"{cleaning.ratio} over ratio {args.max_ratio}); valid {counts['valid']}, test {counts['test']}")
    binarize(PROGRAM, text_dir, dest_dir, args.workers, LANGUAGES, manifest(args, inputs, counts, cleaning, folder))


def prepare(args: argparse.Namespace) -> None:
    """Find (or download) the inputs, build both directories under temporary names, then publish them."""
    check_outputs(args.text_dir, args.dest_dir)
    if args.spm_model is not None:
        load_sentencepiece(args.spm_model)
    folder = args.from_dir if args.from_dir is not None else download(args.raw_dir, args.mirror)
    inputs = locate(folder)
    build_and_publish(PROGRAM, args.text_dir, args.dest_dir, functools.partial(build, args, inputs, folder))


def main(argv=None) -> None:
    """Entry point: one clear line and exit status 1 on bad input."""
    run(prepare, parse_args, argv)


if __name__ == "__main__":
    main()
