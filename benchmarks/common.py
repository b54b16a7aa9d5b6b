"""What the benchmarks share: the machine description and the results writer (the systems' recipes are in
``data_scripts/recipes.py``)."""
from __future__ import annotations

import json
import platform
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from diffuser_mt.textio import atomic_write

PARAMS_PATTERN = re.compile(r"num\. shared model params: ([\d,]+)")
EPOCH_PATTERN = re.compile(r"\| train \| epoch \d+ \|.*\| wps ([\d.]+) \|.*\| num_updates (\d+) \|")
SNAPSHOT_PATTERN = re.compile(r"checkpoint_([\d.]+)min\.pt")


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def command_line(script: str, argv: list | None) -> str:
    """The command a results file records: ``script`` and its arguments (``argv``, else the process's own)."""
    return " ".join([script, *map(str, sys.argv[1:] if argv is None else argv)])


def tokens_per_second(log: str) -> float | None:
    """Training target tokens/s of a fairseq train.log: its per-epoch ``wps`` summaries averaged with each one
    weighted by the updates it covers (a summary of a few updates, an epoch cut by a stop or a segment's
    restart, counts for those few); None without a summary."""
    total, weighted, previous = 0, 0.0, 0
    for wps, updates in EPOCH_PATTERN.findall(log):
        covered, previous = int(updates) - previous, int(updates)
        total, weighted = total + covered, weighted + covered * float(wps)
    return weighted / total if total else None


def snapshot_path(save_dir: Path, minutes: float) -> Path:
    """A learning curve's checkpoint after ``minutes`` of training (its sidecar: the same name, .json)."""
    return save_dir / f"checkpoint_{minutes:g}min.pt"


def progress_of(checkpoint: Path) -> dict:
    """Updates and training minutes (fairseq's cumulative training time) stored in a checkpoint."""
    import fairseq_plugins  # noqa: F401  (the checkpoint allow-list of weights_only loading)

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return {"updates": int(state["optimizer_history"][-1]["num_updates"]),
            "training_minutes": float(state["extra_state"]["previous_training_time"]) / 60}


def snapshot_training(save_dir: Path, minutes: float) -> dict:
    """Training figures of a learning curve's run (benchmarks/learning_curves.py) up to its snapshot at
    ``minutes``: the checkpoint's updates and training minutes, target tokens/s (``tokens_per_second`` of
    train.log, the whole run), parameters, and peak memory (the largest of the segments'
    sidecars up to then; None where a segment has none)."""
    log = (save_dir / "train.log").read_text(encoding="utf-8", errors="replace")
    params = PARAMS_PATTERN.findall(log)
    segments = [path for path in save_dir.glob("checkpoint_*min.pt")
                if float(SNAPSHOT_PATTERN.fullmatch(path.name).group(1)) <= minutes + 1e-9]
    sidecars = [path.with_suffix(".json") for path in segments if path.with_suffix(".json").exists()]
    peaks = [json.loads(path.read_text())["train_peak_rss_mib"] for path in sidecars]
    return {**progress_of(snapshot_path(save_dir, minutes)),
            "train_tokens_per_second": tokens_per_second(log),
            "parameters": int(params[-1].replace(",", "")) if params else None,
            "train_peak_rss_mib": max(peaks) if peaks and len(sidecars) == len(segments) else None}


def write_results(out: Path, results: dict, table: str) -> None:
    """OUT.json (the figures, with the UTC date they were made unless ``results`` has one) and OUT.md (the
    table the README shows), written atomically; the table printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out.with_name(f"{out.name}.json")) as stream:
        json.dump({"date": datetime.now(timezone.utc).date().isoformat(), **results}, stream, indent=2)
    with atomic_write(out.with_name(f"{out.name}.md")) as stream:
        stream.write(table)
    print(table)
