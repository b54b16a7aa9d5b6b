"""WMT'14 En-De preparation, offline: the real newstest2014 sample (SGM and plain) as every split.

The 300 fixture segments stand in for all inputs of prepare_wmt14_en_de.py in the
statmt.org layout: lines 1-100, 101-200 and 201-300 are the three training
corpora (Common Crawl with an empty, an invalid-UTF-8, an over-long and a
length-ratio pair added), lines 251-300 are newstest2013, the SGM files are
newstest2014. The download path is run against tgz archives of that layout.
"""
from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from data_scripts.wmt14 import ARCHIVES, Cleaning, decode_pair, length_rule, locate, read_segments, sgm_segments
from diffuser_mt.textio import InputError
from fixture_corpora import WMT14_FIXTURES, assert_one_error_line, require, run_script

SCRIPT = "prepare_wmt14_en_de.py"
SGM = {"en": "newstest2014-deen-src.300.en.sgm", "de": "newstest2014-deen-ref.300.de.sgm"}
LONG_WORDS = " ".join(f"word{i}" for i in range(300))
ADDED_PAIRS = [  # (en, de) bytes appended to Common Crawl; none may reach train.*
    (b"An English sentence whose German side is empty.", b"   "),
    (b"Invalid bytes follow: \xff\xfe", b"Ung\xfcltig kodiert."),
    (LONG_WORDS.encode(), LONG_WORDS.encode()),
    (b"A rather long English sentence that a one-word German side cannot translate at all.", b"Ja."),
]


def fixture_lines(language: str) -> list[str]:
    return (require(WMT14_FIXTURES) / f"newstest2014.300.{language}").read_text(encoding="utf-8").splitlines()


def write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def wmt14_folder(folder: Path, test_format: str = "sgm") -> Path:
    """The fixture laid out as the WMT'14 archives unpack (see the module docstring)."""
    lines = {language: fixture_lines(language) for language in ("en", "de")}
    corpora = ["training/europarl-v7.de-en", "commoncrawl.de-en", "training/news-commentary-v9.de-en"]
    for index, corpus in enumerate(corpora):
        for language in ("en", "de"):
            write(folder / f"{corpus}.{language}", lines[language][100 * index:100 * (index + 1)])
    for side, language in enumerate(("en", "de")):
        with open(folder / f"commoncrawl.de-en.{language}", "ab") as out:
            out.write(b"".join(pair[side] + b"\n" for pair in ADDED_PAIRS))
        write(folder / f"dev/newstest2013.{language}", lines[language][250:])
    if test_format == "sgm":
        (folder / "test-full").mkdir()
        shutil.copyfile(WMT14_FIXTURES / SGM["en"], folder / "test-full/newstest2014-deen-src.en.sgm")
        shutil.copyfile(WMT14_FIXTURES / SGM["de"], folder / "test-full/newstest2014-deen-ref.de.sgm")
    else:
        for language in ("en", "de"):
            write(folder / f"test-full/newstest2014.{language}", lines[language])
    return folder


def options(out: Path, *extra) -> list:
    return ["--text-dir", out / "text", "--dest-dir", out / "bin", "--vocab-size", 700, "--threads", 1,
            "--workers", 1, *extra]


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory):
    """prepare_wmt14_en_de.py fetching tgz archives of the fixture layout from a file:// mirror."""
    root = tmp_path_factory.mktemp("wmt14")
    layout = wmt14_folder(root / "layout")
    (root / "mirror").mkdir()
    for archive in ARCHIVES:
        with tarfile.open(root / "mirror" / archive.name, "w:gz") as tar:
            for member in archive.members:
                if (layout / member).exists():
                    tar.add(layout / member, arcname=member)
    result = run_script(SCRIPT, "--raw-dir", root / "raw", "--mirror", (root / "mirror").as_uri(), *options(root))
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def test_sgm_and_plain_newstest2014_read_the_same_segments():
    for language in ("en", "de"):
        sgm = read_segments(require(WMT14_FIXTURES) / SGM[language])
        assert sgm == read_segments(WMT14_FIXTURES / f"newstest2014.300.{language}")
        assert len(sgm) == 300
    assert read_segments(WMT14_FIXTURES / SGM["en"])[0] == "Gutach: Increased safety for pedestrians"


def test_a_segment_without_closing_tag_is_an_error_naming_the_line(tmp_path):
    with pytest.raises(InputError, match=r"x\.sgm:2: <seg> without a closing </seg>"):
        sgm_segments(['<doc docid="d">', '<seg id="1">broken'], tmp_path / "x.sgm")


@pytest.mark.parametrize("raw, pair, counter", [
    ((b"  Hello \t world ", b"Hallo  Welt"), ("Hello world", "Hallo Welt"), None),
    ((b"Hello", b" \t "), None, "empty"),
    ((b"", b"Hallo"), None, "empty"),
    ((b"caf\xe9", b"Kaffee"), None, "invalid_utf8"),
])
def test_decode_pair_normalizes_or_counts_the_drop(raw, pair, counter):
    cleaning = Cleaning()
    assert decode_pair(*raw, cleaning) == pair
    assert cleaning.read == 1
    assert (cleaning.empty, cleaning.invalid_utf8) == ((counter == "empty") * 1, (counter == "invalid_utf8") * 1)


@pytest.mark.parametrize("lengths, reason", [
    ((10, 15), None), ((15, 10), None), ((10, 16), "ratio"), ((16, 10), "ratio"), ((1, 1), None),
    ((250, 250), None), ((251, 250), "too_long"), ((250, 251), "too_long"),
])
def test_length_rule(lengths, reason):
    assert length_rule(*lengths, max_length=250, max_ratio=1.5) == reason


