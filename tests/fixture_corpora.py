"""The real-data samples in ../shared/fixtures (newstest2014 lines, CNN .story files), for the corpus tests."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from corpus_helpers import REPO_ROOT

SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
WMT14_FIXTURES = SHARED_FIXTURES / "wmt14"
CNN_DM_FIXTURES = SHARED_FIXTURES / "cnn_dm"


def require(folder: Path) -> Path:
    """``folder``, or skip the test when the shared fixtures are not laid out beside the repository."""
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent: the real-data fixtures live in ../shared/fixtures beside the repository")
    return folder


def run_script(name: str, *options) -> subprocess.CompletedProcess:
    """Run ``data_scripts/NAME`` as a program."""
    command = [sys.executable, str(REPO_ROOT / "data_scripts" / name), *map(str, options)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)


def assert_one_error_line(result: subprocess.CompletedProcess, *words: str) -> str:
    """A non-zero exit with exactly one ``error:`` line holding every word, and no traceback."""
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    assert all(word in error_lines[0] for word in words), error_lines[0]
    assert "Traceback" not in result.stderr
    return error_lines[0]
