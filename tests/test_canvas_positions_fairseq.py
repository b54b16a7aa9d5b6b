"""--canvas-positions through fairseq: recorded in the checkpoint, read by fairseq-generate, batch-size independent."""
from __future__ import annotations

import pytest
from fairseq import checkpoint_utils
from fairseq_helpers import DIFFUSER_TINY, USER_DIR, fairseq, lines_of

import fairseq_plugins  # noqa: F401  (the checkpoint allow-list)
from fairseq_plugins.models.canvas_position_embedding import CanvasPositionalEmbedding


@pytest.fixture(scope="module")
def checkpoint(small_corpus, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("canvas_positions")
    fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "10", "--save-dir", save_dir,
            "--no-epoch-checkpoints", "--canvas-positions", "--rollin-prob", "0.2")
    return save_dir / "checkpoint_last.pt"


def test_the_checkpoint_records_the_option_and_loads_the_layout(small_corpus, checkpoint):
    (model,), _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], arg_overrides={"data": str(small_corpus / "bin")})
    assert model.args.canvas_positions
    assert isinstance(model.generator.decoder.embed_positions, CanvasPositionalEmbedding)
    assert model.canvas_sentinels.tolist() == list(task.special_ids.sentinels)


@pytest.mark.parametrize("options", [
    ["--decode-steps", "3"],
    ["--decode-steps", "2", "--token-beam", "3", "--revision-beam", "2"],
    ["--decode-steps", "2", "--remask-share", "0.5"],
])
def test_decoding_is_batch_size_independent(small_corpus, checkpoint, options):
    def decode(batch_size):
        result = fairseq("fairseq-generate", small_corpus / "bin", "--user-dir", USER_DIR, "--task", "diffuser",
                         "--path", checkpoint, "--gen-subset", "valid", "--cpu", "--seed", "3",
                         "--required-batch-size-multiple", "1", "--batch-size", batch_size, "--max-len-b", "12",
                         "--init-mode", "random", *options)
        return {i: fields[-1] for i, fields in lines_of(result.stdout, "H").items()}

    one, many = decode(1), decode(25)
    assert len(one) == 100 and one == many
