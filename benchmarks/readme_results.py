#!/usr/bin/env python
"""Write the README's generated results block from the benchmarks' results files (``make results``; ``make
bench`` and ``make curves`` end with it).

    .venv/bin/python benchmarks/readme_results.py            # README.md, from benchmarks/results/

The block lies between ``BEGIN`` and ``END`` in the README; everything outside it is left as it is. Each
``SECTIONS`` entry gives a results file's table (RESULTS/NAME.md: the whole of it, or its first table and the
sacreBLEU signature) under a line that states the command that wrote it, the machine it ran on and the date:
the date the results file records, or, for files written before results carried one, the date of the commit
that last changed the file, labelled as such. A results file that is absent is named as not run yet.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # a script: the imports below need it (noqa: E402)

from diffuser_mt.textio import InputError, atomic_write  # noqa: E402

BEGIN = "<!-- results: begin. Written by benchmarks/readme_results.py from benchmarks/results/: edit there. -->"
END = "<!-- results: end -->"


@dataclass(frozen=True)
class Section:
    """One results file in the README: RESULTS/NAME.md under TITLE."""

    name: str
    title: str
    make_target: str
    whole_table: bool = False  # else its first table and the sacreBLEU signature
    image: str | None = None  # a PNG beside it, shown under the table


SECTIONS = [Section("learning_curves", "Learning curves", "make curves", whole_table=True,
                    image="learning_curves.png"),
            Section("compare_systems", "Every system's decoders side by side", "make bench"),
            Section("refinement/refinement.bench", "Does DiffusER refine? The warm-started DiffusER at the budget",
                    "make bench")]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, default=REPO_ROOT / "README.md", help="the file holding the block")
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "benchmarks/results",
                        help="the folder of the results files (NAME.json and NAME.md)")
    return parser.parse_args(argv)


def run_date(path: Path, results: dict) -> str:
    """When the figures were made: the results file's own date, else its last commit's (labelled)."""
    if results.get("date"):
        return f"run of {results['date']}"
    committed = subprocess.run(["git", "log", "-1", "--format=%cs", "--", path.name], cwd=path.parent,
                               capture_output=True, text=True).stdout.strip()
    return f"an earlier run, results committed on {committed}" if committed else "an earlier run, date not recorded"


def first_table(table: str) -> str:
    """The markdown's first table and its sacreBLEU signature line, if it has one."""
    blocks = table.strip().split("\n\n")
    table_block = next((block for block in blocks if block.startswith("|")), blocks[0])
    signature = [block for block in blocks if block.startswith("sacreBLEU signature")]
    return "\n\n".join([table_block, *signature])


def section_text(section: Section, results_dir: Path, readme_dir: Path) -> str:
    json_path, table_path = (results_dir / f"{section.name}{suffix}" for suffix in (".json", ".md"))
    if not (json_path.exists() and table_path.exists()):
        return f"### {section.title}\n\nNot run yet: `{section.make_target}` writes {table_path.name}."
    try:
        results = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{json_path}: not a results file ({err})") from None
    cpu = results.get("machine", {})
    provenance = (f"`{results.get('command', section.make_target)}` ({section.make_target}), "
                  f"{run_date(json_path, results)}, on {cpu.get('cpu', 'an unrecorded CPU')} "
                  f"({cpu.get('cores', '?')} cores), torch {cpu.get('torch', '?')}.")
    table = table_path.read_text(encoding="utf-8")
    body = table.strip() if section.whole_table else first_table(table)
    parts = [f"### {section.title}", provenance, body]
    image = results_dir / section.image if section.image else None
    if image is not None and image.exists():
        parts.append(f"![{section.title}]({image.relative_to(readme_dir).as_posix()})"
                     if image.is_relative_to(readme_dir) else f"![{section.title}]({image})")
    return "\n\n".join(parts)


def rendered(readme: str, block: str, path: Path) -> str:
    """``readme`` with the text between BEGIN and END replaced by ``block``."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise InputError(f"{path}: needs one '{BEGIN}' line and, after it, one '{END}' line")
    head, rest = readme.split(BEGIN)
    return f"{head}{BEGIN}\n\n{block}\n\n{END}{rest.split(END, 1)[1]}"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        readme = args.readme.read_text(encoding="utf-8")
        block = "\n\n".join(section_text(section, args.results, args.readme.resolve().parent)
                            for section in SECTIONS)
        new = rendered(readme, block, args.readme)
    except (InputError, OSError, UnicodeDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if new != readme:
        with atomic_write(args.readme) as stream:
            stream.write(new)
    print(f"{args.readme}: results block {'rewritten' if new != readme else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
