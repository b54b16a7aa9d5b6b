"""apply_edits, edit_spans and whole_word_tags on hand-built canvases, and their validation errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from diffuser_mt.edits import NUM_TAGS, TAG_PAD, Tag, apply_edits, edit_spans, whole_word_tags

K, D, R, I = Tag.KEEP, Tag.DELETE, Tag.REPLACE, Tag.INSERT  # noqa: E741  (I: the INSERT letter of the E- lines)


@pytest.mark.parametrize(
    "tokens, tags, fills, expected",
    [
        pytest.param([], [K], [], [], id="empty-canvas"),
        pytest.param([5, 6, 7], [K, K, K, K], [], [5, 6, 7], id="all-keep"),
        pytest.param([5, 6, 7], [K, K, D, K], [], [5, 7], id="delete-one"),
        pytest.param([5, 6, 7], [K, D, D, D], [], [], id="delete-all"),
        pytest.param([5, 6, 7], [K, K, R, K], [[9]], [5, 9, 7], id="replace-one"),
        pytest.param([5, 6, 7], [K, R, R, K], [[9]], [9, 7], id="replace-run-shorter-fill"),
        pytest.param([5, 6, 7], [K, K, R, K], [[8, 9, 10]], [5, 8, 9, 10, 7], id="replace-longer-fill"),
        pytest.param([5, 6, 7], [K, K, R, R], [[]], [5], id="replace-empty-fill-deletes-run"),
        pytest.param([5, 6, 7], [K, R, K, R], [[1], [2]], [1, 6, 2], id="two-replace-runs"),
        pytest.param([5, 6, 7], [K, R, D, R], [[1], [2]], [1, 2], id="runs-split-by-delete"),
        pytest.param([5, 6, 7], [K, R, R, R], [[1, 2]], [1, 2], id="replace-whole-sequence"),
        pytest.param([5, 6, 7], [K, I, K, K], [[8, 9]], [5, 8, 9, 6, 7], id="insert-after-token"),
        pytest.param([5, 6, 7], [K, K, K, I], [[8]], [5, 6, 7, 8], id="insert-at-end"),
        pytest.param([5, 6, 7], [I, K, K, K], [[1, 2]], [1, 2, 5, 6, 7], id="start-slot-insert"),
        pytest.param([], [I], [[1, 2]], [1, 2], id="start-slot-insert-empty-sequence"),
        pytest.param([5, 6], [K, I, K], [[]], [5, 6], id="insert-empty-fill"),
        pytest.param([5, 6], [I, I, I], [[1], [2], [3]], [1, 5, 2, 6, 3], id="insert-everywhere"),
        pytest.param(
            [5, 6, 7, 8, 9], [I, R, R, D, I, R], [[1], [2, 3], [4], []], [1, 2, 3, 8, 4], id="every-tag"
        ),
    ],
)
def test_apply_edits(tokens, tags, fills, expected):
    assert apply_edits(tokens, tags, fills) == expected


@pytest.mark.parametrize("to_array", [np.array, torch.tensor], ids=["numpy", "torch"])
def test_apply_edits_accepts_arrays_and_returns_plain_ints(to_array):
    tokens = to_array([5, 6, 7])
    tags = to_array([int(I), int(R), int(K), int(D)])
    result = apply_edits(tokens, tags, [to_array([1]), to_array([2, 3])])
    assert result == [1, 2, 3, 6]
    assert all(type(token) is int for token in result)


@pytest.mark.parametrize(
    "tags, spans",
    [
        pytest.param([K], [], id="start-slot-only"),
        pytest.param([K, K, D], [], id="no-spans"),
        pytest.param([I, K], [(I, 0, 1)], id="start-slot-insert"),
        pytest.param([K, R, R, K, R], [(R, 1, 3), (R, 4, 5)], id="replace-runs"),
        pytest.param([K, R, D, R], [(R, 1, 2), (R, 3, 4)], id="delete-splits-runs"),
        pytest.param([K, R, I, R], [(R, 1, 2), (I, 2, 3), (R, 3, 4)], id="insert-splits-runs"),
        pytest.param([I, I, R], [(I, 0, 1), (I, 1, 2), (R, 2, 3)], id="canvas-order"),
    ],
)
def test_edit_spans(tags, spans):
    result = edit_spans(tags)
    assert result == spans
    assert all(isinstance(kind, Tag) for kind, _, _ in result)


@pytest.mark.parametrize(
    "tokens, tags, fills, message",
    [
        pytest.param([5, 6], [K, K], [], r"len\(tags\) must be len\(tokens\) \+ 1", id="tags-too-short"),
        pytest.param([5], [K, K, K], [], r"len\(tags\) must be len\(tokens\) \+ 1", id="tags-too-long"),
        pytest.param([], [], [], "at least the start slot", id="no-tags"),
        pytest.param([5], [K, 4], [], "tags must be Tag values", id="tag-too-large"),
        pytest.param([5], [K, -1], [], "tags must be Tag values", id="negative-tag"),
        pytest.param([5], [R, K], [[1]], "start slot: it must be KEEP or INSERT, got REPLACE", id="start-replace"),
        pytest.param([5], [D, K], [], "start slot: it must be KEEP or INSERT, got DELETE", id="start-delete"),
        pytest.param([5], [K, R], [], "one fill per edit span: got 0 fills for 1 spans", id="missing-fill"),
        pytest.param([5], [K, K], [[1]], "one fill per edit span: got 1 fills for 0 spans", id="extra-fill"),
        pytest.param(np.array([[5]]), [K, K], [], "tokens must be 1-D", id="tokens-2d"),
        pytest.param([5], [K, R], [["a"]], r"fills\[0\] must hold integers", id="fill-not-integers"),
    ],
)
def test_apply_edits_rejects_invalid_input(tokens, tags, fills, message):
    with pytest.raises(ValueError, match=message):
        apply_edits(tokens, tags, fills)


@pytest.mark.parametrize(
    "tags, message",
    [
        pytest.param([], "at least the start slot", id="empty"),
        pytest.param([K, 7], "tags must be Tag values", id="bad-value"),
        pytest.param([R, K], "start slot: it must be KEEP or INSERT", id="bad-start-slot"),
    ],
)
def test_edit_spans_rejects_invalid_tags(tags, message):
    with pytest.raises(ValueError, match=message):
        edit_spans(tags)


def test_padded_tag_targets_do_not_count_in_the_tagger_loss():
    assert TAG_PAD not in {int(tag) for tag in Tag}
    logits = torch.randn(4, NUM_TAGS, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([Tag.KEEP, Tag.INSERT, TAG_PAD, TAG_PAD])
    padded = F.cross_entropy(logits, targets, ignore_index=TAG_PAD, reduction="sum")
    assert padded == F.cross_entropy(logits[:2], targets[:2], reduction="sum")


# four tokens, two words: "ab" (a word start and a continuation) and "cd"
TWO_WORDS = [True, False, True, False]


@pytest.mark.parametrize("tags, expected", [
    ([K, K, K, K, K], [K, K, K, K, K]),             # nothing edited
    ([K, R, K, K, K], [K, R, R, K, K]),             # the word's first piece replaced: the word is rewritten
    ([K, K, R, K, K], [K, R, R, K, K]),             # its continuation replaced
    ([K, K, R, R, K], [K, R, R, R, R]),             # a run across the boundary: both words
    ([K, D, D, K, K], [K, D, D, K, K]),             # every piece deleted: the word is deleted
    ([K, D, K, K, K], [K, R, R, K, K]),             # a piece deleted: the word is rewritten
    ([K, K, I, K, K], [K, K, I, K, K]),             # an insertion after the word
    ([K, I, K, K, K], [K, R, R, K, K]),             # an insertion inside the word
    ([I, K, K, K, I], [I, K, K, K, I]),             # the start slot and the end
    ([K, R, I, K, D], [K, R, R, R, R]),             # one word rewritten, the other partly deleted
])
def test_whole_word_tags(tags, expected):
    assert whole_word_tags(tags, TWO_WORDS) == expected


def test_whole_word_tags_leave_words_with_a_locked_token():
    assert whole_word_tags([K, R, K, K, K], TWO_WORDS, editable=[True, False, True, True]) == [K, R, K, K, K]
    assert whole_word_tags([K, K, K, R, K], TWO_WORDS, editable=[True, False, True, True]) == [K, K, K, R, R]


def test_whole_word_tags_treat_the_first_token_as_a_word_start():
    assert whole_word_tags([K, K, R, K], [False, False, True]) == [K, R, R, K]


@pytest.mark.parametrize("seed", range(20))
def test_whole_word_tags_edit_words_whole(seed):
    rng = np.random.default_rng(seed)
    length = int(rng.integers(1, 12))
    starts = [True] + (rng.random(length - 1) < 0.5).tolist()
    tags = [int(rng.choice([K, I]))] + rng.choice(4, size=length, p=[0.6, 0.1, 0.2, 0.1]).tolist()
    widened = whole_word_tags(tags, starts)
    assert whole_word_tags(widened, starts) == widened
    bounds = [i for i, flag in enumerate(starts) if flag] + [length]
    for start, end in zip(bounds, bounds[1:]):
        word, before = widened[start + 1:end + 1], tags[start + 1:end + 1]
        assert word in ([R] * (end - start), [D] * (end - start)) or (
            set(word[:-1]) <= {K} and word[-1] in (K, I) and word == before)


def test_whole_word_tags_need_one_flag_per_token():
    with pytest.raises(ValueError, match="one word-start flag per token"):
        whole_word_tags([K, K, K], [True])
