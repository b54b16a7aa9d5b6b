#!/usr/bin/env python
"""Controlled post-editing: can DiffusER undo one wrong word in an otherwise correct sentence?

    python benchmarks/postedit_check.py --path checkpoints/diffuser/checkpoint_best.pt --out-dir benchmarks/results

Every test reference gets one single-word edit (seeded): a word substituted by a
word of the training targets, a word dropped, or a word duplicated (the three in
turn). DiffusER decodes from these drafts (``--init-mode file``, greedy,
``--decode-steps`` steps, 2 by default) and the check counts, per kind of edit,
the share of sentences restored exactly to the reference and the share left
unchanged. The other sentences (changed, not restored) are split by where the
edits landed (``edit_location``): at the wrong word only (within one word of it:
the right place, a wrong fill), there and elsewhere, or elsewhere only. Figures go
to ``OUT_DIR/postedit_check.NAME.json`` and ``.md``.

With ``--gold-tags`` the tagger is replaced by the gold edits (``diffuser_mt.gold_tags``): every step edits
exactly the words where the text differs from its reference, and only the fills are the model's. The share
restored is then the ceiling of any tagger with this generator (a duplicated word is always restored: its edit
is a deletion), and the check's figures split into the tagger's part and the generator's. The run also reports,
per kind, how often the model's own tagger ranks an error position first (its highest 1 - P(KEEP) lies on a
position the gold edits change): its detection, free of any threshold or keep bias.
"""
from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: the imports below need it (noqa: E402)

from data_scripts.fairseq_tools import USER_DIR, run_fairseq  # noqa: E402
from diffuser_mt.confidence import token_confidences  # noqa: E402
from diffuser_mt.drafts import piece_encoder  # noqa: E402
from diffuser_mt.edit_decoder import DecodeConfig, decode  # noqa: E402
from diffuser_mt.generation_output import read_hypotheses  # noqa: E402
from diffuser_mt.gold_tags import (GoldTagModel, chance_of_error_first, chance_of_least_confident_at_error,  # noqa: E402
                                   error_ranked_first, least_confident_at_error)
from diffuser_mt.metrics import corpus_bleu  # noqa: E402
from diffuser_mt.start_states import length_limit  # noqa: E402
from diffuser_mt.textio import InputError, atomic_write, read_lines  # noqa: E402

EDIT_KINDS = ("substitute", "drop", "duplicate")
LOCATIONS = ("at the error only", "at the error and elsewhere", "elsewhere only")  # of a changed, unrestored draft


def single_word_edit(words: list[str], kind: str, rng: np.random.Generator, vocabulary: list[str]) -> list[str]:
    """``words`` with one word substituted (by a different word of ``vocabulary``), dropped or duplicated."""
    if not words:
        raise ValueError("a single-word edit needs at least one word")
    position = int(rng.integers(len(words)))
    if kind == "drop":
        return words[:position] + words[position + 1:]
    if kind == "duplicate":
        return words[:position + 1] + words[position:]
    if kind != "substitute":
        raise ValueError(f"kind must be one of {EDIT_KINDS}, got {kind!r}")
    while True:
        other = vocabulary[int(rng.integers(len(vocabulary)))]
        if other != words[position]:
            return words[:position] + [other] + words[position + 1:]


def make_drafts(references: list[str], vocabulary: list[str], seed: int) -> tuple[list[str], list[str]]:
    """One edited draft per reference and the kind of its edit (EDIT_KINDS in turn)."""
    rng = np.random.default_rng(seed)
    kinds = [EDIT_KINDS[i % len(EDIT_KINDS)] for i in range(len(references))]
    drafts = [" ".join(single_word_edit(ref.split(), kind, rng, vocabulary)) for ref, kind in zip(references, kinds)]
    return drafts, kinds


def changed_positions(before: list[str], after: list[str]) -> set[int]:
    """Word positions of ``before`` that an alignment to ``after`` does not keep; an insertion marks the words on
    both sides of it."""
    positions = set()
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag != "equal":
            positions |= set(range(i1, i2)) if i2 > i1 else {i1 - 1, i1}
    return positions


