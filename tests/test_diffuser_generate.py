"""fairseq-generate --task diffuser: the edit decoder behind fairseq's own CLI, on a tiny trained model."""
from __future__ import annotations

import math

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.data import data_utils
from fairseq_helpers import DIFFUSER_TINY, USER_DIR, fairseq, json_log, lines_of

import fairseq_plugins  # noqa: F401  (the checkpoint allow-list, for torch.load below)
from diffuser_mt.edit_decoder import DecodeConfig, decode
from diffuser_mt.edit_model import DecodeVocabulary, fillable_mask
from diffuser_mt.start_states import StartSettings, reverse_steps, sentence_rng, start_state
from diffuser_mt.traces import parse_history_lines
from fairseq_plugins.diffuser_generator import FairseqEditModel

TEST_SENTENCES = 200


@pytest.fixture(scope="module")
def checkpoint(small_corpus, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("diffuser_generate")
    fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "40", "--save-dir", save_dir,
            "--no-epoch-checkpoints")
    return save_dir / "checkpoint_last.pt"


def generate(small_corpus, checkpoint, *options, check=True):
    return fairseq("fairseq-generate", small_corpus / "bin", "--user-dir", USER_DIR, "--task", "diffuser",
                   "--path", checkpoint, "--gen-subset", "test", "--cpu", "--seed", "3",
                   "--required-batch-size-multiple", "1", "--batch-size", "32", "--max-len-b", "20",
                   "--decode-steps", "3", *options, check=check)


@pytest.fixture(scope="module")
def decoded(small_corpus, checkpoint):
    """decoded(*options): the stdout of fairseq-generate on the test split with these options, run once."""
    outputs = {}

    def run(*options):
        if options not in outputs:
            outputs[options] = generate(small_corpus, checkpoint, *options).stdout
        return outputs[options]
    return run


def hypotheses(stdout: str) -> dict[int, str]:
    return {i: fields[1] if len(fields) > 1 else "" for i, fields in lines_of(stdout, "H").items()}


@pytest.mark.parametrize("mode", ["random", "null", "source", "ar"])
def test_each_start_state_decodes_every_test_sentence_in_fairseq_format(decoded, mode):
    stdout = decoded("--init-mode", mode, "--print-edit-history")
    for kind in ("S", "T", "H", "D", "P"):
        assert sorted(lines_of(stdout, kind)) == list(range(TEST_SENTENCES)), kind
    for sentence_id, (score, text) in lines_of(stdout, "H").items():
        positional = lines_of(stdout, "P")[sentence_id][0].split()
        assert float(score) <= 0
        assert len(positional) == len(text.split()) + 1  # + eos
        assert "<span:" not in text


@pytest.mark.parametrize("mode, first_step_input", [("null", 0), ("ar", 0), ("source", None)])
def test_print_edit_history_replays_to_the_hypotheses(decoded, mode, first_step_input):
    stdout = decoded("--init-mode", mode, "--print-edit-history", "--force-decode-steps")
    traces = parse_history_lines(stdout.splitlines())
    sources = {i: fields[0] for i, fields in lines_of(stdout, "S").items()}
    for sentence_id, text in hypotheses(stdout).items():
        trace = traces[sentence_id]
        assert len(trace) == (4 if mode == "ar" else 3)
        start = " ".join(trace[0].tokens)
        assert start == ("" if first_step_input == 0 else " ".join(sources[sentence_id].split()[:20]))
        assert " ".join(trace[-1].result()) == text


@pytest.mark.parametrize("options", [(), ("--token-beam", "2", "--revision-beam", "2")])
def test_stopping_sentences_that_no_longer_change_keeps_the_output(decoded, options):
    forced = decoded(*options, "--print-edit-history", "--force-decode-steps")
    stopped = decoded(*options, "--print-edit-history")
    assert hypotheses(stopped) == hypotheses(forced)
    assert lines_of(stopped, "H") == lines_of(forced, "H")
    steps = {i: len(trace) for i, trace in parse_history_lines(stopped.splitlines()).items()}
    assert min(steps.values()) < 3 and max(steps.values()) <= 3


