"""Edit traces: the step history of a decoded sentence, as text lines, in the terminal and as HTML.

A trace is a list of EditStep, one per reverse step, over dictionary symbols
(sentencepiece pieces such as "▁Das", "haus"): step k's ``result()`` is step
k+1's ``tokens``.

History line (``fairseq-generate --print-edit-history``), one per step::

    E-<sentence id>_<step>\\t<text after the step>\\t{"tokens": [...], "tags": "KDRI...", "fills": [[...], ...]}

steps count from 1; ``tags`` has one letter per canvas position ([start slot]
+ tokens): K keep, D delete, R replace, I insert.

Rendering follows the paper's Figure 1: kept tokens plain, deletions red and
struck through, replacements orange (the replaced tokens struck through, then
the new ones), insertions blue.
"""
from __future__ import annotations

import argparse
import html
import json
import sys
from dataclasses import dataclass
from typing import Iterable, Sequence

from diffuser_mt.edit_decoder import EditRecord
from diffuser_mt.edits import Tag, apply_edits, edit_spans
from diffuser_mt.textio import InputError, atomic_write, read_lines

TAG_LETTERS = {Tag.KEEP: "K", Tag.DELETE: "D", Tag.REPLACE: "R", Tag.INSERT: "I"}
LETTER_TAGS = {letter: tag for tag, letter in TAG_LETTERS.items()}
WORD_START = "\u2581"


@dataclass
class EditStep:
    """One reverse step over symbols: x_t (``tokens``), one Tag per canvas position, one fill per span."""

    tokens: list[str]
    tags: list[int]
    fills: list[list[str]]

    def result(self) -> list[str]:
        """x_{t-1} as symbols (``apply_edits`` over a local index of the symbols)."""
        symbols = sorted({*self.tokens, *(s for fill in self.fills for s in fill)})
        index = {symbol: i for i, symbol in enumerate(symbols)}
        ids = apply_edits([index[s] for s in self.tokens], self.tags, [[index[s] for s in fill] for fill in self.fills])
        return [symbols[i] for i in ids]


def trace_steps(history: Sequence[EditRecord], symbols: Sequence[str]) -> list[EditStep]:
    """A hypothesis' edit history (``diffuser_mt.edit_decoder``, over ids) as a trace over ``symbols``, the
    dictionary's symbol of each id."""
    return [EditStep(tokens=[symbols[t] for t in record.tokens], tags=list(record.tags),
                     fills=[[symbols[t] for t in fill] for fill in record.fills]) for record in history]


def detokenize(symbols: Iterable[str]) -> str:
    """Sentencepiece convention: join the pieces, "▁" starts a word."""
    return "".join(symbols).replace(WORD_START, " ").strip()


def format_history_line(sentence_id: int, step: int, edit: EditStep) -> str:
    record = {"tokens": edit.tokens, "tags": "".join(TAG_LETTERS[Tag(t)] for t in edit.tags), "fills": edit.fills}
    return f"E-{sentence_id}_{step}\t{detokenize(edit.result())}\t{json.dumps(record, ensure_ascii=False)}"


def parse_history_lines(lines: Iterable[str]) -> dict[int, list[EditStep]]:
    """{sentence id: trace} from the E- lines among ``lines`` (other lines are ignored).

    Raises ValueError naming the line number for a malformed E- line, a repeated or
    missing step, or steps that do not follow on from each other.
    """
    steps: dict[int, dict[int, EditStep]] = {}
    for line_no, line in enumerate(lines, start=1):
        if not line.startswith("E-"):
            continue
        try:
            key, _, payload = line.rstrip("\n").split("\t", 2)
            sentence_id, step = (int(part) for part in key[2:].split("_"))
            record = json.loads(payload)
            edit = EditStep(list(record["tokens"]), [int(LETTER_TAGS[letter]) for letter in record["tags"]],
                            [list(fill) for fill in record["fills"]])
            edit.result()
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"line {line_no}: malformed edit-history line ({err})") from None
        if step in steps.setdefault(sentence_id, {}):
            raise ValueError(f"line {line_no}: step {step} of sentence {sentence_id} appears twice")
        steps[sentence_id][step] = edit
    traces = {}
    for sentence_id, by_step in steps.items():
        if sorted(by_step) != list(range(1, len(by_step) + 1)):
            raise ValueError(f"sentence {sentence_id}: steps {sorted(by_step)} are not 1..{len(by_step)}")
        trace = [by_step[step] for step in sorted(by_step)]
        for step, (before, after) in enumerate(zip(trace, trace[1:]), start=1):
            if before.result() != after.tokens:
                raise ValueError(f"sentence {sentence_id}: step {step + 1} does not start from step {step}'s result")
        traces[sentence_id] = trace
    return traces


