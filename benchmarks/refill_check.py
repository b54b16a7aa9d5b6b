#!/usr/bin/env python
"""Can DiffusER's generator rewrite a token in its context? Top-1 accuracy on the test references.

    python benchmarks/refill_check.py --path checkpoints/diffuser/checkpoint_best.pt --name diffuser

For every token of the first ``--sentences`` test references, the generator's most likely token
(renormalised over what a fill may write, eos included):

1. refill: as a one-token refill of that position, every other token of the reference visible (what
   confidence re-editing, ``--remask-share``, asks of it; ``diffuser_mt.confidence.refill_predictions``);
2. left to right: on an empty canvas, given the reference tokens before it (what the first step from a
   random start does: the generator as an autoregressive model);
3. with visible replaced tokens (``--visible-replaced``) the refill sees the token it is asked for, so it
   measures how often the generator keeps a right token; the noised refill shows a random token there
   instead (seeded), and measures how often it corrects a wrong one.

A refill sees strictly more of the reference, so a refill accuracy below the left-to-right one says the
generator's infilling is undertrained, and re-editing by confidence will replace tokens with worse ones.
Figures: ``OUT_DIR/refill_check.NAME.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: the imports below need it (noqa: E402)

import fairseq_plugins  # noqa: E402,F401  (registers the task and models)
from fairseq import checkpoint_utils  # noqa: E402

from diffuser_mt.confidence import refill_predictions  # noqa: E402
from diffuser_mt.edit_model import DecodeVocabulary  # noqa: E402
from diffuser_mt.textio import atomic_write  # noqa: E402
from fairseq_plugins.diffuser_generator import FairseqEditModel  # noqa: E402

SENTENCES_PER_BATCH = 16


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data-bin/ding.en-de"), help="binarized data dir")
    parser.add_argument("--path", type=Path, required=True, help="DiffusER checkpoint")
    parser.add_argument("--sentences", type=int, default=300, help="test sentences scored (the first N)")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="results folder")
    parser.add_argument("--name", default="diffuser", help="names the results files")
    parser.add_argument("--seed", type=int, default=1, help="seeds the noise of the noised refill")
    return parser.parse_args(argv)


def left_to_right_predictions(model: FairseqEditModel, rows, references, vocab: DecodeVocabulary) -> list[int]:
    """The generator's most likely next token after each prefix of each reference, on an empty canvas."""
    ids = vocab.ids
    owners = [row for row, reference in zip(rows, references) for _ in reference]
    prefixes = [[ids.bos, ids.sentinels[0], ids.sentinels[0], *reference[:i]]
                for reference in references for i in range(len(reference))]
    allowed = vocab.fillable.clone()
    allowed[ids.eos] = True
    log_probs = model.next_token_log_probs(owners, prefixes).float().cpu()
    return log_probs.masked_fill(~allowed, float("-inf")).argmax(-1).tolist()


def accuracies(args: argparse.Namespace) -> dict:
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(args.path)],
                                                                    arg_overrides={"data": str(args.data)})
    model = models[0].eval()
    task.load_dataset("test")
    pairs = task.datasets["test"].dataset
    vocab = task.decode_vocabulary()
    ids = task.special_ids
    count = min(args.sentences, len(pairs))
    visible = ids.replaced_offset is not None
    rng = np.random.default_rng(args.seed)
    refill_hits = noised_hits = left_to_right_hits = tokens = 0
    with torch.no_grad():
        for start in tqdm(range(0, count, SENTENCES_PER_BATCH), desc="refill check", unit="batch"):
            items = [pairs[i] for i in range(start, min(count, start + SENTENCES_PER_BATCH))]
            sources = [item["source"] for item in items]
            references = [item["target"][:-1].tolist() for item in items]
            edit_model = FairseqEditModel.for_sources(model, sources, ids.bos, ids.pad)
            rows = list(range(len(items)))
            gold = [token for reference in references for token in reference]
            refills = torch.cat(refill_predictions(edit_model, rows, references, vocab)).tolist()
            refill_hits += sum(a == b for a, b in zip(refills, gold))
            if visible:
                noise = [task.noise_vocab.sample(rng, len(reference)).tolist() for reference in references]
                noised = torch.cat(refill_predictions(edit_model, rows, references, vocab, shown=noise)).tolist()
                noised_hits += sum(a == b for a, b in zip(noised, gold))
            left_to_right_hits += sum(a == b for a, b in zip(
                left_to_right_predictions(edit_model, rows, references, vocab), gold))
            tokens += len(gold)
    return {"checkpoint": str(args.path), "sentences": count, "tokens": tokens,
            "refill_accuracy": refill_hits / max(tokens, 1),
            "left_to_right_accuracy": left_to_right_hits / max(tokens, 1), "visible_replaced": visible,
            "noised_refill_accuracy": noised_hits / max(tokens, 1) if visible else None}


def main(argv=None) -> int:
    args = parse_args(argv)
    result = accuracies(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out_dir / f"refill_check.{args.name}.json") as out:
        json.dump(result, out, indent=2)
    line = (f"Generator top-1 accuracy on {result['tokens']} reference tokens ({result['sentences']} test sentences): "
            f"one-token refill {result['refill_accuracy']:.1%}, left to right {result['left_to_right_accuracy']:.1%}")
    if result["visible_replaced"]:
        line += (f"; replaced tokens visible: the refill keeps the right token it sees, a refill of a random token "
                 f"there is right {result['noised_refill_accuracy']:.1%}")
    with atomic_write(args.out_dir / f"refill_check.{args.name}.md") as out:
        out.write(f"{line} (`{' '.join(sys.argv)}`)\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