@pytest.mark.parametrize("mode, options", [
    *((mode, ("--init-mode", mode, "--print-edit-history")) for mode in ("random", "null", "source", "ar")),
    ("random", ("--token-beam", "2", "--revision-beam", "2")), ("random", ("--nucleus-p", "0.6")),
])
def test_fairseq_generate_is_the_core_decoder_from_the_core_start_states(small_corpus, checkpoint, decoded, mode,
                                                                          options):
    """The H- lines of fairseq-generate (seed 3, 3 edit steps, at most 20 tokens) are what the core's start states
    and decoder give for the same sentences, decoded here in one batch of their own."""
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)],
                                                                    arg_overrides={"data": str(small_corpus / "bin")})
    task.load_dataset("test")
    ids = list(range(0, TEST_SENTENCES, 20))
    sources = [task.dataset("test").dataset[i]["source"] for i in ids]  # ending in eos
    settings = StartSettings(mode=mode, noise_vocab=task.noise_vocab, seed=3)
    rngs = [sentence_rng(3, source[:-1].tolist()) for source in sources]
    max_length = task.cfg.max_target_positions
    starts = [start_state(settings, i, source[:-1].tolist(), rng, max_length)
              for i, source, rng in zip(ids, sources, rngs)]
    named = dict(zip(options[::2], options[1::2]))
    config = DecodeConfig(steps=reverse_steps(mode, 3), token_beam=int(named.get("--token-beam", 1)),
                          revision_beam=int(named.get("--revision-beam", 1)),
                          nucleus_p=float(named.get("--nucleus-p", 0.0)), max_length=max_length)
    dictionary = task.target_dictionary
    edit_model = FairseqEditModel(models[0].eval(), data_utils.collate_tokens(sources, dictionary.pad(), left_pad=True),
                                  torch.tensor([len(source) for source in sources]), dictionary.bos(), dictionary.pad())
    with torch.no_grad():
        results = decode(edit_model, starts, DecodeVocabulary(task.special_ids, fillable_mask(task.noise_vocab)),
                         config, rngs, [20] * len(ids))
    printed = lines_of(decoded(*options), "H")
    for sentence_id, hypotheses in zip(ids, results):
        score, text = printed[sentence_id]
        assert text == dictionary.string(torch.tensor(hypotheses[0].tokens, dtype=torch.long))
        assert float(score) == pytest.approx(hypotheses[0].score / math.log(2), abs=1e-6)


def test_source_start_with_zero_steps_returns_the_source(decoded):
    stdout = decoded("--init-mode", "source", "--decode-steps", "0", "--max-len-b", "200")
    sources = {i: fields[0] for i, fields in lines_of(stdout, "S").items()}
    assert hypotheses(stdout) == sources


@pytest.mark.parametrize("options", [("--init-mode", "random", "--print-edit-history"),
                                     ("--token-beam", "2", "--revision-beam", "2"), ("--nucleus-p", "0.6"),
                                     ("--keep-bias", "1.5", "--init-mode", "random"),
                                     ("--remask-share", "0.5", "--sample-tags", "--init-mode", "random",
                                      "--decode-steps", "3"),
                                     ("--verify-edits", "--init-mode", "random", "--decode-steps", "3",
                                      "--token-beam", "2", "--revision-beam", "2"),
                                     ("--whole-word-edits", "--init-mode", "random", "--decode-steps", "3")])
def test_output_does_not_depend_on_the_batch_size(decoded, options):
    one, many = decoded(*options, "--batch-size", "1"), decoded(*options)
    assert len(hypotheses(one)) == TEST_SENTENCES
    assert hypotheses(one) == hypotheses(many)


