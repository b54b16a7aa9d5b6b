"""DiffusER's layouts: one shared source encoder or two (the paper's), a tagger decoder lighter than the generator's;
checkpoints of every layout load, train, resume and decode."""
from __future__ import annotations

import pytest
import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq_helpers import DIFFUSER_TINY, USER_DIR, fairseq, json_log, lines_of

import fairseq_plugins  # noqa: F401  (registers the diffuser task and model; the checkpoint allow-list)

SHARED, SEPARATE = ["--share-encoder"], ["--no-share-encoder"]


def build(data, *extra, seed=0):
    """task, diffuser model (eval mode) built in this process from fairseq-train options."""
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(data), "--user-dir", USER_DIR, "--task", "diffuser",
                                                "--arch", "diffuser_tiny", "--cpu", *extra])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(seed)
    return task, task.build_model(cfg.model).eval()


def batch(task, size=4):
    task.load_dataset("valid")
    dataset = task.datasets["valid"]
    return dataset.collater([dataset[i] for i in range(size)])


def count_calls(module):
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.fixture(scope="module")
def models(small_corpus):
    return {name: build(small_corpus / "bin", *layout) for name, layout in
            (("shared", SHARED), ("separate", SEPARATE), ("light", [*SHARED, "--tagger-layers", "1",
                                                                     "--decoder-layers", "2"]))}


@torch.no_grad()
@pytest.mark.parametrize("layout", ["shared", "separate"])
def test_forward_equals_its_definition_and_counts_encoder_passes(models, layout):
    task, model = models[layout]
    net_input = batch(task)["net_input"]
    generator_calls, tagger_calls = count_calls(model.generator.encoder), count_calls(model.tagger.encoder)
    tag_logits, features = model(**net_input)
    src = net_input["src_tokens"], net_input["src_lengths"]
    if layout == "shared":
        assert model.tagger.encoder is model.generator.encoder
        assert len(generator_calls) == 1  # the hooks of one module: both lists are the same count
    else:
        assert (len(generator_calls), len(tagger_calls)) == (1, 1)
    tagger_encoder_out = model.tagger.encoder(*src)
    generator_encoder_out = model.generator.encoder(*src)
    expected_tags, _ = model.tagger.decoder(net_input["tagger_tokens"], encoder_out=tagger_encoder_out,
                                            full_context_alignment=True)
    expected_features, _ = model.generator.decoder(net_input["generator_tokens"], encoder_out=generator_encoder_out,
                                                   features_only=True)
    torch.testing.assert_close(tag_logits, expected_tags, rtol=0, atol=0)
    torch.testing.assert_close(features, expected_features, rtol=0, atol=0)


def test_the_shared_encoder_is_saved_and_counted_once(models):
    shared, separate = models["shared"][1], models["separate"][1]
    assert not any(name.startswith("tagger.encoder.") for name in shared.state_dict())
    tagger_encoder = sum(p.numel() for p in separate.tagger.encoder.parameters())  # its embeddings included
    assert sum(p.numel() for p in separate.parameters()) - sum(p.numel() for p in shared.parameters()) == tagger_encoder


def test_the_tagger_decoder_has_its_own_depth(models):
    model = models["light"][1]
    assert (len(model.tagger.decoder.layers), len(model.generator.decoder.layers)) == (1, 2)
    assert model.tagger.decoder.num_layers == 1


@torch.no_grad()
@pytest.mark.parametrize("saved, built", [("separate", "shared"), ("shared", "separate"), ("light", "separate")])
def test_a_model_takes_the_layout_of_the_checkpoint_it_loads(models, small_corpus, saved, built):
    """So checkpoints of both layouts load whatever the arch's defaults, those saved before the options too."""
    task, source = models[saved]
    _, target = build(small_corpus / "bin", *(SHARED if built == "shared" else SEPARATE),
                      *(["--decoder-layers", "2"] if saved == "light" else []), seed=1)
    target.load_state_dict(source.state_dict())
    assert (target.args.share_encoder, target.args.tagger_layers) == (source.args.share_encoder,
                                                                      source.args.tagger_layers)
    assert (target.tagger.encoder is target.generator.encoder) == source.args.share_encoder
    net_input = batch(task)["net_input"]
    for ours, theirs in zip(target(**net_input), source(**net_input)):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("layout", [SHARED, [*SEPARATE, "--tagger-layers", "2"]], ids=["shared", "separate"])
def test_each_layout_trains_resumes_and_decodes(small_corpus, tmp_path, layout):
    run = [*DIFFUSER_TINY, *layout, "--save-dir", tmp_path, "--no-epoch-checkpoints", "--log-format", "json",
           "--log-interval", "4"]
    first = fairseq("fairseq-train", small_corpus / "bin", *run, "--max-update", "8")
    resumed = fairseq("fairseq-train", small_corpus / "bin", *run, "--max-update", "16")
    assert "loaded checkpoint" in (resumed.stdout + resumed.stderr).lower()
    losses = [float(record["loss"]) for record in json_log(first.stdout, "train_inner") + json_log(resumed.stdout,
                                                                                             "train_inner")]
    assert len(losses) == 4 and losses[-1] < losses[0]
    state = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)
    assert state["optimizer_history"][-1]["num_updates"] == 16
    assert state["cfg"]["model"].share_encoder == (layout == SHARED)
    decoded = fairseq("fairseq-generate", small_corpus / "bin", "--user-dir", USER_DIR, "--task", "diffuser",
                      "--path", tmp_path / "checkpoint_last.pt", "--gen-subset", "test", "--cpu", "--batch-size",
                      "64", "--max-len-b", "20", "--decode-steps", "2")
    assert len(lines_of(decoded.stdout, "H")) == 200

