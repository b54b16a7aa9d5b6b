"""Roll-in teaches the tagger plausible errors: a tiny model trained with it restores single-word errors that the
same model trained on corruption alone leaves in place.

The corpus is ``benchmarks/word_translation.py``'s word-for-word translation (target word i = a fixed
dictionary's translation of source word i) over a joined dictionary that also holds 400 symbols no sentence uses,
so uniform corruption noise is almost never a target word. A tagger trained on corruption alone learns "a word
that never occurs here is wrong" and keeps a wrong target word; roll-in shows it the generator's own plausible
mistakes. The drafts are test targets with one word replaced by another target word.
"""
from __future__ import annotations

import random

import pytest

from benchmarks.word_translation import ERROR_KINDS, VARIANTS, build_corpus, decode, train_side_by_side, with_error

WORDS = 20


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_each_error_kind_makes_one_word_error(kind, seed):
    words = [f"t{k}" for k in random.Random(seed).sample(range(WORDS), 6)]
    edited = with_error(words, kind, random.Random(seed), [f"t{k}" for k in range(WORDS)])
    if kind == "substitute":
        assert len(edited) == len(words) and sum(a != b for a, b in zip(edited, words)) == 1
    elif kind == "drop":
        assert len(edited) == len(words) - 1 and any(edited == words[:i] + words[i + 1:] for i in range(len(words)))
    elif kind == "duplicate":
        assert any(edited == words[:i + 1] + words[i:] for i in range(len(words)))
    else:
        assert sorted(edited) == sorted(words) and sum(a != b for a, b in zip(edited, words)) == 2


def test_an_unknown_error_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        with_error(["t1"], "shuffle", random.Random(0), ["t1", "t2"])


@pytest.mark.slow  # two trainings of 500 updates side by side (about 2 minutes on 2 cores)
def test_a_tiny_model_trained_with_rollin_restores_more_single_word_errors(tmp_path):
    data = build_corpus(tmp_path / "corpus", words=WORDS, unused=400, train=1000)
    references = (tmp_path / "corpus" / "test.tgt").read_text().splitlines()
    rng = random.Random(1)
    vocabulary = [f"t{k}" for k in range(WORDS)]
    drafts = [" ".join(with_error(reference.split(), "substitute", rng, vocabulary)) for reference in references]
    assert all(draft != reference for draft, reference in zip(drafts, references))
    (tmp_path / "drafts.tgt").write_text("".join(f"{draft}\n" for draft in drafts))
    checkpoints = train_side_by_side(data, tmp_path, updates=500, seed=7,
                                     variants={name: VARIANTS[name] for name in ("corruption", "rollin")})
    restored = {}
    for name, checkpoint in checkpoints.items():
        outputs = decode(data, checkpoint, tmp_path / f"{name}.txt", "--init-mode", "file", "--init-file",
                         tmp_path / "drafts.tgt", "--decode-steps", 2)
        assert len(outputs) == len(references)
        restored[name] = sum(output == reference for output, reference in zip(outputs, references))
    print(f"single-word errors restored in 2 steps, of {len(references)}: {restored}")
    assert restored["rollin"] >= restored["corruption"] + 10, restored
