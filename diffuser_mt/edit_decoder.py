"""DiffusER's iterative edit decoder: from a start state x_T, tag, edit and fill for N steps.

One reverse step of a hypothesis x_t:

1. the tagger scores a tag for every canvas position of [start slot] + x_t; the
   decoder takes the most likely tag per position (or, with ``sample_tags``,
   draws it from the tagger's distribution; the start slot may only be
   KEEP or INSERT; an empty x_t always gets INSERT: the null start's first step
   must insert). Spans beyond the model's number of sentinels are kept instead.
2. the generator fills the spans (``diffuser_mt.span_filling``: token beam b or
   nucleus p), and ``apply_edits`` gives x_{t-1}.

The score of a step is its log-likelihood per decision: the log-probabilities
of the chosen tags and of the fill tokens and terminators, summed and divided by
their number (so it is <= 0 and comparable across lengths). A hypothesis' path
score is the sum of the scores of the steps that changed its text (a step that
keeps everything adds nothing).

Searches across steps (the paper's inter-revision level): greedy keeps one
hypothesis per sentence; the 2D beam keeps r. Each of the r hypotheses is
decoded with token beam b, giving r*b candidates: the fills of one parent are
ranked by their step score (a mean), candidates of different parents by their
path scores, which compare whole edit paths; identical texts are merged (the
better path stays) and the best r by path score are kept. r = b = 1 is greedy.

Locked spans (for revising a user's draft): a token may carry a lock id; a
locked token is never deleted or replaced, and nothing is inserted between two
tokens of the same locked span. Locks follow their tokens through the edits;
tokens written by the generator are free.

Whole-word edits (``whole_word_edits``): the tagger's edits inside a word are
widened to the whole word before the fills (``diffuser_mt.edits.whole_word_tags``),
so a wrong word is rewritten whole instead of having its first piece replaced
and its other pieces kept. The paper computes MT's edit operations over words;
the tagger here tags subword pieces, and this makes a step's edits word-level
(training's counterpart: ``--edit-unit word``).

Confidence re-editing (``remask_share`` > 0, ``diffuser_mt.confidence``): on
top of the tagger's edits, each step tags REPLACE a linearly decaying number
of the tokens the generator itself is least sure of (Mask-Predict's schedule),
so the generator rewrites them seeing the text on both sides. The schedule
depends on the step count N: a k-step decode is then not the first k steps of
a longer one.

Edit verification (``verify_edits``, ``diffuser_mt.edit_verification``): a
candidate whose text differs from its parent's is kept only if the generator,
reading it as a left-to-right model on an empty canvas, gives it a higher mean
log-probability per token than the parent's text; otherwise the parent's text
stays (with its path). Not part of the paper: its tagger decides alone.

With ``stop_when_unchanged`` (the default) a sentence stops once a step tags
every position KEEP for all its hypotheses (never with ``sample_tags``: a later
draw may edit). This is exact: the texts and their
scores are then a fixed point of the (deterministic) tagger, and the re-edit
count never grows, so the remaining steps would return the same hypotheses;
only the history has no no-op steps. With verification a sentence also stops
when every edit of a step was refused, if the step was deterministic (no
sampled tags, nucleus or re-editing): the next step would propose the same.

Returned hypotheses are ordered by their path score, as the 2D beam keeps
them. After the last step the tagger scores the final texts once more: a
token's positional score is the log-probability that it is kept, and a
hypothesis' ``score`` (fairseq's H- score) is their mean: the model's
confidence that the text needs no further edit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from diffuser_mt.canvas import build_canvas, kept_tokens
from diffuser_mt.confidence import remask_count, remask_tags, token_confidences
from diffuser_mt.edit_model import DecodeVocabulary, EditModel
from diffuser_mt.edit_verification import sentence_scores
from diffuser_mt.edits import Tag, apply_edits, edit_spans, whole_word_tags
from diffuser_mt.span_filling import FREE_LENGTH, FillCandidate, FillRequest, TokenSearch, fill_spans


@dataclass(frozen=True)
class DecodeConfig:
    """steps: reverse steps N; token_beam b; revision_beam r (2D beam when > 1); nucleus_p (0 = off);
    max_length: most tokens any x_t may hold; stop_when_unchanged: stop a sentence once a step changes nothing
    (same output, see the module docstring); keep_bias: log-probability added to KEEP before the tags are
    chosen (> 0: a token is edited only where the tagger is that much surer of an edit); remask_share: share of
    x_t re-edited at the first step by confidence, decaying linearly over the steps (0 = off); sample_tags: draw
    each tag from the tagger's distribution (after keep_bias) instead of taking the most likely; verify_edits:
    keep an edit only if the generator scores the edited text higher (``diffuser_mt.edit_verification``);
    whole_word_edits: widen each of the tagger's edits inside a word to the whole word (``whole_word_tags``; needs
    the vocabulary's word starts)."""

    steps: int = 12
    token_beam: int = 1
    revision_beam: int = 1
    nucleus_p: float = 0.0
    max_length: int = 256
    stop_when_unchanged: bool = True
    keep_bias: float = 0.0
    remask_share: float = 0.0
    sample_tags: bool = False
    verify_edits: bool = False
    whole_word_edits: bool = False

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"the number of decoding steps must be >= 0, got {self.steps}")
        if self.revision_beam < 1:
            raise ValueError(f"revision beam must be >= 1, got {self.revision_beam}")
        if self.max_length < 1:
            raise ValueError(f"max length must be >= 1, got {self.max_length}")
        if not math.isfinite(self.keep_bias):
            raise ValueError(f"keep bias must be a finite number, got {self.keep_bias}")
        if not 0.0 <= self.remask_share <= 1.0:
            raise ValueError(f"remask share must lie in [0, 1] (0 = off), got {self.remask_share}")
        self.token_search  # validates beam and nucleus

    @property
    def token_search(self) -> TokenSearch:
        return TokenSearch(beam=self.token_beam, nucleus_p=self.nucleus_p)