def edit_location(reference: str, draft: str, output: str) -> str:
    """Where DiffusER's edits of ``draft`` landed, one of LOCATIONS, for an output that changed the draft without
    restoring the reference: the error is the draft's words the alignment to the reference does not keep, and
    "at the error" means within one word of it."""
    draft_words = draft.split()
    error = changed_positions(draft_words, reference.split())
    near = {position + shift for position in error for shift in (-1, 0, 1)}
    edited = changed_positions(draft_words, output.split())
    if not edited & near:
        return "elsewhere only"
    return "at the error only" if edited <= near else "at the error and elsewhere"


def shares(references: list[str], drafts: list[str], outputs: list[str], kinds: list[str]) -> dict:
    """Per kind and overall: sentences, share restored exactly, share left unchanged, and per LOCATIONS the share
    of the sentences changed, not restored, with their edits there (the five shares sum to 1)."""
    result = {}
    for kind in (*EDIT_KINDS, "all"):
        rows = [i for i, k in enumerate(kinds) if kind in ("all", k)]
        size = max(len(rows), 1)
        wrong = [edit_location(references[i], drafts[i], outputs[i]) for i in rows
                 if outputs[i] not in (references[i], drafts[i])]
        result[kind] = {"sentences": len(rows),
                        "restored": sum(outputs[i] == references[i] for i in rows) / size,
                        "unchanged": sum(outputs[i] == drafts[i] for i in rows) / size,
                        "edited": {location: wrong.count(location) / size for location in LOCATIONS}}
    return result


def detection_shares(detected: list[float], kinds: list[str]) -> dict:
    """Per kind and overall: the mean of ``detected`` (one flag or probability per draft)."""
    return {kind: float(np.mean([flag for flag, k in zip(detected, kinds) if kind in ("all", k)] or [0.0]))
            for kind in (*EDIT_KINDS, "all")}


SHARED_OPTIONS = ("data", "path", "reference", "train_targets", "spm_model", "out_dir", "name", "batch_size",
                  "keep_bias", "remask_share", "verify_edits", "whole_word_edits", "max_len_a", "max_len_b", "seed")


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """The options this check shares with benchmarks/refinement.py (SHARED_OPTIONS), which passes them on."""
    parser.add_argument("--data", type=Path, default=Path("data-bin/ding.en-de"), help="binarized data dir")
    parser.add_argument("--path", type=Path, required=True, help="DiffusER checkpoint")
    parser.add_argument("--reference", type=Path, default=Path("data/ding/test.de"), help="raw test references")
    parser.add_argument("--train-targets", type=Path, default=Path("data/ding/train.de"),
                        help="raw training targets: the words the post-editing check's substitutions draw from")
    parser.add_argument("--spm-model", type=Path, default=Path("data/ding/spm.model"), help="sentencepiece model")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="results folder")
    parser.add_argument("--name", default="diffuser", help="names the results files")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--keep-bias", type=float, default=0.0, help="the diffuser task's --keep-bias")
    parser.add_argument("--remask-share", type=float, default=0.0, help="the diffuser task's --remask-share")
    parser.add_argument("--verify-edits", action=argparse.BooleanOptionalAction, default=False,
                        help="the diffuser task's --verify-edits")
    parser.add_argument("--whole-word-edits", action=argparse.BooleanOptionalAction, default=False,
                        help="the diffuser task's --whole-word-edits")
    parser.add_argument("--max-len-a", type=float, default=1.2, help="length cap: a * source length + b")
    parser.add_argument("--max-len-b", type=int, default=10, help="length cap: a * source length + b")
    parser.add_argument("--seed", type=int, default=1)


def shared_options(args: argparse.Namespace) -> list[str]:
    """The SHARED_OPTIONS of ``args`` as command-line arguments (a flag: --name or --no-name)."""
    arguments = []
    for name in SHARED_OPTIONS:
        option, value = f"--{name.replace('_', '-')}", getattr(args, name)
        if isinstance(value, bool):
            arguments.append(option if value else f"--no-{option[2:]}")
        else:
            arguments += [option, str(value)]
    return arguments


