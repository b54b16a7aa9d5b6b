"""The paper-scale hydra configs in configs/: each one builds its model with fairseq's own builders, and
fairseq-hydra-train runs each one (shrunk to a tiny model and one update)."""
from __future__ import annotations

from pathlib import Path

import pytest
from fairseq import tasks
from fairseq.dataclass.initialize import add_defaults, hydra_init
from fairseq.utils import import_user_module
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from corpus_helpers import REPO_ROOT
from fairseq_helpers import fairseq
from fixture_corpora import WMT14_FIXTURES, require

CONFIGS = REPO_ROOT / "configs"
CONFIG_NAMES = sorted(path.stem for path in CONFIGS.glob("*.yaml"))
VOCAB = 32000  # the data scripts' default joint sentencepiece vocabulary


def compose_config(name: str, *overrides: str):
    """The config as fairseq-hydra-train composes it (FairseqConfig schema + configs/NAME.yaml + overrides)."""
    GlobalHydra.instance().clear()
    hydra_init(name)
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.1"):
        return compose(config_name=name, overrides=list(overrides))


def dictionaries_only(folder: Path, languages: tuple[str, str]) -> Path:
    """A data dir holding nothing but joined dictionaries of VOCAB symbols: enough to build a model."""
    folder.mkdir(exist_ok=True)
    text = "".join(f"\u2581w{i} {VOCAB - i}\n" for i in range(VOCAB))
    for language in languages:
        (folder / f"dict.{language}.txt").write_text(text, encoding="utf-8")
    return folder


def parameter_count(name: str, data: Path, monkeypatch) -> int:
    """Build the config's task and model (no data loaded, no training); return the model's parameter count."""
    monkeypatch.chdir(REPO_ROOT)  # common.user_dir is relative to the repository root
    cfg = compose_config(name, f"task.data={data}")
    import_user_module(cfg.common)
    add_defaults(cfg)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.fixture(scope="module")
def parameter_counts(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    counts = {}
    for name in CONFIG_NAMES:
        languages = ("source", "target") if "cnn_dm" in name else ("en", "de")
        data = dictionaries_only(tmp_path_factory.mktemp(name), languages)
        counts[name] = parameter_count(name, data, monkeypatch)
        print(f"{name}: {counts[name]:,} parameters (joined vocabulary {VOCAB})")
    monkeypatch.undo()
    return counts


def test_every_config_names_the_user_dir_and_its_data_script_output():
    assert CONFIG_NAMES == ["diffuser_cnn_dm", "diffuser_wmt14_en_de", "transformer_wmt14_en_de"]
    for name in CONFIG_NAMES:
        cfg = compose_config(name)
        assert cfg.common.user_dir == "fairseq_plugins"
        assert cfg.task.data == ("data-bin/cnn_dm" if "cnn_dm" in name else "data-bin/wmt14.en-de")


def test_diffuser_configs_hold_the_paper_settings():
    for name, span_lambda in (("diffuser_wmt14_en_de", 3.0), ("diffuser_cnn_dm", 8.0)):
        cfg = compose_config(name)
        assert cfg.task.span_lambda == span_lambda and cfg.task.diffusion_steps == 12 and cfg.task.decode_steps == 12
        mix = (cfg.task.corruption_keep, cfg.task.corruption_replace, cfg.task.corruption_insert,
               cfg.task.corruption_delete)
        assert mix == (0.6, 0.2, 0.1, 0.1)
        assert cfg.model._name == "diffuser_base" and cfg.model.dropout == 0.3
    cnn_dm = compose_config("diffuser_cnn_dm")
    assert cnn_dm.task.init_mode == "auto" and cnn_dm.task.max_target_positions == 512


def test_transformer_base_has_the_usual_size(parameter_counts):
    # 6+6 layers, d 512, shared 32k embeddings: about 44M in the layers plus 16.4M of embeddings
    assert 60_000_000 < parameter_counts["transformer_wmt14_en_de"] < 61_500_000


@pytest.mark.parametrize("name", ["diffuser_wmt14_en_de", "diffuser_cnn_dm"])
def test_diffuser_base_is_two_transformer_bases(parameter_counts, name):
    ratio = parameter_counts[name] / parameter_counts["transformer_wmt14_en_de"]
    assert 1.99 < ratio < 2.01  # tagger + generator; the 64 span sentinels and the 4-tag output add little


@pytest.fixture(scope="module")
def tiny_pieces(tmp_path_factory):
    """The newstest2014 sample as '\u2581word' pieces, binarized as en-de and as source-target (CNN/DM's names)."""
    folder = tmp_path_factory.mktemp("pieces")
    for language, renamed in (("en", "source"), ("de", "target")):
        lines = (require(WMT14_FIXTURES) / f"newstest2014.300.{language}").read_text(encoding="utf-8").splitlines()
        pieces = [" ".join(f"\u2581{word}" for word in line.split()[:40]) for line in lines]
        for split, part in (("train", pieces[:250]), ("valid", pieces[250:])):
            for name in (language, renamed):
                (folder / f"{split}.{name}").write_text("\n".join(part) + "\n", encoding="utf-8")
    for source, target in (("en", "de"), ("source", "target")):
        fairseq("fairseq-preprocess", "--source-lang", source, "--target-lang", target,
                "--trainpref", folder / "train", "--validpref", folder / "valid", "--destdir", folder / "bin",
                "--joined-dictionary", "--workers", "1")
    return folder / "bin"


TINY_ARCH = {"diffuser_wmt14_en_de": "diffuser_tiny", "diffuser_cnn_dm": "diffuser_tiny",
             "transformer_wmt14_en_de": "transformer_cpu_tiny"}


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_fairseq_hydra_train_runs_the_config(tiny_pieces, tmp_path, name):
    result = fairseq("fairseq-hydra-train", "--config-dir", CONFIGS, "--config-name", name,
                     f"task.data={tiny_pieces}", f"model._name={TINY_ARCH[name]}", "common.fp16=false",
                     "common.cpu=true", "dataset.num_workers=0", "dataset.max_tokens=2000",
                     "optimization.max_update=1", f"checkpoint.save_dir={tmp_path / 'ckpt'}",
                     f"hydra.run.dir={tmp_path}", cwd=REPO_ROOT)
    assert "Stopping training due to num_updates: 1 >= max_update: 1" in result.stdout + result.stderr
    assert (tmp_path / "ckpt" / "checkpoint_last.pt").is_file()
