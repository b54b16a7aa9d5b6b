"""What the three tasks share (fairseq_plugins.tasks.language_pair_task), on plain objects."""
from __future__ import annotations

import dataclasses
import re
from types import SimpleNamespace

import numpy as np
import pytest
from fairseq.data import Dictionary

from diffuser_mt.canvas import SpecialIds
from diffuser_mt.d3pm_sampling import DecodeConfig
from fairseq_plugins.tasks.d3pm_task import D3PMTask, D3PMTaskConfig
from fairseq_plugins.tasks.diffuseq_task import DiffuSeqTask, DiffuSeqTaskConfig
from fairseq_plugins.tasks.diffuser_task import DiffuserConfig, DiffuserTask, noise_vocabulary
from fairseq_plugins.tasks.language_pair_task import LanguagePairTask, check_decode_steps, check_lengths, core_config

LIMITS = SimpleNamespace(max_source_positions=5, max_target_positions=4)


def pairs(src_sizes, tgt_sizes):
    return SimpleNamespace(src_sizes=np.array(src_sizes), tgt_sizes=np.array(tgt_sizes))


def test_lengths_within_the_limits_pass():
    check_lengths(pairs([2, 5, 3], [2, 4, 4]), "train", LIMITS)


@pytest.mark.parametrize("src_sizes, tgt_sizes, message", [
    ([2, 1, 1], [2, 2, 2], "error: valid split: empty source line 2 (2 empty source lines in all)"),
    ([2, 2, 2], [2, 2, 1], "error: valid split: empty target line 3 (1 empty target lines in all)"),
    ([6, 2, 7], [2, 2, 2], "error: valid split: source line 1 has 6 tokens, over --max-source-positions 5 (2 such"),
    ([2, 2, 2], [2, 5, 2], "error: valid split: target line 2 has 5 tokens, over --max-target-positions 4 (1 such"),
])
def test_empty_or_over_long_lines_stop_with_one_line_naming_them(src_sizes, tgt_sizes, message):
    with pytest.raises(SystemExit, match=re.escape(message)):
        check_lengths(pairs(src_sizes, tgt_sizes), "valid", LIMITS)


class ToyTask(LanguagePairTask):
    DECODING_OPTIONS = ("decode_steps", "d3pm_decoding")

    def __init__(self, **cfg):
        self.cfg = SimpleNamespace(**cfg)


@pytest.mark.parametrize("args, expected", [
    (None, {"decode_steps": 20, "d3pm_decoding": "argmax"}),
    (SimpleNamespace(decode_steps=4), {"decode_steps": 4, "d3pm_decoding": "argmax"}),
    (SimpleNamespace(decode_steps=None, d3pm_decoding="sample", beam=5),
     {"decode_steps": 20, "d3pm_decoding": "sample"}),
])
def test_generation_args_override_the_tasks_decoding_options(args, expected):
    task = ToyTask(decode_steps=20, d3pm_decoding="argmax", seed=1)
    assert task.decoding_options(args) == expected


@pytest.mark.parametrize("task, config", [(DiffuserTask, DiffuserConfig), (D3PMTask, D3PMTaskConfig),
                                          (DiffuSeqTask, DiffuSeqTaskConfig)])
def test_the_three_tasks_name_their_steps_decode_steps(task, config):
    assert "decode_steps" in task.DECODING_OPTIONS
    assert {"decode_steps", *task.DECODING_OPTIONS} <= {option.name for option in dataclasses.fields(config)}


def test_an_invalid_core_config_is_one_line_naming_the_option_group():
    assert core_config(lambda: DecodeConfig(steps=3), "d3pm decoding option") == DecodeConfig(steps=3)
    with pytest.raises(SystemExit, match="^error: invalid d3pm decoding option: the temperature must be > 0, got 0"):
        core_config(lambda: DecodeConfig(temperature=0), "d3pm decoding option")


@pytest.mark.parametrize("decode_steps", [1, 7, 50])
def test_decode_steps_up_to_t_pass(decode_steps):
    check_decode_steps(50, decode_steps)


@pytest.mark.parametrize("decode_steps", [0, 51])
def test_decode_steps_outside_1_to_t_stop_with_one_line(decode_steps):
    with pytest.raises(SystemExit, match=r"^error: --decode-steps: .* must be in 1..T = 1..50"):
        check_decode_steps(50, decode_steps)


def test_unigram_counts_without_mass_on_any_drawable_token_stop_with_one_line():
    dictionary = Dictionary()
    for word in ("Haus", "klein"):
        dictionary.add_symbol(word)
    ids = SpecialIds(bos=dictionary.bos(), eos=dictionary.eos(), pad=dictionary.pad(), sentinels=())
    counts = np.zeros(len(dictionary))
    counts[dictionary.eos()] = 7.0  # only the end of sentence was counted: nothing to draw noise from
    with pytest.raises(SystemExit, match=r"^error: no noise to draw from the target dictionary: weights give no mass"):
        noise_vocabulary(dictionary, ids, word_starts=False, counts=counts)
