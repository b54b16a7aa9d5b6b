"""The commands in README.md, docs/*.md and benchmarks/README.md name options and targets that exist.

Every fenced or four-space-indented code block is read as shell: continuation lines are joined, comments
dropped, and each command of a known tool (fairseq-train/-generate/-interactive/-preprocess/-hydra-train,
``diffuser-mt SUBCOMMAND``, ``python data_scripts/X.py``, ``python benchmarks/X.py``, ``make TARGET``) is
checked: every ``--option`` it names is one its parser knows, every make target is a Makefile rule, every
``--config-name`` is a YAML file of ``--config-dir``. fairseq's ``--help`` stops at its first parsing pass
(before the task, model, criterion, optimizer ... options are added), so fairseq's options are read from the
parser fairseq builds for the command's own ``--user-dir``, ``--task``, ``--arch``, ``--criterion``, ...
choices; the other tools' options from their ``--help``. Each distinct parser is built once.
"""
from __future__ import annotations

import functools
import importlib
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from corpus_helpers import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")), REPO_ROOT / "benchmarks/README.md"]
FAIRSEQ_TOOLS = {"fairseq-train", "fairseq-generate", "fairseq-interactive", "fairseq-preprocess",
                 "fairseq-hydra-train"}
# the options that choose which of fairseq's registries add their options to the parser
FAIRSEQ_SELECTORS = ("--user-dir", "--task", "--arch", "--criterion", "--optimizer", "--lr-scheduler", "--bpe",
                     "--tokenizer", "--scoring")
SEPARATORS = {";", "&", "&&", "|", "||", ">", ">>", "<", "2>", "2>&1"}
WRAPPERS = {"do", "then", "time", "nice", "which", "exec"}
SCRIPT = re.compile(r"^(data_scripts|benchmarks)/\w+\.py$")
OPTION = re.compile(r"(?<![\w-])(--[A-Za-z0-9][\w-]*)")


def code_blocks(text: str) -> list[tuple[int, list[str]]]:
    """The fenced and the four-space-indented code blocks of a markdown text: (first line number, lines)."""
    blocks, current, start, fenced = [], [], 0, False
    previous_blank = True
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            if fenced:
                blocks.append((start, current))
                current = []
            fenced, start = not fenced, number + 1
        elif fenced:
            current.append(line)
        elif line.startswith("    ") and line.strip() and (previous_blank or current):
            start = start if current else number
            current.append(line)
        elif current and not line.strip():
            current.append(line)
        elif current:
            blocks.append((start, current))
            current = []
        previous_blank = not line.strip()
    if current:
        blocks.append((start, current))
    return blocks


def shell_commands(lines: list[str]) -> list[list[str]]:
    """The simple commands of shell lines: continuations joined, comments dropped, split at ; & | > and so on."""
    logical, pending = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
        else:
            logical.append(pending + line)
            pending = ""
    logical.append(pending)
    commands = []
    for line in logical:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current = []
        try:
            tokens = list(lexer)
        except ValueError:  # an unbalanced quote: prose (a layout or trace block), not a command
            continue
        for token in tokens:
            if token in SEPARATORS:
                commands.append(current)
                current = []
            else:
                current.append(token)
        commands.append(current)
    return [command for command in commands if command]


def tool_call(tokens: list[str]) -> tuple[tuple, list[str]] | None:
    """(the tool, its arguments) when a command calls a known tool, else None.

    The tool is the command's first word, or follows one of WRAPPERS (``for ...; do TOOL``, ``$(which TOOL)``).
    """
    for i, token in enumerate(tokens):
        if i and tokens[i - 1] not in WRAPPERS:
            continue
        name = Path(token).name
        if name in FAIRSEQ_TOOLS:
            return ("fairseq", name), tokens[i + 1:]
        if name == "diffuser-mt" and i + 1 < len(tokens):
            return ("diffuser-mt", tokens[i + 1]), tokens[i + 2:]
        if re.fullmatch(r"python3?", name) and i + 1 < len(tokens) and SCRIPT.match(tokens[i + 1]):
            return ("script", tokens[i + 1]), tokens[i + 2:]
        if token == "make":
            return ("make",), tokens[i + 1:]
    return None


def documented_commands() -> list[tuple[str, tuple, list[str]]]:
    """(where: 'FILE:LINE', tool, arguments) of every known-tool command in the docs."""
    found = []
    for doc in DOCS:
        if not doc.exists():
            continue
        for start, lines in code_blocks(doc.read_text(encoding="utf-8")):
            for tokens in shell_commands(lines):
                call = tool_call(tokens)
                if call:
                    found.append((f"{doc.relative_to(REPO_ROOT)}:{start}", *call))
    return found


