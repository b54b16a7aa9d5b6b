"""Running fairseq's command-line programs from the data scripts, and writing the scores of what they decode."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from diffuser_mt.generation_output import read_hypotheses
from diffuser_mt.textio import InputError, atomic_write

REPO_ROOT = Path(__file__).resolve().parent.parent
USER_DIR = REPO_ROOT / "fairseq_plugins"


def fairseq_executable(name: str) -> str:
    """Path of a fairseq console script (e.g. ``fairseq-train``): next to this python, else on PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"error: {name} not found; run `make setup` (it installs fairseq into .venv)")
    return found


def run_fairseq(name: str, args: list[str], stdout_path: Path | None = None) -> None:
    """Run a fairseq program; exit with one clear line when it fails.

    With ``stdout_path`` the program's stdout goes to that file (written under a
    temporary name and renamed on success); stderr (the log) stays on the terminal.
    """
    command = [fairseq_executable(name), *map(str, args)]
    print("+ " + " ".join(command), file=sys.stderr, flush=True)
    if stdout_path is None:
        returncode = run_interruptibly(command, name)
    else:
        stdout_path.parent.mkdir(parents=True, exist_ok=True)
        partial = stdout_path.with_name(stdout_path.name + ".partial")
        with open(partial, "w", encoding="utf-8") as out:
            returncode = run_interruptibly(command, name, stdout=out)
        if returncode == 0:
            os.replace(partial, stdout_path)
    if returncode != 0:
        raise SystemExit(f"error: {name} failed with exit status {returncode} (its log is above)")


INTERRUPTED_EXIT_STATUS = 130  # the shell's status of a program ended by SIGINT


def run_interruptibly(command: list[str], name: str, stdout=None) -> int:
    """The exit status of ``command``, run in a session of its own so that Ctrl-C reaches only this script; on
    Ctrl-C the program (and its data-loader workers) is stopped with SIGTERM and this script exits with one line
    and status 130. fairseq writes checkpoints under a temporary name: a re-run resumes from the last one."""
    process = subprocess.Popen(command, stdout=stdout, start_new_session=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        print(f"error: interrupted (Ctrl-C) during {name}; run the same command again to continue: finished runs "
              "are reused and a training resumes from its last checkpoint", file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED_EXIT_STATUS) from None


def generate_hypotheses(args: list, output: Path, reference: Path, references: list[str]) -> list[str]:
    """fairseq-generate with its stdout in ``output``; the hypotheses in corpus order, InputError unless there
    is one per line of ``references`` (read from ``reference``)."""
    run_fairseq("fairseq-generate", args, stdout_path=output)
    hypotheses = read_hypotheses(output, prefix="D")
    if len(hypotheses) != len(references):
        raise InputError(f"{output} has {len(hypotheses)} hypotheses, {reference} has {len(references)} references")
    return hypotheses


def write_scores(path: Path, results: dict, headline: str) -> None:
    """``results`` (with sacreBLEU's ``bleu`` and ``signature``) as JSON at ``path``; the BLEU after ``headline``
    and the signature printed."""
    with atomic_write(path) as out:
        json.dump(results, out, indent=2)
    print(f"{headline} test BLEU = {results['bleu']:.2f}")
    print(f"sacreBLEU signature: {results['signature']}")
