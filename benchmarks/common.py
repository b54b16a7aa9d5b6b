"""What the benchmarks share: the machine description and the results writer (the systems' recipes are in
``data_scripts/recipes.py``)."""
from __future__ import annotations

import json
import platform
import re
from pathlib import Path

import torch

from diffuser_mt.textio import atomic_write

PARAMS_PATTERN = re.compile(r"num\. shared model params: ([\d,]+)")

def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def write_results(out: Path, results: dict, table: str) -> None:
    """OUT.json (the figures) and OUT.md (the table the README shows), written atomically; the table printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out.with_suffix(".json")) as stream:
        json.dump(results, stream, indent=2)
    with atomic_write(out.with_suffix(".md")) as stream:
        stream.write(table)
    print(table)