def makefile_commands() -> list[tuple[str, tuple, list[str]]]:
    """(where: 'Makefile:LINE', tool, arguments) of the Makefile's recipes that run a project script with
    ``$(PY)`` (make's variables stand in as words)."""
    text = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    found = []
    for recipe in re.finditer(r"^\t\$\(PY\) (?:.*\\\n)*.*", text, flags=re.MULTILINE):
        line = text.count("\n", 0, recipe.start()) + 1
        lines = re.sub(r"\$\((\w+)\)", r"\1", recipe.group()).replace("PY ", "python ", 1).splitlines()
        found += [(f"Makefile:{line}", *call) for tokens in shell_commands(lines) if (call := tool_call(tokens))]
    return found


def named_options(args: list[str]) -> list[str]:
    """The long options an argument list names (``[--json]`` placeholders included, ``--x=v`` as ``--x``)."""
    return [arg.strip("[]").split("=", 1)[0] for arg in args if arg.strip("[").startswith("--")]


def option_value(args: list[str], option: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def fairseq_selectors(args: list[str]) -> tuple:
    return tuple((option, value) for option in FAIRSEQ_SELECTORS if (value := option_value(args, option)))


@functools.lru_cache(maxsize=None)
def fairseq_options(tool: str, selectors: tuple) -> frozenset:
    """The option strings of the parser fairseq builds for ``tool`` with these registry choices."""
    from fairseq import options

    import fairseq_plugins  # noqa: F401  (fairseq's parsers fix the --task and --arch choices when built)

    if tool == "fairseq-hydra-train":
        from hydra._internal.utils import get_args_parser
        return frozenset(get_args_parser()._option_string_actions)
    if tool == "fairseq-preprocess":
        return frozenset(options.get_preprocessing_parser()._option_string_actions)
    parser = {"fairseq-train": options.get_training_parser, "fairseq-generate": options.get_generation_parser,
              "fairseq-interactive": options.get_interactive_generation_parser}[tool]()
    built = []
    args = [str(REPO_ROOT / value) if option == "--user-dir" else value
            for option, value in selectors for value in (option, value)]
    options.parse_args_and_arch(parser, ["DATA", *args], parse_known=True, modify_parser=built.append)
    return frozenset(built[-1]._option_string_actions)


def help_command(tool: tuple) -> list[str]:
    if tool[0] == "diffuser-mt":
        return [sys.executable, "-m", "diffuser_mt.cli", tool[1], "--help"]
    return [sys.executable, tool[1], "--help"]


@functools.lru_cache(maxsize=None)
def help_options(tool: tuple) -> frozenset:
    """The long options that ``TOOL --help`` lists (an empty set when it fails: every option is then unknown)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(help_command(tool), capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    return frozenset(OPTION.findall(result.stdout)) if result.returncode == 0 else frozenset()


@functools.lru_cache(maxsize=None)
def make_targets() -> frozenset:
    text = (REPO_ROOT / "Makefile").read_text()
    return frozenset(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, flags=re.MULTILINE))


def problems(tool: tuple, args: list[str]) -> list[str]:
    """What is wrong with one command: unknown options, targets or config names (empty: nothing)."""
    if tool[0] == "make":
        return [f"no make target {target}" for target in args
                if not target.startswith("-") and "=" not in target and target not in make_targets()]
    if tool[0] == "fairseq":
        known = fairseq_options(tool[1], fairseq_selectors(args))
        wrong = []
        config_name = option_value(args, "--config-name")
        if tool[1] == "fairseq-hydra-train" and config_name:
            config_dir = REPO_ROOT / (option_value(args, "--config-dir") or "configs")
            if not (config_dir / f"{config_name}.yaml").exists():
                wrong.append(f"no config {config_dir.name}/{config_name}.yaml")
    else:
        if tool[0] == "script" and not (REPO_ROOT / tool[1]).exists():
            return [f"no script {tool[1]}"]
        if tool[0] == "script" and "--" in args:
            return passthrough_problems(tool[1], args)
        known, wrong = help_options(tool), []
    return wrong + [f"{' '.join(tool[1:])} has no option {option}" for option in named_options(args)
                    if option not in known]


def passthrough_problems(script: str, args: list[str]) -> list[str]:
    """A training script's options before a lone ``--`` against its --help, those after it against the parser
    fairseq builds for the script's own fairseq-train command (``data_scripts.recipes.parse_training_args``)."""
    own, passed = args[:args.index("--")], args[args.index("--") + 1:]
    module = importlib.import_module(script.removesuffix(".py").replace("/", "."))
    if not hasattr(module, "train_command"):
        return [f"{script} passes nothing to fairseq-train after --"]
    wrong = problems(("script", script), own)
    if wrong:
        return wrong
    command = [*module.train_command(module.parse_args(own)), *passed]
    known = fairseq_options("fairseq-train", fairseq_selectors(command))
    return [f"fairseq-train (after --) has no option {option}" for option in named_options(passed)
            if option not in known]


COMMANDS = documented_commands() + makefile_commands()


@pytest.fixture(scope="module", autouse=True)
def prefetch_help():
    """Run the distinct ``--help`` subprocesses side by side, once."""
    tools = {tool for _, tool, _ in COMMANDS if tool[0] in ("diffuser-mt", "script")}
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(help_options, tools))


