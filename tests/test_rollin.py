"""Roll-in examples: fills read off the generator targets, the model's hypothesis, its supervision back to x_0."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffuser_mt.canvas import SpecialIds
from diffuser_mt.corruption import CorruptionConfig, NoiseVocabulary, sample_training_pair
from diffuser_mt.edits import Tag, apply_edits
from diffuser_mt.rollin import fills_of, rolled_in_hypothesis, rollin_example
from diffuser_mt.training_examples import example_from_edits

IDS = SpecialIds(bos=0, eos=2, pad=1, sentinels=tuple(range(30, 50)))  # more sentinels than any test has spans
VOCAB = NoiseVocabulary(50, special_ids=(0, 1, 2, 3, *IDS.sentinels))
CONFIG = CorruptionConfig()


def gold_step(x0, seed):
    pair = sample_training_pair(x0, CONFIG, VOCAB, np.random.default_rng(seed))
    example = example_from_edits(pair.x_next, pair.tags, pair.fills, IDS)
    return pair, example


@settings(max_examples=200, deadline=None)
@given(x0=st.lists(st.integers(4, 29), max_size=15), seed=st.integers(0, 2**16))
def test_fills_read_off_the_targets_rebuild_x0(x0, seed):
    pair, example = gold_step(x0, seed)
    fills = fills_of(example.generator_targets, IDS)
    assert apply_edits(pair.x_next, example.tag_targets, fills) == x0
    assert rolled_in_hypothesis(pair.x_next, example.tag_targets, example.generator_inputs, example.generator_targets,
                                example.generator_targets, IDS) == x0


@settings(max_examples=200, deadline=None)
@given(x0=st.lists(st.integers(4, 29), min_size=1, max_size=15), seed=st.integers(0, 2**16))
def test_rollin_supervision_reconstructs_x0_and_edits_only_drawn_errors(x0, seed):
    pair, example = gold_step(x0, seed)
    rng = np.random.default_rng(seed)
    targets = np.array(example.generator_targets)
    drawn = np.where((targets >= 4) & (targets < 30) & (rng.random(targets.size) < 0.3),
                     rng.integers(4, 30, targets.size), targets)
    hypothesis = rolled_in_hypothesis(pair.x_next, example.tag_targets, example.generator_inputs,
                                      example.generator_targets, drawn, IDS)
    assert len(hypothesis) == len(x0)
    rolled = rollin_example(pair.x_next, example.tag_targets, example.generator_inputs, example.generator_targets,
                            drawn, x0, IDS)
    assert rolled.tagger_tokens == [IDS.bos, *hypothesis]
    wrong = sum(h != x for h, x in zip(hypothesis, x0))
    assert sum(tag != Tag.KEEP for tag in rolled.tag_targets) <= wrong
    gold_fills = fills_of(rolled.generator_targets, IDS)
    assert apply_edits(hypothesis, rolled.tag_targets, gold_fills) == x0


def test_correct_draws_give_an_all_keep_example():
    pair, example = gold_step([5, 6, 7, 8, 9, 10, 11, 12], seed=3)
    rolled = rollin_example(pair.x_next, example.tag_targets, example.generator_inputs, example.generator_targets,
                            example.generator_targets, pair.x_prev, IDS)
    assert set(rolled.tag_targets) == {Tag.KEEP} and set(rolled.generator_targets) <= {IDS.pad}


def test_empty_fills_are_kept_in_order():
    # Z[1:] learned part: f_0 = [], S_1, f_1 = [7, 8], eos
    targets = [1, 1, 1, 31, 7, 8, 2]
    assert fills_of(targets, IDS) == [[], [7, 8]]
    assert fills_of(targets, IDS, tokens=[0, 0, 0, 31, 9, 10, 2]) == [[], [9, 10]]


def test_drawn_tokens_must_align_with_the_targets():
    with pytest.raises(ValueError, match="tokens has 2 entries"):
        fills_of([1, 2, 2], IDS, tokens=[5, 6])
