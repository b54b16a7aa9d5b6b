"""DiffusER's forward (corruption) Markov chain and the reverse step's gold supervision.

Forward step q(x_i | x_{i-1}; E_t, E_l)
    Walk over the *units* of x (token mode: a unit is one token; word mode: a
    unit is one word = a word-start token plus the following non-word-start
    tokens; the token at position 0 always starts the first word). While units
    remain, draw an edit type from ``edit_mix`` (E_t) and a length
    n ~ Poisson(``span_lambda``) (E_l; n may be 0, a no-op span that still
    counts as a span):

    * KEEP     copy the next n units;
    * REPLACE  consume n units, emit n random noise units;
    * INSERT   consume nothing, emit n random noise units;
    * DELETE   consume n units, emit nothing.

    The mix of step i may depend on i (``CorruptionConfig.schedule``,
    ``diffuser_mt.noise_schedule``): the paper's chain uses E_t at every step.

    A noise unit is one random token (word mode: one random word-start token),
    never a special symbol; no mask token is used. With ``repetition_noise``
    r > 0 (token mode), a REPLACE or INSERT span of n units instead repeats,
    with probability r, the last k tokens written to x_i (k uniform in 1..n,
    when there are k), cycled to n tokens: "der der geht" for "der Mann
    geht", "so so so so", the loops of a weak generator, which random tokens
    never show the tagger. A span that runs past the
    end of x is truncated: each span records its drawn and its applied length.
    Nothing is inserted once all units are consumed, so an empty sequence stays
    empty. Word boundaries are carried along the chain: a kept word stays one
    word in x_i even when its first token is not a word start.

Reverse supervision for the pair (x_{t-1} -> x_t), read off the last step's
spans without any alignment search. Tags attach to the canvas
``[start slot] + x_t`` (see ``diffuser_mt.edits``):

    * kept tokens -> KEEP; replaced tokens -> REPLACE (adjacent replaced spans
      merge into one run whose fill is the concatenation of the original
      tokens); inserted noise -> DELETE;
    * a deleted span (gap) of original tokens attaches to the nearest preceding
      canvas position that is not DELETE (the start slot if none): a KEEP there
      becomes INSERT with the gap as its fill, an INSERT there appends the gap
      to its fill, a REPLACE there appends the gap to its run's fill.

    Hence ``apply_edits(x_t, tags, fills) == x_{t-1}`` exactly, and every gold
    INSERT has a non-empty fill.

Training pairs draw t uniformly from 1..T and run t forward steps from x_0.
The reverse target is a choice (``CorruptionConfig.reverse_target``):

* ``step`` (the paper's wording): x_{t-1}, supervised from the last step only.
* ``clean`` (x_0-parameterised, as D3PM and DiffuSeq predict x_0): the edits
  that take x_t straight to x_0. Every token of the chain remembers its origin
  in x_0 (or none, for noise): x_0 tokens that survived are KEEP, a run of
  noise is REPLACE by the x_0 tokens missing there (DELETE when none are),
  and x_0 tokens missing between two survivors are an INSERT after the first
  (the start slot before the first survivor). ``apply_edits(x_t, tags, fills)
  == x_0`` exactly.

With ``step`` targets, fills at large t are mostly noise of earlier steps, and
from a random start every token is KEEP with probability about E_t's keep
share, so argmax tagging never leaves a random start; ``clean`` avoids both.
"""
from __future__ import annotations

import enum
import math
from bisect import bisect_right
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable

import numpy as np

from diffuser_mt.edits import Tag, as_token_list
from diffuser_mt.noise_schedule import SCHEDULES, survival_share

UNITS = ("token", "word")
REVERSE_TARGETS = ("clean", "step")
NOISE_DISTRIBUTIONS = ("uniform", "unigram")


class ForwardEdit(enum.IntEnum):
    """Edit type of one span of the FORWARD step; values index ``CorruptionConfig.edit_mix``."""

    KEEP = 0
    REPLACE = 1
    INSERT = 2
    DELETE = 3


