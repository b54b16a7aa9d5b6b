"""Training on hypotheses: post-editing pairs from another system's output and roll-in on the model's own."""
import argparse
import subprocess
import sys

import numpy as np
import pytest
import sentencepiece
from fairseq import options, tasks, utils
from fairseq_helpers import DIFFUSER_TINY, fairseq, json_log

from corpus_helpers import REPO_ROOT
from diffuser_mt.canvas import SpecialIds
from diffuser_mt.corruption import NoiseVocabulary
from diffuser_mt.edits import Tag, apply_edits
from diffuser_mt.rollin import fills_of, rolled_in_hypothesis
from diffuser_mt.training_examples import make_masking_example


def drop_last_words(text_path, out_path):
    """Hypotheses for every line of ``text_path``: the reference without its last word (empty for one word)."""
    lines = text_path.read_text(encoding="utf-8").splitlines()
    out_path.write_text("".join(" ".join(line.split()[:-1]) + "\n" for line in lines), encoding="utf-8")
    return out_path


@pytest.fixture(scope="module")
def postedit_file(small_corpus, tmp_path_factory):
    return drop_last_words(small_corpus / "text" / "train.de", tmp_path_factory.mktemp("postedit") / "train.hyp.de")


def train_set(data, *options_):
    utils.import_user_module(argparse.Namespace(user_dir=str(REPO_ROOT / "fairseq_plugins")))
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(data), "--task", "diffuser", "--arch",
                                                "diffuser_tiny", "--seed", "3", *options_])
    task = tasks.setup_task(args)
    task.load_dataset("train")
    return task, task.datasets["train"]


@pytest.fixture(scope="module")
def mixed(small_corpus, postedit_file):
    return train_set(small_corpus / "bin", "--postedit-file", str(postedit_file), "--postedit-prob", "0.4",
                     "--rollin-prob", "0.25")


def is_postedit(task, dataset, index):
    hypothesis = dataset.hypotheses[index]
    return dataset.example(index).tagger_tokens == [task.special_ids.bos, *hypothesis]


def test_postedit_examples_take_the_hypothesis_to_the_reference(mixed):
    task, dataset = mixed
    dataset.set_epoch(1)
    found = 0
    for index in range(200):
        example = dataset.example(index)
        x0 = dataset.dataset.tgt[index][:-1].tolist()
        x_t = example.tagger_tokens[1:]
        assert apply_edits(x_t, example.tag_targets, fills_of(example.generator_targets, task.special_ids)) == x0
        if is_postedit(task, dataset, index):
            found += 1
            assert example.tag_targets.count(Tag.INSERT) == 1 and example.tag_targets[-1] == Tag.INSERT
    assert 0.25 < found / 200 < 0.55


def test_postedit_and_rollin_draws_follow_seed_epoch_and_index(mixed):
    task, dataset = mixed
    dataset.set_epoch(2)
    first = [(dataset.example(i).tagger_tokens, dataset[i]["rollin"]) for i in range(60)]
    dataset.set_epoch(3)
    other = [(dataset.example(i).tagger_tokens, dataset[i]["rollin"]) for i in range(60)]
    dataset.set_epoch(2)
    assert first == [(dataset.example(i).tagger_tokens, dataset[i]["rollin"]) for i in range(60)]
    assert first != other
    flags = np.array([dataset[i]["rollin"] for i in range(400)])
    assert 0.17 < flags.mean() < 0.33
    batch = dataset.collater([dataset[i] for i in range(8)])
    assert batch["rollin"].tolist() == [dataset[int(i)]["rollin"] for i in batch["id"]]


MASK_IDS = SpecialIds(bos=0, eos=2, pad=1, sentinels=tuple(range(3, 11)))
MASK_NOISE = NoiseVocabulary(40, special_ids=range(11))


