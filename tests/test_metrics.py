"""``diffuser-mt score``: BLEU agrees with the sacrebleu CLI, ROUGE follows the PEGASUS ``<n>`` convention."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffuser_mt import cli
from diffuser_mt.metrics import ROUGE_TYPES, compound_split, compound_split_bleu, corpus_bleu, corpus_rouge

REPO_ROOT = Path(__file__).resolve().parents[1]
SACREBLEU = Path(sys.executable).parent / "sacrebleu"

GERMAN_REFS = [
    "Die Katze schläft auf dem Sofa, während es draußen regnet.",
    "Im Jahr 2019 wurden 3.500 neue Wohnungen in München gebaut.",
    "„Wir müssen schneller handeln“, sagte die Ministerin am Dienstag.",
    "Der Zug nach Köln hat heute zwanzig Minuten Verspätung.",
    "Können Sie mir bitte den Weg zum Bahnhof zeigen?",
]
GERMAN_HYPS = [
    "Die Katze schläft auf dem Sofa, während es draussen regnet.",
    "2019 wurden in München 3.500 neue Wohnungen gebaut.",
    "„Wir müssen schnell handeln“, sagte die Ministerin am Dienstag.",
    "Der Zug nach Köln ist heute zwanzig Minuten zu spät.",
    "Können sie mir bitte den Weg zum Bahnhof zeigen?",
]

SWAPPED_REF = "the cat sat on the mat <n> the dog ran in the park"
SWAPPED_HYP = "the dog ran in the park <n> the cat sat on the mat"
SINGLE_SENTENCE_REFS = ["the quick brown fox jumps over the lazy dog", "police arrested two men on sunday"]
SINGLE_SENTENCE_HYPS = ["a quick brown dog jumps over the fox", "two men were arrested by police on sunday"]


def write_lines(path: Path, lines: list[str]) -> Path:
    """Write ``lines`` as a UTF-8 file, one per line, and return ``path``."""
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def german_files(tmp_path_factory) -> tuple[Path, Path]:
    """(hyp, ref) files holding the five German sentence pairs."""
    folder = tmp_path_factory.mktemp("german")
    return write_lines(folder / "hyp.de", GERMAN_HYPS), write_lines(folder / "ref.de", GERMAN_REFS)


def run_score(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``diffuser-mt score ARGS`` in-process; return (exit code, stdout, stderr)."""
    code = cli.main(["score", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def score_json(capsys, *args: str) -> dict:
    """The one JSON line printed by ``diffuser-mt score --json ARGS``."""
    code, out, _ = run_score(capsys, "--json", *args)
    assert code == 0
    [line] = out.splitlines()
    return json.loads(line)


def sacrebleu_cli(ref: Path, hyp: Path, *options: str) -> str:
    """stdout of the sacrebleu command-line tool installed next to this Python."""
    if not SACREBLEU.exists():
        pytest.skip(f"no sacrebleu executable at {SACREBLEU}")
    env = {key: value for key, value in os.environ.items() if key != "SACREBLEU_FORMAT"}
    completed = subprocess.run(
        [str(SACREBLEU), str(ref), "-i", str(hyp), *options],
        capture_output=True, text=True, check=True, env=env,
    )
    return completed.stdout


BLEU_SETTINGS = [
    ("13a", False),
    ("13a", True),
    ("intl", False),
    ("zh", False),
    ("char", False),
    ("none", False),
]


@pytest.mark.parametrize(("tokenize", "lowercase"), BLEU_SETTINGS)
def test_bleu_score_and_signature_equal_sacrebleu_cli(capsys, german_files, tokenize, lowercase):
    hyp, ref = german_files
    our_case, their_case = (["--lowercase"], ["-lc"]) if lowercase else ([], [])
    ours = score_json(capsys, "--metric", "bleu", "--hyp", str(hyp), "--ref", str(ref),
                      "--tokenize", tokenize, *our_case)
    theirs = json.loads(sacrebleu_cli(ref, hyp, "--format", "json", "--width", "12",
                                      "--tokenize", tokenize, *their_case))
    assert float(f"{ours['bleu']:.12f}") == theirs["score"]
    assert ours["signature"] == theirs["signature"]
    assert 0 < ours["bleu"] < 100


def test_bleu_score_only_equals_sacrebleu_b(capsys, german_files):
    hyp, ref = german_files
    ours = score_json(capsys, "--metric", "bleu", "--hyp", str(hyp), "--ref", str(ref))
    assert f"{ours['bleu']:.1f}" == sacrebleu_cli(ref, hyp, "-b").strip()


def test_bleu_human_output_is_sacrebleu_text_line_then_signature(capsys, german_files):
    hyp, ref = german_files
    code, out, _ = run_score(capsys, "--metric", "bleu", "--hyp", str(hyp), "--ref", str(ref))
    score_line, signature_line = out.splitlines()
    signature = signature_line.removeprefix("signature: ")
    theirs = sacrebleu_cli(ref, hyp, "--format", "text", "--width", "2").strip()
    assert code == 0
    assert theirs == score_line.replace("BLEU = ", f"BLEU|{signature} = ", 1)


def test_bleu_json_has_extras(capsys, german_files):
    hyp, ref = german_files
    result = score_json(capsys, "--metric", "bleu", "--hyp", str(hyp), "--ref", str(ref))
    assert set(result) == {"bleu", "signature", "precisions", "bp", "sys_len", "ref_len"}
    assert len(result["precisions"]) == 4


def test_rouge_lsum_rewards_swapped_sentences_that_rouge_l_penalises():
    result = corpus_rouge([SWAPPED_HYP], [SWAPPED_REF])
    assert result["rougeLsum"] == pytest.approx(100.0)
    assert result["rougeL"] < result["rougeLsum"]


def test_rouge_lsum_splits_both_hypothesis_and_reference_at_separator():
    from rouge_score.rouge_scorer import RougeScorer

    ref, hyp = "he won the race <n> she came second", "she came second in the race <n> he won"
    expected = RougeScorer(["rougeLsum"], use_stemmer=True).score(
        ref.replace(" <n> ", "\n"), hyp.replace(" <n> ", "\n")
    )["rougeLsum"].fmeasure
    assert corpus_rouge([hyp], [ref])["rougeLsum"] == pytest.approx(100 * expected)


def test_rouge_lsum_equals_rouge_l_on_single_sentence_lines():
    result = corpus_rouge(SINGLE_SENTENCE_HYPS, SINGLE_SENTENCE_REFS)
    assert result["rougeLsum"] == pytest.approx(result["rougeL"])
    assert 0 < result["rougeL"] < 100


def test_rouge_n_and_l_treat_separator_as_a_space():
    with_separator = corpus_rouge([SWAPPED_HYP], [SWAPPED_REF])
    as_spaces = corpus_rouge([SWAPPED_HYP.replace("<n>", " ")], [SWAPPED_REF.replace("<n>", " ")])
    for rouge_type in ("rouge1", "rouge2", "rougeL"):
        assert with_separator[rouge_type] == pytest.approx(as_spaces[rouge_type])


def test_rouge_honours_custom_sentence_separator():
    default = corpus_rouge([SWAPPED_HYP], [SWAPPED_REF])
    custom = corpus_rouge([SWAPPED_HYP.replace("<n>", "|")], [SWAPPED_REF.replace("<n>", "|")], "|")
    assert custom == pytest.approx(default)


@pytest.mark.parametrize("metric", ["bleu", "rouge"])
def test_perfect_hypothesis_scores_100_everywhere(capsys, tmp_path, metric):
    ref = write_lines(tmp_path / "ref.txt", GERMAN_REFS if metric == "bleu" else [SWAPPED_REF])
    result = score_json(capsys, "--metric", metric, "--hyp", str(ref), "--ref", str(ref))
    names = ["bleu"] if metric == "bleu" else ROUGE_TYPES
    assert [result[name] for name in names] == pytest.approx([100.0] * len(names))


def test_corpus_bleu_function_matches_cli(capsys, german_files):
    hyp, ref = german_files
    assert corpus_bleu(GERMAN_HYPS, GERMAN_REFS) == score_json(
        capsys, "--metric", "bleu", "--hyp", str(hyp), "--ref", str(ref)
    )


def test_rouge_human_output_has_one_line_per_metric(capsys, tmp_path):
    ref = write_lines(tmp_path / "ref.txt", SINGLE_SENTENCE_REFS)
    hyp = write_lines(tmp_path / "hyp.txt", SINGLE_SENTENCE_HYPS)
    code, out, _ = run_score(capsys, "--metric", "rouge", "--hyp", str(hyp), "--ref", str(ref))
    assert code == 0
    assert [line.split(" = ")[0] for line in out.splitlines()] == list(ROUGE_TYPES)


@pytest.mark.parametrize("metric", ["bleu", "rouge"])
def test_empty_hypothesis_line_is_scored(capsys, tmp_path, metric):
    ref = write_lines(tmp_path / "ref.txt", SINGLE_SENTENCE_REFS)
    hyp = write_lines(tmp_path / "hyp.txt", [SINGLE_SENTENCE_REFS[0], ""])
    result = score_json(capsys, "--metric", metric, "--hyp", str(hyp), "--ref", str(ref))
    assert 0 < result["bleu" if metric == "bleu" else "rouge1"] < 100


def mismatched_line_counts(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(hyp, ref, file the error must name): hyp has one line fewer than ref."""
    ref = write_lines(tmp_path / "ref.txt", SINGLE_SENTENCE_REFS)
    return write_lines(tmp_path / "hyp.txt", SINGLE_SENTENCE_HYPS[:1]), ref, ref


def missing_hypothesis_file(tmp_path: Path) -> tuple[Path, Path, Path]:
    hyp = tmp_path / "missing.txt"
    return hyp, write_lines(tmp_path / "ref.txt", SINGLE_SENTENCE_REFS), hyp


def non_utf8_reference(tmp_path: Path) -> tuple[Path, Path, Path]:
    ref = tmp_path / "ref.txt"
    ref.write_bytes(b"\xff\xfeD\x00i\x00e\x00\n")
    return write_lines(tmp_path / "hyp.txt", ["Die"]), ref, ref


def empty_reference_line(tmp_path: Path) -> tuple[Path, Path, Path]:
    ref = write_lines(tmp_path / "ref.txt", [SINGLE_SENTENCE_REFS[0], "  "])
    return write_lines(tmp_path / "hyp.txt", SINGLE_SENTENCE_HYPS), ref, ref


def empty_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    ref = write_lines(tmp_path / "ref.txt", [])
    return write_lines(tmp_path / "hyp.txt", []), ref, ref


@pytest.mark.parametrize("metric", ["bleu", "rouge"])
@pytest.mark.parametrize(
    "make_bad_input",
    [mismatched_line_counts, missing_hypothesis_file, non_utf8_reference, empty_reference_line, empty_files],
)
def test_bad_input_is_one_line_naming_the_file_and_exit_1(capsys, tmp_path, metric, make_bad_input):
    hyp, ref, culprit = make_bad_input(tmp_path)
    code, out, err = run_score(capsys, "--metric", metric, "--hyp", str(hyp), "--ref", str(ref))
    assert code == 1
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("diffuser-mt score: error: ")
    assert str(culprit) in line


def test_empty_reference_line_error_names_the_line(capsys, tmp_path):
    hyp, ref, _ = empty_reference_line(tmp_path)
    _, _, err = run_score(capsys, "--metric", "bleu", "--hyp", str(hyp), "--ref", str(ref))
    assert f"{ref}:2:" in err


def test_module_entry_point_prints_one_json_line(german_files):
    hyp, ref = german_files
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path}
    completed = subprocess.run(
        [sys.executable, "-m", "diffuser_mt.cli", "score", "--metric", "bleu", "--json",
         "--hyp", str(hyp), "--ref", str(ref)],
        capture_output=True, text=True, check=True, env=env,
    )
    [line] = completed.stdout.splitlines()
    assert json.loads(line)["signature"].startswith("nrefs:1|")


def test_empty_sentence_separator_is_a_usage_error(capsys, german_files):
    hyp, ref = german_files
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["score", "--metric", "rouge", "--hyp", str(hyp), "--ref", str(ref),
                  "--sentence-separator", ""])
    assert exit_info.value.code == 2
    assert "--sentence-separator: must not be empty" in capsys.readouterr().err


@pytest.mark.parametrize("text, split", [
    ("ein gut-gemeinter Rat", "ein gut ##AT##-##AT## gemeinter Rat"),
    ("Baden-Württemberg und Nordrhein-Westfalen",
     "Baden ##AT##-##AT## Württemberg und Nordrhein ##AT##-##AT## Westfalen"),
    ("a-b-c", "a ##AT##-##AT## b-c"),  # non-overlapping, as perl's s///g
    ("3 - 4", "3 - 4"),
    ("-x y-", "-x y-"),
    ("kein Bindestrich", "kein Bindestrich"),
])
def test_compound_split_splits_hyphens_inside_words_only(text, split):
    assert compound_split(text) == split


def test_compound_bleu_equals_untokenized_sacrebleu_on_the_split_13a_tokens():
    from sacrebleu.metrics import BLEU
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tokenize = Tokenizer13a()
    hyps = [*GERMAN_HYPS, "Die Baden-Württemberger Polizei-Sprecherin sagte nichts."]
    refs = [*GERMAN_REFS, "Die baden-württembergische Polizeisprecherin sagte nichts."]
    score, signature = compound_split_bleu(hyps, refs)
    expected = BLEU(tokenize="none", smooth_method="none").corpus_score(
        [compound_split(tokenize(hyp)) for hyp in hyps], [[compound_split(tokenize(ref)) for ref in refs]])
    assert score.score == pytest.approx(expected.score)
    assert (score.sys_len, score.ref_len) == (expected.sys_len, expected.ref_len)
    assert "|tok:13a+compound-split|smooth:none|" in signature
    assert score.score != pytest.approx(corpus_bleu(hyps, refs)["bleu"])  # split tokens and no smoothing differ


def test_compound_split_counts_the_hyphen_as_a_matching_token():
    # without the split "Polizei-Sprecherin" is one unmatched token; with it, "Polizei" and "##AT##-##AT##" match
    hyp, ref = ["die Polizei-Chefin kam heute"], ["die Polizei-Sprecherin kam heute"]
    split_score, _ = compound_split_bleu(hyp, ref)
    assert split_score.counts[0] == 5 and split_score.totals[0] == 6
    plain = corpus_bleu(hyp, ref)
    assert plain["sys_len"] == 4


def test_compound_bleu_cli_prints_score_and_signature(capsys, german_files):
    hyp, ref = german_files
    code, out, _ = run_score(capsys, "--metric", "compound-bleu", "--hyp", str(hyp), "--ref", str(ref))
    assert code == 0
    score_line, signature_line = out.splitlines()
    assert score_line.startswith("BLEU = ")
    assert signature_line.startswith("signature: nrefs:1|case:mixed|eff:no|tok:13a+compound-split|smooth:none|")
    result = score_json(capsys, "--metric", "compound-bleu", "--hyp", str(hyp), "--ref", str(ref))
    assert result["bleu"] == pytest.approx(compound_split_bleu(GERMAN_HYPS, GERMAN_REFS)[0].score)


def test_a_fairseq_generate_output_is_scored_in_sentence_id_order(capsys, tmp_path, german_files):
    hyp, ref = german_files
    order = [3, 0, 4, 1, 2]  # batches finish out of corpus order
    lines = []
    for sentence_id in order:
        lines += [f"S-{sentence_id}\tsource", f"H-{sentence_id}\t-0.5\tpieces",
                  f"D-{sentence_id}\t-0.5\t{GERMAN_HYPS[sentence_id]}", f"P-{sentence_id}\t-0.5 -0.5"]
    generate = write_lines(tmp_path / "generate-test.txt", lines)
    for metric in ("bleu", "compound-bleu"):
        from_text = score_json(capsys, "--metric", metric, "--hyp", str(hyp), "--ref", str(ref))
        from_generate = score_json(capsys, "--metric", metric, "--generate-output", "--hyp", str(generate),
                                   "--ref", str(ref))
        assert from_generate == from_text
    gap = write_lines(tmp_path / "gap.txt", lines[:8])  # sentences 3 and 0 only
    code, _, err = run_score(capsys, "--metric", "bleu", "--generate-output", "--hyp", str(gap), "--ref", str(ref))
    assert code == 1 and "no D- line for sentence ids [1, 2]" in err
    four_refs = write_lines(tmp_path / "four.de", GERMAN_REFS[:4])
    code, _, err = run_score(capsys, "--metric", "bleu", "--generate-output", "--hyp", str(generate),
                             "--ref", str(four_refs))
    assert code == 1 and "has 5 D- lines" in err and str(four_refs) in err


@pytest.mark.parametrize("seed", [12345, 7])
def test_paired_bootstrap_equals_the_sacrebleu_command_line(capsys, german_files, tmp_path, seed):
    hyp, ref = german_files
    baseline = write_lines(tmp_path / "baseline.de", [GERMAN_HYPS[0], GERMAN_REFS[1], *GERMAN_HYPS[2:4], "Wie?"])
    ours = score_json(capsys, "--metric", "bleu", "--hyp", str(hyp), "--ref", str(ref), "--paired-bs", str(baseline),
                      "--paired-bs-seed", str(seed), "--paired-bs-samples", "300")
    if not SACREBLEU.exists():
        pytest.skip(f"no sacrebleu executable at {SACREBLEU}")
    env = {key: value for key, value in os.environ.items() if key != "SACREBLEU_FORMAT"}
    completed = subprocess.run([str(SACREBLEU), str(ref), "-i", str(baseline), str(hyp), "-m", "bleu", "--paired-bs",
                                "--paired-bs-n", "300", "--format", "json"], capture_output=True, text=True,
                               check=True, env={**env, "SACREBLEU_SEED": str(seed)})
    base, system = (row["BLEU"] for row in json.loads(completed.stdout))
    assert ours["baseline_bleu"] == pytest.approx(base["score"]) and ours["bleu"] == pytest.approx(system["score"])
    assert ours["p_value"] == pytest.approx(system["p_value"])
    assert ours["mean"] == pytest.approx(system["mean"]) and ours["ci"] == pytest.approx(system["ci"])
    assert 0 < ours["p_value"] <= 1 and f"seed:{seed}" in ours["signature"]


def test_paired_bootstrap_needs_equal_line_counts(capsys, german_files, tmp_path):
    hyp, ref = german_files
    short = write_lines(tmp_path / "short.de", GERMAN_HYPS[:2])
    code, _, err = run_score(capsys, "--metric", "bleu", "--hyp", str(hyp), "--ref", str(ref),
                             "--paired-bs", str(short))
    assert code != 0 and "error:" in err and "short.de has 2 lines" in err and len(err.strip().splitlines()) == 1