def test_random_starts_follow_the_seed_and_the_source_length(decoded):
    first, other = decoded("--decode-steps", "0"), decoded("--decode-steps", "0", "--seed", "4")
    assert hypotheses(first) != hypotheses(other)
    source_lengths = {i: len(fields[0].split()) for i, fields in lines_of(first, "S").items()}
    assert all(len(text.split()) == min(source_lengths[i], 20) for i, text in hypotheses(first).items())


def test_init_file_starts_from_external_hypotheses(small_corpus, checkpoint, tmp_path):
    references = (small_corpus / "text" / "test.de").read_text(encoding="utf-8")
    plain = tmp_path / "hypotheses.de"
    plain.write_text(references, encoding="utf-8")
    result = generate(small_corpus, checkpoint, "--init-mode", "file", "--init-file", plain, "--decode-steps", "0",
                      "--init-spm-model", small_corpus / "text" / "spm.model", "--max-len-b", "5")
    # the references, encoded as the data was (T- lines escape unknown pieces as <<unk>>), none cut at the length
    # cap (a post-editor does not cut the draft it is given)
    targets = {i: fields[0].replace("<<unk>>", "<unk>") for i, fields in lines_of(result.stdout, "T").items()}
    assert hypotheses(result.stdout) == targets and max(len(target.split()) for target in targets.values()) > 5

    saved_output = tmp_path / "generate-test.txt"  # any system's saved output; here DiffusER's own
    saved_output.write_text(generate(small_corpus, checkpoint, "--bpe", "sentencepiece", "--sentencepiece-model",
                                     small_corpus / "text" / "spm.model", "--decode-steps", "1").stdout,
                            encoding="utf-8")
    from_output = generate(small_corpus, checkpoint, "--init-mode", "file", "--init-file", saved_output,
                           "--init-spm-model", small_corpus / "text" / "spm.model")
    assert len(hypotheses(from_output.stdout)) == TEST_SENTENCES


def test_init_file_with_the_wrong_line_count_fails_before_decoding(small_corpus, checkpoint, tmp_path):
    short = tmp_path / "short.de"
    short.write_text("Das ist ein Test.\n" * (TEST_SENTENCES - 1), encoding="utf-8")
    result = generate(small_corpus, checkpoint, "--init-mode", "file", "--init-file", short, check=False)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert str(short) in last_line and "199" in last_line and "200" in last_line
    assert "Traceback" not in result.stderr
    assert not lines_of(result.stdout, "H")


@pytest.mark.parametrize("options, message", [
    (["--init-mode", "sideways"], "invalid choice"),
    (["--nucleus-p", "0.5", "--token-beam", "2"], "exclude each other"),
    (["--init-mode", "file"], "--init-file"),
    (["--keep-bias", "nan"], "keep bias must be a finite number"),
    (["--remask-share", "2"], "remask share must lie in [0, 1]"),
])
def test_bad_decoding_options_stop_with_one_clear_line(small_corpus, checkpoint, options, message):
    result = generate(small_corpus, checkpoint, *options, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]


def test_validation_bleu_selects_the_best_checkpoint(small_corpus, tmp_path):
    result = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "20",
                     "--save-dir", tmp_path, "--log-format", "json", "--validate-interval-updates", "10",
                     "--eval-bleu", "--eval-bleu-args", '{"decode_steps": 2, "max_len_b": 20}',
                     "--eval-bleu-remove-bpe", "sentencepiece",
                     "--best-checkpoint-metric", "bleu", "--maximize-best-checkpoint-metric")
    valid = json_log(result.stdout, "valid")
    assert len(valid) >= 2 and all("valid_bleu" in record for record in valid)
    assert all(0.0 <= float(record["valid_bleu"]) <= 100.0 for record in valid)
    best = torch.load(tmp_path / "checkpoint_best.pt", map_location="cpu", weights_only=True)["extra_state"]["best"]
    assert best == pytest.approx(max(float(record["valid_bleu"]) for record in valid), abs=0.01)
