"""fairseq-interactive with the project's tasks, and DiffusER's hub interface (DiffuserModel.from_pretrained): the
same translations as fairseq-generate for the same sentences, in input order, with bad lines reported one by one."""
from __future__ import annotations

import pytest
from fairseq_helpers import USER_DIR, fairseq, lines_of

FAMILIES = ("diffuser", "d3pm", "diffuseq")
# keep bias 3: the barely trained tiny DiffusER keeps part of its random start rather than deleting everything
DECODING = {"diffuser": ["--decode-steps", "3", "--max-len-b", "20", "--keep-bias", "3"],
            "d3pm": ["--decode-steps", "5", "--max-len-b", "20"],
            "diffuseq": ["--decode-steps", "5"]}
HUB_DECODING = {"decode_steps": 3, "max_len_b": 20, "keep_bias": 3.0}
SENTENCES = 12


@pytest.fixture(scope="module")
def trained(tiny_checkpoints) -> dict:
    """{family: checkpoint after TINY_UPDATES updates} (what is compared is the decoding, not its quality)."""
    return {family: tiny_checkpoints[family] for family in FAMILIES}


def spm_options(small_corpus) -> list:
    return ["--bpe", "sentencepiece", "--sentencepiece-model", small_corpus / "text" / "spm.model"]


def source_lines(small_corpus) -> list[str]:
    return (small_corpus / "text" / "test.en").read_text(encoding="utf-8").splitlines()


def generated(small_corpus, family, checkpoint) -> dict[int, list[str]]:
    """{sentence id: [score, text]} of fairseq-generate's D- lines on the test split."""
    result = fairseq("fairseq-generate", small_corpus / "bin", "--user-dir", USER_DIR, "--task", family, "--path",
                     checkpoint, "--gen-subset", "test", "--cpu", "--seed", "3", "--batch-size", "32",
                     *DECODING[family], *spm_options(small_corpus))
    return lines_of(result.stdout, "D")


def assert_same_translations(got: dict, expected: dict) -> None:
    """D- lines {id: [score, text]}: the same ids and texts, scores equal up to float rounding (batches of other
    shapes sum in another order)."""
    assert {i: text for i, (_, text) in got.items()} == {i: text for i, (_, text) in expected.items()}
    assert all(abs(float(got[i][0]) - float(expected[i][0])) < 1e-5 for i in got)
    assert any(text for _, text in got.values())


def interactive(small_corpus, family, checkpoint, input_path, *options):
    return fairseq("fairseq-interactive", small_corpus / "bin", "--user-dir", USER_DIR, "--task", family, "--path",
                   checkpoint, "--cpu", "--seed", "3", "--input", input_path, *DECODING[family],
                   *spm_options(small_corpus), *options)


@pytest.mark.parametrize("family", FAMILIES)
def test_interactive_translates_every_line_in_order_as_generate_does(small_corpus, trained, family, tmp_path):
    input_path = tmp_path / "input.en"
    input_path.write_text("\n".join(source_lines(small_corpus)[:SENTENCES]) + "\n", encoding="utf-8")
    result = interactive(small_corpus, family, trained[family], input_path, "--buffer-size", "5", "--batch-size", "2")
    ids = [int(line.split("\t")[0][2:]) for line in result.stdout.splitlines() if line.startswith("D-")]
    assert ids == list(range(SENTENCES))
    expected = generated(small_corpus, family, trained[family])
    assert_same_translations(lines_of(result.stdout, "D"), {i: expected[i] for i in range(SENTENCES)})


def test_bad_lines_are_reported_one_by_one_and_the_others_translated(small_corpus, trained, tmp_path):
    lines = source_lines(small_corpus)
    input_path = tmp_path / "input.en"
    over_long = " ".join(["house"] * 1100)
    input_path.write_bytes("\n".join([lines[0], lines[1], "", over_long, lines[2]]).encode() + b"\n\xff\xfe oops\n"
                           + lines[3].encode() + b"\n")
    result = interactive(small_corpus, "diffuser", trained["diffuser"], input_path, "--buffer-size", "3")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: input line 3 (id 2): empty line; not translated",
                      f"error: input line 4 (id 3): {errors[1].split(': ', 2)[2].split(',')[0]}, over "
                      "--max-source-positions 1024; not translated",
                      "error: input line 6 (id 5): not valid UTF-8; not translated"]
    assert "Traceback" not in result.stderr
    translated = lines_of(result.stdout, "D")
    assert sorted(translated) == [0, 1, 4, 6]
    expected = generated(small_corpus, "diffuser", trained["diffuser"])  # a sentence decodes the same at any id
    assert_same_translations({i: translated[j] for i, j in enumerate((0, 1, 4, 6))},
                             {i: expected[i] for i in range(4)})