def test_the_docs_hold_the_commands_this_test_checks():
    tools = {tool for _, tool, _ in COMMANDS}
    expected = {("fairseq", "fairseq-train"), ("fairseq", "fairseq-generate"), ("fairseq", "fairseq-hydra-train"),
                ("diffuser-mt", "revise"), ("diffuser-mt", "score"), ("make",),
                ("script", "data_scripts/prepare_ding.py")}
    assert expected <= tools, expected - tools
    assert any(where.startswith("README.md") for where, _, _ in COMMANDS)
    assert ("script", "benchmarks/refinement.py") in {tool for where, tool, _ in COMMANDS
                                                      if where.startswith("Makefile")}


@pytest.mark.parametrize("where, tool, args", COMMANDS, ids=[f"{w}:{' '.join(t[1:]) or t[0]}" for w, t, _ in COMMANDS])
def test_documented_command_names_existing_options(where, tool, args):
    assert not problems(tool, args), f"{where}: {problems(tool, args)}"


MADE_UP = [
    "fairseq-train data-bin/x --user-dir fairseq_plugins --task diffuser --arch diffuser_tiny "
    "--criterion diffuser_loss --span-lambda 3 --no-such-option 1",
    "fairseq-generate data-bin/x --user-dir fairseq_plugins --task diffuser --decode-steps 4 --no-such-option",
    "fairseq-interactive data-bin/x --user-dir fairseq_plugins --task diffuser --init-mode null --no-such-option",
    "fairseq-preprocess --source-lang en --target-lang de --joined-dictionary --no-such-option",
    "fairseq-hydra-train --config-dir configs --config-name diffuser_wmt14_en_de --no-such-option",
    "diffuser-mt score --metric bleu --no-such-option",
    ".venv/bin/python data_scripts/prepare_ding.py --no-such-option",
]


@pytest.mark.parametrize("command, expected", [
    ("python data_scripts/train_diffuser.py --recipe diffuser_canvas -- --dropout 0.3 --canvas-positions", []),
    ("python data_scripts/train_diffuser.py --recipe diffuser -- --dropout 0.3 --no-such-option",
     ["fairseq-train (after --) has no option --no-such-option"]),
    ("python data_scripts/train_diffuser.py --no-such-option -- --dropout 0.3",
     ["data_scripts/train_diffuser.py has no option --no-such-option"]),
    ("python data_scripts/prepare_ding.py -- --dropout 0.3",
     ["data_scripts/prepare_ding.py passes nothing to fairseq-train after --"]),
])
def test_options_after_a_lone_dash_dash_are_checked_against_the_scripts_fairseq_train(command, expected):
    [(tool, args)] = [tool_call(tokens) for tokens in shell_commands([command])]
    assert problems(tool, args) == expected


@pytest.mark.parametrize("command", MADE_UP)
def test_a_made_up_option_is_caught_and_only_it(command):
    [(tool, args)] = [tool_call(tokens) for tokens in shell_commands([command])]
    assert problems(tool, args) == [f"{' '.join(tool[1:])} has no option --no-such-option"]


@pytest.mark.parametrize("command, expected", [
    ("make demo DEMO_MINUTES=5", []),
    ("make no-such-target", ["no make target no-such-target"]),
    ("fairseq-hydra-train --config-dir configs --config-name no_such_config",
     ["no config configs/no_such_config.yaml"]),
    ("python data_scripts/no_such_script.py --data x", ["no script data_scripts/no_such_script.py"]),
])
def test_targets_configs_and_scripts_are_checked(command, expected):
    [(tool, args)] = [tool_call(tokens) for tokens in shell_commands([command])]
    assert problems(tool, args) == expected


def test_code_blocks_join_continuations_and_drop_comments():
    text = "Text.\n\n    make demo    # trains \\\n                 #   --nope\n    .venv/bin/fairseq-train d \\\n" \
           "        --task diffuser > out.txt && diffuser-mt score --json\n\nMore text.\n"
    [(start, lines)] = code_blocks(text)
    assert start == 3
    assert [tool_call(tokens) for tokens in shell_commands(lines)] == [
        (("make",), ["demo"]), (("fairseq", "fairseq-train"), ["d", "--task", "diffuser"]), None,
        (("diffuser-mt", "score"), ["--json"])]


def test_the_readme_starts_with_the_two_commands_and_stays_short():
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    commands = [line.split()[:2] for line in lines if line.startswith("    make ")]
    assert commands[:2] == [["make", "demo"], ["make", "test"]]
    assert len(lines) <= 200


@pytest.mark.parametrize("doc", DOCS, ids=[str(doc.relative_to(REPO_ROOT)) for doc in DOCS])
def test_relative_links_point_to_files_that_exist(doc):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8"))
    missing = [link for link in links if "://" not in link and not (doc.parent / link).exists()]
    assert not missing, f"{doc.relative_to(REPO_ROOT)} links to {missing}"
