"""Device and dtype: the DiffusER loss and the edit decoder's model calls under torch.autocast (CPU bf16) and with
the model cast to bf16 (what fairseq's --bf16 does) stay within tolerance of fp32."""
from __future__ import annotations

import copy

import pytest
import torch
from omegaconf import OmegaConf
from test_diffuser_layouts import batch, build

from diffuser_mt.edit_decoder import DecodeConfig, decode
from diffuser_mt.edit_model import DecodeVocabulary
from fairseq_plugins.criterions.diffuser_loss import DiffuserLossConfig
from fairseq_plugins.diffuser_generator import FairseqEditModel
from fairseq_plugins.tasks.diffuser_task import fillable_mask

# bf16 keeps 8 bits of mantissa (relative error ~0.4% per op)
LOSS_RTOL = 2e-2
LOG_PROB_ATOL = 0.15
SOURCES = 6


@pytest.fixture(scope="module")
def trained(small_corpus):
    """task, a diffuser_tiny (2 generator layers, 1 tagger layer) trained 30 steps on one batch so that its outputs
    are not uniform, its criterion and that batch."""
    task, model = build(small_corpus / "bin", "--share-encoder", "--tagger-layers", "1", "--decoder-layers", "2",
                        "--dropout", "0")
    criterion = task.build_criterion(OmegaConf.structured(DiffuserLossConfig(_name="diffuser_loss")))
    sample = batch(task, size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(30):
        loss, _, _ = criterion(model, sample)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return task, model.eval(), criterion, sample


@torch.no_grad()
def test_the_loss_under_autocast_is_within_tolerance_of_fp32(trained):
    _, model, criterion, sample = trained
    loss, _, logged = criterion(model, sample)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low_loss, _, low_logged = criterion(model, sample)
    assert low_loss.dtype == torch.float32
    torch.testing.assert_close(low_loss, loss, rtol=LOSS_RTOL, atol=0)
    assert abs(int(low_logged["tag_correct"]) - int(logged["tag_correct"])) <= 0.02 * int(logged["n_tags"])


def test_autocast_training_steps_give_finite_gradients(trained):
    _, model, criterion, sample = trained
    model = copy.deepcopy(model).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, _ = criterion(model, sample)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def edit_model(task, model, sample):
    net_input = sample["net_input"]
    ids = task.special_ids
    return FairseqEditModel(model, net_input["src_tokens"][:SOURCES], net_input["src_lengths"][:SOURCES], ids.bos,
                            ids.pad)


def model_calls(task, model, sample):
    """Tag log-probs of a few x_t, next-token log-probs of a full forward pass and of the key/value cache."""
    ids, fairseq_model = task.special_ids, edit_model(task, model, sample)
    rows = list(range(SOURCES))
    sequences = [list(range(10, 10 + 2 * row)) for row in rows]
    prefixes = [[ids.bos, *sequence, ids.sentinels[0], ids.sentinels[0]] for sequence in sequences]
    tags = torch.cat(fairseq_model.tag_log_probs(rows, sequences))
    full = fairseq_model.next_token_log_probs(rows, prefixes)
    state, cached = fairseq_model.start_fills(rows, prefixes)
    _, extended = fairseq_model.extend_fills(state, rows[::-1], [20] * SOURCES)
    return {"tags": tags, "full": full, "cached": cached, "extended": extended}


@torch.no_grad()
@pytest.mark.parametrize("precision", ["autocast", "bf16 model"])
def test_the_decoders_model_calls_are_within_tolerance_of_fp32(trained, precision):
    task, model, _, sample = trained
    reference = model_calls(task, model, sample)
    if precision == "autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model_calls(task, model, sample)
    else:
        low = model_calls(task, copy.deepcopy(model).to(torch.bfloat16), sample)
    for name, log_probs in reference.items():
        assert low[name].dtype == torch.float32 and low[name].device == log_probs.device, name
        finite = torch.isfinite(log_probs)
        assert torch.equal(torch.isfinite(low[name]), finite), name
        torch.testing.assert_close(low[name][finite], log_probs[finite], rtol=0, atol=LOG_PROB_ATOL)


@torch.no_grad()
def test_a_bf16_model_decodes_every_sentence(trained):
    task, model, _, sample = trained
    low = copy.deepcopy(model).to(torch.bfloat16)
    vocab = DecodeVocabulary(task.special_ids, fillable_mask(task.noise_vocab))
    results = decode(edit_model(task, low, sample), [[] for _ in range(SOURCES)], vocab, DecodeConfig(steps=2,
                                                                                                        max_length=20))
    assert len(results) == SOURCES and all(results)
    assert all(torch.isfinite(torch.tensor(hypotheses[0].score)) for hypotheses in results)