def test_locate_names_every_missing_file_with_its_archive(tmp_path):
    folder = wmt14_folder(tmp_path / "raw")
    (folder / "training/news-commentary-v9.de-en.de").unlink()
    (folder / "test-full/newstest2014-deen-ref.de.sgm").unlink()
    with pytest.raises(InputError) as error:
        locate(folder)
    message = str(error.value)
    assert "training/news-commentary-v9.de-en.de (from training-parallel-nc-v9.tgz)" in message
    assert "test-full/newstest2014-deen-ref.de.sgm (from test-full.tgz)" in message
    assert "europarl" not in message


def test_locate_takes_plain_text_newstest2014(tmp_path):
    inputs = locate(wmt14_folder(tmp_path / "raw", test_format="plain"))
    assert [path.name for path in inputs.test] == ["newstest2014.en", "newstest2014.de"]


def test_download_lays_out_the_files_that_from_reads(downloaded):
    raw = downloaded / "raw"
    inputs = locate(raw)
    assert inputs.test[0].name == "newstest2014-deen-src.en.sgm"
    assert sorted(path.name for path in raw.iterdir()) == sorted(
        ["training", "commoncrawl.de-en.en", "commoncrawl.de-en.de", "dev", "test-full",
         *(archive.name for archive in ARCHIVES)])
    assert not list(raw.rglob("*.partial"))


def test_manifest_and_text_match(downloaded):
    manifest = json.loads((downloaded / "bin" / "manifest.json").read_text(encoding="utf-8"))
    text = downloaded / "text"
    assert manifest["task"] == "translation"
    assert manifest["pairs"]["valid"] == 50 and manifest["pairs"]["test"] == 300
    assert manifest["train_pairs_read"] == {"europarl-v7.de-en": 100, "commoncrawl.de-en": 104,
                                            "news-commentary-v9.de-en": 100}
    dropped = manifest["dropped"]
    assert (dropped["empty"], dropped["invalid_utf8"]) == (1, 1)
    assert dropped["too_long"] == 1 and dropped["ratio"] >= 1
    assert manifest["pairs"]["train"] == 304 - sum(dropped.values())
    for split, count in manifest["pairs"].items():
        for name in (f"{split}.en", f"{split}.de", f"{split}.spm.en", f"{split}.spm.de"):
            assert len((text / name).read_text(encoding="utf-8").splitlines()) == count, name
    train_en = (text / "train.en").read_text(encoding="utf-8")
    assert "Invalid bytes" not in train_en and "word299" not in train_en and "cannot translate" not in train_en
    assert (text / "test.de").read_text(encoding="utf-8").splitlines() == fixture_lines("de")
    assert manifest["sentencepiece_model"] == str(text / "spm.model") and (text / "spm.model").is_file()
    assert not list(text.glob("train.prefilter.*"))


def test_binarized_data_has_one_joined_dictionary(downloaded):
    dest = downloaded / "bin"
    assert (dest / "dict.en.txt").read_bytes() == (dest / "dict.de.txt").read_bytes()
    for split in ("train", "valid", "test"):
        for language in ("en", "de"):
            assert (dest / f"{split}.en-de.{language}.bin").stat().st_size > 0
    assert not list(downloaded.glob(".*"))


def test_from_folder_with_plain_test_and_an_existing_model_gives_the_same_test_text(downloaded, tmp_path):
    folder = wmt14_folder(tmp_path / "raw", test_format="plain")
    leftover = tmp_path / ".bin.prepare_wmt14_en_de.partial"  # what an interrupted run leaves
    leftover.mkdir()
    result = run_script(SCRIPT, "--from", folder, *options(tmp_path, "--spm-model",
                                                            downloaded / "text" / "spm.model"))
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("test.en", "test.de", "test.spm.en", "test.spm.de", "train.spm.de", "spm.model"):
        assert (tmp_path / "text" / name).read_bytes() == (downloaded / "text" / name).read_bytes(), name
    manifest = json.loads((tmp_path / "bin" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["spm_model_from"] == str(downloaded / "text" / "spm.model") and manifest["vocab_size"] is None
    assert not leftover.exists()


def assert_nothing_written(out: Path) -> None:
    assert not (out / "bin").exists() and not (out / "text").exists()
    assert not list(out.glob(".*"))


def test_a_missing_file_is_one_line_naming_it(tmp_path):
    folder = wmt14_folder(tmp_path / "raw")
    (folder / "dev/newstest2013.de").unlink()
    result = run_script(SCRIPT, "--from", folder, *options(tmp_path))
    assert_one_error_line(result, str(folder), "dev/newstest2013.de (from dev.tgz)")
    assert_nothing_written(tmp_path)


def test_a_failed_download_is_one_line_naming_the_url_and_leaves_no_partial_file(tmp_path):
    mirror = (tmp_path / "empty-mirror").as_uri()
    result = run_script(SCRIPT, "--raw-dir", tmp_path / "raw", "--mirror", mirror, *options(tmp_path))
    assert_one_error_line(result, "download of", f"{mirror}/training-parallel-europarl-v7.tgz", "failed")
    assert list((tmp_path / "raw").iterdir()) == []
    assert_nothing_written(tmp_path)


def test_a_corpus_that_is_not_line_aligned_is_one_line_and_nothing_is_published(tmp_path):
    folder = wmt14_folder(tmp_path / "raw")
    with open(folder / "training/europarl-v7.de-en.de", "a", encoding="utf-8") as out:
        out.write("Eine Zeile zu viel.\n")
    result = run_script(SCRIPT, "--from", folder, *options(tmp_path))
    assert_one_error_line(result, "not line-aligned", "europarl-v7.de-en.en ends after 100 lines")
    assert_nothing_written(tmp_path)
