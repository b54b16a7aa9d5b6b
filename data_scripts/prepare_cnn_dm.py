#!/usr/bin/env python
"""CNN/DailyMail summarization (non-anonymized, cased) for fairseq: article -> highlights.

    python data_scripts/prepare_cnn_dm.py --from DIR     # the original .story files and url lists
    python data_scripts/prepare_cnn_dm.py                # the Hugging Face dataset (needs `datasets`, online)

1. Examples: with ``--from DIR``, the stories of ``DIR/cnn/stories`` and/or
   ``DIR/dailymail/stories`` (or ``cnn_stories``/``dm_stories``), split by
   ``DIR/url_lists/all_{train,val,test}.txt`` (sha1 of the URL) and extracted as
   ``data_scripts/cnn_dm.py`` describes; otherwise the Hugging Face
   ``cnn_dailymail`` 3.0.0 dataset (the same extraction, done by its builder).
   Stories without highlights are skipped and counted.
2. Into ``--text-dir``: ``{train,valid,test}.source`` (articles) and ``.target``
   (summaries, sentences joined by `` <n> ``: the references for
   ``diffuser-mt score --metric rouge``), a joint sentencepiece model
   (``spm.model``, ``<n>`` a piece of its own) and the splits as pieces
   (``SPLIT.spm.source``/``.target``), sources truncated to ``--max-source-tokens``
   and summaries to ``--max-target-tokens`` pieces.
3. Into ``--dest-dir``: ``fairseq-preprocess --joined-dictionary`` output
   (languages ``source`` and ``target``) and ``manifest.json`` with
   ``"task": "summarization"`` (so ``--task diffuser`` starts decoding from the
   source by default) and the counts of kept, skipped and truncated examples.

Both output folders are built under temporary names and renamed into place only
when everything succeeded; a missing input is one error line naming it.
"""
from __future__ import annotations

import argparse
import functools
import itertools
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: the imports below need it (noqa: E402)

from data_scripts.cnn_dm import (  # noqa: E402
    SENTENCE_SEPARATOR, URL_LISTS, SplitStats, Story, find_story_dirs, index_stories, parse_story,
    read_url_list, spm_training_lines, summary_line, url_hash)
from data_scripts import corpus_build  # noqa: E402
from data_scripts.corpus_build import (  # noqa: E402
    add_output_arguments, add_parallelism_arguments, binarize, build_and_publish, check_outputs, load_sentencepiece,
    non_negative_int, positive_int, run, train_sentencepiece)
from diffuser_mt.textio import InputError, read_lines  # noqa: E402

PROGRAM = "prepare_cnn_dm"
SPLITS = ("train", "valid", "test")
SIDES = ("source", "target")
HF_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
ENCODE_CHUNK = 5_000  # examples encoded at a time
Example = tuple[str, str]  # (article, summary line)
stage = functools.partial(corpus_build.stage, PROGRAM)  # progress lines "prepare_cnn_dm: MESSAGE"


def parse_args(argv=None) -> argparse.Namespace:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="from_dir", type=Path,
                        help="folder with cnn/stories and/or dailymail/stories and url_lists/all_{train,val,test}.txt; "
                             "without it, the Hugging Face dataset is loaded")
    parser.add_argument("--allow-missing-stories", action="store_true",
                        help="with --from: skip (and count) listed URLs whose story file is absent, e.g. to use "
                             "the CNN stories alone; by default a missing story is an error")
    parser.add_argument("--hf-dataset", default="abisee/cnn_dailymail",
                        help="without --from: Hugging Face dataset id (default: %(default)s, formerly cnn_dailymail)")
    parser.add_argument("--hf-config", default="3.0.0", help="without --from: its version (default: %(default)s)")
    add_output_arguments(parser, "data/cnn_dm", "data-bin/cnn_dm")
    parser.add_argument("--vocab-size", type=positive_int, default=32000,
                        help="joint sentencepiece vocabulary size (default: %(default)s)")
    parser.add_argument("--spm-model", type=Path,
                        help="use this existing sentencepiece model (it must have <n> as a piece) instead of "
                             "training one")
    parser.add_argument("--spm-sample", type=positive_int, default=2_000_000,
                        help="sentencepiece trains on this many randomly chosen training sentences "
                             "(default: %(default)s)")
    parser.add_argument("--max-source-tokens", type=non_negative_int, default=400,
                        help="truncate articles to this many sentencepiece pieces, as pointer-generator and "
                             "BART-style setups truncate; 0 keeps them whole (default: %(default)s)")
    parser.add_argument("--max-target-tokens", type=non_negative_int, default=256,
                        help="truncate the binarized summaries to this many pieces (the .target references "
                             "stay whole); 0 keeps them whole (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of sentencepiece's sampling (default: %(default)s)")
    add_parallelism_arguments(parser)
    return parser.parse_args(argv)


