"""--init-generator-from: DiffusER's generator starts as a fairseq transformer trained on the same data."""
from __future__ import annotations

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq_helpers import DIFFUSER_TINY, USER_DIR, fairseq
from test_diffuser_layouts import build

import fairseq_plugins  # noqa: F401  (the checkpoint allow-list)
from fairseq_plugins.tasks.diffuser_task import fillable_mask

SENTENCES = 50
MAX_LENGTH = 30


@pytest.fixture(scope="module")
def ar_checkpoint(small_corpus, tmp_path_factory):
    """fairseq's transformer at the generator's size (diffuser_tiny: transformer_cpu_tiny), briefly trained."""
    save_dir = tmp_path_factory.mktemp("ar")
    fairseq("fairseq-train", small_corpus / "bin", "--user-dir", USER_DIR, "--task", "translation", "--arch",
            "transformer_cpu_tiny", "--share-all-embeddings", "--optimizer", "adam", "--lr", "3e-3",
            "--max-tokens", "2000", "--max-update", "150", "--cpu", "--num-workers", "0", "--seed", "7",
            "--save-dir", save_dir, "--no-epoch-checkpoints")
    return save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="module", params=[False, True], ids=["index positions", "canvas positions"])
def warm(small_corpus, ar_checkpoint, request):
    """task, diffuser model warm-started from the AR checkpoint (shared encoder), the AR model."""
    task, model = build(small_corpus / "bin", "--share-encoder", "--init-generator-from", str(ar_checkpoint),
                        *(["--canvas-positions"] if request.param else []))
    (ar,), _ = checkpoint_utils.load_model_ensemble([str(ar_checkpoint)],
                                                    arg_overrides={"data": str(small_corpus / "bin")})
    return task, model, ar.eval()


def test_before_any_update_the_generator_is_the_transformer(warm, ar_checkpoint):
    task, model, ar = warm
    theirs = ar.state_dict()
    sentinels = task.cfg.max_spans
    for name, tensor in model.generator.state_dict().items():
        name = name.replace("embed_positions.inner.", "embed_positions.")  # CanvasPositionalEmbedding wraps it
        if "embed_tokens" in name or "output_projection" in name:
            assert tensor.size(0) == theirs[name].size(0) + sentinels  # extended by the sentinels only
            tensor = tensor[: -sentinels]
        assert torch.equal(tensor, theirs[name]), name
    assert model.tagger.encoder is model.generator.encoder
    assert (model.args.init_generator_from, model.args.generator_initialised_from) == (None, str(ar_checkpoint))


def test_the_sentinels_can_start_as_the_transformers_eos(small_corpus, ar_checkpoint):
    task, model = build(small_corpus / "bin", "--share-encoder", "--canvas-positions", "--init-generator-from",
                        str(ar_checkpoint), "--init-sentinels-as-eos")
    (ar,), _ = checkpoint_utils.load_model_ensemble([str(ar_checkpoint)],
                                                    arg_overrides={"data": str(small_corpus / "bin")})
    eos, sentinels = task.target_dictionary.eos(), list(task.special_ids.sentinels)
    for name in ("encoder.embed_tokens.weight", "decoder.output_projection.weight"):
        ours, theirs = model.generator.state_dict()[name], ar.state_dict()[name]
        assert torch.equal(ours[: theirs.size(0)], theirs)
        assert torch.equal(ours[sentinels], theirs[eos].expand(len(sentinels), -1)), name


@pytest.mark.parametrize("share_encoder", ["--share-encoder", "--no-share-encoder"])
def test_the_tagger_can_start_from_the_transformers_decoder_layers(small_corpus, ar_checkpoint, share_encoder):
    _, model = build(small_corpus / "bin", share_encoder, "--tagger-layers", "1", "--init-generator-from",
                     str(ar_checkpoint), "--init-tagger-from-generator")
    ar = torch.load(ar_checkpoint, weights_only=True)["model"]
    ours = model.tagger.decoder.layers[0].state_dict()
    assert ours and all(torch.equal(tensor, ar[f"decoder.layers.0.{name}"]) for name, tensor in ours.items())
    _, fresh = build(small_corpus / "bin", share_encoder, "--tagger-layers", "1", "--init-generator-from",
                     str(ar_checkpoint))
    assert not torch.equal(fresh.tagger.decoder.layers[0].fc1.weight, ar["decoder.layers.0.fc1.weight"])


