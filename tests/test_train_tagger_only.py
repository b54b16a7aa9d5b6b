"""--train-tagger-only: a second training stage in which only the tagger learns; the generator (with the encoder and
embeddings the tagger reads from it) is frozen and does not run in training."""
from __future__ import annotations

import shutil

import pytest
import torch
from fairseq_helpers import DIFFUSER_TINY, fairseq, json_log
from test_diffuser_layouts import SEPARATE, SHARED, batch, build

from fairseq_plugins.criterions.diffuser_loss import DiffuserLoss


@pytest.mark.parametrize("layout", [SHARED, SEPARATE], ids=["shared", "separate"])
def test_only_the_taggers_own_parameters_learn(small_corpus, layout):
    task, model = build(small_corpus / "bin", *layout, "--train-tagger-only")
    model.train()
    loss, _, logging_output = DiffuserLoss(task, 0.1, 1.0)(model, batch(task))
    loss.backward()
    assert logging_output["n_generated"] == 0
    assert all(not parameter.requires_grad and parameter.grad is None for parameter in model.generator.parameters())
    assert all(parameter.grad is not None for parameter in model.tagger.decoder.layers.parameters())
    tagger_encoder_learns = [parameter.requires_grad for parameter in model.tagger.encoder.layers.parameters()]
    assert tagger_encoder_learns == [layout == SEPARATE] * len(tagger_encoder_learns)  # shared: the generator's


def test_in_training_the_generator_does_not_run_and_in_validation_it_does(small_corpus):
    _, joint = build(small_corpus / "bin", *SHARED, seed=3)
    task, tagger_only = build(small_corpus / "bin", *SHARED, "--train-tagger-only", seed=3)
    sample = batch(task)
    with torch.no_grad():
        _, trained_features = tagger_only.train()(**sample["net_input"])
        evaluated, joint_evaluated = (model.eval()(**sample["net_input"]) for model in (tagger_only, joint))
        _, _, logging_output = DiffuserLoss(task, 0.1, 1.0)(tagger_only, sample)
    assert trained_features is None and logging_output["n_generated"] > 0
    for ours, theirs in zip(evaluated, joint_evaluated):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert all(parameter.requires_grad for parameter in joint.parameters())


def test_sampled_rollin_cannot_draw_from_a_generator_that_does_not_run(small_corpus):
    task, model = build(small_corpus / "bin", *SHARED, "--train-tagger-only")
    sample = batch(task)
    sample["rollin"] = torch.ones(sample["target"].size(0), dtype=torch.bool)
    with pytest.raises(SystemExit, match="--rollin-mode decoded"):
        DiffuserLoss(task, 0.1, 1.0)(model.train(), sample)


def test_a_second_stage_through_fairseq_train_changes_the_tagger_and_not_the_generator(small_corpus,
                                                                                        tiny_checkpoints, tmp_path):
    start = tmp_path / "start.pt"
    shutil.copy(tiny_checkpoints["diffuser"], start)
    run = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--restore-file", start, "--reset-optimizer",
                  "--reset-dataloader", "--reset-meters", "--train-tagger-only", "--word-errors-prob", "0.5",
                  "--max-update", "30", "--save-dir", tmp_path, "--no-epoch-checkpoints", "--log-format", "json",
                  "--log-interval", "5")
    before, after = (torch.load(path, weights_only=True)["model"] for path in (start, tmp_path / "checkpoint_last.pt"))
    generator = [name for name in before if name.startswith("generator.")]
    tagger = [name for name in before if name.startswith("tagger.decoder.layers.")]
    assert generator and tagger and set(before) == set(after)
    assert all(torch.equal(before[name], after[name]) for name in generator)
    assert not all(torch.equal(before[name], after[name]) for name in tagger)
    trained = json_log(run.stdout, "train_inner")
    assert trained and all("generator_loss" not in record for record in trained)
    assert float(trained[-1]["tagger_loss"]) < float(trained[0]["tagger_loss"])
    validated = json_log(run.stdout, "valid")
    assert validated and all("valid_generator_nll_loss" in record for record in validated)


def test_resuming_a_joint_run_tagger_only_without_resetting_the_optimizer_is_one_line(small_corpus, tiny_checkpoints,
                                                                                        tmp_path):
    start = tmp_path / "checkpoint_last.pt"
    shutil.copy(tiny_checkpoints["diffuser"], start)
    saved = start.read_bytes()
    run = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--train-tagger-only", "--max-update", "20",
                  "--save-dir", tmp_path, "--no-epoch-checkpoints", check=False)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: checkpoint {start}: its optimizer state is for another set of trained parameters (e.g. a joint run "
        "resumed with --train-tagger-only, or the reverse); add --reset-optimizer")
    assert start.read_bytes() == saved
