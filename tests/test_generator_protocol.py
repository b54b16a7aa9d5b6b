"""What the three generators share of fairseq's generator protocol, on stand-in models."""
from __future__ import annotations

import pytest
import torch

from fairseq_plugins.generator_protocol import hypothesis, single_model


def test_the_single_model_is_returned_in_eval_mode():
    model = torch.nn.Dropout(0.5).train()
    assert single_model([model], "d3pm") is model and not model.training


def test_an_ensemble_is_one_line_naming_the_generator():
    with pytest.raises(SystemExit, match="^error: the diffuseq generator decodes with one model; pass one --path$"):
        single_model([torch.nn.Identity(), torch.nn.Identity()], "diffuseq")


def test_a_hypothesis_scores_the_mean_of_its_positional_scores():
    tokens, positional = torch.tensor([5, 6, 2]), torch.tensor([-1.0, -0.5, -0.0])
    assert hypothesis(tokens, positional) == {"tokens": tokens, "score": -0.5, "positional_scores": positional,
                                              "alignment": None}
