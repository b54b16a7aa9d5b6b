"""Edit traces: the E- line format, the terminal and HTML renderings, and `diffuser-mt trace`."""
from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser

import pytest

from diffuser_mt.edit_decoder import EditRecord
from diffuser_mt.edits import Tag
from diffuser_mt.traces import (
    EditStep,
    changed_after,
    format_history_line,
    parse_history_lines,
    render_ansi,
    render_html,
    trace_steps,
)

K, D, R, I = Tag.KEEP, Tag.DELETE, Tag.REPLACE, Tag.INSERT  # noqa: E741  (I: the INSERT letter of the E- lines)
# x_t = "▁Das ▁alte ▁Katze ▁ist": keep Das, delete alte, replace Katze by Haus, insert "▁sehr ▁klein" after ist
STEP_ONE = EditStep(["▁Das", "▁alte", "▁Katze", "▁ist"], [K, K, D, R, I], [["▁Haus"], ["▁sehr", "▁klein"]])
STEP_TWO = EditStep(["▁Das", "▁Haus", "▁ist", "▁sehr", "▁klein"], [K, K, K, K, D, K], [])
TRACE = [STEP_ONE, STEP_TWO]


def test_edit_step_result_applies_the_edits():
    assert STEP_ONE.result() == ["▁Das", "▁Haus", "▁ist", "▁sehr", "▁klein"]
    assert STEP_TWO.result() == ["▁Das", "▁Haus", "▁ist", "▁klein"]


SYMBOLS = ["<s>", "<pad>", "</s>", "<unk>", "▁Das", "▁alte", "▁Katze", "▁ist", "▁Haus", "▁sehr", "▁klein"]
HISTORY = [EditRecord(tokens=(4, 5, 6, 7), tags=(K, K, D, R, I), fills=((8,), (9, 10)), score=-0.5),
           EditRecord(tokens=(4, 8, 7, 9, 10), tags=(K, K, K, K, D, K), fills=(), score=-0.1)]


def test_trace_steps_spell_a_decoder_history_in_symbols():
    assert trace_steps(HISTORY, SYMBOLS) == TRACE
    assert [step.result() for step in trace_steps(HISTORY, SYMBOLS)] == [[SYMBOLS[t] for t in record.result()]
                                                                          for record in HISTORY]
    assert trace_steps([], SYMBOLS) == []


def test_history_lines_round_trip():
    lines = [format_history_line(7, step, edit) for step, edit in enumerate(TRACE, start=1)]
    assert lines[0].startswith("E-7_1\tDas Haus ist sehr klein\t{")
    assert parse_history_lines(lines) == {7: TRACE}


def test_parsing_ignores_fairseq_lines_and_orders_steps():
    lines = ["S-7\tThe house", format_history_line(7, 2, STEP_TWO), "H-7\t-0.5\t▁Das ▁Haus",
             format_history_line(7, 1, STEP_ONE), "2026-11-22 | INFO | fairseq | Translated 1 sentences"]
    assert parse_history_lines(lines) == {7: TRACE}


@pytest.mark.parametrize("line, message", [
    ("E-1_1\tabc\tnot json", "line 1: malformed"),
    ('E-1_1\tabc\t{"tokens": ["a"], "tags": "KX", "fills": []}', "line 1: malformed"),
    ('E-x_1\tabc\t{"tokens": [], "tags": "K", "fills": []}', "line 1: malformed"),
    ('E-1_1\tabc\t{"tokens": ["a"], "tags": "KR", "fills": []}', "line 1: malformed"),
])
def test_malformed_lines_name_their_line(line, message):
    with pytest.raises(ValueError, match=message):
        parse_history_lines([line])


def test_steps_that_do_not_follow_on_are_refused():
    with pytest.raises(ValueError, match="does not start from"):
        parse_history_lines([format_history_line(0, 1, STEP_ONE), format_history_line(0, 2, STEP_ONE)])
    with pytest.raises(ValueError, match="not 1..1"):
        parse_history_lines([format_history_line(0, 2, STEP_ONE)])