# Plain-int aliases for the hot loops (enum attribute look-ups cost more than the work).
_KEEP, _REPLACE, _INSERT, _DELETE = (int(edit) for edit in ForwardEdit)
_TAG_KEEP, _TAG_DELETE, _TAG_REPLACE, _TAG_INSERT = (int(tag) for tag in Tag)


@dataclass(frozen=True)
class CorruptionConfig:
    """Parameters of the forward chain.

    edit_mix: probabilities of (keep, replace, insert, delete) per span (E_t).
    span_lambda: Poisson mean of the span length (E_l).
    num_steps: T, the chain length; training draws t from 1..T.
    unit: "token" or "word", what one unit of a span is.
    reverse_target: "clean" (x_0) or "step" (x_{t-1}), what a training pair's reverse step reaches.
    schedule: a name of ``noise_schedule.SCHEDULES``, how the mix of step i follows from edit_mix
        ("constant": edit_mix at every step, the paper's chain).
    repetition_noise: probability that a replace/insert span repeats the tokens before it instead of drawing
        noise (token units only; see the module docstring).
    """

    edit_mix: tuple[float, float, float, float] = (0.6, 0.2, 0.1, 0.1)
    span_lambda: float = 3.0
    num_steps: int = 12
    unit: str = "token"
    reverse_target: str = "clean"
    schedule: str = "constant"
    repetition_noise: float = 0.0

    def __post_init__(self):
        mix = tuple(float(p) for p in self.edit_mix)
        if len(mix) != len(ForwardEdit):
            raise ValueError(f"edit_mix needs 4 probabilities (keep, replace, insert, delete), got {len(mix)}")
        if any(not math.isfinite(p) or p < 0 for p in mix):
            raise ValueError(f"edit_mix probabilities must be finite and non-negative, got {mix}")
        if abs(sum(mix) - 1.0) > 1e-6:
            raise ValueError(f"edit_mix must sum to 1, got {mix} (sum {sum(mix):.6g})")
        if mix[ForwardEdit.INSERT] > 1.0 - 1e-6:
            raise ValueError(f"edit_mix must give keep, replace or delete some mass, else the walk never ends: {mix}")
        object.__setattr__(self, "edit_mix", mix)
        if not self.span_lambda > 0 or not math.isfinite(self.span_lambda):
            raise ValueError(f"span_lambda must be a finite number > 0, got {self.span_lambda}")
        if isinstance(self.num_steps, bool) or int(self.num_steps) != self.num_steps or self.num_steps < 1:
            raise ValueError(f"num_steps must be an integer >= 1, got {self.num_steps}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {self.unit!r}")
        if self.reverse_target not in REVERSE_TARGETS:
            raise ValueError(f"reverse_target must be one of {REVERSE_TARGETS}, got {self.reverse_target!r}")
        if not 0.0 <= self.repetition_noise <= 1.0:
            raise ValueError(f"repetition_noise must lie in [0, 1], got {self.repetition_noise}")
        if self.repetition_noise > 0 and self.unit != "token":
            raise ValueError("repetition_noise needs token units (a repeated word is not one noise unit)")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {tuple(SCHEDULES)}, got {self.schedule!r}")
        self.step_mixes  # a schedule that cannot serve this mix fails here, not in a data-loader worker

    @cached_property
    def step_mixes(self) -> tuple[tuple[float, float, float, float], ...]:
        """The edit mix of forward steps 1..T (index i - 1 for step i)."""
        schedule = SCHEDULES[self.schedule]
        return tuple(schedule.step_mix(self.edit_mix, step, self.num_steps) for step in range(1, self.num_steps + 1))

    def survival(self, t: int) -> float:
        """Expected share of x_0's units that survive t forward steps (truncated last spans ignored)."""
        return float(np.prod([survival_share(self.step_mixes[min(step, self.num_steps) - 1])
                              for step in range(1, t + 1)]))

    @cached_property
    def _edit_thresholds(self) -> tuple[list[float], ...]:
        """Per step, the inner cumulative-mix boundaries: bisect_right(thresholds, u) draws an edit type."""
        return tuple(np.cumsum(mix)[:-1].tolist() for mix in self.step_mixes)

    def edit_thresholds(self, step: int) -> list[float]:
        """The boundaries of forward step ``step`` (1-based); steps past T use step T's."""
        return self._edit_thresholds[min(step, self.num_steps) - 1]


