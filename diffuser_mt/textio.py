"""Reading and writing text files with clear errors and no half-written output."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


class InputError(Exception):
    """A problem with user input (a file, an option) that deserves one clear line."""


def read_lines(path: str | os.PathLike, *, allow_empty_lines: bool = True) -> list[str]:
    """Return the lines of a UTF-8 text file without their line endings.

    Raises InputError naming the file (and line) when it is missing, is not
    valid UTF-8, or holds an empty line while ``allow_empty_lines`` is False.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a text file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line_no = data.count(b"\n", 0, err.start) + 1
        raise InputError(f"{path}:{line_no}: not valid UTF-8 (byte offset {err.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.rstrip("\r") for line in lines]
    if not allow_empty_lines:
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                raise InputError(f"{path}:{i}: empty line")
    return lines


def read_parallel(hyp_path, ref_path) -> tuple[list[str], list[str]]:
    """Read two line-aligned files; raise InputError when their line counts differ."""
    hyps, refs = read_lines(hyp_path), read_lines(ref_path)
    if len(hyps) != len(refs):
        raise InputError(
            f"{hyp_path} has {len(hyps)} lines but {ref_path} has {len(refs)}; they must be line-aligned"
        )
    return hyps, refs


def current_umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator:
    """Open a temporary file next to ``path``; rename it onto ``path`` only on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
