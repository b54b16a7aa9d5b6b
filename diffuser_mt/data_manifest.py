"""The ``manifest.json`` that the corpus scripts write beside the binarized data.

The diffuser task reads two things from it: ``task`` (``translation`` or
``summarization``; a data directory without a manifest, or a manifest without the
key, is translation) and ``sentencepiece_model`` (the model that encoded the data).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from diffuser_mt.textio import InputError

MANIFEST_NAME = "manifest.json"
CORPUS_TASKS = ("translation", "summarization")


def read_manifest(data_dir: str | os.PathLike) -> dict | None:
    """The manifest of ``data_dir`` (the first of fairseq's ``a:b`` data paths), or None when it has none.

    Raises InputError naming the file when it is not a JSON object.
    """
    path = Path(str(data_dir).split(os.pathsep)[0]) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{path}: expected a JSON object")
    return manifest


def sentencepiece_model(manifest: dict | None) -> str | None:
    """The path of the sentencepiece model that encoded the data, as the manifest names it; None when it names
    none (or there is no manifest)."""
    return (manifest or {}).get("sentencepiece_model")


def corpus_task(manifest: dict | None) -> str:
    """``translation`` or ``summarization``: the manifest's ``task``, translation when absent."""
    task = (manifest or {}).get("task", "translation")
    if task not in CORPUS_TASKS:
        raise InputError(f"{MANIFEST_NAME}: task {task!r} is not one of {', '.join(CORPUS_TASKS)}")
    return task