def changed_after(trace: Sequence[EditStep], step: int = 1) -> bool:
    """Whether the steps after ``step`` (1-based) change the sentence: the last result differs from step
    ``step``'s result (a trace no longer than ``step`` is unchanged)."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    return len(trace) > step and trace[-1].result() != trace[step - 1].result()


# One rendered piece of a step: (kind, symbols) with kind in keep/delete/replaced/replace/insert.
Segment = tuple[str, list[str]]


def segments(edit: EditStep) -> list[Segment]:
    """The step as a sequence of segments in canvas order (replaced tokens, then their new fill)."""
    spans = edit_spans(edit.tags)
    fill_at = {start: fill for (_, start, _), fill in zip(spans, edit.fills)}
    out: list[Segment] = []
    if 0 in fill_at and fill_at[0]:
        out.append(("insert", fill_at[0]))
    for position, token in enumerate(edit.tokens, start=1):
        tag = edit.tags[position]
        if tag == Tag.KEEP:
            out.append(("keep", [token]))
        elif tag == Tag.DELETE:
            out.append(("delete", [token]))
        elif tag == Tag.INSERT:
            out.append(("keep", [token]))
            if fill_at[position]:
                out.append(("insert", fill_at[position]))
        else:
            out.append(("replaced", [token]))
            run_ends = position == len(edit.tokens) or edit.tags[position + 1] != Tag.REPLACE
            run_start = position
            while run_start > 1 and edit.tags[run_start - 1] == Tag.REPLACE:
                run_start -= 1
            if run_ends and fill_at[run_start]:
                out.append(("replace", fill_at[run_start]))
    return out


def _words(symbols: Sequence[str]) -> str:
    text = "".join(symbols).replace(WORD_START, " ")
    return text


ANSI = {"keep": "", "delete": "\033[9;31m", "replaced": "\033[9;38;5;208m", "replace": "\033[38;5;208m",
        "insert": "\033[34m"}
PLAIN_MARKS = {"keep": ("", ""), "delete": ("[-", "-]"), "replaced": ("[-", "-]"), "replace": ("{~", "~}"),
               "insert": ("{+", "+}")}
RESET = "\033[0m"


def render_ansi(trace: Sequence[EditStep], color: bool = True) -> str:
    """One line per step (the edit applied to x_t), then the final text; ANSI colours or wdiff-like marks."""
    lines = []
    for step, edit in enumerate(trace, start=1):
        parts = []
        for kind, symbols in segments(edit):
            text = _words(symbols)
            lead = text[: len(text) - len(text.lstrip())]
            body = text.lstrip()
            if color and ANSI[kind]:
                parts.append(f"{lead}{ANSI[kind]}{body}{RESET}")
            else:
                opening, closing = PLAIN_MARKS[kind]
                parts.append(f"{lead}{opening}{body}{closing}")
        lines.append(f"step {step:>2}: {''.join(parts).strip()}")
    if trace:
        lines.append(f"result : {detokenize(trace[-1].result())}")
    return "\n".join(lines)


HTML_STYLE = """
body { font-family: sans-serif; margin: 2em; line-height: 1.6; }
table { border-collapse: collapse; margin-bottom: 2em; }
td { padding: 0.2em 0.6em; vertical-align: top; }
td.step { color: #888; text-align: right; }
.delete { color: #c62828; text-decoration: line-through; }
.replaced { color: #ef6c00; text-decoration: line-through; }
.replace { color: #ef6c00; font-weight: bold; }
.insert { color: #1565c0; font-weight: bold; }
.legend span { margin-right: 1.5em; }
"""


def _html_step(edit: EditStep) -> str:
    parts = []
    for kind, symbols in segments(edit):
        text = _words(symbols)
        lead, body = text[: len(text) - len(text.lstrip())], text.lstrip()
        escaped = html.escape(body)
        parts.append(html.escape(lead) + (escaped if kind == "keep" else f'<span class="{kind}">{escaped}</span>'))
    return "".join(parts).strip()


def render_html(traces: dict[str, Sequence[EditStep]], title: str = "DiffusER edit traces",
                notes: dict[str, dict[str, str]] | None = None) -> str:
    """One self-contained HTML page (inline CSS, no scripts): a table of steps per sentence.

    ``notes[name]`` may give extra rows shown above the steps (e.g. {"source": ..., "reference": ...}).
    """
    body = [f"<h1>{html.escape(title)}</h1>",
            '<p class="legend"><span>kept</span><span class="delete">deleted</span>'
            '<span class="replaced">replaced</span><span class="replace">replacement</span>'
            '<span class="insert">inserted</span></p>']
    for name, trace in traces.items():
        body.append(f"<h2>{html.escape(str(name))}</h2>")
        body.append("<table>")
        for label, text in (notes or {}).get(name, {}).items():
            body.append(f'<tr><td class="step">{html.escape(label)}</td><td>{html.escape(text)}</td></tr>')
        for step, edit in enumerate(trace, start=1):
            body.append(f'<tr><td class="step">step {step}</td><td>{_html_step(edit)}</td></tr>')
        if trace:
            body.append(f'<tr><td class="step">result</td><td>{html.escape(detokenize(trace[-1].result()))}</td></tr>')
        body.append("</table>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _side_lines(lines: Sequence[str], kind: str) -> dict[int, str]:
    """fairseq-generate's S-/T-/D- text by sentence id (D- lines carry a score before the text)."""
    found = {}
    for line in lines:
        if line.startswith(f"{kind}-"):
            fields = line.split("\t")
            key = fields[0][len(kind) + 1:]
            if key.isdigit():
                found[int(key)] = fields[-1]
    return found


def run_trace(args: argparse.Namespace) -> None:
    lines = read_lines(args.generate_output)
    try:
        traces = parse_history_lines(lines)
    except ValueError as err:
        raise InputError(f"{args.generate_output}: {err}") from None
    if not traces:
        raise InputError(f"{args.generate_output}: no E- lines; run fairseq-generate with --print-edit-history")
    ids = args.ids if args.ids else sorted(traces)[: args.first]
    missing = [i for i in ids if i not in traces]
    if missing:
        raise InputError(f"{args.generate_output}: no edit history for sentence ids {missing}")
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    sources, targets = _side_lines(lines, "S"), _side_lines(lines, "T")
    for sentence_id in ids:
        print(f"# sentence {sentence_id}" + (f": {sources[sentence_id]}" if sentence_id in sources else ""))
        print(render_ansi(traces[sentence_id], color=color))
        if sentence_id in targets:
            print(f"reference: {targets[sentence_id]}")
    if args.html:
        notes = {f"sentence {i}": {k: v for k, v in (("source", sources.get(i)), ("reference", targets.get(i))) if v}
                 for i in ids}
        page = render_html({f"sentence {i}": traces[i] for i in ids}, title=f"Edit traces: {args.generate_output}",
                           notes=notes)
        with atomic_write(args.html) as out:
            out.write(page)


def add_subcommand(subparsers) -> None:
    """Register ``diffuser-mt trace``."""
    parser = subparsers.add_parser(
        "trace", help="show the edit history of decoded sentences (terminal colours and HTML)",
        description="Render the E- lines of `fairseq-generate --task diffuser --print-edit-history` output.")
    parser.add_argument("generate_output", help="saved fairseq-generate output with E- lines")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--ids", type=int, nargs="+", help="sentence ids to show")
    which.add_argument("--first", type=int, default=3, help="show the N lowest sentence ids (default: %(default)s)")
    parser.add_argument("--html", help="also write these traces as one self-contained HTML page")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="ANSI colours (auto: only on a terminal); never uses [-deleted-] {+inserted+} marks")
    parser.set_defaults(run=run_trace)
