"""Shared helpers of the tests that need the default corpus."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PREPARE = REPO_ROOT / "data_scripts" / "prepare_ding.py"
REAL_DICTIONARY = Path("/usr/share/trans/de-en")


def run_prepare(dictionary: Path, out: Path, *options: str) -> subprocess.CompletedProcess:
    """Run prepare_ding.py as a program into ``out/text`` and ``out/bin``."""
    command = [sys.executable, str(PREPARE), "--dictionary", str(dictionary),
               "--text-dir", str(out / "text"), "--dest-dir", str(out / "bin"), *options]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)


def write_dictionary(path: Path, lines: list[str]) -> Path:
    """A Ding-format file holding ``lines``."""
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path