class NoiseVocabulary:
    """The token ids that corruption may draw as noise: the vocabulary minus special ids.

    vocab_size: number of ids; special_ids: ids never drawn (pad/eos/bos/unk,
    sentinels); is_word_start: optional bool array of shape (vocab_size,),
    needed for word-mode corruption; weights: optional non-negative array of
    shape (vocab_size,), e.g. corpus counts: ids are then drawn in proportion to
    their weight (unigram noise) instead of uniformly.
    """

    def __init__(self, vocab_size: int, special_ids: Iterable[int] = (), is_word_start=None, weights=None):
        special = sorted({int(i) for i in special_ids})
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        if special and not (0 <= special[0] and special[-1] < vocab_size):
            raise ValueError(f"special ids must lie in 0..{vocab_size - 1}, got {special}")
        allowed = np.ones(vocab_size, dtype=bool)
        allowed[special] = False
        self.vocab_size = int(vocab_size)
        self.allowed_ids = np.flatnonzero(allowed)
        if self.allowed_ids.size == 0:
            raise ValueError("every id is special: no token is left to draw noise from")
        if is_word_start is None:
            self.is_word_start = None
            self.word_start_ids = None
        else:
            is_word_start = np.asarray(is_word_start, dtype=bool)
            if is_word_start.shape != (vocab_size,):
                raise ValueError(f"is_word_start must have shape ({vocab_size},), got {is_word_start.shape}")
            self.is_word_start = is_word_start
            self.word_start_ids = np.flatnonzero(allowed & is_word_start)
        self.weights = None if weights is None else self._checked_weights(weights)
        self._cumulative = {}  # id array's name -> cumulative weights of those ids, normalised

    def _checked_weights(self, weights) -> np.ndarray:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (self.vocab_size,):
            raise ValueError(f"weights must have shape ({self.vocab_size},), got {weights.shape}")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("weights must be finite and non-negative")
        if weights[self.allowed_ids].sum() <= 0:
            raise ValueError("weights give no mass to any non-special id")
        if self.word_start_ids is not None and self.word_start_ids.size and weights[self.word_start_ids].sum() <= 0:
            raise ValueError("weights give no mass to any non-special word start")
        return weights

    def _weighted_draw(self, rng: np.random.Generator, name: str, ids: np.ndarray, n: int) -> np.ndarray:
        if name not in self._cumulative:
            cumulative = np.cumsum(self.weights[ids])
            self._cumulative[name] = cumulative / cumulative[-1]
        drawn = np.searchsorted(self._cumulative[name], rng.random(n), side="right")
        return ids[np.minimum(drawn, ids.size - 1)]

    def sample(self, rng: np.random.Generator, n: int, word_start_only: bool = False) -> np.ndarray:
        """n ids drawn with replacement from the allowed ids (or the allowed word starts): uniformly, or in
        proportion to ``weights``."""
        ids = self.allowed_ids
        if word_start_only:
            ids = self.word_start_ids
            if ids is None or ids.size == 0:
                raise ValueError("word-start noise needs is_word_start with at least one non-special word start")
        if self.weights is None:
            return ids[rng.integers(0, ids.size, size=n)]
        return self._weighted_draw(rng, "word starts" if word_start_only else "allowed ids", ids, n)


@dataclass
class StepSpans:
    """The spans one forward step drew, in order: three int lists of length num_spans.

    edits: ForwardEdit values; drawn_lengths: the Poisson draws;
    applied_lengths: the lengths used (smaller only for a span cut by the end).
    """

    edits: list[int]
    drawn_lengths: list[int]
    applied_lengths: list[int]

    @property
    def truncated(self) -> list[bool]:
        """Per span: was it cut short by the end of the sequence?"""
        return [applied < drawn for applied, drawn in zip(self.applied_lengths, self.drawn_lengths)]


