"""The refinement benchmark: single-word drafts, and one run of benchmarks/refinement.py on a tiny checkpoint."""
import json
import subprocess
import sys

import numpy as np
import pytest
from fairseq_helpers import DIFFUSER_TINY, fairseq

from benchmarks.postedit_check import EDIT_KINDS, edit_location, make_drafts, parse_args, shares, single_word_edit
from corpus_helpers import REPO_ROOT

WORDS = "der Hund läuft schnell nach Hause".split()


@pytest.mark.parametrize("seed", range(5))
def test_single_word_edits_change_exactly_one_word(seed):
    rng = np.random.default_rng(seed)
    substituted = single_word_edit(WORDS, "substitute", rng, ["Katze", "der"])
    assert len(substituted) == len(WORDS) and sum(a != b for a, b in zip(substituted, WORDS)) == 1
    dropped = single_word_edit(WORDS, "drop", rng, [])
    assert len(dropped) == len(WORDS) - 1 and any(dropped == WORDS[:i] + WORDS[i + 1:] for i in range(len(WORDS)))
    duplicated = single_word_edit(WORDS, "duplicate", rng, [])
    assert any(duplicated == WORDS[:i + 1] + WORDS[i:] for i in range(len(WORDS)))


def test_drafts_follow_the_seed_and_take_the_kinds_in_turn():
    references = [" ".join(WORDS)] * 7
    drafts, kinds = make_drafts(references, ["Katze"], seed=3)
    assert make_drafts(references, ["Katze"], seed=3) == (drafts, kinds)
    assert kinds == [EDIT_KINDS[i % 3] for i in range(7)] and all(d != references[0] for d in drafts)
    result = shares(references, drafts, [references[0], drafts[1]] + drafts[2:], kinds)
    assert result["substitute"]["restored"] == pytest.approx(1 / 3) and result["drop"]["unchanged"] == 1.0
    assert result["all"]["sentences"] == 7


REFERENCE = "der Hund läuft schnell nach Hause"


@pytest.mark.parametrize("draft, output, location", [
    ("der Katze läuft schnell nach Hause", "der Hunde läuft schnell nach Hause", "at the error only"),
    ("der Katze läuft schnell nach Hause", "die Katzen läuft schnell nach Hause", "at the error only"),
    ("der Katze läuft schnell nach Hause", "der Hunde läuft schnell nach Haus", "at the error and elsewhere"),
    ("der Katze läuft schnell nach Hause", "der Katze läuft langsam nach Hause", "elsewhere only"),
    ("der Hund schnell nach Hause", "der Hund schnell nach", "elsewhere only"),               # a drop, missed
    ("der Hund schnell nach Hause", "der Hund rennt schnell nach Hause", "at the error only"),  # the gap filled
    ("der Hund Hund läuft schnell nach Hause", "der Hund läuft schnell nach", "at the error and elsewhere"),
])
def test_edit_locations_say_where_a_wrong_edit_landed(draft, output, location):
    assert edit_location(REFERENCE, draft, output) == location


def test_shares_split_the_wrong_edits_by_location():
    drafts = ["der Katze läuft schnell nach Hause"] * 4
    outputs = [REFERENCE, drafts[0], "der Hunde läuft schnell nach Hause", "der Katze läuft langsam nach Hause"]
    row = shares([REFERENCE] * 4, drafts, outputs, ["substitute"] * 4)["substitute"]
    assert row["restored"] == row["unchanged"] == 0.25
    assert row["edited"] == {"at the error only": 0.25, "at the error and elsewhere": 0.0, "elsewhere only": 0.25}


def test_gold_tags_replace_the_tagger_and_refuse_its_options():
    with pytest.raises(SystemExit):
        parse_args(["--path", "x.pt", "--gold-tags", "--keep-bias", "1"])
    assert parse_args(["--path", "x.pt", "--gold-tags"]).gold_tags


def test_refinement_benchmark_writes_every_figure(small_corpus, tmp_path):
    fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "5", "--save-dir", tmp_path / "ckpt")
    ar = tmp_path / "generate-test.ar.txt"  # the AR's hypotheses as fairseq-generate writes them: D- lines, any order
    references = (small_corpus / "text" / "test.de").read_text(encoding="utf-8").splitlines()
    ar.write_text("".join(f"D-{i}\t-0.5\t{' '.join(line.split()[1:])}\n" for i, line in reversed(list(
        enumerate(references)))), encoding="utf-8")
    command = [sys.executable, REPO_ROOT / "benchmarks" / "refinement.py", "--data", small_corpus / "bin",
               "--path", tmp_path / "ckpt" / "checkpoint_last.pt", "--ar-hypotheses", ar,
               "--reference", small_corpus / "text" / "test.de", "--train-targets", small_corpus / "text" / "train.de",
               "--spm-model", small_corpus / "text" / "spm.model", "--decode-steps", "3", "--out-dir", tmp_path / "out",
               "--name", "tiny", "--max-len-a", "0", "--max-len-b", "8"]  # short outputs: a 5-update model babbles
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "out" / "refinement.tiny.json").read_text())
    assert set(figures["step_sweep"]["bleu"]) == {"1", "2", "4", "8", "12"}
    assert 0.0 <= figures["step_sweep"]["changed_after_step_1"] <= 1.0
    for row in figures["bootstrap"].values():
        assert 0.0 < row["p_value"] <= 1.0 and 0.0 <= row["changed_share"] <= 1.0
    bootstrap = figures["bootstrap"]
    start, edits = (bootstrap["AR hypotheses as the decoder reads them (0 steps)"],
                    bootstrap["edits alone: --init-mode file against the 0-step decode"])
    # nothing is cut at --max-len-b 8 (most hypotheses are longer); only a piece the dictionary lacks may differ
    assert start["changed_share"] <= 0.01
    assert edits["ar_bleu"] == pytest.approx(start["bleu"])
    assert edits["bleu"] == pytest.approx(bootstrap["AR hypotheses (--init-mode file)"]["bleu"])
    assert figures["postedit"]["shares"]["all"]["sentences"] == len(references)
    table = (tmp_path / "out" / "refinement.tiny.md").read_text()
    assert "Controlled post-editing" in table and f"{figures['postedit']['shares']['all']['restored']:.1%})" in table
    assert figures["command"].startswith("benchmarks/refinement.py --data") and figures["date"]
    refill = figures["refill"]
    assert refill["tokens"] > 0 and 0.0 <= refill["refill_accuracy"] <= 1.0
    assert 0.0 <= refill["left_to_right_accuracy"] <= 1.0
    gold = figures["postedit_gold_tags"]
    assert all(0.0 <= share <= 1.0 for share in gold["tagger_ranks_error_first"].values())
    assert all(0.0 < share < 1.0 for share in gold["error_first_by_chance"].values())
    assert all(0.0 <= share <= 1.0 for share in gold["generator_least_confident_at_error"].values())
    assert all(0.0 < share < 1.0 for share in gold["generator_at_error_by_chance"].values())
    assert "its generator is least confident" in table
    # gold tags edit exactly at the error, and a duplicate's edit is a deletion: the generator plays no part
    assert gold["gold_tags"] and gold["shares"]["duplicate"]["restored"] >= 0.95
    assert "the same with gold tags" in table
    assert len((tmp_path / "out" / "postedit_outputs.tiny_gold.de").read_text().splitlines()) == len(references)