def decoder_flags(args: argparse.Namespace) -> list[str]:
    """fairseq-generate's --verify-edits and --whole-word-edits when asked for (a fairseq flag has no --no- form)."""
    return [flag for flag, wanted in (("--verify-edits", args.verify_edits),
                                      ("--whole-word-edits", args.whole_word_edits)) if wanted]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shared_arguments(parser)
    parser.add_argument("--decode-steps", type=int, default=2, help="edit steps from the draft")
    parser.add_argument("--gold-tags", action="store_true",
                        help="replace the tagger by the gold word edits towards each reference: the generator alone")
    args = parser.parse_args(argv)
    if args.gold_tags and (args.keep_bias or args.remask_share or args.verify_edits or args.whole_word_edits):
        parser.error("--gold-tags replaces the tagger: --keep-bias, --remask-share, --verify-edits and "
                     "--whole-word-edits do not apply")
    return args


def fairseq_outputs(args: argparse.Namespace, draft_file: Path, sentences: int) -> list[str]:
    """DiffusER's outputs from the drafts: fairseq-generate --task diffuser --init-mode file."""
    generate_output = args.out_dir / f"postedit_generate.{args.name}.txt"
    run_fairseq("fairseq-generate", [
        args.data, "--user-dir", USER_DIR, "--task", "diffuser", "--gen-subset", "test", "--path", args.path,
        "--init-mode", "file", "--init-file", draft_file, "--init-spm-model", args.spm_model,
        "--decode-steps", args.decode_steps, "--bpe", "sentencepiece", "--sentencepiece-model", args.spm_model,
        "--max-len-a", args.max_len_a, "--max-len-b", args.max_len_b, "--keep-bias", args.keep_bias,
        "--remask-share", args.remask_share, *decoder_flags(args), "--batch-size", args.batch_size,
        "--required-batch-size-multiple", 1,
        "--cpu", "--seed", args.seed,
    ], stdout_path=generate_output)
    outputs = read_hypotheses(generate_output, prefix="D")
    if len(outputs) != sentences:
        raise InputError(f"{generate_output}: {len(outputs)} hypotheses for {sentences} references")
    return outputs


# the detection figures of --gold-tags, per draft: found (a bool) and its chance for a random ranking
DETECTION_FIGURES = ("tagger_ranks_error_first", "error_first_by_chance",
                     "generator_least_confident_at_error", "generator_at_error_by_chance")