@dataclass
class CorruptionStep:
    """One forward step x_prev -> x_next.

    ``*_units`` are unit boundaries: unit k of a sequence is
    ``tokens[units[k]:units[k + 1]]``; ``units[0] == 0`` and
    ``units[-1] == len(tokens)``.
    """

    x_prev: list[int]
    prev_units: list[int]
    x_next: list[int]
    next_units: list[int]
    spans: StepSpans
    next_origins: list[int] | None = None  # per token of x_next: its index in x_0, or -1 for noise

    def reverse_supervision(self) -> tuple[list[int], list[list[int]]]:
        """Gold (tags, fills) with ``apply_edits(x_next, tags, fills) == x_prev``; see the module docstring."""
        tokens, units = self.x_prev, self.prev_units
        tags = [_TAG_KEEP]
        fills: list[list[int]] = []
        # A gap attaches to the last non-DELETE canvas position: open_fill is that
        # position's fill, or None while it is a KEEP at canvas position last_keep.
        open_fill = None
        last_keep = 0
        unit = 0
        for edit, length in zip(self.spans.edits, self.spans.applied_lengths):
            if length == 0:
                continue
            if edit == _INSERT:
                tags.extend([_TAG_DELETE] * length)
                continue
            original = tokens[units[unit]:units[unit + length]]
            unit += length
            if edit == _KEEP:
                tags.extend([_TAG_KEEP] * len(original))
                last_keep, open_fill = len(tags) - 1, None
            elif edit == _REPLACE:
                if tags[-1] == _TAG_REPLACE:
                    open_fill.extend(original)
                else:
                    open_fill = list(original)
                    fills.append(open_fill)
                tags.extend([_TAG_REPLACE] * length)
            elif open_fill is None:
                tags[last_keep] = _TAG_INSERT
                open_fill = list(original)
                fills.append(open_fill)
            else:
                open_fill.extend(original)
        return tags, fills


@dataclass
class TrainingPair:
    """One reverse-step training example.

    x_prev, x_next: the reverse target (x_{t-1}, or x_0 with reverse_target
    "clean") and x_t (lists of ids); t: the step (0 means
    x_t == x_0 with all-KEEP tags); tags: len(x_next) + 1 Tag values over
    [start slot] + x_t; fills: one id list per span of edit_spans(tags);
    span_records: the spans of each of the t forward steps, in order.
    """

    x_prev: list[int]
    x_next: list[int]
    t: int
    tags: list[int]
    fills: list[list[int]]
    span_records: list[StepSpans]


def unit_boundaries(tokens, unit: str, is_word_start=None) -> list[int]:
    """Boundaries of the units of ``tokens`` (len = num_units + 1); see CorruptionStep.

    Word mode needs ``is_word_start`` (bool per vocabulary id); position 0
    always starts a word.
    """
    tokens = as_token_list(tokens, "tokens")
    if unit == "token":
        return list(range(len(tokens) + 1))
    if unit != "word":
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    if is_word_start is None:
        raise ValueError("word units need is_word_start (a bool per vocabulary id)")
    if not tokens:
        return [0]
    starts = np.asarray(is_word_start, dtype=bool)[np.asarray(tokens)]
    starts[0] = True
    return [*np.flatnonzero(starts).tolist(), len(tokens)]


_SPAN_CHUNK = 128  # spans drawn per numpy call
_NOISE_CHUNK = 128  # noise ids drawn per numpy call