def test_interactive_prints_the_edit_history_under_the_input_ids(small_corpus, trained, tmp_path):
    input_path = tmp_path / "input.en"
    input_path.write_text("\n".join(source_lines(small_corpus)[:4]) + "\n", encoding="utf-8")
    result = interactive(small_corpus, "diffuser", trained["diffuser"], input_path, "--print-edit-history")
    generate = fairseq("fairseq-generate", small_corpus / "bin", "--user-dir", USER_DIR, "--task", "diffuser",
                       "--path", trained["diffuser"], "--gen-subset", "test", "--cpu", "--seed", "3",
                       *DECODING["diffuser"], *spm_options(small_corpus), "--print-edit-history")
    steps = [line for line in result.stdout.splitlines() if line.startswith("E-")]
    assert {line.split("_")[0] for line in steps} == {f"E-{i}" for i in range(4)}
    assert sorted(steps) == sorted(line for line in generate.stdout.splitlines()
                                   if line.startswith(tuple(f"E-{i}_" for i in range(4))))


def test_interactive_refuses_a_file_start_with_one_line(small_corpus, trained, tmp_path):
    input_path = tmp_path / "input.en"
    input_path.write_text(source_lines(small_corpus)[0] + "\n", encoding="utf-8")
    result = fairseq("fairseq-interactive", small_corpus / "bin", "--user-dir", USER_DIR, "--task", "diffuser",
                     "--path", trained["diffuser"], "--cpu", "--input", input_path, "--init-mode", "file",
                     check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: --init-mode file needs --init-file")


@pytest.fixture(scope="module")
def hub(small_corpus, trained):
    from fairseq_plugins.models.diffuser_model import DiffuserModel

    checkpoint = trained["diffuser"]
    return DiffuserModel.from_pretrained(str(checkpoint.parent), checkpoint_file=checkpoint.name,
                                         data_name_or_path=str(small_corpus / "bin"), seed=3)


def test_hub_translate_equals_generate(small_corpus, trained, hub):
    sentences = source_lines(small_corpus)[:SENTENCES]
    expected = generated(small_corpus, "diffuser", trained["diffuser"])
    assert hub.translate(sentences, **HUB_DECODING) == [expected[i][1] for i in range(SENTENCES)]
    assert hub.translate(sentences[0], **HUB_DECODING) == expected[0][1]


def test_hub_history_ends_in_the_translation(small_corpus, hub):
    sentence = source_lines(small_corpus)[0]
    history = hub.history(sentence, **HUB_DECODING)
    assert history.text == hub.translate(sentence, **HUB_DECODING)
    assert 1 <= len(history.steps) <= 3 and history.texts()[-1] == history.text  # a step changing nothing ends it
    assert all(len(step.tags) == len(step.tokens) + 1 for step in history.steps)
    assert history.html().startswith("<!DOCTYPE html>")


def test_hub_revise_keeps_the_kept_spans(hub):
    revised = hub.revise("The guards checked our passes.", "Die Wachen prüften die Pässe.",
                         keep_spans=["Die Wachen", "Pässe."], steps=3)
    assert revised.text.startswith("Die Wachen") and revised.text.endswith("Pässe.")
    assert revised.texts()[-1] == revised.text


def test_hub_moves_to_a_device_like_fairseqs(hub):
    import torch

    assert hub.to(torch.device("cpu")).device == torch.device("cpu")


def test_hub_refuses_a_left_to_right_constraint(hub):
    with pytest.raises(ValueError, match="prefix_allowed_tokens_fn"):
        hub.generate([hub.encode("The house.")], prefix_allowed_tokens_fn=lambda batch, prefix: [])