def story_examples(folder: Path, allow_missing: bool) -> tuple[dict[str, list[Example]], dict[str, SplitStats]]:
    """The examples of each split from the story files and url lists of ``folder``."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such directory")
    missing_lists = [folder / name for name in URL_LISTS.values() if not (folder / name).is_file()]
    if missing_lists:
        raise InputError(f"missing url list{'s' * (len(missing_lists) > 1)} "
                         f"{', '.join(str(path) for path in missing_lists)}")
    story_dirs = find_story_dirs(folder)
    stage(f"indexing the stories of {', '.join(str(path) for path in story_dirs.values())}")
    stories = index_stories(story_dirs)
    examples, stats = {}, {}
    for split, url_list in URL_LISTS.items():
        urls = read_url_list(folder / url_list)
        split_stats, split_examples, first_missing = SplitStats(urls=len(urls)), [], None
        for url in tqdm(urls, desc=split, unit=" stories", file=sys.stderr):
            path = stories.get(url_hash(url))
            if path is None:
                split_stats.missing += 1
                first_missing = first_missing or url
                continue
            story = parse_story(read_lines(path))
            if split_stats.count(story):
                split_examples.append((story.article, summary_line(story.highlights)))
        if split_stats.missing and not allow_missing:
            raise InputError(f"{split_stats.missing} of the {len(urls)} stories of {folder / url_list} are not in "
                             f"{' or '.join(str(path) for path in story_dirs.values())} (first: "
                             f"{url_hash(first_missing)}.story for {first_missing}); pass --allow-missing-stories "
                             "to skip them")
        examples[split], stats[split] = split_examples, split_stats
    return examples, stats


def hf_examples(name: str, config: str) -> tuple[dict[str, list[Example]], dict[str, SplitStats]]:
    """The examples of each split of the Hugging Face dataset (``datasets`` only when it is installed)."""
    try:
        import datasets
    except ImportError:
        raise InputError("loading CNN/DailyMail from Hugging Face needs the `datasets` package "
                         "(pip install datasets); or pass --from DIR with the .story files and url lists") from None
    stage(f"loading the Hugging Face dataset {name} {config}")
    try:
        dataset = datasets.load_dataset(name, config)
    except Exception as err:  # network, hub and cache errors all mean the same here
        raise InputError(f"loading the Hugging Face dataset {name} {config} failed: "
                         f"{' '.join(str(err).split())}") from None
    examples, stats = {}, {}
    for split, hf_split in HF_SPLITS.items():
        split_stats, split_examples = SplitStats(urls=len(dataset[hf_split])), []
        for record in tqdm(dataset[hf_split], desc=split, unit=" stories", file=sys.stderr):
            highlights = tuple(line.strip() for line in record["highlights"].split("\n") if line.strip())
            story = Story(record["article"].strip(), highlights)
            if split_stats.count(story):
                split_examples.append((story.article, summary_line(story.highlights)))
        examples[split], stats[split] = split_examples, split_stats
    return examples, stats


def write_text(text_dir: Path, examples: dict[str, list[Example]]) -> None:
    """``SPLIT.source`` and ``SPLIT.target``, one example per line."""
    for split, pairs in examples.items():
        if not pairs:
            raise InputError(f"the {split} split has no stories with highlights")
        for index, side in enumerate(SIDES):
            with open(text_dir / f"{split}.{side}", "w", encoding="utf-8") as out:
                out.writelines(f"{pair[index]}\n" for pair in pairs)


def sentencepiece_model(args: argparse.Namespace, text_dir: Path, train: list[Example]) -> Path:
    """``TEXT_DIR/spm.model``: trained on the training articles and summaries, or a copy of --spm-model."""
    model = text_dir / "spm.model"
    if args.spm_model is not None:
        shutil.copyfile(args.spm_model, model)
        return model
    corpus = text_dir / "spm_train.txt"
    with open(corpus, "w", encoding="utf-8") as out:
        for article, summary in train:
            out.writelines(f"{line}\n" for line in spm_training_lines(article))
            out.writelines(f"{line.strip()}\n" for line in summary.split(SENTENCE_SEPARATOR))
    stage(f"training the sentencepiece model (vocabulary {args.vocab_size}, <n> as a piece)")
    trained = train_sentencepiece([corpus], text_dir / "spm", args.vocab_size, args.seed,
                                  user_defined_symbols=(SENTENCE_SEPARATOR,), input_sentence_size=args.spm_sample,
                                  num_threads=args.threads)
    corpus.unlink()
    return trained


def check_separator_piece(model: Path) -> None:
    """InputError when the model does not keep ``<n>`` as one piece (the separator would not survive)."""
    if SENTENCE_SEPARATOR not in load_sentencepiece(model).encode(f"a {SENTENCE_SEPARATOR} b", out_type=str):
        raise InputError(f"{model}: {SENTENCE_SEPARATOR} is not one of its pieces; train it with "
                         f"user_defined_symbols={SENTENCE_SEPARATOR} (or leave out --spm-model)")


def encode_splits(args: argparse.Namespace, text_dir: Path, model: Path) -> dict[str, dict[str, int]]:
    """``SPLIT.spm.source``/``.target``, truncated as the options say; returns the truncation counts."""
    processor = load_sentencepiece(model)
    limits = {"source": args.max_source_tokens, "target": args.max_target_tokens}
    truncated = {side: {} for side in SIDES}
    for split, side in itertools.product(SPLITS, SIDES):
        count = 0
        with open(text_dir / f"{split}.{side}", encoding="utf-8") as lines, \
                open(text_dir / f"{split}.spm.{side}", "w", encoding="utf-8") as out, \
                tqdm(desc=f"encoding {split}.{side}", unit=" lines", file=sys.stderr) as progress:
            while chunk := [line.rstrip("\n") for line in itertools.islice(lines, ENCODE_CHUNK)]:
                for pieces in processor.encode(chunk, out_type=str, num_threads=args.threads):
                    if limits[side] and len(pieces) > limits[side]:
                        pieces, count = pieces[:limits[side]], count + 1
                    out.write(" ".join(pieces) + "\n")
                progress.update(len(chunk))
        truncated[side][split] = count
    return truncated


def manifest(args: argparse.Namespace, stats: dict[str, SplitStats], truncated: dict) -> dict:
    """What the corpus holds and how it was made."""
    return {
        "task": "summarization",
        "corpus": "CNN/DailyMail (non-anonymized, cased: abisee/cnn-dailymail and Hugging Face cnn_dailymail 3.0.0 "
                  "extraction)",
        "source_lang": "source",
        "target_lang": "target",
        "inputs": str(args.from_dir) if args.from_dir else f"huggingface:{args.hf_dataset}/{args.hf_config}",
        "sentence_separator": SENTENCE_SEPARATOR,
        "pairs": {split: split_stats.kept for split, split_stats in stats.items()},
        "stories": {split: asdict(split_stats) for split, split_stats in stats.items()},
        "skipped_no_highlights": sum(split_stats.no_highlights for split_stats in stats.values()),
        "max_source_tokens": args.max_source_tokens,
        "max_target_tokens": args.max_target_tokens,
        "truncated_sources": truncated["source"],
        "truncated_targets": truncated["target"],
        "vocab_size": None if args.spm_model else args.vocab_size,
        "spm_model_from": str(args.spm_model) if args.spm_model else None,
        "seed": args.seed,
        "text_dir": str(args.text_dir),
        "sentencepiece_model": str(args.text_dir / "spm.model"),
    }


def build(args: argparse.Namespace, examples: dict[str, list[Example]], stats: dict[str, SplitStats],
          text_dir: Path, dest_dir: Path) -> None:
    """Write text, sentencepiece and binarized data into the two (staging) directories."""
    write_text(text_dir, examples)
    model = sentencepiece_model(args, text_dir, examples["train"])
    check_separator_piece(model)
    truncated = encode_splits(args, text_dir, model)
    binarize(PROGRAM, text_dir, dest_dir, args.workers, SIDES, manifest(args, stats, truncated))


def prepare(args: argparse.Namespace) -> None:
    """Read the stories, build both directories under temporary names, then publish them."""
    check_outputs(args.text_dir, args.dest_dir)
    if args.spm_model is not None:
        check_separator_piece(args.spm_model)
    if args.from_dir is not None:
        examples, stats = story_examples(args.from_dir, args.allow_missing_stories)
    else:
        examples, stats = hf_examples(args.hf_dataset, args.hf_config)
    for split, split_stats in stats.items():
        stage(f"{split}: {split_stats.kept} of {split_stats.urls} stories kept ({split_stats.missing} missing, "
              f"{split_stats.no_highlights} skipped without highlights, {split_stats.empty_article} without "
              "article text)")
    build_and_publish(PROGRAM, args.text_dir, args.dest_dir, functools.partial(build, args, examples, stats))


def main(argv=None) -> None:
    """Entry point: one clear line and exit status 1 on bad input."""
    run(prepare, parse_args, argv)


if __name__ == "__main__":
    main()