@pytest.mark.parametrize("seed", range(30))
def test_masking_examples_replace_tokens_one_for_one_and_reconstruct_x0(seed):
    rng = np.random.default_rng(seed)
    x0 = rng.integers(11, 40, size=int(rng.integers(1, 12))).tolist()
    example = make_masking_example(x0, MASK_NOISE, MASK_IDS, np.random.default_rng([7, seed]))
    x_t, tags = example.tagger_tokens[1:], example.tag_targets
    fills = fills_of(example.generator_targets, MASK_IDS)
    assert apply_edits(x_t, tags, fills) == x0
    assert len(x_t) == len(x0) and tags[0] == Tag.KEEP and set(tags) <= {Tag.KEEP, Tag.REPLACE}
    assert all(a == b for a, b, tag in zip(x_t, x0, tags[1:]) if tag == Tag.KEEP)
    assert 1 <= tags.count(Tag.REPLACE) <= len(x0)


VISIBLE_IDS = SpecialIds(bos=0, eos=2, pad=1, sentinels=tuple(range(3, 11)), replaced_offset=40)


def generator_view(example, ids):
    """(x_t's tags as the generator's canvas marks them, the fills) of an example with visible replaced tokens."""
    inputs = example.generator_inputs
    canvas = inputs[1:inputs.index(ids.sentinels[0], inputs.index(ids.sentinels[0]) + 1)]  # up to the second S_0
    marked = [token >= ids.replaced_offset for token in canvas if token not in ids.sentinels]
    return [Tag.KEEP] + [Tag.REPLACE if flag else Tag.KEEP for flag in marked], fills_of(example.generator_targets,
                                                                                         ids)


@pytest.mark.parametrize("seed", range(30))
def test_unchanged_masked_tokens_are_rewritten_by_the_generator_and_kept_by_the_tagger(seed):
    rng = np.random.default_rng(seed)
    x0 = rng.integers(11, 40, size=int(rng.integers(1, 12))).tolist()
    example = make_masking_example(x0, MASK_NOISE, VISIBLE_IDS, np.random.default_rng([7, seed]), unchanged=0.5)
    x_t, tagger_tags = example.tagger_tokens[1:], example.tag_targets
    generator_tags, fills = generator_view(example, VISIBLE_IDS)
    assert apply_edits(x_t, generator_tags, fills) == x0
    assert all(g == Tag.REPLACE for t, g in zip(tagger_tags, generator_tags) if t == Tag.REPLACE)
    assert all(a == b for a, b, tag in zip(x_t, x0, tagger_tags[1:]) if tag == Tag.KEEP)


@pytest.mark.parametrize("ids", [MASK_IDS, VISIBLE_IDS], ids=["dropped", "visible"])
def test_a_masking_example_with_unchanged_tokens_rolls_in_to_x0_with_gold_draws(ids):
    for seed in range(20):
        x0 = list(range(11, 11 + 3 + seed % 9))
        example = make_masking_example(x0, MASK_NOISE, ids, np.random.default_rng([5, seed]), unchanged=0.5)
        x_t = example.tagger_tokens[1:]
        assert rolled_in_hypothesis(x_t, example.tag_targets, example.generator_inputs, example.generator_targets,
                                    example.generator_targets, ids) == x0


def test_the_unchanged_share_of_masked_tokens_is_the_option():
    unchanged = masked = 0
    for i in range(400):
        example = make_masking_example(list(range(11, 21)), MASK_NOISE, VISIBLE_IDS, np.random.default_rng([2, i]),
                                       unchanged=0.2)
        generator_tags, _ = generator_view(example, VISIBLE_IDS)
        masked += generator_tags.count(Tag.REPLACE)
        unchanged += sum(g == Tag.REPLACE and t == Tag.KEEP for t, g in zip(example.tag_targets, generator_tags))
    share, sigma = unchanged / masked, (0.2 * 0.8 / masked) ** 0.5
    assert abs(share - 0.2) < 4 * sigma


def test_without_an_unchanged_share_masking_examples_are_as_before():
    x0 = list(range(11, 30))
    for i in range(20):
        before = make_masking_example(x0, MASK_NOISE, MASK_IDS, np.random.default_rng([3, i]))
        assert make_masking_example(x0, MASK_NOISE, MASK_IDS, np.random.default_rng([3, i]), unchanged=0.0) == before


# ids 11..39; the even ones begin a word
WORD_NOISE = NoiseVocabulary(40, special_ids=range(11), is_word_start=np.arange(40) % 2 == 0)


