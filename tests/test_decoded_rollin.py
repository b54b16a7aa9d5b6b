"""``--rollin-mode decoded`` / ``decoded_sampled``: x̂ is one decoding step of the model (eval mode; greedy, or with
tags and fills drawn) from each flagged x_t, and the roll-in examples edit that x̂ back to x_0."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from test_diffuser_layouts import batch, build

from diffuser_mt.edit_decoder import DecodeConfig, decode
from diffuser_mt.edit_model import DecodeVocabulary
from diffuser_mt.edits import TAG_PAD, apply_edits
from diffuser_mt.rollin import fills_of
from fairseq_plugins.criterions.diffuser_loss import DiffuserLoss, DiffuserLossConfig
from fairseq_plugins.diffuser_generator import FairseqEditModel

ROWS = 12


@pytest.fixture(scope="module")
def setup(small_corpus):
    """task, a diffuser_tiny in training mode (dropout 0.3), a decoded roll-in criterion, a batch with 8 rows
    flagged for roll-in."""
    task, model = build(small_corpus / "bin", "--share-encoder", "--tagger-layers", "1", "--decoder-layers", "2",
                        "--dropout", "0.3")
    criterion = task.build_criterion(OmegaConf.structured(DiffuserLossConfig(_name="diffuser_loss",
                                                                             rollin_mode="decoded")))
    sample = batch(task, size=ROWS)
    sample["rollin"] = torch.tensor([row % 3 != 0 for row in range(ROWS)])
    return task, model.train(), criterion, sample


def unpadded(tensor, pad):
    return tensor[tensor != pad].tolist()


@torch.no_grad()
def one_step(model, task, sample, row: int) -> list[int]:
    """The model's greedy one-step output (eval mode) from the x_t of ``row``, decoded alone."""
    ids, net_input = task.special_ids, sample["net_input"]
    tags = sample["tag_target"][row]
    x_t = net_input["tagger_tokens"][row, 1:int((tags != TAG_PAD).sum())].tolist()
    x0 = unpadded(sample["target"][row], ids.pad)[:-1]
    model.eval()
    edit_model = FairseqEditModel(model, net_input["src_tokens"][row:row + 1], net_input["src_lengths"][row:row + 1],
                                  ids.bos, ids.pad)
    [[hypothesis]] = decode(edit_model, [x_t], DecodeVocabulary(ids, task.fillable),
                            DecodeConfig(steps=1, stop_when_unchanged=False), max_lengths=[2 * len(x0) + 10])
    model.train()
    return hypothesis.tokens


def test_examples_edit_the_models_own_step_output_back_to_x0(setup):
    task, model, criterion, sample = setup
    ids = task.special_ids
    rollin = criterion.decoded_rollin_batch(model, sample)
    rows = sample["rollin"].nonzero().squeeze(1).tolist()
    assert model.training and rollin["tag_target"].size(0) == len(rows)
    for k, row in enumerate(rows):
        tags = unpadded(rollin["tag_target"][k], TAG_PAD)
        hypothesis = rollin["net_input"]["tagger_tokens"][k, 1:len(tags)].tolist()
        assert hypothesis == one_step(model, task, sample, row)  # eval mode: no dropout; alone = in the batch
        fills = fills_of(rollin["generator_target"][k].tolist(), ids)
        assert apply_edits(hypothesis, tags, fills) == unpadded(sample["target"][row], ids.pad)[:-1]
    assert torch.equal(rollin["net_input"]["src_tokens"],
                       sample["net_input"]["src_tokens"][rows])


def rollin_tensors(criterion, model, sample, draw, seed):
    torch.manual_seed(seed)
    batch = criterion.decoded_rollin_batch(model, sample, draw=draw)
    return [batch["tag_target"], batch["generator_target"], *batch["net_input"].values()]


@pytest.mark.parametrize("draw", [False, True])
def test_decoded_rollin_follows_torchs_seed(setup, draw):
    task, model, criterion, sample = setup
    first = rollin_tensors(criterion, model, sample, draw, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first, rollin_tensors(criterion, model, sample, draw, seed=1)))
    other = rollin_tensors(criterion, model, sample, draw, seed=2)
    differs = not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(first, other))
    assert differs == draw  # the greedy step ignores the seed, the drawn step follows it


def test_a_drawn_step_still_edits_back_to_x0(setup):
    task, model, criterion, sample = setup
    ids = task.special_ids
    torch.manual_seed(3)
    rollin = criterion.decoded_rollin_batch(model, sample, draw=True)
    for k, row in enumerate(sample["rollin"].nonzero().squeeze(1).tolist()):
        tags = unpadded(rollin["tag_target"][k], TAG_PAD)
        hypothesis = rollin["net_input"]["tagger_tokens"][k, 1:len(tags)].tolist()
        fills = fills_of(rollin["generator_target"][k].tolist(), ids)
        assert apply_edits(hypothesis, tags, fills) == unpadded(sample["target"][row], ids.pad)[:-1]


def test_training_with_decoded_rollin_lowers_the_loss(setup):
    task, model, criterion, sample = setup
    model = build(task.cfg.data, "--share-encoder", "--tagger-layers", "1", "--decoder-layers", "2",
                  "--dropout", "0")[1].train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses, rolled_in = [], []
    for _ in range(12):
        loss, _, logged = criterion(model, sample)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        rolled_in.append(int(logged["rollin_tags"]))
    assert all(count > 0 for count in rolled_in)
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3])


def test_an_unknown_rollin_mode_is_refused(setup):
    task = setup[0]
    with pytest.raises(SystemExit, match="--rollin-mode must be one of"):
        DiffuserLoss(task, 0.1, 1.0, rollin_mode="unrolled")
