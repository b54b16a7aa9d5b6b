"""Sinusoidal timestep features and the time-embedding MLP."""
import math

import pytest
import torch

from diffuser_mt.time_embedding import TimeEmbedding, sinusoidal_features


@pytest.mark.parametrize("dim", [2, 8, 32])
def test_features_are_cosines_then_sines_of_geometric_frequencies(dim):
    t = torch.tensor([0, 1, 7, 999])
    features = sinusoidal_features(t, dim)
    half = dim // 2
    for k in range(half):
        frequency = math.exp(-math.log(10000.0) * k / half)
        assert torch.allclose(features[:, k], torch.cos(t.float() * frequency), atol=1e-5)
        assert torch.allclose(features[:, half + k], torch.sin(t.float() * frequency), atol=1e-5)


def test_odd_sizes_are_refused():
    with pytest.raises(ValueError, match="must be even"):
        sinusoidal_features(torch.tensor([1]), 7)


def test_embedding_distinguishes_timesteps_and_keeps_the_batch_shape():
    torch.manual_seed(0)
    embedded = TimeEmbedding(16)(torch.tensor([1, 2, 500]))
    assert embedded.shape == (3, 16)
    assert not torch.allclose(embedded[0], embedded[1])
