"""WMT'14 English-German: the standard files, reading SGM and plain text, the cleaning rules.

The corpus of the NAT literature (fairseq's examples/translation/prepare-wmt14en2de.sh
with --icml17): Europarl v7, Common Crawl and News Commentary v9 for training,
newstest2013 for validation and the full newstest2014 (3003 segments) for
testing. ``ARCHIVES`` lists the statmt.org archives and the files each one holds,
laid out as they unpack; ``locate`` finds those files in a folder.

Reading: an ``.sgm`` file yields the text of its ``<seg ...>...</seg>`` lines (as
Moses' input-from-sgm.perl and sacreBLEU read them: no entity decoding), any
other file its lines. Whitespace runs become one space, ends are stripped.

Cleaning of the training pairs (the evaluation sets are never filtered):
a pair with an empty side or a side that is not valid UTF-8 is dropped before
sentencepiece; after encoding, a pair is dropped when a side has more than
``max_length`` pieces or one side is more than ``max_ratio`` times as long as the
other (Moses clean-corpus-n.perl's rules, applied to subword pieces as
fairseq's script does with -ratio 1.5 and length 1..250).
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from diffuser_mt.textio import InputError, read_lines

SOURCE, TARGET = "en", "de"
TEST_FULL_SEGMENTS = 3003  # newstest2014, test-full version


@dataclass(frozen=True)
class Archive:
    """One statmt.org archive: where it is and the files (relative paths) it unpacks to that we read."""

    name: str
    url: str
    members: tuple[str, ...]


ARCHIVES = (
    Archive("training-parallel-europarl-v7.tgz", "http://statmt.org/wmt13/training-parallel-europarl-v7.tgz",
            ("training/europarl-v7.de-en.en", "training/europarl-v7.de-en.de")),
    Archive("training-parallel-commoncrawl.tgz", "http://statmt.org/wmt13/training-parallel-commoncrawl.tgz",
            ("commoncrawl.de-en.en", "commoncrawl.de-en.de")),
    Archive("training-parallel-nc-v9.tgz", "http://statmt.org/wmt14/training-parallel-nc-v9.tgz",
            ("training/news-commentary-v9.de-en.en", "training/news-commentary-v9.de-en.de")),
    Archive("dev.tgz", "http://statmt.org/wmt14/dev.tgz", ("dev/newstest2013.en", "dev/newstest2013.de")),
    Archive("test-full.tgz", "http://statmt.org/wmt14/test-full.tgz",
            ("test-full/newstest2014-deen-src.en.sgm", "test-full/newstest2014-deen-ref.de.sgm")),
)
TRAIN_CORPORA = ("training/europarl-v7.de-en", "commoncrawl.de-en", "training/news-commentary-v9.de-en")
# per evaluation split, the accepted (source, target) files, the standard ones first
EVALUATION_FILES = {
    "valid": (("dev/newstest2013.en", "dev/newstest2013.de"),
              ("dev/newstest2013-src.en.sgm", "dev/newstest2013-ref.de.sgm")),
    "test": (("test-full/newstest2014-deen-src.en.sgm", "test-full/newstest2014-deen-ref.de.sgm"),
             ("test-full/newstest2014.en", "test-full/newstest2014.de")),
}
SEGMENT = re.compile(r"<seg[^>]*>(.*)</seg>")


def archive_of(relative_path: str) -> Archive | None:
    """The archive that unpacks to ``relative_path``, if any."""
    return next((archive for archive in ARCHIVES if relative_path in archive.members), None)


@dataclass(frozen=True)
class Inputs:
    """The files of one WMT'14 folder: per training corpus its (en, de) pair, and the valid/test pairs."""

    train: tuple[tuple[Path, Path], ...]
    valid: tuple[Path, Path]
    test: tuple[Path, Path]


