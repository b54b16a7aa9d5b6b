"""The bundled default corpus: parsing and cleaning Ding lines, the seeded split, prepare_ding.py."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from corpus_helpers import run_prepare, write_dictionary
from data_scripts.ding import ding_version, extract_pairs, sentence_pairs, split_pairs
from diffuser_mt.textio import InputError

HEADER = "# Version :: devel 2023-01-30"

# Lines copied verbatim from /usr/share/trans/de-en (trans-de-en 1.9-6).
ANNOTATED = "Das geht auf keine Kuhhaut. [ugs.] :: That’s going too far."
SUBENTRIES = ("Abpraller {m} (Ballsport) [sport] | Abpraller {pl} | Er köpfte den Abpraller ein. :: "
              "rebound (ball sports) | rebounds | He headed in the rebound.")
ALTERNATIVES = ("Mach keinen großen Aufwand.; Treiben Sie keinen großen Aufwand. :: "
                "Don’t make a big production of it.; Don’t make it a big production.")
OPTIONAL_WORDS = "Da sind wir (wieder)! :: Here we go (again)!"
OPTIONAL_WITH_ANGLE_ANNOTATION = "Das gehört sich (einfach) nicht. <gehören> :: That's just not done."
SEMICOLON_IN_PARENTHESES = "Der ganze Aufwand war umsonst. :: It was a waste of time (money; energy)."
NOT_A_SENTENCE = "Aalfang {m} :: eel fishing"
PLACEHOLDERS = "die Grenze ziehen bei etw. :: to draw the line at sth."
SLASHES = ("Auf einen groben Klotz gehört ein grober Keil. [Sprw.] :: "
           "Answer/Fight/Treat rudeness with rudeness. [prov.]")
ELLIPSIS = "… aber so läuft's halt nun (ein)mal. :: … but that's the way the cookie crumbles."
TOO_SHORT = "Kopf hoch! :: Chin up!; Keep your chin up!"


def test_annotations_are_removed():
    assert sentence_pairs(ANNOTATED) == [("That’s going too far.", "Das geht auf keine Kuhhaut.")]


def test_only_sentence_subentries_become_pairs():
    assert sentence_pairs(SUBENTRIES) == [("He headed in the rebound.", "Er köpfte den Abpraller ein.")]


def test_the_first_alternative_is_kept():
    assert sentence_pairs(ALTERNATIVES) == [("Don’t make a big production of it.", "Mach keinen großen Aufwand.")]


@pytest.mark.parametrize("line, pair", [
    (OPTIONAL_WORDS, ("Here we go!", "Da sind wir!")),
    (OPTIONAL_WITH_ANGLE_ANNOTATION, ("That's just not done.", "Das gehört sich nicht.")),
    (SEMICOLON_IN_PARENTHESES, ("It was a waste of time.", "Der ganze Aufwand war umsonst.")),
])
def test_optional_words_are_removed_with_their_parentheses(line, pair):
    assert sentence_pairs(line) == [pair]


@pytest.mark.parametrize("line", [NOT_A_SENTENCE, PLACEHOLDERS, SLASHES, ELLIPSIS, TOO_SHORT, HEADER])
def test_lines_without_clean_sentences_yield_nothing(line):
    assert sentence_pairs(line) == []


def test_unequal_subentry_counts_yield_nothing():
    assert sentence_pairs("Er kam gestern an. | Er ging. :: He arrived yesterday.") == []


def test_whitespace_is_collapsed():
    assert sentence_pairs("Er  kam   gestern an. :: He arrived\tyesterday  evening.") == [
        ("He arrived yesterday evening.", "Er kam gestern an.")]


def test_ding_version_is_read_from_the_header():
    assert ding_version(HEADER) == "devel 2023-01-30"
    assert ding_version(ANNOTATED) is None


def test_extraction_keeps_the_first_pair_per_english_sentence():
    lines = [HEADER, ANNOTATED, ANNOTATED, "Das ist zu viel. :: That’s going too far.", NOT_A_SENTENCE, SLASHES]
    extraction = extract_pairs(lines)
    assert extraction.pairs == [("That’s going too far.", "Das geht auf keine Kuhhaut.")]
    assert (extraction.candidates, extraction.unclean, extraction.duplicates) == (4, 1, 2)
    assert extraction.dropped == 3


def numbered_pairs(count: int) -> list[tuple[str, str]]:
    """Distinct synthetic pairs."""
    return [(f"This is sentence {i}.", f"Das ist Satz {i}.") for i in range(count)]


def test_split_sizes_are_right_and_splits_disjoint():
    pairs = numbered_pairs(50)
    splits = split_pairs(pairs, seed=1, valid_size=5, test_size=10)
    assert {name: len(split) for name, split in splits.items()} == {"train": 35, "valid": 5, "test": 10}
    assert sorted(splits["train"] + splits["valid"] + splits["test"]) == sorted(pairs)


def test_split_depends_only_on_the_seed():
    pairs = numbered_pairs(50)
    first = split_pairs(pairs, seed=1, valid_size=5, test_size=10)
    assert split_pairs(list(reversed(pairs)), seed=1, valid_size=5, test_size=10) == first
    assert split_pairs(pairs, seed=2, valid_size=5, test_size=10) != first


def test_split_needs_one_training_pair():
    split_pairs(numbered_pairs(16), seed=1, valid_size=5, test_size=10)
    with pytest.raises(InputError, match="need at least 16"):
        split_pairs(numbered_pairs(15), seed=1, valid_size=5, test_size=10)


def assert_failed_cleanly(result: subprocess.CompletedProcess, out: Path, *words: str) -> None:
    """A non-zero exit with one error line naming ``words``, no traceback, no output left behind."""
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and all(word in error_lines[0] for word in words), result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "bin").exists() and not (out / "text").exists()
    assert not list(out.glob(".*"))


def test_a_missing_dictionary_is_one_clear_line(tmp_path):
    missing = tmp_path / "de-en"
    assert_failed_cleanly(run_prepare(missing, tmp_path), tmp_path, str(missing), "apt-get install trans-de-en")


def test_a_non_utf8_dictionary_is_one_clear_line(tmp_path):
    dictionary = tmp_path / "de-en"
    dictionary.write_bytes(f"{HEADER}\n{ANNOTATED}\n".encode("utf-8") + "Straße. :: Road.\n".encode("latin-1"))
    assert_failed_cleanly(run_prepare(dictionary, tmp_path), tmp_path, f"{dictionary}:3", "UTF-8")


def test_too_few_clean_pairs_is_one_clear_line(tmp_path):
    dictionary = write_dictionary(tmp_path / "de-en", [HEADER, ANNOTATED, SUBENTRIES, ALTERNATIVES])
    result = run_prepare(dictionary, tmp_path, "--valid-size", "2", "--test-size", "2")
    assert_failed_cleanly(result, tmp_path, str(dictionary), "only 3 clean sentence pairs")


def test_a_failure_midway_keeps_the_previous_output(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "manifest.json").write_text("{}", encoding="utf-8")
    lines = [HEADER] + [f"Das ist Satz Nummer {i}. :: This is sentence number {i}." for i in range(20)]
    dictionary = write_dictionary(tmp_path / "de-en", lines)
    result = run_prepare(dictionary, tmp_path, "--valid-size", "2", "--test-size", "2", "--vocab-size", "8000")
    assert result.returncode != 0 and "Vocabulary size too high" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bin", "de-en"]
    assert (tmp_path / "bin" / "manifest.json").read_text(encoding="utf-8") == "{}"


def line_count(path: Path) -> int:
    """Number of lines in a text file."""
    return len(path.read_text(encoding="utf-8").splitlines())


def test_manifest_counts_match_the_text(small_corpus):
    manifest = json.loads((small_corpus / "bin" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["pairs"]["valid"] == 100 and manifest["pairs"]["test"] == 200
    for split, count in manifest["pairs"].items():
        for name in (f"{split}.en", f"{split}.de", f"{split}.spm.en", f"{split}.spm.de"):
            assert line_count(small_corpus / "text" / name) == count
    assert sum(manifest["pairs"].values()) == manifest["clean_pairs"]
    assert manifest["ding_version"] == "devel 2023-01-30"
    assert manifest["vocab_size"] == 500 and manifest["seed"] == 1


def test_binarized_data_has_one_joined_dictionary(small_corpus):
    dest = small_corpus / "bin"
    assert (dest / "dict.en.txt").read_bytes() == (dest / "dict.de.txt").read_bytes()
    for split in ("train", "valid", "test"):
        for language in ("en", "de"):
            for suffix in ("bin", "idx"):
                assert (dest / f"{split}.en-de.{language}.{suffix}").stat().st_size > 0
    assert (small_corpus / "text" / "spm.model").exists() and (small_corpus / "text" / "spm.vocab").exists()
    assert not list(small_corpus.glob(".*"))
