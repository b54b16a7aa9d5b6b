"""Start states of the edit decoder: random tokens, external hypotheses, the auto start of a corpus task."""
from __future__ import annotations

import numpy as np
import pytest

from diffuser_mt.corruption import NoiseVocabulary
from diffuser_mt.data_manifest import corpus_task, read_manifest
from diffuser_mt.start_states import random_start, read_init_hypotheses, resolve_start_mode
from diffuser_mt.textio import InputError

NOISE = NoiseVocabulary(50, special_ids=range(5))


@pytest.mark.parametrize("source_length, max_length, expected", [(7, 100, 7), (0, 100, 0), (30, 12, 12)])
def test_random_start_has_the_source_length_up_to_the_cap(source_length, max_length, expected):
    state = random_start(source_length, NOISE, np.random.default_rng(0), max_length)
    assert len(state) == expected
    assert all(5 <= token < 50 for token in state)


def test_random_start_follows_the_seed():
    draw = lambda seed: random_start(20, NOISE, np.random.default_rng(seed), 100)  # noqa: E731  (a one-line draw, called below)
    assert draw(1) == draw(1) != draw(2)


def test_plain_text_hypotheses_keep_empty_lines(tmp_path):
    path = tmp_path / "hyp.de"
    path.write_text("Guten Tag.\n\nDanke!\n", encoding="utf-8")
    assert read_init_hypotheses(path, 3) == ["Guten Tag.", "", "Danke!"]


def test_fairseq_generate_output_is_read_in_corpus_order(tmp_path):
    path = tmp_path / "generate-test.txt"
    path.write_text("S-1\tb\nH-1\t-0.2\t▁Zwei\nD-1\t-0.2\tZwei\nS-0\ta\nD-0\t-0.1\tEins\n"
                    "Generate test with beam=5: BLEU4 = 1.0\n", encoding="utf-8")
    assert read_init_hypotheses(path, 2) == ["Eins", "Zwei"]


@pytest.mark.parametrize("content, expected_lines, message", [
    ("a\nb\n", 3, "2 lines, but the split to decode has 3 sentences"),
    ("D-0\t0\ta\n", 2, "1 D- hypotheses, but the split to decode has 2"),
])
def test_a_wrong_number_of_hypotheses_is_one_clear_error(tmp_path, content, expected_lines, message):
    path = tmp_path / "hyp.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_init_hypotheses(path, expected_lines)


def test_non_utf8_hypotheses_name_the_line(tmp_path):
    path = tmp_path / "hyp.txt"
    path.write_bytes(b"gut\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"hyp.txt:2: not valid UTF-8"):
        read_init_hypotheses(path, 2)


@pytest.mark.parametrize("mode, task, resolved", [
    ("auto", "translation", "random"), ("auto", "summarization", "source"),
    ("null", "summarization", "null"), ("random", "summarization", "random"), ("source", "translation", "source"),
])
def test_auto_start_is_random_for_translation_and_source_for_summarization(mode, task, resolved):
    assert resolve_start_mode(mode, task) == resolved


@pytest.mark.parametrize("content, task", [
    (None, "translation"), ("{}", "translation"), ('{"task": "summarization"}', "summarization"),
    ('{"task": "translation", "pairs": {}}', "translation"),
])
def test_the_corpus_task_comes_from_the_manifest_and_defaults_to_translation(tmp_path, content, task):
    if content is not None:
        (tmp_path / "manifest.json").write_text(content, encoding="utf-8")
    assert corpus_task(read_manifest(tmp_path)) == task


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object"), ('{"task": "tagging"}', "'tagging'"),
])
def test_a_broken_manifest_is_an_input_error_naming_it(tmp_path, content, message):
    (tmp_path / "manifest.json").write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        corpus_task(read_manifest(f"{tmp_path}:{tmp_path / 'other'}"))