def gold_tag_outputs(args: argparse.Namespace, draft_file: Path) -> tuple[list[str], dict[str, list]]:
    """DiffusER's outputs from the drafts with gold word tags (``diffuser_mt.gold_tags``), greedy fills, decoded
    in this process as fairseq-generate would (same drafts, same length cap); and per draft, the DETECTION_FIGURES:
    whether the model's own tagger is least sure to keep a position the gold tags edit, whether the token its
    generator is least confident of as a refill (``diffuser_mt.confidence``) is at an error, and the chance of
    each for a random ranking."""
    import fairseq_plugins  # noqa: F401  (registers the task and models)
    from fairseq import checkpoint_utils

    from fairseq_plugins.diffuser_generator import FairseqEditModel

    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(args.path)], arg_overrides={
        "data": str(args.data), "init_mode": "file", "init_file": str(draft_file),
        "init_spm_model": str(args.spm_model)})
    model = models[0].eval()
    task.load_dataset("test")
    pairs, drafts = task.datasets["test"].dataset, task.init_tokens
    vocab = task.decode_vocabulary()
    ids = task.special_ids
    pieces = piece_encoder(args.spm_model, None, "--spm-model")
    config = DecodeConfig(steps=args.decode_steps)
    outputs, detection = [], {figure: [] for figure in DETECTION_FIGURES}
    with torch.no_grad():
        for start in tqdm(range(0, len(pairs), args.batch_size), desc="gold tags", unit="batch"):
            rows = range(start, min(len(pairs), start + args.batch_size))
            sources = [pairs[i]["source"] for i in rows]
            edit_model = FairseqEditModel.for_sources(model, sources, ids.bos, ids.pad)
            gold = GoldTagModel(edit_model, [pairs[i]["target"][:-1].tolist() for i in rows], "word",
                                vocab.word_starts.numpy())
            starts = [drafts[i] for i in rows]
            own_tags = edit_model.tag_log_probs(range(len(starts)), starts)
            confidences = token_confidences(edit_model, range(len(starts)), starts, vocab)
            for row, (own, confidence, start_state) in enumerate(zip(own_tags, confidences, starts)):
                gold_tags = gold.gold_tags(row, start_state)
                values = (error_ranked_first(own, gold_tags), chance_of_error_first(gold_tags),
                          least_confident_at_error(confidence, gold_tags),
                          chance_of_least_confident_at_error(gold_tags))
                for figure, value in zip(DETECTION_FIGURES, values):
                    detection[figure].append(value)
            limits = [length_limit(len(source), args.max_len_a, args.max_len_b, len(drafts[i]))
                      for source, i in zip(sources, rows)]
            results = decode(gold, starts, vocab, config, max_lengths=limits)
            outputs += [pieces.decode([task.tgt_dict[token] for token in hypotheses[0].tokens])
                        for hypotheses in results]
    return outputs, detection


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        references = read_lines(args.reference, allow_empty_lines=False)
        vocabulary = sorted({word for line in read_lines(args.train_targets) for word in line.split()})
        drafts, kinds = make_drafts(references, vocabulary, args.seed)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        draft_file = args.out_dir / f"postedit_drafts.{args.name}.de"
        with atomic_write(draft_file) as out:
            out.writelines(d + "\n" for d in drafts)
        detection = {}
        if args.gold_tags:
            outputs, detection = gold_tag_outputs(args, draft_file)
            with atomic_write(args.out_dir / f"postedit_outputs.{args.name}.de") as out:
                out.writelines(o + "\n" for o in outputs)
        else:
            outputs = fairseq_outputs(args, draft_file, len(references))
    except (InputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    result = {"checkpoint": str(args.path), "decode_steps": args.decode_steps, "seed": args.seed,
              "gold_tags": args.gold_tags,
              "shares": shares(references, drafts, outputs, kinds),
              **{figure: detection_shares(detection[figure], kinds) if detection else None
                 for figure in DETECTION_FIGURES},
              "draft_bleu": corpus_bleu(drafts, references)["bleu"],
              "output_bleu": corpus_bleu(outputs, references)["bleu"]}
    with atomic_write(args.out_dir / f"postedit_check.{args.name}.json") as out:
        json.dump(result, out, indent=2)
    tagger = "gold tags, " if args.gold_tags else ""
    lines = [f"Controlled post-editing ({args.name}, {tagger}{args.decode_steps} steps, `{' '.join(sys.argv)}`)", "",
             "| edit | sentences | restored exactly | left unchanged | changed, not restored: "
             + " / ".join(LOCATIONS) + " |", "|---|---|---|---|---|"]
    lines += [f"| {kind} | {row['sentences']} | {row['restored']:.1%} | {row['unchanged']:.1%} | "
              + " / ".join(f"{row['edited'][location]:.1%}" for location in LOCATIONS) + " |"
              for kind, row in result["shares"].items()]
    lines += ["", f"BLEU of the drafts {result['draft_bleu']:.2f}, after DiffusER {result['output_bleu']:.2f}"]
    if detection:
        lines += ["", "The model's own tagger ranks an error position first (least sure to keep it): "
                  + ", ".join(f"{kind} {share:.1%} (chance {result['error_first_by_chance'][kind]:.1%})"
                              for kind, share in result["tagger_ranks_error_first"].items()),
                  "", "Its generator is least confident of a token at an error (as a one-token refill): "
                  + ", ".join(f"{kind} {share:.1%} (chance {result['generator_at_error_by_chance'][kind]:.1%})"
                              for kind, share in result["generator_least_confident_at_error"].items())]
    with atomic_write(args.out_dir / f"postedit_check.{args.name}.md") as out:
        out.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
