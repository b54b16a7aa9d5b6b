"""CNN/DailyMail: the original ``.story`` files, the url-list split, article and highlights extraction.

As in abisee/cnn-dailymail's make_datafiles.py and the Hugging Face
``cnn_dailymail`` builder (3.0.0, cased):

* a story's split is given by the url lists ``url_lists/all_{train,val,test}.txt``:
  the file of a URL is ``sha1(url).story`` in the CNN or the DailyMail story folder;
* every line is stripped; a non-empty line that is not ``@highlight`` and does not
  end in one of ``END_TOKENS`` gets `` .`` appended (image captions often lack a
  period); ``@highlight`` lines are dropped;
* the line after an ``@highlight`` marker is a highlight, every other non-empty
  line is article text; the article is its lines joined by a space (its dateline
  header such as ``WASHINGTON (CNN) --`` stays, as in both of them);
* a story without highlights, or without article text, is skipped and counted.

fairseq needs one example per line, so a summary is its highlights, one sentence
each, joined by `` <n> `` (``SENTENCE_SEPARATOR``, where ROUGE-Lsum splits).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from diffuser_mt.metrics import DEFAULT_SENTENCE_SEPARATOR
from diffuser_mt.textio import InputError, read_lines

SENTENCE_SEPARATOR = DEFAULT_SENTENCE_SEPARATOR
HIGHLIGHT = "@highlight"
END_TOKENS = (".", "!", "?", "...", "'", "`", '"', "\u2019", "\u201d", ")")  # \u2019 \u201d: DailyMail's quotes
URL_LISTS = {"train": "url_lists/all_train.txt", "valid": "url_lists/all_val.txt", "test": "url_lists/all_test.txt"}
# where each publisher's stories are: as the original tgz files unpack, or as make_datafiles.py names them
STORY_DIRS = {"cnn": ("cnn/stories", "cnn_stories"), "dailymail": ("dailymail/stories", "dm_stories")}
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def url_hash(url: str) -> str:
    """The story file name (without ``.story``) of a URL: the hex sha1 of its UTF-8 bytes."""
    return hashlib.sha1(url.encode("utf-8")).hexdigest()


def fix_missing_period(line: str) -> str:
    """``line`` with `` .`` appended when it is text that does not end like a sentence."""
    if not line or HIGHLIGHT in line or line.endswith(END_TOKENS):
        return line
    return line + " ."


@dataclass(frozen=True)
class Story:
    """A story's article (one line of text) and its highlights (one sentence each)."""

    article: str
    highlights: tuple[str, ...]


def parse_story(lines: list[str]) -> Story:
    """Article and highlights of the lines of a ``.story`` file."""
    article, highlights = [], []
    next_is_highlight = False
    for line in (fix_missing_period(line.strip()) for line in lines):
        if not line:
            continue
        if line.startswith(HIGHLIGHT):
            next_is_highlight = True
        elif next_is_highlight:
            highlights.append(line)
        else:
            article.append(line)
    return Story(" ".join(article), tuple(highlights))


def summary_line(highlights: tuple[str, ...] | list[str]) -> str:
    """The one-line summary: the highlights joined by `` <n> ``."""
    return f" {SENTENCE_SEPARATOR} ".join(highlights)


def spm_training_lines(text: str) -> list[str]:
    """``text`` cut after each ``.``/``!``/``?`` followed by whitespace: sentencepiece trains on sentence-sized
    lines (it skips lines over 4 kB, and an article is one long line)."""
    return [part for part in SENTENCE_END.split(text) if part]


def find_story_dirs(folder: Path) -> dict[str, Path]:
    """The story folder of each publisher present in ``folder``; InputError when there is none."""
    found = {}
    for publisher, candidates in STORY_DIRS.items():
        for candidate in candidates:
            if (folder / candidate).is_dir():
                found[publisher] = folder / candidate
                break
    if not found:
        names = ", ".join(candidate for candidates in STORY_DIRS.values() for candidate in candidates)
        raise InputError(f"{folder}: no story folder (looked for {names})")
    return found


def index_stories(story_dirs: dict[str, Path]) -> dict[str, Path]:
    """{sha1 hex: path} of every ``.story`` file in the story folders."""
    return {path.stem: path for folder in story_dirs.values() for path in folder.glob("*.story")}


def read_url_list(path: Path) -> list[str]:
    """The URLs of a url list, one per non-empty line; InputError when the file is missing."""
    if not path.is_file():
        raise InputError(f"{path}: no such url list")
    return [line.strip() for line in read_lines(path) if line.strip()]


@dataclass
class SplitStats:
    """Per split: URLs listed, stories not found, skipped for no highlights / no article, and kept."""

    urls: int = 0
    missing: int = 0
    no_highlights: int = 0
    empty_article: int = 0
    kept: int = 0

    def count(self, story: Story) -> bool:
        """Count ``story`` as kept or skipped; True when it is kept."""
        if not story.highlights:
            self.no_highlights += 1
        elif not story.article:
            self.empty_article += 1
        else:
            self.kept += 1
            return True
        return False