class _ChainDraws:
    """Buffered random draws for one run of the chain: span edit types, span lengths and noise ids.

    Draws come from ``rng`` in vectorised chunks and are handed out one at a
    time, so the per-span walk does no numpy scalar calls. ``spans`` is an
    endless iterator of (uniform draw, drawn length, repeat draw): the step's
    edit thresholds turn the uniform draw into a ForwardEdit value; a repeat
    draw r < ``repetition_noise`` makes a noise span of n tokens repeat the
    last 1 + floor(n * r / repetition_noise) tokens (drawn only with
    ``repetition_noise`` > 0, so other chains keep their draws).
    """

    def __init__(self, config: CorruptionConfig, noise_vocab: NoiseVocabulary, rng: np.random.Generator):
        if config.unit == "word" and (noise_vocab.word_start_ids is None or noise_vocab.word_start_ids.size == 0):
            raise ValueError(
                "word-mode corruption needs a NoiseVocabulary with is_word_start and a non-special word start")
        self._config = config
        self._noise_vocab = noise_vocab
        self._rng = rng
        self._noise: list[int] = []
        self._next_noise = 0
        self.spans = self._span_stream()

    def _span_stream(self):
        share = self._config.repetition_noise
        while True:
            u = self._rng.random(_SPAN_CHUNK).tolist()
            lengths = self._rng.poisson(self._config.span_lambda, _SPAN_CHUNK).tolist()
            repeats = self._rng.random(_SPAN_CHUNK).tolist() if share > 0 else [1.0] * _SPAN_CHUNK
            yield from zip(u, lengths, repeats)

    def noise_span(self, written: list[int], n: int, repeat_draw: float) -> list[int]:
        """n noise tokens after ``written`` (x_i so far): drawn ids, or a repeat of its last tokens."""
        share = self._config.repetition_noise
        if repeat_draw < share:
            period = 1 + int(n * repeat_draw / share)
            if period <= len(written):
                tail = written[len(written) - period:]
                return [tail[i % period] for i in range(n)]
        return self.noise(n)

    def noise(self, n: int) -> list[int]:
        """n noise ids (word starts in word mode)."""
        if self._next_noise + n > len(self._noise):
            fresh = self._noise_vocab.sample(
                self._rng, max(n, _NOISE_CHUNK), word_start_only=self._config.unit == "word"
            ).tolist()
            self._noise = self._noise[self._next_noise:] + fresh
            self._next_noise = 0
        start = self._next_noise
        self._next_noise += n
        return self._noise[start:self._next_noise]


def _forward_step(tokens: list[int], units: list[int], draws: _ChainDraws, thresholds: list[float],
                  origins: list[int] | None = None) -> CorruptionStep:
    num_units = len(units) - 1
    spans: list[tuple[int, int, int]] = []  # (edit, drawn length, applied length)
    x_next: list[int] = []
    next_origins: list[int] | None = [] if origins is not None else None
    next_units = [0]
    unit = 0
    while unit < num_units:
        u, drawn, repeat_draw = next(draws.spans)
        edit = bisect_right(thresholds, u)
        length = drawn if edit == _INSERT or unit + drawn <= num_units else num_units - unit
        spans.append((edit, drawn, length))
        if length == 0:
            continue
        if edit == _KEEP:
            start = units[unit]
            shift = len(x_next) - start
            x_next.extend(tokens[start:units[unit + length]])
            if origins is not None:
                next_origins.extend(origins[start:units[unit + length]])
            next_units.extend([boundary + shift for boundary in units[unit + 1:unit + length + 1]])
            unit += length
        elif edit == _DELETE:
            unit += length
        else:
            start = len(x_next)
            x_next.extend(draws.noise_span(x_next, length, repeat_draw))
            if origins is not None:
                next_origins.extend([-1] * length)
            next_units.extend(range(start + 1, start + length + 1))
            if edit == _REPLACE:
                unit += length
    edits, drawn_lengths, applied_lengths = (list(column) for column in zip(*spans)) if spans else ([], [], [])
    return CorruptionStep(tokens, units, x_next, next_units, StepSpans(edits, drawn_lengths, applied_lengths),
                          next_origins)


def corruption_step(
    tokens: list[int],
    units: list[int],
    config: CorruptionConfig,
    noise_vocab: NoiseVocabulary,
    rng: np.random.Generator,
    step: int = 1,
) -> CorruptionStep:
    """Forward step ``step`` (its schedule's mix) on ``tokens`` (list of ids) with unit boundaries ``units``; see
    the module docstring."""
    return _forward_step(as_token_list(tokens, "tokens"), list(units), _ChainDraws(config, noise_vocab, rng),
                         config.edit_thresholds(step))