@dataclass(frozen=True)
class EditRecord:
    """One applied reverse step: x_t (``tokens``), its canvas tags, the span fills and the step score."""

    tokens: tuple[int, ...]
    tags: tuple[int, ...]
    fills: tuple[tuple[int, ...], ...]
    score: float

    def result(self) -> list[int]:
        return apply_edits(list(self.tokens), list(self.tags), [list(fill) for fill in self.fills])


@dataclass
class Hypothesis:
    """A decoded text with its edit history; ``keep_log_probs`` (len(tokens)+1, start slot last) after decoding.

    ``confidences`` (with ``remask_share``): per token, the generator's log-probability when it wrote the token,
    or when it scored it (``diffuser_mt.confidence``); NaN for a token it has not judged yet.
    """

    tokens: list[int]
    step_score: float = 0.0
    path_score: float = 0.0
    history: list[EditRecord] = field(default_factory=list)
    keep_log_probs: list[float] | None = None
    locks: list[int] | None = None  # per token: a locked span's id, or FREE
    confidences: list[float] | None = None
    sentence_score: float | None = None  # with verify_edits: the generator's score of ``tokens``, once computed

    @property
    def score(self) -> float:
        """Mean log-probability that each token (and the start slot) is kept: the model's confidence it is final."""
        if not self.keep_log_probs:
            return self.step_score
        return float(np.mean(self.keep_log_probs))


FREE = -1  # the lock of a token that may be edited


def choose_tags(tag_log_probs: torch.Tensor, max_spans: int, locks: Sequence[int] | None = None,
                keep_bias: float = 0.0, rng: np.random.Generator | None = None,
                word_starts: Sequence[bool] | None = None) -> list[int]:
    """Most likely tag per canvas position (drawn from the tagger's distribution with ``rng``), under the
    decoder's constraints (see module docstring).

    tag_log_probs: (L+1, NUM_TAGS); locks: L lock ids or None; keep_bias is added to every KEEP
    log-probability first; with ``word_starts`` (L flags) edits inside a word are widened to it
    (``whole_word_tags``). Returns L+1 tags with at most ``max_spans`` spans.
    """
    log_probs = tag_log_probs.float().clone()
    log_probs[:, Tag.KEEP] += keep_bias
    log_probs[0, [Tag.DELETE, Tag.REPLACE]] = float("-inf")
    if log_probs.shape[0] == 1:
        log_probs[0, Tag.KEEP] = float("-inf")
    for index, lock in enumerate(locks or ()):
        if lock != FREE:
            log_probs[index + 1, [Tag.DELETE, Tag.REPLACE]] = float("-inf")
            if index + 1 < len(locks) and locks[index + 1] == lock:
                log_probs[index + 1, Tag.INSERT] = float("-inf")
    if rng is None:
        tags = log_probs.argmax(-1).tolist()
    else:
        cumulative = torch.softmax(log_probs.double(), dim=-1).cumsum(-1).numpy()
        draws = rng.random(len(cumulative)) * cumulative[:, -1]
        tags = (cumulative <= draws[:, None]).sum(-1).tolist()  # the first tag whose cumulative exceeds the draw
    if word_starts is not None:
        tags = whole_word_tags(tags, word_starts, [lock == FREE for lock in locks] if locks is not None else None)
    spans = edit_spans(tags)
    for _, start, end in spans[max_spans:]:
        tags[start:end] = [Tag.KEEP] * (end - start)
    return tags