def words_of(tokens):
    """Word bounds (start, end) of ``tokens`` under WORD_NOISE; the first token always begins one."""
    starts = [i for i, token in enumerate(tokens) if i == 0 or token % 2 == 0]
    return list(zip(starts, starts[1:] + [len(tokens)]))


@pytest.mark.parametrize("seed", range(30))
def test_word_masking_examples_mask_whole_words_and_reconstruct_x0(seed):
    rng = np.random.default_rng(seed)
    x0 = rng.integers(11, 40, size=int(rng.integers(1, 12))).tolist()
    example = make_masking_example(x0, WORD_NOISE, MASK_IDS, np.random.default_rng([7, seed]), unit="word")
    x_t, tags = example.tagger_tokens[1:], example.tag_targets
    assert apply_edits(x_t, tags, fills_of(example.generator_targets, MASK_IDS)) == x0
    assert len(x_t) == len(x0) and tags[0] == Tag.KEEP and set(tags) <= {Tag.KEEP, Tag.REPLACE}
    for start, end in words_of(x0):
        assert len(set(tags[start + 1:end + 1])) == 1  # a word is masked whole or not at all
    assert Tag.REPLACE in tags


def test_word_masking_examples_draw_the_masked_word_count_uniformly():
    x0 = [12, 13, 14, 16, 17, 19, 18, 20]  # five words: 12 13 | 14 | 16 17 19 | 18 | 20
    counts = []
    for i in range(3000):
        tags = make_masking_example(x0, WORD_NOISE, MASK_IDS, np.random.default_rng([1, i]), unit="word").tag_targets
        counts.append(sum(tags[start + 1] == Tag.REPLACE for start, _ in words_of(x0)))
    frequencies = np.bincount(counts, minlength=6)[1:] / len(counts)
    assert np.abs(frequencies - 0.2).max() < 0.03


def test_masking_examples_draw_the_masked_count_uniformly():
    counts = [make_masking_example(list(range(11, 21)), MASK_NOISE, MASK_IDS,
                                   np.random.default_rng([1, i])).tag_targets.count(Tag.REPLACE)
              for i in range(3000)]
    frequencies = np.bincount(counts, minlength=11)[1:] / len(counts)
    assert np.abs(frequencies - 0.1).max() < 0.025


def test_masking_examples_mix_in_by_their_own_seeded_draw(small_corpus):
    _, plain = train_set(small_corpus / "bin")
    _, masked = train_set(small_corpus / "bin", "--masking-prob", "0.5")
    for d in (plain, masked):
        d.set_epoch(1)
    same = [plain.example(i) == masked.example(i) for i in range(200)]
    assert 0.35 < np.mean(same) < 0.65
    kept_length = [len(masked.example(i).tagger_tokens) - 1 == len(masked.dataset.tgt[i]) - 1
                   for i in range(200) if not same[i]]
    assert all(kept_length)
    assert [masked.example(i) for i in range(20)] == [masked.example(i) for i in range(20)]


def test_with_word_units_the_task_masks_whole_words(small_corpus):
    task, dataset = train_set(small_corpus / "bin", "--masking-prob", "1", "--edit-unit", "word")
    dataset.set_epoch(1)
    symbols = task.target_dictionary.symbols
    split_words = 0
    for index in range(100):
        x0 = dataset.dataset.tgt[index][:-1].tolist()
        tags = dataset.example(index).tag_targets
        starts = [i for i, token in enumerate(x0) if i == 0 or symbols[token].startswith("\u2581")]
        for start, end in zip(starts, starts[1:] + [len(x0)]):
            split_words += len(set(tags[start + 1:end + 1])) > 1
    assert split_words == 0