def _run_chain(x0, t: int, config: CorruptionConfig, noise_vocab: NoiseVocabulary, rng: np.random.Generator):
    """Run t >= 1 forward steps from x0; return (last CorruptionStep, span records of every step)."""
    draws = _ChainDraws(config, noise_vocab, rng)
    tokens = as_token_list(x0, "x0")
    units = unit_boundaries(tokens, config.unit, noise_vocab.is_word_start)
    origins = list(range(len(tokens))) if config.reverse_target == "clean" else None
    records = []
    for i in range(1, t + 1):
        step = _forward_step(tokens, units, draws, config.edit_thresholds(i), origins)
        records.append(step.spans)
        tokens, units, origins = step.x_next, step.next_units, step.next_origins
    return step, records


def clean_supervision(x_t: list[int], origins: list[int], x0: list[int]) -> tuple[list[int], list[list[int]]]:
    """Gold (tags, fills) with ``apply_edits(x_t, tags, fills) == x0``; ``origins[i]`` is x_t[i]'s index in
    x0 or -1 (noise), increasing over the survivors. See the module docstring."""
    tags = [_TAG_KEEP]
    fills: list[list[int]] = []
    anchor = 0  # canvas position after which x0 tokens missing before the next survivor go
    previous = -1  # x0 index of the last survivor
    run_start = None  # canvas position where the current noise run starts

    def close_gap(until: int) -> None:
        nonlocal run_start
        missing = x0[previous + 1:until]
        if run_start is not None:
            if missing:
                fills.append(missing)
            else:
                tags[run_start:] = [_TAG_DELETE] * (len(tags) - run_start)
            run_start = None
        elif missing:
            tags[anchor] = _TAG_INSERT
            fills.append(missing)

    for origin in origins:
        if origin < 0:
            if run_start is None:
                run_start = len(tags)
            tags.append(_TAG_REPLACE)
            continue
        close_gap(origin)
        tags.append(_TAG_KEEP)
        anchor, previous = len(tags) - 1, origin
    close_gap(len(x0))
    return tags, fills


def _checked_step_count(t) -> int:
    if isinstance(t, bool) or int(t) != t or t < 0:
        raise ValueError(f"t must be an integer >= 0, got {t!r}")
    return int(t)


def corrupt(x0, t: int, config: CorruptionConfig, noise_vocab: NoiseVocabulary, rng: np.random.Generator) -> list[int]:
    """x_t: run t forward steps from x0 (t = 0 returns x0 as a list)."""
    t = _checked_step_count(t)
    if t == 0:
        return as_token_list(x0, "x0")
    return _run_chain(x0, t, config, noise_vocab, rng)[0].x_next


def sample_training_pair(
    x0, config: CorruptionConfig, noise_vocab: NoiseVocabulary, rng: np.random.Generator, t: int | None = None
) -> TrainingPair:
    """Draw t ~ U{1..T} (unless given), run t forward steps, supervise the reverse target (x_0 or x_{t-1}).

    Any t >= 0 may be given; t = 0 gives x_prev == x_next == x0, all-KEEP tags
    and no fills.
    """
    t = int(rng.integers(1, config.num_steps + 1)) if t is None else _checked_step_count(t)
    if t == 0:
        tokens = as_token_list(x0, "x0")
        return TrainingPair(tokens, list(tokens), 0, [_TAG_KEEP] * (len(tokens) + 1), [], [])
    step, records = _run_chain(x0, t, config, noise_vocab, rng)
    if config.reverse_target == "clean":
        x0 = as_token_list(x0, "x0")
        tags, fills = clean_supervision(step.x_next, step.next_origins, x0)
        return TrainingPair(x0, step.x_next, t, tags, fills, records)
    tags, fills = step.reverse_supervision()
    return TrainingPair(step.x_prev, step.x_next, t, tags, fills, records)
