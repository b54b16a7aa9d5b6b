"""fairseq-interactive's input, read so that one bad line does not stop the others.

fairseq-interactive decodes its input strictly as UTF-8: one undecodable byte ends the program with a
traceback and loses the lines buffered with it. ``read_input_lines`` (installed as fairseq-interactive's
``buffered_read`` when the plugins are imported by it) keeps such bytes as lone surrogates, so the task can
report the line (``input_line_problem``) and translate the others. ``InteractiveLines`` is the tasks' record of
the lines read so far, which numbers them as fairseq-interactive prints them.
"""
from __future__ import annotations

import os
import sys
from collections import defaultdict, deque
from typing import Callable, Iterator

import torch
from fairseq.data import BaseWrapperDataset

INTERACTIVE_SCRIPT = os.path.join("fairseq_cli", "interactive.py")
SURROGATES = range(0xDC80, 0xDD00)  # what "surrogateescape" decodes the bytes 0x80-0xff of invalid UTF-8 to


def read_input_lines(input: str, buffer_size: int) -> Iterator[list[str]]:
    """Lists of ``buffer_size`` stripped lines (the last one shorter) of the file ``input`` ('-': stdin),
    decoded as UTF-8 with invalid bytes kept as lone surrogates; as fairseq's ``buffered_read`` otherwise."""
    stream = sys.stdin.buffer if input == "-" else open(input, "rb")
    buffer = []
    try:
        for line in stream:
            buffer.append(line.decode("utf-8", errors="surrogateescape").strip())
            if len(buffer) >= buffer_size:
                yield buffer
                buffer = []
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    if buffer:
        yield buffer


def input_line_problem(line: str) -> str | None:
    """Why an input line of ``read_input_lines`` cannot be translated (not UTF-8, empty), or None."""
    if any(ord(character) in SURROGATES for character in line):
        return "not valid UTF-8"
    if not line:
        return "empty line"
    return None


def install_input_reader() -> None:
    """Make a running fairseq-interactive read its input with ``read_input_lines`` (idempotent; nothing when
    fairseq-interactive is not the program)."""
    for module in (sys.modules.get("fairseq_cli.interactive"), sys.modules.get("__main__")):  # console script, -m
        if hasattr(module, "buffered_read") and getattr(module, "__file__", "").endswith(INTERACTIVE_SCRIPT):
            module.buffered_read = read_input_lines


class InteractiveLines:
    """What fairseq-interactive has read so far: lines are numbered from 0 across its buffers, as it prints them.

    ``encode`` turns a buffer into source ids, reporting each line that is not UTF-8, empty, or longer than the
    model's positions as one ``error: input line N (id N-1): ...`` line on stderr and leaving it out; ``take_positions``
    gives the kept lines' positions in the buffer (the dataset's ids); ``sentence_ids`` gives, for a batch of
    sources, the running number of each (an identical source gets the numbers of its copies in order; its
    decoding is the same, being seeded by the source).
    """

    def __init__(self):
        self.lines_read = 0
        self.positions: list[int] | None = None
        self.numbers: defaultdict[tuple, deque] = defaultdict(deque)

    def encode(self, lines: list[str], encode: Callable[[str], torch.Tensor], max_positions: int) -> list:
        tokens, self.positions = [], []
        for position, line in enumerate(lines):
            problem = input_line_problem(line)
            ids = encode(line) if problem is None else None
            if ids is not None and len(ids) > max_positions:
                problem = f"{len(ids)} tokens, over --max-source-positions {max_positions}"
            if problem is not None:
                number = self.lines_read + position
                print(f"error: input line {number + 1} (id {number}): {problem}; not translated", file=sys.stderr,
                      flush=True)
                continue
            tokens.append(ids)
            self.positions.append(position)
            self.numbers[tuple(ids.tolist())].append(self.lines_read + position)
        self.lines_read += len(lines)
        return tokens

    def take_positions(self) -> list[int] | None:
        positions, self.positions = self.positions, None
        return positions

    def sentence_ids(self, src_tokens: torch.Tensor, pad: int) -> torch.Tensor:
        rows = [tuple(token for token in row if token != pad) for row in src_tokens.tolist()]
        return torch.tensor([self.numbers[row].popleft() for row in rows], dtype=torch.long)


class RenumberedDataset(BaseWrapperDataset):
    """A dataset whose i-th example has the id ``ids[i]`` (fairseq's collaters read the ids from the examples)."""

    def __init__(self, dataset, ids: list[int]):
        super().__init__(dataset)
        self.ids = ids

    def __getitem__(self, index):
        return {**self.dataset[index], "id": self.ids[index]}
