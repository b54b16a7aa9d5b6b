"""Running fairseq's console scripts in tests, with --user-dir fairseq_plugins."""
from __future__ import annotations

import json
import os
import re
import subprocess

from corpus_helpers import REPO_ROOT

from data_scripts.fairseq_tools import fairseq_executable

USER_DIR = str(REPO_ROOT / "fairseq_plugins")
DIFFUSER_TINY = ["--user-dir", USER_DIR, "--task", "diffuser", "--arch", "diffuser_tiny",
                 "--criterion", "diffuser_loss", "--optimizer", "adam", "--lr", "3e-3", "--max-tokens", "2000",
                 "--cpu", "--no-progress-bar", "--num-workers", "0", "--seed", "7"]
D3PM_TINY = ["--user-dir", USER_DIR, "--task", "d3pm", "--arch", "d3pm_tiny", "--criterion", "d3pm_loss",
             "--optimizer", "adam", "--lr", "3e-3", "--max-tokens", "2000", "--cpu", "--no-progress-bar",
             "--num-workers", "0", "--seed", "7", "--num-diffusion-timesteps", "50"]
DIFFUSEQ_TIMESTEPS = 40
DIFFUSEQ_TINY = ["--user-dir", USER_DIR, "--task", "diffuseq", "--arch", "diffuseq_tiny", "--criterion",
                 "diffuseq_loss", "--optimizer", "adam", "--lr", "3e-3", "--batch-size", "16", "--cpu",
                 "--no-progress-bar", "--num-workers", "0", "--seed", "7", "--num-diffusion-timesteps",
                 str(DIFFUSEQ_TIMESTEPS), "--sequence-length", "64", "--word-embed-dim", "16",
                 "--skip-invalid-size-inputs-valid-test"]
TRANSFORMER_TINY = ["--user-dir", USER_DIR, "--task", "translation", "--arch", "transformer_cpu_tiny",
                    "--share-all-embeddings", "--criterion", "label_smoothed_cross_entropy", "--label-smoothing",
                    "0.1", "--optimizer", "adam", "--lr", "3e-3", "--max-tokens", "2000", "--cpu",
                    "--no-progress-bar", "--num-workers", "0", "--seed", "7"]
# the families of the session's tiny checkpoints (conftest.tiny_checkpoints), trained TINY_UPDATES updates each
TINY_FAMILIES = {"diffuser": DIFFUSER_TINY, "d3pm": D3PM_TINY, "diffuseq": DIFFUSEQ_TINY,
                 "transformer": TRANSFORMER_TINY}
TINY_UPDATES = 10


def fairseq(program: str, *args, check: bool = True, cwd=None) -> subprocess.CompletedProcess:
    """Run a fairseq console script of this environment; no weights-only override in its environment."""
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    result = subprocess.run([fairseq_executable(program), *map(str, args)], capture_output=True, text=True, env=env,
                            cwd=cwd)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def json_log(stdout: str, kind: str) -> list[dict]:
    """fairseq's --log-format json records of one kind ('train_inner', 'valid', ...); fairseq logs to stdout."""
    records = []
    for line in stdout.splitlines():
        if f"| {kind} |" in line:
            records.append(json.loads(line.split(f"| {kind} | ", 1)[1]))
    return records


def lines_of(stdout: str, kind: str) -> dict[int, list[str]]:
    """{sentence id: tab-separated fields after the id} of fairseq's ``kind``-<id> lines."""
    found = {}
    for line in stdout.splitlines():
        match = re.match(rf"{kind}-(\d+)\t(.*)$", line)
        if match:
            found[int(match.group(1))] = match.group(2).split("\t")
    return found