def test_word_error_examples_mix_in_by_their_own_seeded_draw_and_bring_words_of_the_targets(small_corpus):
    _, plain = train_set(small_corpus / "bin")
    task, errors = train_set(small_corpus / "bin", "--word-errors-prob", "0.5")
    for d in (plain, errors):
        d.set_epoch(1)
    known = set(task.words.words)
    assert known and all(words[0] in task.noise_vocab.word_start_ids for words in known)
    changed = [i for i in range(200) if plain.example(i) != errors.example(i)]
    assert 0.35 < len(changed) / 200 < 0.65
    for index in changed:
        x0 = errors.dataset.tgt[index][:-1].tolist()
        example = errors.example(index)
        x_hat = example.tagger_tokens[1:]
        assert apply_edits(x_hat, example.tag_targets, fills_of(example.generator_targets, task.special_ids)) == x0
        assert abs(len(x_hat) - len(x0)) <= 3 * max(map(len, known))
    assert [errors.example(i) for i in range(20)] == [errors.example(i) for i in range(20)]


def test_the_linear_noise_schedule_keeps_more_of_x0_in_the_training_examples(small_corpus):
    def kept_share(dataset):
        dataset.set_epoch(1)
        tags = [dataset.example(i).tag_targets[1:] for i in range(300)]
        return np.mean([np.isin(t, [Tag.KEEP, Tag.INSERT]).mean() for t in tags if t])

    constant, linear = (kept_share(train_set(small_corpus / "bin", "--noise-schedule", name)[1])
                        for name in ("constant", "linear"))
    assert linear > constant + 0.15, (constant, linear)


def test_corrupted_examples_do_not_change_when_postedit_pairs_are_mixed_in(small_corpus, mixed):
    task, dataset = mixed
    _, plain = train_set(small_corpus / "bin")
    for d in (dataset, plain):
        d.set_epoch(1)
    for index in range(100):
        if not is_postedit(task, dataset, index):
            assert dataset.example(index) == plain.example(index)


def test_validation_has_neither_postedit_pairs_nor_rollin(small_corpus, postedit_file):
    task, _ = train_set(small_corpus / "bin", "--postedit-file", str(postedit_file), "--postedit-prob", "1",
                        "--rollin-prob", "1")
    task.load_dataset("valid")
    valid = task.datasets["valid"]
    assert valid.hypotheses is None and not any(valid[i]["rollin"] for i in range(20))


def test_training_with_rollin_and_postedit_pairs_lowers_both_losses(small_corpus, postedit_file, tmp_path):
    result = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "30",
                     "--postedit-file", postedit_file, "--postedit-prob", "0.3", "--rollin-prob", "0.5",
                     "--save-dir", tmp_path, "--log-format", "json", "--log-interval", "5")
    records = json_log(result.stdout, "train_inner")
    assert records[-1]["tagger_loss"] < records[0]["tagger_loss"]
    assert records[-1]["generator_loss"] < records[0]["generator_loss"]
    assert all(0.0 <= float(record["rollin_edit_share"]) <= 1.0 for record in records)
    assert float(records[0]["rollin_edit_share"]) > 0.0  # an untrained generator's fills are mostly wrong


def test_a_small_rollin_token_share_gives_sparse_errors(small_corpus, tmp_path):
    def edit_share(token_share):
        result = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "4",
                         "--rollin-prob", "1", "--rollin-token-share", token_share, "--save-dir",
                         tmp_path / token_share, "--log-format", "json", "--log-interval", "1", "--no-save")
        return np.mean([float(record["rollin_edit_share"]) for record in json_log(result.stdout, "train_inner")])

    dense, sparse = edit_share("1"), edit_share("0.1")
    assert dense > 0.5 and sparse < 0.5 * dense, (dense, sparse)


@pytest.mark.parametrize("extra, message", [
    (["--postedit-prob", "0.5"], "--postedit-prob needs --postedit-file"),
    (["--rollin-prob", "1.5"], "--rollin-prob must lie in [0, 1]"),
    (["--masking-prob", "-0.1"], "--masking-prob must lie in [0, 1]"),
    (["--word-errors-prob", "1.5"], "--word-errors-prob must lie in [0, 1]"),
    (["--word-errors-prob", "0.5", "--word-errors-max", "0"], "--word-errors-max must be >= 1"),
    (["--rollin-prob", "0.5", "--rollin-token-share", "0"], "--rollin-token-share must lie in (0, 1]"),
    (["--repetition-noise", "0.5", "--edit-unit", "word"], "repetition_noise needs token units"),
    (["--noise-schedule", "linear", "--corruption-keep", "0.9", "--corruption-replace", "0", "--corruption-delete",
      "0"], "linear schedule needs replace or delete mass"),
])
def test_bad_hypothesis_training_options_stop_with_one_line(small_corpus, tmp_path, extra, message):
    result = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "1",
                     "--save-dir", tmp_path, *extra, check=False)
    assert result.returncode != 0 and message in result.stderr.strip().splitlines()[-1]