def test_ansi_rendering_colours_each_edit_class():
    text = render_ansi(TRACE, color=True)
    assert "\033[9;31malte\033[0m" in text  # deleted: red, struck through
    assert "\033[9;38;5;208mKatze\033[0m" in text and "\033[38;5;208mHaus\033[0m" in text  # replaced, replacement
    assert "\033[34msehr klein\033[0m" in text  # inserted: blue
    assert text.splitlines()[-1] == "result : Das Haus ist klein"


def test_plain_rendering_uses_wdiff_marks():
    first = render_ansi(TRACE, color=False).splitlines()[0]
    assert first == "step  1: Das [-alte-] [-Katze-] {~Haus~} ist {+sehr klein+}"
    assert "\033" not in render_ansi(TRACE, color=False)


class _Checker(HTMLParser):
    """Checks that tags are balanced and collects the class of each span."""

    VOID = {"meta", "br"}

    def __init__(self):
        super().__init__()
        self.stack, self.spans = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "span":
            self.spans.append(dict(attrs).get("class"))

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def test_html_is_well_formed_and_shows_the_four_edit_classes():
    page = render_html({"sentence 7": TRACE}, title="a <test>", notes={"sentence 7": {"source": "The house & co"}})
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    assert {"delete", "replaced", "replace", "insert"} <= set(checker.spans)
    assert '<span class="delete">alte</span>' in page
    assert "line-through" in page and "a &lt;test&gt;" in page and "The house &amp; co" in page
    assert "<script" not in page and "http" not in page


def diffuser_mt(*args):
    return subprocess.run([sys.executable, "-m", "diffuser_mt.cli", *map(str, args)], capture_output=True, text=True)


def test_trace_command_prints_and_writes_html(tmp_path):
    output = tmp_path / "generate-test.txt"
    output.write_text("\n".join(["S-7\tThe house is very small",
                                 *(format_history_line(7, s, e) for s, e in enumerate(TRACE, start=1)),
                                 "T-7\tDas Haus ist klein", "H-7\t-0.1\t▁Das ▁Haus ▁ist ▁klein"]) + "\n",
                      encoding="utf-8")
    page = tmp_path / "trace.html"
    result = diffuser_mt("trace", output, "--ids", "7", "--color", "never", "--html", page)
    assert result.returncode == 0, result.stderr
    assert "[-alte-]" in result.stdout and "reference: Das Haus ist klein" in result.stdout
    assert '<span class="insert">sehr klein</span>' in page.read_text(encoding="utf-8")


@pytest.mark.parametrize("content, args, message", [
    (None, [], "no such file"),
    ("H-0\t-1\tx\n", [], "--print-edit-history"),
    (format_history_line(0, 1, STEP_ONE) + "\n", ["--ids", "3"], "no edit history for sentence ids [3]"),
])
def test_trace_command_errors_are_one_line(tmp_path, content, args, message):
    output = tmp_path / "generate-test.txt"
    if content is not None:
        output.write_text(content, encoding="utf-8")
    result = diffuser_mt("trace", output, *args)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_changed_after_compares_the_last_result_with_that_of_the_given_step():
    write = EditStep(["▁a"], [Tag.KEEP, Tag.INSERT], [["▁b"]])
    keep = EditStep(["▁a", "▁b"], [Tag.KEEP, Tag.KEEP, Tag.KEEP], [])
    undo = EditStep(["▁a", "▁b"], [Tag.KEEP, Tag.KEEP, Tag.DELETE], [])
    redo = EditStep(["▁a"], [Tag.KEEP, Tag.INSERT], [["▁b"]])
    assert not changed_after([write]) and not changed_after([write, keep])
    assert changed_after([write, undo]) and not changed_after([write, undo, redo])
    assert changed_after([write, undo, redo], step=2)
    with pytest.raises(ValueError, match="step must be >= 1"):
        changed_after([write], step=0)