def locate(folder: Path) -> Inputs:
    """The WMT'14 files in ``folder``; InputError naming every missing file (and its archive)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such directory")
    missing: list[str] = []
    train = []
    for corpus in TRAIN_CORPORA:
        pair = tuple(folder / f"{corpus}.{language}" for language in (SOURCE, TARGET))
        missing += [path.relative_to(folder).as_posix() for path in pair if not path.is_file()]
        train.append(pair)
    evaluation = {}
    for split, candidates in EVALUATION_FILES.items():
        found = [pair for pair in candidates if all((folder / name).is_file() for name in pair)]
        if found:
            evaluation[split] = tuple(folder / name for name in found[0])
        else:
            missing += [name for name in candidates[0] if not (folder / name).is_file()]
    if missing:
        described = ", ".join(_with_archive(name) for name in missing)
        raise InputError(f"{folder}: missing {described}")
    return Inputs(tuple(train), evaluation["valid"], evaluation["test"])


def _with_archive(relative_path: str) -> str:
    archive = archive_of(relative_path)
    return relative_path if archive is None else f"{relative_path} (from {archive.name})"


def normalize(text: str) -> str:
    """``text`` with whitespace runs collapsed to one space and the ends stripped."""
    return " ".join(text.split())


def sgm_segments(lines: list[str], path: Path) -> list[str]:
    """The text of each ``<seg>`` line of an SGM file, in file order."""
    segments = []
    for line_no, line in enumerate(lines, start=1):
        if "<seg" not in line:
            continue
        match = SEGMENT.search(line)
        if match is None:
            raise InputError(f"{path}:{line_no}: <seg> without a closing </seg> on the same line")
        segments.append(match.group(1))
    return segments


def read_segments(path: Path) -> list[str]:
    """The normalized segments of an SGM file (``.sgm``) or a plain one-segment-per-line file."""
    lines = read_lines(path)
    segments = sgm_segments(lines, path) if path.suffix == ".sgm" else lines
    return [normalize(segment) for segment in segments]


def read_evaluation_pair(source: Path, target: Path) -> list[tuple[str, str]]:
    """Line-aligned (en, de) segments; InputError on a count mismatch or an empty segment."""
    sources, targets = read_segments(source), read_segments(target)
    if len(sources) != len(targets):
        raise InputError(f"{source} has {len(sources)} segments but {target} has {len(targets)}")
    for path, segments in ((source, sources), (target, targets)):
        empty = next((i for i, segment in enumerate(segments, start=1) if not segment), None)
        if empty is not None:
            raise InputError(f"{path}: segment {empty} is empty")
    if not sources:
        raise InputError(f"{source}: no segments")
    return list(zip(sources, targets))


@dataclass
class Cleaning:
    """What the cleaning of the training pairs read and dropped, per reason."""

    read: int = 0
    empty: int = 0
    invalid_utf8: int = 0
    too_long: int = 0
    ratio: int = 0
    per_corpus: dict[str, int] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        """Pairs that survived every rule."""
        return self.read - self.empty - self.invalid_utf8 - self.too_long - self.ratio


def raw_pairs(source: Path, target: Path) -> Iterator[tuple[bytes, bytes]]:
    """The (en, de) lines of a line-aligned corpus as bytes without line ends; InputError when counts differ."""
    with open(source, "rb") as source_file, open(target, "rb") as target_file:
        for count, (source_line, target_line) in enumerate(itertools.zip_longest(source_file, target_file)):
            if source_line is None or target_line is None:
                shorter = source if source_line is None else target
                raise InputError(f"{source} and {target} are not line-aligned: {shorter} ends after {count} lines")
            yield source_line.rstrip(b"\r\n"), target_line.rstrip(b"\r\n")


def decode_pair(source_line: bytes, target_line: bytes, cleaning: Cleaning) -> tuple[str, str] | None:
    """The normalized text of a raw pair, or None (counted in ``cleaning``) when invalid or empty."""
    cleaning.read += 1
    try:
        pair = normalize(source_line.decode("utf-8")), normalize(target_line.decode("utf-8"))
    except UnicodeDecodeError:
        cleaning.invalid_utf8 += 1
        return None
    if not pair[0] or not pair[1]:
        cleaning.empty += 1
        return None
    return pair


def length_rule(source_pieces: int, target_pieces: int, max_length: int, max_ratio: float) -> str | None:
    """Why a pair of these piece counts (both >= 1) is dropped: ``too_long``, ``ratio``, or None to keep it."""
    if source_pieces > max_length or target_pieces > max_length:
        return "too_long"
    if max(source_pieces, target_pieces) > max_ratio * min(source_pieces, target_pieces):
        return "ratio"
    return None