def test_a_tagger_deeper_than_the_transformer_cannot_start_from_it(small_corpus, ar_checkpoint, tmp_path):
    result = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--init-generator-from", ar_checkpoint,
                     "--init-tagger-from-generator", "--tagger-layers", "2", "--max-update", "1", "--save-dir",
                     tmp_path, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --init-tagger-from-generator") and "--tagger-layers 1" in last, last


def greedy(decoder, encoder_out, prefix: torch.Tensor, eos: int, allowed: torch.Tensor) -> list[list[int]]:
    """Argmax continuations of ``prefix`` (B x P) over the ``allowed`` ids (V,), up to eos or MAX_LENGTH tokens,
    eos excluded."""
    tokens = prefix
    for _ in range(MAX_LENGTH):
        logits, _ = decoder(tokens, encoder_out=encoder_out)
        scores = logits[:, -1].masked_fill(~allowed[: logits.size(-1)], float("-inf"))
        tokens = torch.cat([tokens, scores.argmax(-1, keepdim=True)], dim=1)
    outputs = []
    for row in tokens[:, prefix.size(1):].tolist():
        outputs.append(row[: row.index(eos)] if eos in row else row)
    return outputs


@torch.no_grad()
def test_on_an_empty_canvas_the_generator_translates_like_the_transformer(warm):
    """The generator reads [bos, S_0, S_0] where the transformer reads [eos]: the prefix differs, and with index
    positions the target's positions too (canvas positions give y the transformer's), so the two greedy outputs
    agree only in part before training; the agreement is reported, not bounded (the fixture's tiny transformer
    is barely trained). Both choose among the ids the edit decoder lets a last span
    write (fillable tokens and eos)."""
    task, model, ar = warm
    task.load_dataset("valid")
    dataset = task.datasets["valid"]
    net_input = dataset.collater([dataset[i] for i in range(SENTENCES)])["net_input"]
    dictionary = task.target_dictionary
    src = net_input["src_tokens"], net_input["src_lengths"]
    rows = src[0].size(0)
    allowed = fillable_mask(task.noise_vocab).clone()
    allowed[dictionary.eos()] = True
    ar_out = greedy(ar.decoder, ar.encoder(*src), torch.full((rows, 1), dictionary.eos()), dictionary.eos(), allowed)
    sentinel = task.special_ids.sentinels[0]
    empty_canvas = torch.tensor([[dictionary.bos(), sentinel, sentinel]]).expand(rows, -1)
    ours = greedy(model.generator.decoder, model.generator.encoder(*src), empty_canvas, dictionary.eos(), allowed)
    same_sentences = sum(a == b for a, b in zip(ar_out, ours)) / rows
    first_tokens = sum(a[:1] == b[:1] for a, b in zip(ar_out, ours)) / rows
    layout = "canvas" if model.canvas_sentinels is not None else "index"
    print(f"greedy agreement on an empty canvas ({layout} positions): {same_sentences:.0%} of sentences, first token "
          f"{first_tokens:.0%}")
    assert len(ours) == len(ar_out) == rows and all(allowed[token] for output in ours for token in output)


def test_a_transformer_of_another_dictionary_is_one_line(small_corpus, ar_checkpoint, tmp_path):
    state = torch.load(ar_checkpoint, weights_only=True)
    for name in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "decoder.output_projection.weight"):
        state["model"][name] = state["model"][name][:-8]
    torch.save(state, tmp_path / "misfit.pt")
    result = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--init-generator-from",
                     tmp_path / "misfit.pt", "--max-update", "1", "--save-dir", tmp_path, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --init-generator-from") and "dictionary has" in last, last
