"""One DiffusER training example: corrupted target, tag targets and generator I/O.

This is what a data-loader worker computes for each target sentence x_0:
draw t, corrupt x_0 to x_t, derive the reverse supervision of x_t -> x_{t-1},
cap the number of spans, and lay out the tagger and generator sequences.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffuser_mt.canvas import SpecialIds, build_generator_example, limit_spans
from diffuser_mt.corruption import CorruptionConfig, NoiseVocabulary, sample_training_pair


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


def make_training_example(
    x0: list[int],
    config: CorruptionConfig,
    noise_vocab: NoiseVocabulary,
    ids: SpecialIds,
    rng: np.random.Generator,
) -> DiffuserExample:
    """Sample t, corrupt ``x0`` (no bos/eos) and build the example; at most len(ids.sentinels) spans."""
    pair = sample_training_pair(x0, config, noise_vocab, rng)
    tags, fills = limit_spans(pair.x_next, pair.tags, pair.fills, len(ids.sentinels))
    generator_inputs, generator_targets = build_generator_example(pair.x_next, tags, fills, ids)
    return DiffuserExample(
        tagger_tokens=[ids.bos, *pair.x_next],
        tag_targets=tags,
        generator_inputs=generator_inputs,
        generator_targets=generator_targets,
    )
