"""The forward corruption chain and its reverse supervision: exactness, statistics, word units, validation."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from diffuser_mt.corruption import (
    REVERSE_TARGETS,
    CorruptionConfig,
    ForwardEdit,
    NoiseVocabulary,
    corrupt,
    clean_supervision,
    corruption_step,
    sample_training_pair,
    unit_boundaries,
)
from diffuser_mt.edits import Tag, apply_edits, edit_spans
from diffuser_mt.noise_schedule import SCHEDULES

SPECIAL_IDS = (0, 1, 2, 3)


# ---------------------------------------------------------------- helpers


def words_of(tokens, is_word_start):
    """(start, end) of each word: a word-start token and its followers; position 0 always starts one."""
    starts = [i for i, token in enumerate(tokens) if i == 0 or is_word_start[token]]
    return list(zip(starts, starts[1:] + [len(tokens)]))


def kept_alignment(tags, fills):
    """Pairs (position in x_t, position in x_{t-1}) of the tokens the reverse step copies (KEEP / INSERT)."""
    fill_at = {start: fill for (_, start, _), fill in zip(edit_spans(tags), fills)}
    pairs, prev_position = [], len(fill_at.get(0, ()))
    for position in range(1, len(tags)):
        tag = tags[position]
        if tag in (Tag.KEEP, Tag.INSERT):
            pairs.append((position - 1, prev_position))
            prev_position += 1 + len(fill_at.get(position, ()))
        elif tag == Tag.REPLACE and position in fill_at:
            prev_position += len(fill_at[position])
    return pairs


@st.composite
def edit_mixes(draw, max_growth=1.2):
    """Valid (keep, replace, insert, delete) mixes whose expected length growth per step is bounded."""
    weights = draw(st.lists(st.integers(0, 10), min_size=4, max_size=4))
    keep, replace, insert, delete = weights
    assume(keep + replace + delete > 0)
    assume(keep + replace + insert <= max_growth * (keep + replace + delete))
    return tuple(w / sum(weights) for w in weights)


def schedules_for(mix, max_growth=1.2):
    """The noise schedules that can serve ``mix`` with bounded growth (the linear schedule's last steps keep
    nothing, so its non-keep edits alone must not grow the sequence much)."""
    _, replace, insert, delete = mix
    linear_fits = replace + delete > 0 and replace + insert <= max_growth * (replace + delete)
    return tuple(name for name in SCHEDULES if name != "linear" or linear_fits)


@st.composite
def corruption_cases(draw):
    """(x0, config, noise vocabulary, seed) over random sizes, mixes, lambdas, T and units."""
    vocab_size = draw(st.integers(10, 500))
    x0 = draw(st.lists(st.integers(0, vocab_size - 1), max_size=60))
    unit = draw(st.sampled_from(["token", "word"]))
    mix = draw(edit_mixes())
    config = CorruptionConfig(
        edit_mix=mix,
        span_lambda=draw(st.floats(0.5, 10.0)),
        num_steps=draw(st.integers(1, 15)),
        unit=unit,
        reverse_target=draw(st.sampled_from(REVERSE_TARGETS)),
        schedule=draw(st.sampled_from(schedules_for(mix))),
        repetition_noise=draw(st.sampled_from([0.0, 0.5, 1.0])) if unit == "token" else 0.0,
    )
    word_start_seed = draw(st.integers(0, 2**32 - 1))
    is_word_start = np.random.default_rng(word_start_seed).random(vocab_size) < draw(st.floats(0.1, 0.9))
    is_word_start[-1] = True  # at least one non-special word start to draw noise from
    noise_vocab = NoiseVocabulary(vocab_size, SPECIAL_IDS, is_word_start=is_word_start)
    return x0, config, noise_vocab, draw(st.integers(0, 2**32 - 1))


def long_sequence_spans(config, num_spans, seed, length=3000):
    """Span records (edits, drawn, applied) of single forward steps on long sequences, at least num_spans."""
    noise_vocab = NoiseVocabulary(1000, SPECIAL_IDS)
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, 1000, length).tolist()
    units = unit_boundaries(tokens, "token")
    edits, drawn, applied = [], [], []
    while len(edits) < num_spans:
        spans = corruption_step(tokens, units, config, noise_vocab, rng).spans
        edits += spans.edits
        drawn += spans.drawn_lengths
        applied += spans.applied_lengths
    return np.array(edits), np.array(drawn), np.array(applied)


# ---------------------------------------------------------------- exact reconstruction (properties)

hypothesis_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@hypothesis_settings
@given(corruption_cases())
def test_gold_edits_reconstruct_previous_state(case):
    x0, config, noise_vocab, seed = case
    pair = sample_training_pair(x0, config, noise_vocab, np.random.default_rng(seed))
    assert 1 <= pair.t <= config.num_steps
    assert len(pair.span_records) == pair.t
    assert len(pair.tags) == len(pair.x_next) + 1
    assert apply_edits(pair.x_next, pair.tags, pair.fills) == pair.x_prev


@hypothesis_settings
@given(corruption_cases())
def test_gold_inserts_have_non_empty_fills(case):
    x0, config, noise_vocab, seed = case
    pair = sample_training_pair(x0, config, noise_vocab, np.random.default_rng(seed))
    for (kind, _, _), fill in zip(edit_spans(pair.tags), pair.fills):
        if kind == Tag.INSERT:
            assert len(fill) > 0


@hypothesis_settings
@given(corruption_cases())
def test_step_zero_is_identity(case):
    x0, config, noise_vocab, seed = case
    pair = sample_training_pair(x0, config, noise_vocab, np.random.default_rng(seed), t=0)
    assert pair.x_prev == pair.x_next == x0
    assert pair.tags == [Tag.KEEP] * (len(x0) + 1)
    assert pair.fills == [] and pair.span_records == []
    assert corrupt(x0, 0, config, noise_vocab, np.random.default_rng(seed)) == x0


@hypothesis_settings
@given(corruption_cases())
def test_same_seed_gives_same_pair(case):
    x0, config, noise_vocab, seed = case
    first = sample_training_pair(x0, config, noise_vocab, np.random.default_rng(seed))
    second = sample_training_pair(x0, config, noise_vocab, np.random.default_rng(seed))
    assert (first.t, first.x_prev, first.x_next, first.tags, first.fills) == (
        second.t, second.x_prev, second.x_next, second.tags, second.fills
    )


@hypothesis_settings
@given(corruption_cases(), st.integers(1, 15))
def test_corrupt_matches_training_pair_state(case, t):
    x0, config, noise_vocab, seed = case
    pair = sample_training_pair(x0, config, noise_vocab, np.random.default_rng(seed), t=t)
    assert pair.t == t
    assert corrupt(x0, t, config, noise_vocab, np.random.default_rng(seed)) == pair.x_next


# ---------------------------------------------------------------- hand-checked chains


def test_empty_sequence_stays_empty():
    noise_vocab = NoiseVocabulary(20, SPECIAL_IDS)
    pair = sample_training_pair([], CorruptionConfig(), noise_vocab, np.random.default_rng(0), t=5)
    assert pair.x_prev == pair.x_next == []
    assert pair.tags == [Tag.KEEP] and pair.fills == []


@pytest.mark.parametrize("t", [1, 12])
def test_delete_only_chain_leaves_one_start_slot_insert(t):
    config = CorruptionConfig(edit_mix=(0.0, 0.0, 0.0, 1.0), span_lambda=2.0)
    x0 = list(range(10, 40))
    pair = sample_training_pair(x0, config, NoiseVocabulary(50, SPECIAL_IDS), np.random.default_rng(t), t=t)
    assert pair.x_next == []
    if pair.x_prev:
        assert pair.tags == [Tag.INSERT] and pair.fills == [pair.x_prev]


def test_keep_only_chain_is_identity():
    config = CorruptionConfig(edit_mix=(1.0, 0.0, 0.0, 0.0))
    pair = sample_training_pair(list(range(10, 40)), config, NoiseVocabulary(50), np.random.default_rng(0), t=4)
    assert pair.x_prev == pair.x_next == list(range(10, 40))
    assert pair.fills == []


def test_drawn_steps_cover_one_to_num_steps():
    config = CorruptionConfig(num_steps=12)
    rng = np.random.default_rng(0)
    noise_vocab = NoiseVocabulary(50, SPECIAL_IDS)
    steps = {sample_training_pair([5, 6, 7], config, noise_vocab, rng).t for _ in range(1000)}
    assert steps == set(range(1, 13))


# ---------------------------------------------------------------- statistics of the forward spans


@pytest.mark.parametrize(
    "edit_mix",
    [(0.6, 0.2, 0.1, 0.1), (0.25, 0.25, 0.25, 0.25), (0.1, 0.4, 0.0, 0.5), (0.5, 0.0, 0.3, 0.2)],
)
def test_edit_type_frequencies_match_mix(edit_mix):
    edits, _, _ = long_sequence_spans(CorruptionConfig(edit_mix=edit_mix), 50_000, seed=1)
    frequencies = np.bincount(edits, minlength=len(ForwardEdit)) / len(edits)
    np.testing.assert_allclose(frequencies, edit_mix, atol=0.02)


@pytest.mark.parametrize("span_lambda", [1.0, 3.0, 8.0])
def test_span_lengths_are_poisson_lambda(span_lambda):
    _, drawn, applied = long_sequence_spans(CorruptionConfig(span_lambda=span_lambda), 50_000, seed=2)
    not_truncated = applied == drawn
    assert (applied <= drawn).all()
    assert drawn.mean() == pytest.approx(span_lambda, rel=0.05)
    assert applied[not_truncated].mean() == pytest.approx(span_lambda, rel=0.05)


def test_only_the_last_span_of_a_step_is_truncated():
    config = CorruptionConfig(span_lambda=8.0)
    rng = np.random.default_rng(3)
    noise_vocab = NoiseVocabulary(100, SPECIAL_IDS)
    for _ in range(200):
        tokens = rng.integers(4, 100, rng.integers(1, 40)).tolist()
        spans = corruption_step(tokens, unit_boundaries(tokens, "token"), config, noise_vocab, rng).spans
        assert not any(spans.truncated[:-1])
        consumed = [n for e, n in zip(spans.edits, spans.applied_lengths) if e != ForwardEdit.INSERT]
        assert sum(consumed) == len(tokens)


@pytest.mark.parametrize("unit", ["token", "word"])
def test_noise_is_never_special_and_stays_in_vocab(unit):
    vocab_size, special = 60, (0, 1, 2, 3, 17, 59)
    rng = np.random.default_rng(4)
    is_word_start = rng.random(vocab_size) < 0.5
    is_word_start[10] = True
    noise_vocab = NoiseVocabulary(vocab_size, special, is_word_start=is_word_start)
    config = CorruptionConfig(edit_mix=(0.3, 0.3, 0.3, 0.1), unit=unit)
    allowed = set(range(vocab_size)) - set(special)
    seen = set()
    for _ in range(300):
        x0 = rng.choice(sorted(allowed), 30).tolist()
        seen.update(corrupt(x0, 12, config, noise_vocab, rng))
    assert seen <= allowed


@pytest.mark.parametrize("word_start_only", [False, True])
def test_noise_vocabulary_samples_uniformly_from_allowed_ids(word_start_only):
    is_word_start = np.arange(30) % 3 == 0
    noise_vocab = NoiseVocabulary(30, SPECIAL_IDS + (9,), is_word_start=is_word_start)
    allowed = set(range(30)) - set(SPECIAL_IDS) - {9}
    if word_start_only:
        allowed = {i for i in allowed if is_word_start[i]}
    samples = noise_vocab.sample(np.random.default_rng(5), 60_000, word_start_only=word_start_only)
    counts = np.bincount(samples, minlength=30)
    assert set(np.flatnonzero(counts).tolist()) == allowed
    np.testing.assert_allclose(counts[sorted(allowed)] / len(samples), 1 / len(allowed), rtol=0.1)


# ---------------------------------------------------------------- word units


@st.composite
def word_cases(draw, first_token_starts_word):
    vocab_size = draw(st.integers(10, 200))
    is_word_start = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random(vocab_size) < 0.4
    is_word_start[-1] = True
    x0 = draw(st.lists(st.integers(0, vocab_size - 1), max_size=60))
    if first_token_starts_word and x0:
        x0[0] = vocab_size - 1
    config = CorruptionConfig(
        edit_mix=draw(edit_mixes()), span_lambda=draw(st.floats(0.5, 6.0)), unit="word"
    )
    noise_vocab = NoiseVocabulary(vocab_size, SPECIAL_IDS, is_word_start=is_word_start)
    return x0, config, noise_vocab, is_word_start, draw(st.integers(0, 2**32 - 1))


def assert_words_never_split(pair, is_word_start):
    """Each word of x_{t-1} is kept whole (contiguous, same tokens) or not at all; noise tokens start words."""
    where_kept = dict((prev, nxt) for nxt, prev in kept_alignment(pair.tags, pair.fills))
    for start, end in words_of(pair.x_prev, is_word_start):
        kept = [where_kept.get(position) for position in range(start, end)]
        if kept[0] is None:
            assert kept == [None] * len(kept)
        else:
            assert kept == list(range(kept[0], kept[0] + len(kept)))
    kept_positions = set(where_kept.values())
    noise = [token for i, token in enumerate(pair.x_next) if i not in kept_positions]
    assert all(is_word_start[token] for token in noise)


@hypothesis_settings
@given(word_cases(first_token_starts_word=False))
def test_first_step_never_splits_a_word(case):
    x0, config, noise_vocab, is_word_start, seed = case
    pair = sample_training_pair(x0, config, noise_vocab, np.random.default_rng(seed), t=1)
    assert_words_never_split(pair, is_word_start)


@hypothesis_settings
@given(word_cases(first_token_starts_word=True), st.integers(1, 12))
def test_later_steps_never_split_a_word(case, t):
    x0, config, noise_vocab, is_word_start, seed = case
    pair = sample_training_pair(x0, config, noise_vocab, np.random.default_rng(seed), t=t)
    assert_words_never_split(pair, is_word_start)


def test_a_kept_first_word_without_word_start_stays_one_unit():
    is_word_start = np.array([False] * 10 + [True] * 10)
    x0 = [4, 5, 12, 6]  # words: [4 5] (starts at position 0 though 4 is no word start), [12 6]
    assert unit_boundaries(x0, "word", is_word_start) == [0, 2, 4]
    config = CorruptionConfig(edit_mix=(0.5, 0.0, 0.5, 0.0), span_lambda=1.0, unit="word")
    noise_vocab = NoiseVocabulary(20, SPECIAL_IDS, is_word_start=is_word_start)
    rng = np.random.default_rng(6)
    for _ in range(50):
        step = corruption_step(x0, [0, 2, 4], config, noise_vocab, rng)
        units = step.next_units
        words = [step.x_next[a:b] for a, b in zip(units, units[1:])]
        assert [4, 5] in words and [12, 6] in words
        assert all(len(word) == 1 and is_word_start[word[0]] for word in words if word not in ([4, 5], [12, 6]))


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"edit_mix": (0.5, 0.2, 0.1, 0.1)}, "edit_mix must sum to 1", id="mix-sum-below-1"),
        pytest.param({"edit_mix": (0.7, 0.2, 0.1, 0.1)}, "edit_mix must sum to 1", id="mix-sum-above-1"),
        pytest.param({"edit_mix": (1.2, -0.2, 0.0, 0.0)}, "non-negative", id="mix-negative"),
        pytest.param({"edit_mix": (0.5, 0.5, 0.0)}, "needs 4 probabilities", id="mix-three-entries"),
        pytest.param({"edit_mix": (0.2,) * 5}, "needs 4 probabilities", id="mix-five-entries"),
        pytest.param({"edit_mix": (0.0, 0.0, 1.0, 0.0)}, "never ends", id="mix-insert-only"),
        pytest.param({"span_lambda": 0.0}, "span_lambda must be a finite number > 0", id="lambda-zero"),
        pytest.param({"span_lambda": -1.0}, "span_lambda must be a finite number > 0", id="lambda-negative"),
        pytest.param({"span_lambda": float("inf")}, "span_lambda must be a finite number > 0", id="lambda-inf"),
        pytest.param({"num_steps": 0}, "num_steps must be an integer >= 1", id="steps-zero"),
        pytest.param({"num_steps": 2.5}, "num_steps must be an integer >= 1", id="steps-fraction"),
        pytest.param({"unit": "char"}, "unit must be one of", id="unknown-unit"),
    ],
)
def test_invalid_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CorruptionConfig(**kwargs)


def test_config_stores_mix_as_float_tuple():
    assert CorruptionConfig(edit_mix=[1, 0, 0, 0]).edit_mix == (1.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        pytest.param((0,), {}, "vocab_size must be >= 1", id="empty-vocab"),
        pytest.param((4, (0, 1, 2, 3)), {}, "no token is left", id="all-special"),
        pytest.param((4, (4,)), {}, "special ids must lie in", id="special-out-of-range"),
        pytest.param((4,), {"is_word_start": [True, False]}, "is_word_start must have shape", id="word-start-shape"),
    ],
)
def test_invalid_noise_vocabulary_raises(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        NoiseVocabulary(*args, **kwargs)


@pytest.mark.parametrize("is_word_start", [None, [False, False, False, True]], ids=["missing", "only-special"])
def test_word_mode_needs_word_start_noise(is_word_start):
    noise_vocab = NoiseVocabulary(4, (3,), is_word_start=is_word_start)
    with pytest.raises(ValueError, match="word-mode corruption needs"):
        corrupt([0, 1], 1, CorruptionConfig(unit="word"), noise_vocab, np.random.default_rng(0))


@pytest.mark.parametrize("t", [-1, 1.5, True])
def test_invalid_step_count_raises(t):
    noise_vocab = NoiseVocabulary(10)
    with pytest.raises(ValueError, match="t must be an integer >= 0"):
        sample_training_pair([1, 2], CorruptionConfig(), noise_vocab, np.random.default_rng(0), t=t)


# ---------------------------------------------------------------- the clean (x_0) reverse target


@hypothesis_settings
@given(corruption_cases())
def test_clean_target_edits_lead_straight_back_to_x0(case):
    x0, config, noise_vocab, seed = case
    config = CorruptionConfig(config.edit_mix, config.span_lambda, config.num_steps, config.unit, "clean")
    pair = sample_training_pair(x0, config, noise_vocab, np.random.default_rng(seed))
    assert pair.x_prev == x0
    assert apply_edits(pair.x_next, pair.tags, pair.fills) == x0
    for (kind, _, _), fill in zip(edit_spans(pair.tags), pair.fills):
        assert fill, f"{kind.name} span with an empty fill: an empty noise run must be DELETE"


def test_step_and_clean_targets_share_the_chain():
    x0 = list(range(10, 40))
    pairs = {target: sample_training_pair(x0, CorruptionConfig(reverse_target=target), NoiseVocabulary(50),
                                          np.random.default_rng(3), t=6) for target in REVERSE_TARGETS}
    assert pairs["clean"].x_next == pairs["step"].x_next
    assert pairs["clean"].x_prev == x0 != pairs["step"].x_prev


@pytest.mark.parametrize("x_t, origins, x0, tags, fills", [
    ([5, 6, 7], [0, 1, 2], [5, 6, 7], [Tag.KEEP] * 4, []),
    ([9, 6], [-1, 1], [5, 6], [Tag.KEEP, Tag.REPLACE, Tag.KEEP], [[5]]),
    ([9, 5, 6], [-1, 0, 1], [5, 6], [Tag.KEEP, Tag.DELETE, Tag.KEEP, Tag.KEEP], []),
    ([5, 7], [0, 2], [5, 6, 7, 8], [Tag.KEEP, Tag.INSERT, Tag.INSERT], [[6], [8]]),
    ([6], [1], [5, 6], [Tag.INSERT, Tag.KEEP], [[5]]),
    ([9, 9], [-1, -1], [5, 6], [Tag.KEEP, Tag.REPLACE, Tag.REPLACE], [[5, 6]]),
    ([], [], [5, 6], [Tag.INSERT], [[5, 6]]),
])
def test_clean_supervision_by_hand(x_t, origins, x0, tags, fills):
    assert clean_supervision(x_t, origins, x0) == (tags, fills)
    assert apply_edits(x_t, tags, fills) == x0


def test_unknown_reverse_target_is_refused():
    with pytest.raises(ValueError, match="reverse_target"):
        CorruptionConfig(reverse_target="x_minus_two")


# ---------------------------------------------------------------- unigram noise


def test_unigram_noise_follows_the_weights_and_skips_special_ids():
    weights = np.zeros(10)
    weights[[0, 4, 5, 9]] = [100.0, 1.0, 3.0, 0.0]  # id 0 is special: its weight is ignored
    vocab = NoiseVocabulary(10, special_ids=(0, 1), weights=weights)
    draws = vocab.sample(np.random.default_rng(0), 20000)
    assert set(np.unique(draws)) == {4, 5}
    assert abs(np.mean(draws == 5) - 0.75) < 0.02


def test_unigram_word_start_noise_draws_weighted_word_starts():
    is_word_start = np.array([False, False, True, False, True, True])
    vocab = NoiseVocabulary(6, special_ids=(0,), is_word_start=is_word_start, weights=[0, 5, 1, 5, 0, 3])
    draws = vocab.sample(np.random.default_rng(1), 4000, word_start_only=True)
    assert set(np.unique(draws)) == {2, 5} and abs(np.mean(draws == 5) - 0.75) < 0.03


@pytest.mark.parametrize("weights, message", [
    (np.ones(3), "shape"), (np.array([1.0, -1.0, 1.0, 1.0]), "non-negative"), (np.array([5.0, 0, 0, 0]), "no mass"),
])
def test_bad_noise_weights_raise_clear_errors(weights, message):
    with pytest.raises(ValueError, match=message):
        NoiseVocabulary(4, special_ids=(0,), weights=weights)


def test_weights_without_mass_on_any_word_start_raise_before_any_draw():
    is_word_start = np.array([False, True, False, True])
    with pytest.raises(ValueError, match="no mass to any non-special word start"):
        NoiseVocabulary(4, special_ids=(0,), is_word_start=is_word_start, weights=[0, 0, 5, 0])


# ---------------------------------------------------------------- repetition noise


def repeats_before(x, position, length):
    """Does x[position:position + length] continue the last p tokens before it cyclically, for some p <= length?"""
    return any(all(x[position + i] == x[position + i - period] for i in range(length))
               for period in range(1, min(length, position) + 1))


def noise_spans_that_repeat(repetition_noise, seed=0):
    """For each non-empty replace/insert span of single forward steps with tokens before it: does it repeat them?"""
    config = CorruptionConfig(edit_mix=(0.4, 0.3, 0.2, 0.1), repetition_noise=repetition_noise)
    rng = np.random.default_rng(seed)
    repeats = []
    for _ in range(50):
        tokens = rng.integers(4, 1000, 40).tolist()
        step = corruption_step(tokens, list(range(len(tokens) + 1)), config, NoiseVocabulary(1000, SPECIAL_IDS), rng)
        position = 0
        for edit, length in zip(step.spans.edits, step.spans.applied_lengths):
            if edit in (ForwardEdit.REPLACE, ForwardEdit.INSERT) and 0 < length <= position:
                repeats.append(repeats_before(step.x_next, position, length))
            position += length if edit != ForwardEdit.DELETE else 0
    return np.array(repeats)


@pytest.mark.parametrize("repetition_noise, low, high", [(1.0, 1.0, 1.0), (0.5, 0.4, 0.6), (0.0, 0.0, 0.03)])
def test_repetition_noise_repeats_the_tokens_before_a_span(repetition_noise, low, high):
    repeats = noise_spans_that_repeat(repetition_noise)
    assert len(repeats) > 200 and low <= repeats.mean() <= high


def test_repeat_periods_cover_one_token_loops_and_whole_span_copies():
    config = CorruptionConfig(edit_mix=(0.5, 0.0, 0.5, 0.0), span_lambda=4.0, repetition_noise=1.0)
    rng = np.random.default_rng(0)
    loops = copies = 0
    for _ in range(100):
        tokens = rng.permutation(np.arange(10, 70)).tolist()  # distinct: a loop and a copy cannot be confused
        step = corruption_step(tokens, list(range(len(tokens) + 1)), config, NoiseVocabulary(100), rng)
        position = 0
        for edit, length in zip(step.spans.edits, step.spans.applied_lengths):
            if edit == ForwardEdit.INSERT and 1 < length <= position:
                span, before = step.x_next[position:position + length], step.x_next[position - length:position]
                loops += len(set(span)) == 1 and span[0] == before[-1]
                copies += span == before and len(set(span)) == length
            position += length
    assert loops > 20 and copies > 20, (loops, copies)


@pytest.mark.parametrize("kwargs, message", [
    ({"repetition_noise": 1.5}, "repetition_noise must lie in"),
    ({"repetition_noise": 0.5, "unit": "word"}, "repetition_noise needs token units"),
])
def test_bad_repetition_noise_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CorruptionConfig(**kwargs)
