"""Edit supervision from a Levenshtein alignment: exact reconstruction and the minimal edits it names."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffuser_mt.alignment import edit_supervision, matched_origins
from diffuser_mt.edits import Tag, apply_edits, edit_spans

VOCAB = 12
IS_WORD_START = np.array([i % 3 == 0 for i in range(VOCAB)])  # ids 0, 3, 6, 9 start words
tokens = st.lists(st.integers(0, VOCAB - 1), max_size=14)


@settings(max_examples=300, deadline=None)
@given(hypothesis=tokens, target=tokens, unit=st.sampled_from(["token", "word"]))
def test_supervision_reconstructs_the_target(hypothesis, target, unit):
    tags, fills = edit_supervision(hypothesis, target, unit, IS_WORD_START)
    assert len(tags) == len(hypothesis) + 1
    assert tags[0] in (Tag.KEEP, Tag.INSERT)
    assert len(fills) == len(edit_spans(tags))
    assert apply_edits(hypothesis, tags, fills) == target


@settings(max_examples=100, deadline=None)
@given(target=tokens, unit=st.sampled_from(["token", "word"]))
def test_identical_pair_is_all_keep(target, unit):
    assert edit_supervision(target, target, unit, IS_WORD_START) == ([Tag.KEEP] * (len(target) + 1), [])


@pytest.mark.parametrize("position", [0, 2, 4])
def test_one_substitution_is_one_replace(position):
    target = [3, 4, 6, 9, 1]
    hypothesis = list(target)
    hypothesis[position] = 11
    tags, fills = edit_supervision(hypothesis, target)
    assert tags == [Tag.KEEP] * (position + 1) + [Tag.REPLACE] + [Tag.KEEP] * (len(target) - position - 1)
    assert fills == [[target[position]]]


@pytest.mark.parametrize("position", [0, 2, 4])
def test_one_omission_is_one_insert(position):
    target = [3, 4, 6, 9, 1]
    hypothesis = target[:position] + target[position + 1:]
    tags, fills = edit_supervision(hypothesis, target)
    assert tags.count(Tag.INSERT) == 1 and set(tags) <= {Tag.KEEP, Tag.INSERT}
    assert tags.index(Tag.INSERT) == position  # after the token before the gap (the start slot for position 0)
    assert fills == [[target[position]]]


@pytest.mark.parametrize("position", [0, 2, 4])
def test_a_duplicated_token_is_deleted(position):
    target = [3, 4, 6, 9, 1]
    hypothesis = target[:position + 1] + target[position:]
    tags, fills = edit_supervision(hypothesis, target)
    assert tags.count(Tag.DELETE) == 1 and set(tags) <= {Tag.KEEP, Tag.DELETE} and fills == []


def test_trailing_junk_is_deleted():
    tags, fills = edit_supervision([3, 4, 5, 5, 5], [3, 4])
    assert tags == [Tag.KEEP, Tag.KEEP, Tag.KEEP, Tag.DELETE, Tag.DELETE, Tag.DELETE] and fills == []


def test_word_units_replace_whole_words():
    target = [3, 4, 5, 6, 7, 9]  # words [3 4 5] [6 7] [9]
    hypothesis = [3, 4, 5, 6, 8, 9]  # second word differs in its last token
    token_tags, _ = edit_supervision(hypothesis, target, "token")
    word_tags, word_fills = edit_supervision(hypothesis, target, "word", IS_WORD_START)
    assert token_tags.count(Tag.REPLACE) == 1
    assert word_tags == [Tag.KEEP] * 4 + [Tag.REPLACE, Tag.REPLACE, Tag.KEEP] and word_fills == [[6, 7]]


def test_origins_increase_and_point_at_equal_tokens():
    hypothesis, target = [5, 3, 4, 6], [3, 4, 6, 9]
    origins = matched_origins(hypothesis, target)
    matched = [o for o in origins if o >= 0]
    assert matched == sorted(matched) and matched == [0, 1, 2]
    assert all(hypothesis[i] == target[o] for i, o in enumerate(origins) if o >= 0)


def test_word_units_need_word_starts():
    with pytest.raises(ValueError, match="is_word_start"):
        edit_supervision([1, 2], [1, 3], "word")
