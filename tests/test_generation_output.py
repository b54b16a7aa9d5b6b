"""Reading fairseq-generate output back into corpus order."""
import pytest

from diffuser_mt.generation_output import parse_hypotheses, read_hypotheses
from diffuser_mt.textio import InputError

GENERATE_OUTPUT = [
    "S-1\tHello world .",
    "T-1\tHallo Welt .",
    "H-1\t-0.31\t▁Hallo ▁Welt ▁.",
    "D-1\t-0.31\tHallo Welt.",
    "P-1\t-0.1 -0.2 -0.3",
    "S-0\tThank you .",
    "H-0\t-0.12\t▁Danke ▁.",
    "D-0\t-0.12\tDanke.",
    "Generate test with beam=5: BLEU4 = 10.00",
]


@pytest.mark.parametrize("prefix, expected",
                         [("D", ["Danke.", "Hallo Welt."]), ("H", ["▁Danke ▁.", "▁Hallo ▁Welt ▁."])])
def test_hypotheses_come_back_in_corpus_order(prefix, expected):
    assert parse_hypotheses(GENERATE_OUTPUT, prefix=prefix) == expected


def test_empty_hypothesis_is_kept():
    assert parse_hypotheses(["D-0\t-1.0\t", "D-1\t-0.5\tJa."]) == ["", "Ja."]


@pytest.mark.parametrize(
    "lines, message",
    [(["D-0\t0\ta", "D-0\t0\tb"], "appears twice"), (["D-0\t0\ta", "D-2\t0\tb"], r"sentence ids \[1\]")],
)
def test_broken_output_is_an_input_error(lines, message):
    with pytest.raises(InputError, match=message):
        parse_hypotheses(lines)


def test_read_hypotheses_names_the_file(tmp_path):
    path = tmp_path / "generate-test.txt"
    path.write_text("D-1\t0\tb\n", encoding="utf-8")
    with pytest.raises(InputError, match="generate-test.txt"):
        read_hypotheses(path)
