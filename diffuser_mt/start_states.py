"""Start states x_T of the edit decoder (the paper's section 3.6).

* random: as many random tokens as the source has (without eos), drawn
  uniformly from the noise vocabulary of training; the paper's default for MT.
* null: the empty sequence; the first step must insert (an AR generation).
* source: a copy of the source tokens (for summarization; needs a joined dictionary).
* ar: the model's own generator writes a hypothesis on an empty canvas (the
  null start's first step), then the configured number of edit steps follow.
* file: hypotheses of any external system, one per source line
  (``read_init_hypotheses``).

``auto`` is no start state of its own: it stands for the corpus task's usual
one (``resolve_start_mode``), random for translation and source for summarization.

``start_state`` builds one sentence's x_T from StartSettings; ``reverse_steps``
is how many steps the decoder then runs (ar's generation is one step more).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from diffuser_mt.corruption import NoiseVocabulary
from diffuser_mt.generation_output import parse_hypotheses
from diffuser_mt.textio import InputError, read_lines

START_MODES = ("random", "null", "source", "ar", "file")
INIT_MODES = ("auto", *START_MODES)
AUTO_START_MODES = {"translation": "random", "summarization": "source"}


def resolve_start_mode(mode: str, corpus_task: str) -> str:
    """``mode`` (one of INIT_MODES) as one of START_MODES: ``auto`` becomes the corpus task's default."""
    if mode != "auto":
        return mode
    return AUTO_START_MODES[corpus_task]


@dataclass(frozen=True)
class StartSettings:
    """mode: one of START_MODES; noise_vocab: what random starts draw from; seed: of each sentence's random
    generator (``sentence_rng``, with the source); init_tokens: per sentence id, the start of mode 'file'."""

    mode: str
    noise_vocab: NoiseVocabulary
    seed: int
    init_tokens: Sequence[Sequence[int]] | None = None

    def __post_init__(self):
        if self.mode not in START_MODES:
            raise ValueError(f"unknown start mode {self.mode!r}; choose one of {', '.join(START_MODES)}")
        if self.mode == "file" and self.init_tokens is None:
            raise ValueError("start mode 'file' needs the hypotheses of an init file")


def sentence_rng(seed: int, source: Sequence[int]) -> np.random.Generator:
    """The random generator of one sentence's decoding (its random start, then nucleus sampling), seeded by the
    run's seed and the sentence's source ids: a sentence decodes the same whatever its batch, its position in
    the file, or the program (fairseq-generate, fairseq-interactive, the hub interface)."""
    return np.random.default_rng([seed, len(source), *source])


def start_state(settings: StartSettings, sentence_id: int, source: Sequence[int], rng: np.random.Generator,
                max_length: int) -> list[int]:
    """x_T of one sentence: ``source`` holds its ids without padding and eos; random and source starts hold at
    most ``max_length`` tokens."""
    mode = settings.mode
    if mode == "random":
        return random_start(len(source), settings.noise_vocab, rng, max_length)
    if mode in ("null", "ar"):
        return []
    if mode == "source":
        return list(source[:max_length])
    return list(settings.init_tokens[sentence_id])


def length_limit(source_length: int, max_len_a: float, max_len_b: int, draft_length: int = 0) -> int:
    """Most tokens a decode may hold: fairseq's cap int(a x source length + b), the source length counting its
    eos as fairseq's SequenceGenerator does, so an AR system decoded with the same --max-len-a/b is held to the
    same cap; never below ``draft_length``, the length of a given draft, which a post-editor does not cut."""
    return max(int(max_len_a * source_length + max_len_b), draft_length)


def reverse_steps(mode: str, edit_steps: int) -> int:
    """The decoder's steps for ``edit_steps`` edits from start mode ``mode``: ar's generation on the empty
    canvas is a step of its own, before the edits."""
    return edit_steps + (1 if mode == "ar" else 0)


def random_start(source_length: int, noise_vocab: NoiseVocabulary, rng: np.random.Generator,
                 max_length: int) -> list[int]:
    """min(source_length, max_length) ids drawn uniformly from the noise vocabulary."""
    return noise_vocab.sample(rng, min(source_length, max_length)).tolist()


def read_init_hypotheses(path: str | os.PathLike, expected_lines: int) -> list[str]:
    """One detokenized hypothesis per source line, from plain text or a saved fairseq-generate output.

    A file holding ``D-<id>`` lines is read as fairseq-generate output (its
    detokenized hypotheses, in corpus order); any other file holds one
    hypothesis per line (an empty line is an empty hypothesis). Raises InputError
    when the number of hypotheses differs from ``expected_lines``.
    """
    lines = read_lines(path)
    if any(line.startswith("D-") for line in lines):
        hypotheses, kind = parse_hypotheses(lines, prefix="D", source=str(path)), "D- hypotheses"
    else:
        hypotheses, kind = lines, "lines"
    if len(hypotheses) != expected_lines:
        raise InputError(f"{path}: {len(hypotheses)} {kind}, but the split has {expected_lines} sentences; it needs "
                         "one hypothesis per source line")
    return hypotheses
