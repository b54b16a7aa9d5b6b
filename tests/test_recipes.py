"""The recipes (data_scripts/recipes.py): fairseq accepts each, and every script trains a system with its recipe."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest
from corpus_helpers import REPO_ROOT
from fairseq import options, utils

from benchmarks import compare_systems, train_throughput
from data_scripts import ar_baseline, train_diffuser, train_diffusion_baseline
from data_scripts.recipes import (DIFFUSER, RECIPES, SIZES, SYSTEMS, TRANSFORMER, WARM_START_WARMUP_UPDATES,
                                  run_arguments)

utils.import_user_module(argparse.Namespace(user_dir=str(REPO_ROOT / "fairseq_plugins")))
DATA = Path("DATA")
BUDGET = ["--data", str(DATA), "--minutes", "0.5", "--max-update", "7", "--seed", "3", "--num-workers", "0",
          "--save-dir", "SAVE"]


def parsed(arguments: list[str]) -> dict:
    """The fairseq-train config of a command line (the arch's defaults applied), as a dict."""
    return vars(options.parse_args_and_arch(options.get_training_parser(), list(map(str, arguments))))


def recipe_fields(system: str, size: str) -> dict:
    """The config fields that the system's recipe sets, with the recipe's values."""
    arguments = RECIPES[system].train_arguments(DATA, size)
    config = parsed(arguments)
    dests = [item[2:].replace("-", "_") for item in arguments if item.startswith("--") and item != "--user-dir"]
    return {dest: config[dest] for dest in dests}


def assert_trains_recipe(command: list[str], system: str, size: str, **changed) -> None:
    """The command's config has every field the recipe sets, with the recipe's value or the one in ``changed``."""
    config = parsed(command)
    expected = {**recipe_fields(system, size), **changed}
    assert {dest: config[dest] for dest in expected} == expected


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("system", SYSTEMS)
def test_fairseq_accepts_every_recipe_with_its_task_arch_and_criterion(system, size):
    recipe = RECIPES[system]
    config = parsed(recipe.train_arguments(DATA, size))
    assert (config["task"], config["arch"], config["criterion"]) == (
        recipe.task, recipe.arch.format(size=size), recipe.criterion)
    assert (config["optimizer"], config["lr"], config["warmup_updates"], config["max_tokens"]) == (
        "adam", [recipe.lr], recipe.warmup_updates, recipe.max_tokens)


def test_an_unknown_size_class_is_refused():
    with pytest.raises(ValueError, match="size class 'huge'"):
        DIFFUSER.arguments("huge")


def test_with_options_replaces_in_place_appends_new_and_removes_none():
    variant = TRANSFORMER.with_options({"--label-smoothing": 0.2, "--share-all-embeddings": None,
                                        "--encoder-layers": 2, "--no-scale-embedding": True})
    arguments = variant.arguments("tiny")
    own = arguments[arguments.index("--criterion") + 2:arguments.index("--optimizer")]
    assert own == ["--label-smoothing", "0.2", "--encoder-layers", "2", "--no-scale-embedding"]
    assert TRANSFORMER.options == {"--share-all-embeddings": True, "--label-smoothing": 0.1}


def test_a_variant_recipe_changes_only_what_it_says():
    variant = dataclasses.replace(DIFFUSER.with_options({"--dropout": 0.3}), lr=5e-4)
    base, changed = parsed(DIFFUSER.train_arguments(DATA, "tiny")), parsed(variant.train_arguments(DATA, "tiny"))
    assert {key for key in base if base[key] != changed[key]} == {"lr", "dropout"}


def test_run_arguments_hold_the_budget_and_no_recipe_field():
    config = parsed([*DIFFUSER.train_arguments(DATA, "tiny"), *run_arguments(Path("SAVE"), 6.0, 3, 0, 9)])
    assert (config["stop_time_hours"], config["max_update"], config["seed"], config["save_dir"]) == (0.1, 9, 3, "SAVE")
    recipe_options = {item for item in DIFFUSER.arguments("tiny") if item.startswith("--")}
    assert not recipe_options & set(run_arguments(Path("SAVE"), 6.0, 3, 0, 9))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("script, system, extra", [
    (ar_baseline, "transformer", []),
    (train_diffuser, "diffuser", []),
    (train_diffusion_baseline, "d3pm", ["--method", "d3pm"]),
    (train_diffusion_baseline, "diffuseq", ["--method", "diffuseq"]),
])
def test_each_data_script_trains_its_systems_recipe(script, system, extra, size):
    args = script.parse_args([*BUDGET, "--model-size", size, *extra])
    command = script.train_command(args)
    assert_trains_recipe(command, system, size)
    config = parsed(command)
    assert (config["stop_time_hours"], config["max_update"], config["save_dir"]) == (0.5 / 60, 7, "SAVE")


def test_the_training_options_of_a_data_script_override_its_recipe():
    args = ar_baseline.parse_args([*BUDGET, "--lr", "5e-4", "--warmup-updates", "10", "--max-tokens", "999"])
    config = parsed(ar_baseline.train_command(args))
    assert (config["lr"], config["warmup_updates"], config["max_tokens"]) == ([5e-4], 10, 999)
    assert config["criterion"] == TRANSFORMER.criterion


def test_train_diffuser_passes_the_warm_start_checkpoint_to_fairseq():
    args = train_diffuser.parse_args([*BUDGET, "--recipe", "diffuser_rollin", "--init-generator-from", "AR.pt"])
    config = parsed(train_diffuser.train_command(args))
    assert (config["init_generator_from"], config["rollin_prob"]) == ("AR.pt", 0.5)
    assert config["warmup_updates"] == WARM_START_WARMUP_UPDATES < RECIPES["diffuser_rollin"].warmup_updates


def test_the_ar_baseline_decodes_with_diffusers_length_cap():
    """DiffusER cuts its start states at 1.2 x source + 10: AR hypotheses it post-edits must not be longer."""
    command = list(map(str, ar_baseline.generate_command(ar_baseline.parse_args(BUDGET))))
    defaults = train_diffuser.parse_args(BUDGET)
    assert command[command.index("--max-len-a") + 1] == str(defaults.max_len_a)
    assert command[command.index("--max-len-b") + 1] == str(defaults.max_len_b)


def test_a_warm_start_keeps_a_warm_up_given_on_the_command_line():
    args = train_diffuser.parse_args([*BUDGET, "--init-generator-from", "AR.pt", "--warmup-updates", "123"])
    assert parsed(train_diffuser.train_command(args))["warmup_updates"] == 123


def test_the_diffusion_baseline_options_replace_the_recipes_values():
    d3pm = parsed(train_diffusion_baseline.train_command(train_diffusion_baseline.parse_args(
        [*BUDGET, "--method", "d3pm", "--transition", "uniform", "--diffusion-steps", "50"])))
    diffuseq = parsed(train_diffusion_baseline.train_command(train_diffusion_baseline.parse_args(
        [*BUDGET, "--method", "diffuseq", "--sequence-length", "32", "--diffusion-steps", "60"])))
    assert (d3pm["transition"], d3pm["num_diffusion_timesteps"]) == ("uniform", 50)
    assert (diffuseq["sequence_length"], diffuseq["num_diffusion_timesteps"]) == (32, 60)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("system", SYSTEMS)
def test_the_benchmarks_train_each_systems_recipe_at_their_batch_size(system, size, tmp_path):
    compare = compare_systems.parse_args(["--data", str(DATA), "--size", size, "--max-tokens", "2000",
                                          "--work-dir", str(tmp_path)])
    throughput = train_throughput.parse_args(["--data", str(DATA), "--size", size, "--max-tokens", "2000"])
    for command in (compare_systems.train_command(system, compare),
                    train_throughput.train_command(system, throughput, tmp_path)):
        assert_trains_recipe(command, system, size, max_tokens=2000)


@pytest.mark.parametrize("script, extra", [(ar_baseline, []), (train_diffuser, []),
                                           (train_diffusion_baseline, ["--method", "d3pm"])])
def test_arguments_after_a_lone_dash_dash_go_to_fairseq_train_last(script, extra):
    plain = script.train_command(script.parse_args([*BUDGET, *extra]))
    args = script.parse_args([*BUDGET, *extra, "--", "--dropout", "0.3", "--patience", "4", "--max-update", "9"])
    command = script.train_command(args)
    assert command == [*plain, "--dropout", "0.3", "--patience", "4", "--max-update", "9"]
    config, before = parsed(command), parsed(plain)
    assert (config["dropout"], config["patience"], config["max_update"]) == (0.3, 4, 9)  # the last value wins
    assert {key for key in before if before[key] != config[key]} == {"dropout", "patience", "max_update"}


def test_fairseq_train_refuses_an_unknown_option_after_dash_dash(capsys):
    args = train_diffuser.parse_args([*BUDGET, "--", "--no-such-option"])
    with pytest.raises(SystemExit):
        parsed(train_diffuser.train_command(args))
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_train_diffuser_decodes_the_last_checkpoint_where_fairseq_wrote_no_best(tmp_path):
    (tmp_path / "checkpoint_last.pt").write_bytes(b"last")
    assert train_diffuser.checkpoint_to_decode(tmp_path) == tmp_path / "checkpoint_last.pt"
    (tmp_path / "checkpoint_best.pt").write_bytes(b"best")
    assert train_diffuser.checkpoint_to_decode(tmp_path) == tmp_path / "checkpoint_best.pt"
