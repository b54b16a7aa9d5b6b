"""--visible-replaced through fairseq: the checkpoint records it, the task's canvases follow the model it loads,
the generator reads the replaced tokens, and decoding with it is batch-size independent."""
from __future__ import annotations

import json

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.data import data_utils
from fairseq_helpers import DIFFUSER_TINY, USER_DIR, fairseq, lines_of

import fairseq_plugins  # noqa: F401  (the checkpoint allow-list)
from diffuser_mt.replaced_embedding import ReplacedTokenEmbedding
from fairseq_plugins.diffuser_generator import FairseqEditModel


@pytest.fixture(scope="module")
def checkpoint(small_corpus, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("visible_replaced")
    fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "10", "--save-dir", save_dir,
            "--no-epoch-checkpoints", "--visible-replaced", "--masking-prob", "0.5", "--masking-unchanged", "0.2",
            "--rollin-prob", "0.2")
    return save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def loaded(small_corpus, checkpoint):
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)],
                                                                    arg_overrides={"data": str(small_corpus / "bin")})
    return models[0].eval(), task


def test_the_checkpoint_records_the_option_and_the_task_lays_out_its_canvases_by_it(loaded):
    model, task = loaded
    assert model.args.visible_replaced and isinstance(model.generator.decoder.embed_tokens, ReplacedTokenEmbedding)
    vocabulary = len(task.target_dictionary)
    assert task.special_ids.replaced_offset == model.replaced_offset == vocabulary
    task.load_dataset("valid")
    dataset = task.datasets["valid"]
    marked = [token for i in range(100) for token in dataset.example(i).generator_inputs if token >= vocabulary]
    assert marked and all(token < 2 * vocabulary for token in marked)


def test_the_generator_reads_the_replaced_tokens(loaded):
    model, task = loaded
    ids = task.special_ids
    task.load_dataset("valid")
    source = task.datasets["valid"].dataset[0]["source"]
    edit_model = FairseqEditModel(model, data_utils.collate_tokens([source], ids.pad, left_pad=True),
                                  torch.tensor([len(source)]), ids.bos, ids.pad)
    first, second = task.noise_vocab.allowed_ids[:2].tolist()
    prefixes = [[ids.bos, 20, ids.sentinels[0], ids.replaced_offset + token, 21, ids.sentinels[0]]
                for token in (first, second)]
    with torch.no_grad():
        log_probs = edit_model.next_token_log_probs([0, 0], prefixes)
    assert not torch.allclose(log_probs[0], log_probs[1])


def test_confidence_re_editing_with_visible_tokens_is_batch_size_independent(small_corpus, checkpoint):
    def decode(batch_size):
        result = fairseq("fairseq-generate", small_corpus / "bin", "--user-dir", USER_DIR, "--task", "diffuser",
                         "--path", checkpoint, "--gen-subset", "valid", "--cpu", "--seed", "3",
                         "--required-batch-size-multiple", "1", "--batch-size", batch_size, "--max-len-b", "20",
                         "--decode-steps", "3", "--remask-share", "0.5", "--init-mode", "random")
        return {i: fields[-1] for i, fields in lines_of(result.stdout, "H").items()}

    one, many = decode(1), decode(25)
    assert len(one) == 100 and one == many


def test_the_refill_check_also_measures_corrections_of_a_visible_wrong_token(small_corpus, checkpoint, tmp_path):
    from benchmarks import refill_check

    assert refill_check.main(["--data", str(small_corpus / "bin"), "--path", str(checkpoint), "--sentences", "6",
                              "--out-dir", str(tmp_path), "--name", "visible"]) == 0
    figures = json.loads((tmp_path / "refill_check.visible.json").read_text())
    assert figures["visible_replaced"] and figures["tokens"] > 0
    assert 0.0 <= figures["noised_refill_accuracy"] <= 1.0
    assert "a refill of a random token there" in (tmp_path / "refill_check.visible.md").read_text()
