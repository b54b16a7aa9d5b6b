"""Start states of the edit decoder: each mode's x_T, random tokens, external hypotheses, the auto start of a
corpus task."""
from __future__ import annotations

import numpy as np
import pytest

from diffuser_mt.corruption import NoiseVocabulary
from diffuser_mt.data_manifest import corpus_task, read_manifest, sentencepiece_model
from diffuser_mt.start_states import (
    START_MODES,
    StartSettings,
    length_limit,
    random_start,
    read_init_hypotheses,
    resolve_start_mode,
    reverse_steps,
    sentence_rng,
    start_state,
)
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


SOURCE = [11, 12, 13, 14, 15, 16]
INIT_TOKENS = [[7, 8], [], [9, 9, 9]]


def start(mode: str, sentence_id: int = 2, max_length: int = 100, seed: int = 5, source=SOURCE) -> list[int]:
    settings = StartSettings(mode=mode, noise_vocab=NOISE, seed=seed, init_tokens=INIT_TOKENS)
    return start_state(settings, sentence_id, source, sentence_rng(seed, source), max_length)


@pytest.mark.parametrize("mode, max_length, expected", [
    ("null", 100, []), ("ar", 100, []), ("source", 100, SOURCE), ("source", 4, SOURCE[:4]), ("file", 100, [9, 9, 9]),
    ("file", 2, [9, 9, 9]),  # a file's hypothesis is checked against --max-target-positions when it is read
])
def test_each_start_mode_builds_its_start_state(mode, max_length, expected):
    assert start(mode, max_length=max_length) == expected


def test_a_random_start_is_the_sentence_generators_draw_of_the_source_length():
    assert start("random") == random_start(len(SOURCE), NOISE, sentence_rng(5, SOURCE), 100)
    assert start("random", max_length=3) == start("random")[:3]
    assert start("random") == start("random", sentence_id=1)  # the sentence's position does not matter
    assert start("random") != start("random", source=SOURCE[::-1]) != start("random", seed=6)


def test_the_sentence_generator_depends_on_the_seed_and_the_source_only():
    draw = lambda seed, source: sentence_rng(seed, source).integers(0, 1 << 30, size=4).tolist()  # noqa: E731
    assert draw(3, [7, 8]) == draw(3, [7, 8])
    assert len({tuple(draw(3, [7, 8])), tuple(draw(3, [8, 7])), tuple(draw(4, [7, 8])), tuple(draw(3, [7, 8, 0])),
                tuple(draw(3, [7]))}) == 5


@pytest.mark.parametrize("mode, edit_steps, expected", [("ar", 3, 4), ("ar", 0, 1), ("random", 3, 3), ("null", 0, 0),
                                                        ("source", 12, 12), ("file", 5, 5)])
def test_the_ar_start_adds_its_generation_step(mode, edit_steps, expected):
    assert reverse_steps(mode, edit_steps) == expected


@pytest.mark.parametrize("mode, init_tokens, message", [
    ("auto", None, "unknown start mode 'auto'"), ("file", None, "needs the hypotheses"),
])
def test_invalid_start_settings_are_refused(mode, init_tokens, message):
    with pytest.raises(ValueError, match=message):
        StartSettings(mode=mode, noise_vocab=NOISE, seed=1, init_tokens=init_tokens)


@pytest.mark.parametrize("mode", START_MODES)
def test_every_start_mode_is_valid_with_init_tokens(mode):
    assert StartSettings(mode=mode, noise_vocab=NOISE, seed=1, init_tokens=INIT_TOKENS).mode == mode


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
    ("a\nb\n", 3, "2 lines, but the split has 3 sentences"),
    ("D-0\t0\ta\n", 2, "1 D- hypotheses, but the split has 2"),
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


@pytest.mark.parametrize("content, model", [
    (None, None), ("{}", None), ('{"sentencepiece_model": "/data/spm.model"}', "/data/spm.model"),
])
def test_the_sentencepiece_model_comes_from_the_manifest(tmp_path, content, model):
    if content is not None:
        (tmp_path / "manifest.json").write_text(content, encoding="utf-8")
    assert sentencepiece_model(read_manifest(tmp_path)) == model


@pytest.mark.parametrize("source_length, a, b, draft_length, expected", [
    (11, 1.2, 10, 0, 23),  # int(1.2 * 11 + 10): fairseq's cap, the source counted with its eos
    (11, 0.0, 200, 0, 200),  # fairseq's defaults
    (11, 1.2, 10, 40, 40),  # a longer draft is not cut
    (11, 1.2, 10, 5, 23),
])
def test_length_limit_is_fairseqs_cap_and_never_cuts_a_draft(source_length, a, b, draft_length, expected):
    assert length_limit(source_length, a, b, draft_length) == expected
