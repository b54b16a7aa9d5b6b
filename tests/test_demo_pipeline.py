"""The demo pipeline (AR vs DiffusER vs AR bootstrap, with traces) and `diffuser-mt revise`, on tiny models."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from corpus_helpers import REPO_ROOT


@pytest.fixture(scope="module")
def demo(small_corpus, tmp_path_factory):
    """data_scripts/ar_bootstrap.py with tiny models, 20 updates each and 2 decoding steps."""
    out = tmp_path_factory.mktemp("demo")
    command = [sys.executable, REPO_ROOT / "data_scripts" / "ar_bootstrap.py", "--data", small_corpus / "bin",
               "--reference", small_corpus / "text" / "test.de", "--spm-model", small_corpus / "text" / "spm.model",
               "--ar-dir", out / "ar", "--diffuser-dir", out / "diffuser", "--out-dir", out / "demo",
               "--model-size", "tiny", "--max-update", "20", "--decode-steps", "2", "--num-workers", "0",
               "--html", out / "trace.html"]
    interrupted = interrupt_once_training(list(map(str, command)))
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result, interrupted


def restore_ctrl_c() -> None:
    """Ctrl-C's default action in the child, as in a terminal: a job started in the background of a
    non-interactive shell (``nohup make test &``) inherits SIGINT ignored, and Python then never raises
    KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_once_training(command: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of ``command`` sent Ctrl-C (SIGINT to its process group, as a terminal does) two
    seconds after it starts fairseq-train."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=restore_ctrl_c)
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith("+ ") and "fairseq-train" in line:
            time.sleep(2)
            os.killpg(process.pid, signal.SIGINT)
            break
    lines.extend(process.stderr)
    return process.wait(), "".join(lines)


def test_ctrl_c_ends_the_demo_with_one_line_and_a_rerun_continues(demo):
    _, result, (status, stderr) = demo
    assert status == 130 and "Traceback" not in stderr, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith("error: interrupted (Ctrl-C) during fairseq-train")
    assert result.returncode == 0  # the fixture's second run, in the same directories


def test_demo_scores_three_systems_with_the_sacrebleu_signature(demo):
    out, result, _ = demo
    results = json.loads((out / "demo" / "results.json").read_text())
    assert len(results) == 3
    for scores in results.values():
        assert 0.0 <= scores["bleu"] <= 100.0
        assert scores["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert "| DiffusER + AR bootstrap, greedy, 2 steps |" in result.stdout
    assert "sacreBLEU signature: nrefs:1" in result.stdout


def test_demo_bootstrap_starts_from_the_ar_hypotheses(demo):
    out, _, _ = demo
    ar_hypotheses = (out / "ar" / "hypotheses.test.de").read_text(encoding="utf-8").splitlines()
    bootstrap = (out / "diffuser" / "generate-test.ar-bootstrap.txt").read_text(encoding="utf-8").splitlines()
    first_steps = [line for line in bootstrap if line.startswith("E-0_1\t")]
    assert len(first_steps) == 1
    start = "".join(json.loads(first_steps[0].split("\t")[2])["tokens"]).replace("\u2581", " ").strip()
    assert start and ar_hypotheses[0].startswith(start)  # the tiny AR model rambles: the length cap cuts it


def test_demo_prints_three_traces_and_writes_the_html(demo):
    out, result, _ = demo
    assert sum(line.startswith("# sentence ") for line in result.stdout.splitlines()) == 3
    assert result.stdout.count("step  1:") == 3
    page = (out / "trace.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<h2>") == 3


def revise(*args):
    return subprocess.run([sys.executable, "-m", "diffuser_mt.cli", "revise", *map(str, args)],
                          capture_output=True, text=True)


def test_revise_keeps_the_protected_spans(demo, small_corpus):
    out, _, _ = demo
    result = revise("--checkpoint", out / "diffuser" / "checkpoint_best.pt", "--data", small_corpus / "bin",
                    "--spm-model", small_corpus / "text" / "spm.model", "--source", "The house is small.",
                    "--draft", "Das Haus ist sehr klein.", "--keep-spans", "Das Haus", "klein.", "--steps", "3",
                    "--color", "never", "--html", out / "revise.html")
    assert result.returncode == 0, result.stderr[-2000:]
    revised = [line for line in result.stdout.splitlines() if line.startswith("revised: ")]
    assert len(revised) == 1
    text = revised[0][len("revised: "):]
    assert text.startswith("Das Haus") and text.endswith("klein.")
    assert (out / "revise.html").exists()


def test_revise_from_files_writes_one_line_per_draft(demo, small_corpus, tmp_path):
    out, _, _ = demo
    sources, drafts, output = tmp_path / "src.en", tmp_path / "draft.de", tmp_path / "revised.de"
    sources.write_text("Good morning.\nThank you.\n", encoding="utf-8")
    drafts.write_text("Guten Morgen.\n\n", encoding="utf-8")
    result = revise("--checkpoint", out / "diffuser" / "checkpoint_best.pt", "--data", small_corpus / "bin",
                    "--spm-model", small_corpus / "text" / "spm.model", "--source-file", sources,
                    "--draft-file", drafts, "--steps", "2", "--output", output)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(output.read_text(encoding="utf-8").splitlines()) == 2


def test_revise_errors_are_one_line(demo, small_corpus, tmp_path):
    out, _, _ = demo
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((out / "diffuser" / "checkpoint_best.pt").read_bytes()[:5000])
    cases = [
        (["--checkpoint", tmp_path / "missing.pt"], "no such checkpoint"),
        (["--checkpoint", truncated], "cannot load this checkpoint"),
        (["--checkpoint", out / "diffuser" / "checkpoint_best.pt", "--keep-spans", "Katze"], "does not occur"),
        (["--checkpoint", out / "ar" / "checkpoint_best.pt"], "not diffuser"),
    ]
    for options, message in cases:
        result = revise(*options, "--data", small_corpus / "bin", "--spm-model", small_corpus / "text" / "spm.model",
                        "--source", "The house.", "--draft", "Das Haus.")
        assert result.returncode == 1, (options, result.stderr[-2000:])
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr[-2000:]
    over_long = revise("--checkpoint", out / "diffuser" / "checkpoint_best.pt", "--data", small_corpus / "bin",
                       "--source", " ".join(["house"] * 1100), "--draft", "Das Haus.")
    assert over_long.returncode == 1 and len(over_long.stderr.strip().splitlines()) == 1, over_long.stderr[-2000:]
    assert "--source line 1: the source has" in over_long.stderr and "--max-source-positions" in over_long.stderr
