"""--tag-edit-weight: positions whose target tag is an edit count W times in the tagger's CE; the log is unweighted."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_diffuser_layouts import SHARED, batch, build

from diffuser_mt.edits import NUM_TAGS, TAG_PAD, Tag
from fairseq_plugins.criterions.diffuser_loss import DiffuserLoss


@pytest.fixture(scope="module")
def evaluated(small_corpus):
    task, model = build(small_corpus / "bin", *SHARED, seed=5)
    return task, model.eval(), batch(task, size=8)


@torch.no_grad()
@pytest.mark.parametrize("weight", [1.0, 3.0, 0.5])
def test_edit_positions_count_weight_times_in_the_loss(evaluated, weight):
    task, model, sample = evaluated
    loss, _, logged = DiffuserLoss(task, 0.1, 1.0, tag_edit_weight=weight)(model, sample)
    unweighted, _, unweighted_logged = DiffuserLoss(task, 0.1, 1.0)(model, sample)
    tag_logits, _ = model(**sample["net_input"])
    targets = sample["tag_target"].reshape(-1)
    losses = F.cross_entropy(tag_logits.reshape(-1, NUM_TAGS).float(), targets, ignore_index=TAG_PAD,
                             reduction="none")
    edits = (targets != TAG_PAD) & (targets != Tag.KEEP)
    assert edits.any() and (targets == Tag.KEEP).any()
    expected_shift = (weight - 1.0) * losses[edits].sum() / (targets != TAG_PAD).sum()
    torch.testing.assert_close(loss - unweighted, expected_shift, rtol=1e-5, atol=1e-6)
    assert logged["tagger_loss_sum"] == pytest.approx(float(unweighted_logged["tagger_loss_sum"]), rel=1e-6)


@pytest.mark.parametrize("weight", [0.0, -1.0])
def test_a_weight_that_is_not_positive_stops_with_one_line(evaluated, weight):
    task, _, _ = evaluated
    with pytest.raises(SystemExit, match="--tag-edit-weight must be > 0"):
        DiffuserLoss(task, 0.1, 1.0, tag_edit_weight=weight)