def carry_through_edits(values: Sequence, tags: Sequence[int], written: Sequence[Sequence]) -> list:
    """Per-token values of x_{t-1}: a surviving token keeps its value from ``values`` (one per token of x_t), the
    tokens of fill k take ``written[k]`` (one per fill token)."""
    flat = [value for fill in written for value in fill]
    ids, offset = [], len(values)
    for fill in written:
        ids.append(list(range(offset, offset + len(fill))))
        offset += len(fill)
    origins = apply_edits(list(range(len(values))), tags, ids)
    return [values[origin] if origin < len(values) else flat[origin - len(values)] for origin in origins]


def carry_locks(locks: Sequence[int], tags: Sequence[int], fills: Sequence[Sequence[int]]) -> list[int]:
    """The locks of x_{t-1}: each surviving token keeps its lock, each written token is FREE."""
    return carry_through_edits(locks, tags, [[FREE] * len(fill) for fill in fills])


def decode(model: EditModel, start_states: Sequence[Sequence[int]], vocab: DecodeVocabulary, config: DecodeConfig,
           rngs: Sequence[np.random.Generator] | None = None,
           max_lengths: Sequence[int] | None = None,
           locks: Sequence[Sequence[int]] | None = None) -> list[list[Hypothesis]]:
    """Decode every source row from its start state; per row up to ``revision_beam`` hypotheses, best step first.

    ``start_states[i]`` (token ids, no bos/eos) belongs to source row i; ``rngs[i]`` draws
    row i's nucleus samples and sampled tags; ``max_lengths[i]`` caps row i's length below ``config.max_length``;
    ``locks[i]`` gives a lock id (or FREE) per token of start state i.
    """
    limits = [min(config.max_length, max_lengths[row] if max_lengths is not None else config.max_length)
              for row in range(len(start_states))]
    beams = []
    for row, (state, limit) in enumerate(zip(start_states, limits)):
        row_locks = list(locks[row])[:limit] if locks is not None else None
        if row_locks is not None and len(row_locks) != min(len(state), limit):
            raise ValueError(f"row {row}: {len(locks[row])} locks for a start state of {len(state)} tokens")
        beams.append([Hypothesis(list(state)[:limit], locks=row_locks)])
    running = set(range(len(beams)))
    for step in range(1, config.steps + 1):
        if not running:
            break
        beams, changed = _step(model, beams, running, vocab, config, rngs, limits, step)
        if config.stop_when_unchanged and not config.sample_tags:
            running -= {row for row in running if not changed[row]}
    _score_final(model, beams)
    return beams


def _step(model, beams, running, vocab, config, rngs, limits, step):
    """Reverse step ``step`` (1-based) of every running row: r*b candidates per row, best r kept."""
    parents = [(row, hypothesis) for row in sorted(running) for hypothesis in beams[row]]
    tag_log_probs = model.tag_log_probs([row for row, _ in parents], [h.tokens for _, h in parents])
    if config.sample_tags and rngs is None:
        raise ValueError("sampled tags need one numpy Generator per source row")
    tag_choices = [choose_tags(log_probs, vocab.max_spans, hypothesis.locks, config.keep_bias,
                               rngs[row] if config.sample_tags else None,
                               vocab.word_starts_of(hypothesis.tokens) if config.whole_word_edits else None)
                   for log_probs, (row, hypothesis) in zip(tag_log_probs, parents)]
    span_lengths = [()] * len(parents)
    if config.remask_share > 0:
        tag_choices, span_lengths = _remask(model, parents, tag_choices, vocab, config, step)
    fill_parents, requests = [], []
    for index, ((row, hypothesis), tags) in enumerate(zip(parents, tag_choices)):
        num_spans = len(edit_spans(tags))
        if num_spans:
            canvas = build_canvas(hypothesis.tokens, tags, vocab.ids.sentinels, vocab.ids.replaced_offset)
            kept = kept_tokens(tags)
            fill_parents.append(index)
            requests.append(FillRequest(row, tuple(canvas), num_spans, max(limits[row] - kept, 0),
                                        span_lengths[index]))
    request_rngs = [rngs[request.row] for request in requests] if rngs is not None else None
    fills_of = dict(zip(fill_parents, fill_spans(model, requests, vocab, config.token_search, request_rngs)))

    children = []  # (row, parent, child)
    changed = {row: False for row in running}
    for index, ((row, parent), tags, log_probs) in enumerate(zip(parents, tag_choices, tag_log_probs)):
        tag_log_prob = float(log_probs.float()[torch.arange(len(tags)), torch.tensor(tags)].sum())
        changed[row] |= any(tag != Tag.KEEP for tag in tags)
        for fill in fills_of.get(index, [FillCandidate((), 0.0, 0)]):
            score = (tag_log_prob + fill.log_prob) / (len(tags) + fill.decisions)
            record = EditRecord(tuple(parent.tokens), tuple(tags), fill.fills, score)
            child_locks = carry_locks(parent.locks, tags, fill.fills) if parent.locks is not None else None
            child_confidences = None
            if config.remask_share > 0:
                known = parent.confidences or [math.nan] * len(parent.tokens)
                written = fill.token_log_probs or [[math.nan] * len(f) for f in fill.fills]
                child_confidences = carry_through_edits(known, tags, written)
            text = record.result()
            children.append((row, parent, Hypothesis(
                text, score, parent.path_score + (score if text != parent.tokens else 0.0), parent.history + [record],
                locks=child_locks, confidences=child_confidences)))
    if config.verify_edits:
        children = _verify(model, children, vocab)
        if not (config.sample_tags or config.nucleus_p > 0 or config.remask_share > 0):
            changed = {row: any(child.tokens != parent.tokens for r, parent, child in children if r == row)
                       for row in running}
    candidates: dict[int, dict[tuple[int, ...], Hypothesis]] = {row: {} for row in running}
    for row, _, child in children:
        known = candidates[row].get(tuple(child.tokens))
        if known is None or (known.path_score, known.step_score) < (child.path_score, child.step_score):
            candidates[row][tuple(child.tokens)] = child
    new_beams = list(beams)
    for row, by_text in candidates.items():
        new_beams[row] = sorted(by_text.values(), key=lambda h: (-h.path_score, -h.step_score))[
            : config.revision_beam]
    return new_beams, changed


