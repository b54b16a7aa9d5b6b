"""benchmarks/readme_results.py: the README's results block is rewritten from the results files, and only it."""
from __future__ import annotations

import json

import pytest

from benchmarks.readme_results import BEGIN, END, main

TABLE = ("| system | BLEU |\n|---|---|\n| transformer | 4.90 |\n\n| more | 1 |\n|---|---|\n\n"
         "sacreBLEU signature: nrefs:1\n")


def write_results(folder, name, date=None):
    folder.mkdir(parents=True, exist_ok=True)
    results = {"command": f"benchmarks/{name}.py --minutes 20",
               "machine": {"cpu": "AMD EPYC", "cores": 2, "torch": "2.13.0+cpu"}}
    (folder / f"{name}.json").write_text(json.dumps({**results, **({"date": date} if date else {})}))
    (folder / f"{name}.md").write_text(TABLE)


@pytest.fixture
def readme(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(f"# Title\n\nabove\n\n{BEGIN}\nstale table\n{END}\n\nbelow\n", encoding="utf-8")
    return path


def test_the_block_is_rewritten_from_the_results_and_the_rest_kept(readme, tmp_path):
    results = tmp_path / "benchmarks" / "results"
    write_results(results, "learning_curves", date="2026-12-03")
    (results / "learning_curves.png").write_bytes(b"\x89PNG")
    write_results(results, "compare_systems")  # no date: an earlier run, outside git here
    assert main(["--readme", str(readme), "--results", str(results)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nabove\n\n" + BEGIN) and text.endswith(END + "\n\nbelow\n")
    assert "stale table" not in text
    curves = text[text.index("### Learning curves"):text.index("### Every system's decoders")]
    assert ("`benchmarks/learning_curves.py --minutes 20` (make curves), run of 2026-12-03, on AMD EPYC "
            "(2 cores)") in curves
    assert "| more | 1 |" in curves and "![Learning curves](benchmarks/results/learning_curves.png)" in curves
    compare = text[text.index("### Every system's decoders"):text.index("### Does DiffusER refine?")]
    assert "an earlier run, date not recorded" in compare
    assert "| transformer | 4.90 |" in compare and "| more |" not in compare and "sacreBLEU signature" in compare
    assert "Not run yet: `make bench` writes refinement.bench.md." in text
    write_results(results / "refinement", "refinement.bench", date="2026-12-07")
    assert main(["--readme", str(readme), "--results", str(results)]) == 0
    text = readme.read_text(encoding="utf-8")
    refinement = text[text.index("### Does DiffusER refine?"):text.index(END)]
    assert "`benchmarks/refinement.bench.py --minutes 20` (make bench), run of 2026-12-07" in refinement
    assert "| transformer | 4.90 |" in refinement and "| more |" not in refinement
    (results / "compare_systems.json").unlink()
    assert main(["--readme", str(readme), "--results", str(results)]) == 0
    assert "Not run yet: `make bench` writes compare_systems.md." in readme.read_text(encoding="utf-8")
    write_results(results, "compare_systems")
    assert main(["--readme", str(readme), "--results", str(results)]) == 0
    assert readme.read_text(encoding="utf-8") == text  # idempotent


@pytest.mark.parametrize("content", ["no markers\n", f"{END}\n{BEGIN}\n", f"{BEGIN}\n{BEGIN}\n{END}\n"])
def test_a_readme_without_one_ordered_pair_of_markers_is_one_error_and_left_alone(tmp_path, capsys, content):
    path = tmp_path / "README.md"
    path.write_text(content, encoding="utf-8")
    assert main(["--readme", str(path), "--results", str(tmp_path / "none")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and "results: end" in error
    assert path.read_text(encoding="utf-8") == content
