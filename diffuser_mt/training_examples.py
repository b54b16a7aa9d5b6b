"""One DiffusER training example: the tagger's input and tags, the generator's I/O.

An example is any sequence x̂ the tagger reads plus the edits that take it to
its reverse target. Sources of x̂:

* corruption (``make_training_example``): draw t, corrupt x_0 to x_t, read
  the reverse supervision off the chain (what a data-loader worker computes);
* masking (``make_masking_example``, CMLM's training distribution): x_0 with
  a uniformly drawn number of its tokens (or whole words) replaced by noise
  (or a share of them left unchanged, as BERT does), one for one, so the
  generator learns to rewrite a few tokens inside their context (what confidence re-editing at
  decoding asks of it, ``diffuser_mt.confidence``);
* word errors (``make_word_error_example``): x_0 with a few whole words
  substituted, dropped, duplicated or preceded by an inserted word
  (``diffuser_mt.word_errors``), the errors of a fluent hypothesis, with the
  edits of their alignment back to x_0;
* a hypothesis of another system or of the model itself
  (``make_postedit_example``): the edits come from a Levenshtein alignment of
  x̂ to x_0 (``diffuser_mt.alignment``);
* either way ``example_from_edits`` caps the number of spans and lays out the
  tagger and generator sequences.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffuser_mt.alignment import edit_supervision
from diffuser_mt.canvas import SpecialIds, build_generator_example, limit_spans
from diffuser_mt.corruption import CorruptionConfig, NoiseVocabulary, sample_training_pair, unit_boundaries
from diffuser_mt.edits import Tag
from diffuser_mt.word_errors import WordVocabulary, inject_word_errors


@dataclass
class DiffuserExample:
    """Token lists of one example (no padding).

    tagger_tokens: [bos] + x_t, length L+1; tag_targets: one Tag per position, length L+1.
    generator_inputs / generator_targets: Z[:-1] and Z[1:] of canvas.build_generator_example,
    with ``pad`` where no loss applies.
    """

    tagger_tokens: list[int]
    tag_targets: list[int]
    generator_inputs: list[int]
    generator_targets: list[int]


def example_from_edits(x_t: list[int], tags: list[int], fills: list[list[int]], ids: SpecialIds) -> DiffuserExample:
    """The example of the step (x_t, tags, fills); more spans than sentinels are coarsened losslessly."""
    tags, fills = limit_spans(x_t, tags, fills, len(ids.sentinels))
    generator_inputs, generator_targets = build_generator_example(x_t, tags, fills, ids)
    return DiffuserExample(
        tagger_tokens=[ids.bos, *x_t],
        tag_targets=tags,
        generator_inputs=generator_inputs,
        generator_targets=generator_targets,
    )


def make_training_example(
    x0: list[int],
    config: CorruptionConfig,
    noise_vocab: NoiseVocabulary,
    ids: SpecialIds,
    rng: np.random.Generator,
) -> DiffuserExample:
    """Sample t, corrupt ``x0`` (no bos/eos) and build the example; at most len(ids.sentinels) spans."""
    pair = sample_training_pair(x0, config, noise_vocab, rng)
    return example_from_edits(pair.x_next, pair.tags, pair.fills, ids)


def make_postedit_example(hypothesis: list[int], x0: list[int], ids: SpecialIds, unit: str = "token",
                          is_word_start=None) -> DiffuserExample:
    """The example that edits ``hypothesis`` (no bos/eos) into ``x0``, supervised by their alignment."""
    tags, fills = edit_supervision(hypothesis, x0, unit, is_word_start)
    return example_from_edits(list(hypothesis), tags, fills, ids)


def make_word_error_example(x0: list[int], words: WordVocabulary, ids: SpecialIds, rng: np.random.Generator,
                            max_errors: int, is_word_start, unit: str = "token") -> DiffuserExample:
    """x_0 (no bos/eos) with n ~ U{1..max_errors} word errors (``inject_word_errors``), supervised by the
    alignment (in ``unit``s) that takes it back to x_0."""
    if max_errors < 1:
        raise ValueError(f"max_errors must be >= 1, got {max_errors}")
    hypothesis = inject_word_errors(x0, int(rng.integers(1, max_errors + 1)), words, rng, is_word_start)
    return make_postedit_example(hypothesis, x0, ids, unit, is_word_start)


def make_masking_example(x0: list[int], noise_vocab: NoiseVocabulary, ids: SpecialIds,
                         rng: np.random.Generator, unchanged: float = 0.0, unit: str = "token") -> DiffuserExample:
    """x_0 (no bos/eos) with n ~ U{1..U} of its U units (tokens, or whole words with ``unit="word"``: a word
    start and its continuations, ``noise_vocab.is_word_start``) masked at random: every token of a masked unit
    tagged REPLACE, each run's fill its original tokens (as many as the run replaces); an empty x_0 stays empty.

    A masked unit's tokens are replaced by noise, or, with probability ``unchanged`` (BERT's unchanged share), left
    as they are: the generator still rewrites them (with visible replaced tokens it learns that a token it
    re-edits may be right), while the tagger's target there is KEEP.
    """
    x0 = list(x0)
    if not x0:
        return example_from_edits([], [Tag.KEEP], [], ids)
    lengths = np.diff(unit_boundaries(x0, unit, noise_vocab.is_word_start))
    count = int(rng.integers(1, len(lengths) + 1))
    chosen = np.zeros(len(lengths), dtype=bool)
    chosen[rng.choice(len(lengths), size=count, replace=False)] = True
    masked = np.repeat(chosen, lengths)
    noised = masked & np.repeat(rng.random(len(lengths)) >= unchanged, lengths) if unchanged > 0 else masked
    noise = iter(noise_vocab.sample(rng, int(noised.sum())).tolist())
    x_t = [next(noise) if flag else token for token, flag in zip(x0, noised)]
    example = example_from_edits(x_t, *_replaced_runs(x0, masked), ids)
    if (noised != masked).any():
        tags, _ = limit_spans(x_t, *_replaced_runs(x0, noised), len(ids.sentinels))
        example.tag_targets = tags
    return example


def _replaced_runs(x0: list[int], flags: np.ndarray) -> tuple[list[int], list[list[int]]]:
    """Tags over [start slot] + x that replace each flagged token one for one by its x_0 token, and the fills."""
    tags = [int(Tag.KEEP)] + [int(Tag.REPLACE if flag else Tag.KEEP) for flag in flags]
    fills, run = [], []
    for token, flag in zip(x0, flags):
        if flag:
            run.append(token)
        elif run:
            fills.append(run)
            run = []
    if run:
        fills.append(run)
    return tags, fills
