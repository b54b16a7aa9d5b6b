"""CNN/DailyMail preparation and a tiny summarization run, offline, on the 19 real CNN stories of the fixtures.

The fixture's url lists give 9 train and 10 "val" stories; the tests split the
val list into 5 valid and 5 test stories, and add one real story stripped of its
highlights to train (it must be skipped and counted).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from corpus_helpers import REPO_ROOT
from data_scripts.cnn_dm import (
    END_TOKENS, Story, fix_missing_period, parse_story, spm_training_lines, summary_line, url_hash)
from data_scripts.fairseq_tools import fairseq_executable
from diffuser_mt.generation_output import read_hypotheses
from diffuser_mt.traces import parse_history_lines
from fairseq_helpers import DIFFUSER_TINY, fairseq, lines_of
from fixture_corpora import CNN_DM_FIXTURES, assert_one_error_line, require, run_script

SCRIPT = "prepare_cnn_dm.py"
NO_HIGHLIGHTS_URL = "http://example.org/a-story-without-highlights"
# the first fixture story, as make_datafiles.py and the HF builder extract it
FIRST_STORY = "017d27d00eb43678c15cb4a8dd4723a035323219.story"
FIRST_SUMMARY = ("President Bush to address the Veterans of Foreign Wars on Wednesday . <n> "
                 "Bush to say that withdrawing from Vietnam emboldened today's terrorists . <n> "
                 "Speech will be latest White House attempt to try to reframe the debate over Iraq .")


def url_list(name: str) -> list[str]:
    return (require(CNN_DM_FIXTURES) / "url_lists" / name).read_text(encoding="utf-8").split()


def cnn_dm_folder(folder: Path) -> Path:
    """The fixture stories as ``cnn/stories`` with train/val/test url lists (see the module docstring)."""
    stories = folder / "cnn" / "stories"
    shutil.copytree(require(CNN_DM_FIXTURES) / "cnn_stories", stories)
    article = (stories / FIRST_STORY).read_text(encoding="utf-8").split("@highlight")[0]
    (stories / f"{url_hash(NO_HIGHLIGHTS_URL)}.story").write_text(article, encoding="utf-8")
    val = url_list("all_val.txt")
    lists = {"all_train.txt": url_list("all_train.txt") + [NO_HIGHLIGHTS_URL], "all_val.txt": val[:5],
             "all_test.txt": val[5:]}
    (folder / "url_lists").mkdir()
    for name, urls in lists.items():
        (folder / "url_lists" / name).write_text("".join(f"{url}\n" for url in urls), encoding="utf-8")
    return folder


def options(out: Path, *extra) -> list:
    return ["--text-dir", out / "text", "--dest-dir", out / "bin", "--vocab-size", 1000, "--threads", 1,
            "--workers", 1, *extra]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("cnn_dm")
    result = run_script(SCRIPT, "--from", cnn_dm_folder(root / "raw"), *options(root))
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result


@pytest.mark.parametrize("line, fixed", [
    ("Watch Bush criticize the Iraqi government »", "Watch Bush criticize the Iraqi government » ."),
    ("He left.", "He left."), ("Really?", "Really?"), ("\u201cWe won,\u201d", "\u201cWe won,\u201d"),
    ("it was (CNN)", "it was (CNN)"), ("", ""), ("@highlight", "@highlight"),
])
def test_fix_missing_period(line, fixed):
    assert fix_missing_period(line) == fixed


def test_end_tokens_are_the_common_preprocessing_ones():
    assert set(END_TOKENS) == {".", "!", "?", "...", "'", "`", '"', "\u2019", "\u201d", ")"}


def test_parse_story_splits_article_and_highlights():
    lines = ["WASHINGTON (CNN) -- Bush spoke.", "", "A caption", "", "@highlight", "", "Bush spoke",
             "", "@highlight", "", "He was loud!"]
    assert parse_story(lines) == Story("WASHINGTON (CNN) -- Bush spoke. A caption .", ("Bush spoke .", "He was loud!"))


def test_a_story_without_highlights_has_none():
    assert parse_story(["Only an article.", ""]).highlights == ()


def test_the_first_fixture_story_extracts_as_the_common_preprocessing_does():
    lines = (require(CNN_DM_FIXTURES) / "cnn_stories" / FIRST_STORY).read_text(encoding="utf-8").splitlines()
    story = parse_story(lines)
    assert summary_line(story.highlights) == FIRST_SUMMARY
    assert story.article.startswith("WASHINGTON (CNN) -- As he awaits a crucial progress report on Iraq,")
    assert "in Canada. On Wednesday in Kansas City" in story.article
    assert "Watch Bush criticize the Iraqi government » . It is being closely watched" in story.article


def test_url_hash_names_the_fixture_stories():
    names = {path.name for path in require(CNN_DM_FIXTURES).joinpath("cnn_stories").iterdir()}
    urls = url_list("all_train.txt") + url_list("all_val.txt")
    assert {f"{url_hash(url)}.story" for url in urls} == names


def test_spm_training_lines_cut_after_sentence_ends():
    assert spm_training_lines("One. Two! Three? Four.  Mr.X stays") == ["One.", "Two!", "Three?", "Four.", "Mr.X stays"]


def test_splits_manifest_and_skipped_story(prepared):
    root, result = prepared
    manifest = json.loads((root / "bin" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["task"] == "summarization" and manifest["sentence_separator"] == "<n>"
    assert manifest["pairs"] == {"train": 9, "valid": 5, "test": 5}
    assert manifest["stories"]["train"] == {"urls": 10, "missing": 0, "no_highlights": 1, "empty_article": 0,
                                            "kept": 9}
    assert manifest["skipped_no_highlights"] == 1
    assert "train: 9 of 10 stories kept (0 missing, 1 skipped without highlights" in result.stderr
    for split, count in manifest["pairs"].items():
        for name in (f"{split}.source", f"{split}.target", f"{split}.spm.source", f"{split}.spm.target"):
            assert len((root / "text" / name).read_text(encoding="utf-8").splitlines()) == count, name
    assert FIRST_SUMMARY in (root / "text" / "train.target").read_text(encoding="utf-8").splitlines()
    assert not (root / "text" / "spm_train.txt").exists()
    assert not list(root.glob(".*"))


def test_sources_are_truncated_and_the_separator_is_one_piece(prepared):
    root, _ = prepared
    manifest = json.loads((root / "bin" / "manifest.json").read_text(encoding="utf-8"))
    sources = (root / "text" / "train.spm.source").read_text(encoding="utf-8").splitlines()
    assert max(len(line.split()) for line in sources) == 400
    assert manifest["truncated_sources"]["train"] == sum(len(line.split()) == 400 for line in sources) > 0
    targets = (root / "text" / "test.spm.target").read_text(encoding="utf-8").splitlines()
    raw_targets = (root / "text" / "test.target").read_text(encoding="utf-8").splitlines()
    for pieces, raw in zip(targets, raw_targets):
        assert pieces.split().count("<n>") == raw.count(" <n> ") >= 1
    assert (root / "bin" / "dict.source.txt").read_bytes() == (root / "bin" / "dict.target.txt").read_bytes()
    assert "<n> " in (root / "bin" / "dict.target.txt").read_text(encoding="utf-8")


def test_a_missing_url_list_is_one_line_naming_it(tmp_path):
    folder = cnn_dm_folder(tmp_path / "raw")
    (folder / "url_lists" / "all_test.txt").unlink()
    assert_one_error_line(run_script(SCRIPT, "--from", folder, *options(tmp_path)),
                          str(folder / "url_lists" / "all_test.txt"))
    assert not (tmp_path / "bin").exists() and not (tmp_path / "text").exists()


def test_a_missing_story_is_an_error_unless_allowed(tmp_path):
    folder = cnn_dm_folder(tmp_path / "raw")
    missing_url = url_list("all_val.txt")[2]
    (folder / "cnn" / "stories" / f"{url_hash(missing_url)}.story").unlink()
    assert_one_error_line(run_script(SCRIPT, "--from", folder, *options(tmp_path)),
                          "1 of the 5 stories", f"{url_hash(missing_url)}.story", missing_url,
                          "--allow-missing-stories")
    assert not (tmp_path / "bin").exists()
    allowed = run_script(SCRIPT, "--from", folder, "--allow-missing-stories", *options(tmp_path))
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    manifest = json.loads((tmp_path / "bin" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["pairs"]["valid"] == 4 and manifest["stories"]["valid"]["missing"] == 1


def test_a_folder_without_stories_is_one_line(tmp_path):
    folder = cnn_dm_folder(tmp_path / "raw")
    shutil.rmtree(folder / "cnn")
    assert_one_error_line(run_script(SCRIPT, "--from", folder, *options(tmp_path)), "no story folder",
                          "cnn/stories", "dailymail/stories")


def test_without_datasets_the_hugging_face_path_is_one_line(tmp_path):
    program = ("import runpy, sys; sys.modules['datasets'] = None; "  # makes `import datasets` fail
               f"sys.argv = [{SCRIPT!r}] + sys.argv[1:]; "
               f"runpy.run_path({str(REPO_ROOT / 'data_scripts' / SCRIPT)!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", program, *map(str, options(tmp_path))],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert_one_error_line(result, "needs the `datasets` package", "pip install datasets", "--from DIR")
    assert not (tmp_path / "bin").exists()


def test_tiny_diffuser_trains_averages_summarizes_and_scores_rouge(prepared, tmp_path):
    root, _ = prepared
    data = root / "bin"
    fairseq("fairseq-train", data, *DIFFUSER_TINY, "--span-lambda", 8, "--max-source-positions", 1024,
            "--max-target-positions", 512, "--max-update", 6, "--save-interval-updates", 1,
            "--keep-interval-updates", 2, "--save-dir", tmp_path / "ckpt", "--log-format", "json", "--log-interval", 1)
    average = run_script("average_checkpoints.py", "--inputs", tmp_path / "ckpt", "--num-update-checkpoints", 2,
                         "--output", tmp_path / "ckpt" / "checkpoint_avg2.pt")
    assert average.returncode == 0 and "averaging 2 checkpoints" in average.stderr, average.stderr[-2000:]
    generated = fairseq("fairseq-generate", data, "--user-dir", REPO_ROOT / "fairseq_plugins", "--task", "diffuser",
                        "--path", tmp_path / "ckpt" / "checkpoint_avg2.pt", "--gen-subset", "test",
                        "--decode-steps", 2, "--max-len-a", 0, "--max-len-b", 512, "--print-edit-history",
                        "--bpe", "sentencepiece", "--sentencepiece-model", root / "text" / "spm.model",
                        "--batch-size", 8, "--required-batch-size-multiple", 1, "--cpu")
    output = tmp_path / "generate-test.txt"
    output.write_text(generated.stdout, encoding="utf-8")
    sources, references = lines_of(generated.stdout, "S"), lines_of(generated.stdout, "T")
    assert sorted(sources) == sorted(references) == list(range(5))
    for reference in references.values():  # the <n> separators survive sentencepiece and fairseq
        assert reference[0].count("<n>") >= 1
    traces = parse_history_lines(generated.stdout.splitlines())
    assert sorted(traces) == list(range(5))
    for sentence_id, trace in traces.items():  # the auto start of summarization data is the source
        assert "".join(trace[0].tokens).replace("\u2581", " ").strip() == sources[sentence_id][0]
    hypotheses = tmp_path / "hypotheses.txt"
    hypotheses.write_text("".join(f"{line}\n" for line in read_hypotheses(output)), encoding="utf-8")
    score = subprocess.run([fairseq_executable("diffuser-mt"), "score", "--metric", "rouge", "--json",
                            "--hyp", str(hypotheses), "--ref", str(root / "text" / "test.target")],
                           capture_output=True, text=True, check=True)
    [line] = score.stdout.splitlines()
    result = json.loads(line)
    assert result["n"] == 5
    for rouge_type in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert 0.0 <= result[rouge_type] <= 100.0
