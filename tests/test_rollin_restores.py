"""Roll-in teaches the tagger plausible errors: a tiny model trained with it restores single-word errors that the
same model trained on corruption alone leaves in place.

The corpus is a token-for-token translation (target token i = a fixed dictionary's translation of source token
i) over a joined dictionary that also holds 400 symbols no sentence uses, so uniform corruption noise is
almost never a target word. A tagger trained on corruption alone learns "a word that never occurs here is
wrong" and keeps a wrong target word; roll-in shows it the generator's own plausible mistakes. The drafts are
test targets with one word replaced by another target word.
"""
from __future__ import annotations

import os
import random
import subprocess

import pytest
from fairseq_helpers import USER_DIR, fairseq, lines_of

from data_scripts.fairseq_tools import fairseq_executable

pytestmark = pytest.mark.slow  # two trainings of 500 updates side by side (about 2 minutes on 2 cores)

WORDS, UNUSED, TRAIN, TEST = 20, 400, 1000, 200
UPDATES = 500


def translation_pairs(rng: random.Random, dictionary: list[int], count: int) -> list[tuple[str, str]]:
    pairs = []
    for _ in range(count):
        source = [rng.randrange(WORDS) for _ in range(rng.randint(4, 10))]
        pairs.append((" ".join(f"s{k}" for k in source), " ".join(f"t{dictionary[k]}" for k in source)))
    return pairs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("word_translation")
    rng = random.Random(0)
    dictionary = list(range(WORDS))
    rng.shuffle(dictionary)
    for split, count in (("train", TRAIN), ("valid", 50), ("test", TEST)):
        pairs = translation_pairs(rng, dictionary, count)
        (out / f"{split}.src").write_text("".join(f"{source}\n" for source, _ in pairs))
        (out / f"{split}.tgt").write_text("".join(f"{target}\n" for _, target in pairs))
    symbols = [f"s{k}" for k in range(WORDS)] + [f"t{k}" for k in range(WORDS)] + [f"u{k}" for k in range(UNUSED)]
    (out / "dict.txt").write_text("".join(f"{symbol} 1\n" for symbol in symbols))
    fairseq("fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt", "--trainpref", out / "train",
            "--validpref", out / "valid", "--testpref", out / "test", "--srcdict", out / "dict.txt",
            "--tgtdict", out / "dict.txt", "--destdir", out / "bin", "--workers", "1")
    return out


def train_side_by_side(corpus, runs: dict[str, list[str]]) -> dict:
    """fairseq-train of each run at once (one thread each); {name: its last checkpoint}."""
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    env["OMP_NUM_THREADS"] = "1"
    processes = {}
    for name, extra in runs.items():
        command = [fairseq_executable("fairseq-train"), str(corpus / "bin"), "--user-dir", USER_DIR, "--task",
                   "diffuser", "--arch", "diffuser_tiny", "-s", "src", "-t", "tgt", "--criterion", "diffuser_loss",
                   "--optimizer", "adam", "--lr", "3e-3", "--max-tokens", "2000", "--cpu", "--no-progress-bar",
                   "--num-workers", "0", "--seed", "7", "--max-update", str(UPDATES), "--disable-validation",
                   "--no-epoch-checkpoints", "--save-dir", str(corpus / name), *extra]
        processes[name] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                           env=env)
    for name, process in processes.items():
        _, stderr = process.communicate()
        assert process.returncode == 0, stderr[-3000:]
    return {name: corpus / name / "checkpoint_last.pt" for name in runs}


def test_a_tiny_model_trained_with_rollin_restores_more_single_word_errors(corpus):
    references = (corpus / "test.tgt").read_text().splitlines()
    rng = random.Random(1)
    drafts = []
    for reference in references:
        words = reference.split()
        position = rng.randrange(len(words))
        words[position] = rng.choice([f"t{k}" for k in range(WORDS) if f"t{k}" != words[position]])
        drafts.append(" ".join(words))
    (corpus / "drafts.tgt").write_text("".join(f"{draft}\n" for draft in drafts))
    checkpoints = train_side_by_side(corpus, {"corruption": [], "rollin": ["--rollin-prob", "0.5"]})
    restored = {}
    for name, checkpoint in checkpoints.items():
        result = fairseq("fairseq-generate", corpus / "bin", "--user-dir", USER_DIR, "--task", "diffuser", "-s", "src",
                         "-t", "tgt", "--gen-subset", "test", "--path", checkpoint, "--init-mode", "file",
                         "--init-file", corpus / "drafts.tgt", "--decode-steps", "2", "--batch-size", "64", "--cpu")
        outputs = {i: fields[1] for i, fields in lines_of(result.stdout, "H").items()}
        assert len(outputs) == len(references)
        restored[name] = sum(outputs[i] == reference for i, reference in enumerate(references))
    print(f"single-word errors restored in 2 steps, of {len(references)}: {restored}")
    assert restored["rollin"] >= restored["corruption"] + 10, restored