def _verify(model, children, vocab):
    """``children`` with every child that changes its parent's text but does not raise the generator's sentence
    score replaced by its parent (``diffuser_mt.edit_verification``)."""
    edited = [(row, parent, child) for row, parent, child in children if child.tokens != parent.tokens]
    unscored = list({id(parent): (row, parent) for row, parent, _ in edited
                     if parent.sentence_score is None}.values())
    to_score = unscored + [(row, child) for row, _, child in edited]
    scores = sentence_scores(model, [row for row, _ in to_score], [h.tokens for _, h in to_score], vocab)
    for (_, hypothesis), score in zip(to_score, scores):
        hypothesis.sentence_score = score
    for _, parent, child in children:
        if child.tokens == parent.tokens:
            child.sentence_score = parent.sentence_score
    return [(row, parent, child if child.tokens == parent.tokens or child.sentence_score > parent.sentence_score
             else parent) for row, parent, child in children]


def _remask(model, parents, tag_choices, vocab, config, step):
    """The tags with the step's share of the least confident free tokens re-edited (``diffuser_mt.confidence``),
    and per parent the fill lengths: a span made of re-edited tokens only is refilled one token for one."""
    tags_out, lengths_out = list(tag_choices), [()] * len(parents)
    work = []  # (parent index, count, editable, confidences so far)
    for index, ((_, hypothesis), tags) in enumerate(zip(parents, tag_choices)):
        count = remask_count(config.remask_share, len(hypothesis.tokens), step, config.steps)
        locks = hypothesis.locks
        editable = [(lock == FREE) and tags[i + 1] == Tag.KEEP for i, lock in
                    enumerate(locks if locks is not None else [FREE] * len(hypothesis.tokens))]
        if count > 0 and any(editable):
            work.append((index, count, editable, hypothesis.confidences or [math.nan] * len(hypothesis.tokens)))
    unjudged = [index for index, _, editable, known in work
                if any(flag and math.isnan(value) for flag, value in zip(editable, known))]
    scores = dict(zip(unjudged, token_confidences(model, [parents[i][0] for i in unjudged],
                                                  [parents[i][1].tokens for i in unjudged], vocab)))
    for index, count, editable, known in work:
        if index in scores:
            known = [float(scores[index][i]) if math.isnan(value) else value for i, value in enumerate(known)]
            parents[index][1].confidences = known
        tags = remask_tags(tag_choices[index], torch.tensor(known), count, vocab.max_spans, editable)
        chosen = {i for i, (before, after) in enumerate(zip(tag_choices[index], tags)) if before != after}
        tags_out[index] = tags
        lengths_out[index] = tuple(end - start if kind == Tag.REPLACE and chosen >= set(range(start, end))
                                   else FREE_LENGTH for kind, start, end in edit_spans(tags))
    return tags_out, lengths_out


def _score_final(model, beams) -> None:
    """Set every hypothesis' keep_log_probs: tokens' KEEP log-probs, then the start slot's."""
    flat = [(row, hypothesis) for row, hypotheses in enumerate(beams) for hypothesis in hypotheses]
    if not flat:
        return
    tag_log_probs = model.tag_log_probs([row for row, _ in flat], [h.tokens for _, h in flat])
    for (_, hypothesis), log_probs in zip(flat, tag_log_probs):
        keep = log_probs.float()[:, Tag.KEEP].tolist()
        hypothesis.keep_log_probs = keep[1:] + keep[:1]
