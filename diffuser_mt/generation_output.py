"""Reading the text that ``fairseq-generate`` prints.

fairseq-generate writes, per sentence, ``S-<id>``, ``T-<id>``, ``H-<id>``,
``D-<id>`` and ``P-<id>`` lines (tab-separated) in the order batches finish,
not in corpus order. These helpers put the hypotheses back in corpus order.
"""
from __future__ import annotations

import os

from diffuser_mt.textio import InputError, read_lines


def hypotheses_by_id(lines: list[str], prefix: str = "D", source: str = "<generate output>") -> dict[int, str]:
    """{sentence id: the ``prefix`` line's text} (D = detokenized, H = tokenized), for any subset of a split.

    Raises InputError when an id is repeated.
    """
    by_id: dict[int, str] = {}
    tag = f"{prefix}-"
    for line in lines:
        if not line.startswith(tag):
            continue
        fields = line.split("\t")
        sentence_id = int(fields[0][len(tag):])
        if sentence_id in by_id:
            raise InputError(f"{source}: sentence id {sentence_id} appears twice")
        by_id[sentence_id] = fields[2] if len(fields) > 2 else ""
    return by_id


def parse_hypotheses(lines: list[str], prefix: str = "D", source: str = "<generate output>") -> list[str]:
    """Return the ``prefix`` lines' text ordered by sentence id (``hypotheses_by_id``).

    Raises InputError when an id is repeated or the ids are not exactly 0..N-1.
    """
    by_id = hypotheses_by_id(lines, prefix, source)
    if sorted(by_id) != list(range(len(by_id))):
        missing = sorted(set(range(max(by_id, default=-1) + 1)) - set(by_id))
        raise InputError(f"{source}: no {prefix}- line for sentence ids {missing[:10]}")
    return [by_id[i] for i in range(len(by_id))]


def read_hypotheses(path: str | os.PathLike, prefix: str = "D") -> list[str]:
    """Read a saved fairseq-generate output file; see parse_hypotheses."""
    return parse_hypotheses(read_lines(path), prefix=prefix, source=str(path))
