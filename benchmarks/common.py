"""What the benchmarks share: the systems' fairseq-train options, the machine description, the results writer."""
from __future__ import annotations

import json
import platform
import re
from pathlib import Path

import torch

from diffuser_mt.textio import atomic_write

PARAMS_PATTERN = re.compile(r"num\. shared model params: ([\d,]+)")

# fairseq-train options per system; {size} is the size class
SYSTEMS = {
    "transformer": ["--task", "translation", "--arch", "transformer_cpu_{size}", "--share-all-embeddings",
                    "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"],
    "levenshtein_transformer": ["--task", "translation_lev", "--noise", "random_delete",
                                "--arch", "levenshtein_transformer_cpu_{size}", "--share-all-embeddings",
                                "--criterion", "nat_loss", "--label-smoothing", "0.1"],
    "diffuser": ["--task", "diffuser", "--arch", "diffuser_{size}", "--criterion", "diffuser_loss"],
    "diffuseq": ["--task", "diffuseq", "--arch", "diffuseq_{size}", "--criterion", "diffuseq_loss",
                 "--sequence-length", "64", "--skip-invalid-size-inputs-valid-test"],
    "d3pm": ["--task", "d3pm", "--arch", "d3pm_{size}", "--criterion", "d3pm_loss"],
}


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