def test_postedit_file_with_the_wrong_line_count_stops_with_one_line(small_corpus, tmp_path):
    short = tmp_path / "short.de"
    short.write_text("ein Satz\n", encoding="utf-8")
    result = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "1",
                     "--save-dir", tmp_path, "--postedit-file", short, "--postedit-prob", "0.5", check=False)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0 and last.startswith("error: --postedit-file") and "1 lines" in last


def test_decoded_train_split_feeds_postediting_and_a_kd_corpus(small_corpus, tmp_path):
    ar_dir = tmp_path / "ar"  # 20 updates: the session's 10-update transformer writes empty lines, which KD refuses
    ar = subprocess.run([sys.executable, REPO_ROOT / "data_scripts" / "ar_baseline.py", "--data", small_corpus / "bin",
                         "--reference", small_corpus / "text" / "test.de", "--save-dir", ar_dir, "--model-size", "tiny",
                         "--max-update", "20", "--warmup-updates", "10", "--max-tokens", "2000", "--num-workers", "0",
                         "--beam", "1"], capture_output=True, text=True)
    assert ar.returncode == 0, ar.stderr[-2000:]
    hypotheses, kd = tmp_path / "train.hyp.de", tmp_path / "kd"
    decode = subprocess.run([sys.executable, REPO_ROOT / "data_scripts" / "decode_train_split.py",
                             "--data", small_corpus / "bin", "--path", ar_dir / "checkpoint_best.pt",
                             "--out", hypotheses,
                             "--beam", "1", "--max-len-b", "8", "--kd-dest-dir", kd], capture_output=True, text=True)
    assert decode.returncode == 0, decode.stderr[-2000:]
    references = (small_corpus / "text" / "train.de").read_text(encoding="utf-8").splitlines()
    written = hypotheses.read_text(encoding="utf-8").splitlines()
    assert len(written) == len(references) and written != references
    assert (kd / "dict.de.txt").read_bytes() == (small_corpus / "bin" / "dict.de.txt").read_bytes()
    for split in ("valid", "test"):
        name = f"{split}.en-de.de.bin"
        assert (kd / name).read_bytes() == (small_corpus / "bin" / name).read_bytes()
    _, kd_train = train_set(kd)
    spm = sentencepiece.SentencePieceProcessor(model_file=str(small_corpus / "text" / "spm.model"))
    first = kd_train.dataset.tgt[0][:-1].tolist()
    assert first == [kd_train.dataset.tgt_dict.index(piece) for piece in spm.encode(written[0], out_type=str)]
    trained = fairseq("fairseq-train", small_corpus / "bin", *DIFFUSER_TINY, "--max-update", "3", "--save-dir",
                      tmp_path / "diffuser", "--postedit-file", hypotheses, "--postedit-prob", "0.5")
    assert "done training" in trained.stderr + trained.stdout


def test_unigram_noise_counts_the_train_targets_not_the_joined_dictionary(small_corpus):
    task, dataset = train_set(small_corpus / "bin", "--noise-distribution", "unigram")
    pairs = dataset.dataset
    target_ids = np.concatenate([pairs.tgt[i].numpy() for i in range(len(pairs.tgt))])
    source_ids = np.concatenate([pairs.src[i].numpy() for i in range(len(pairs.src))])
    expected = np.bincount(target_ids, minlength=len(task.tgt_dict)).astype(np.float64)
    assert np.array_equal(task.noise_vocab.weights, expected)
    source_only = np.setdiff1d(source_ids, target_ids)
    assert source_only.size and not task.noise_vocab.weights[source_only].any()
    drawn = task.noise_vocab.sample(np.random.default_rng(0), 2000)
    assert np.isin(drawn, target_ids).all()
