#!/usr/bin/env python
"""Decode a split (by default the training split) with a fairseq checkpoint: post-editing pairs and KD data.

    python data_scripts/decode_train_split.py --data data-bin/ding.en-de \\
        --path checkpoints/ar_baseline/checkpoint_best.pt --out checkpoints/ar_baseline/hypotheses.train.de \\
        [--kd-dest-dir data-bin/ding.en-de.kd]

1. ``fairseq-generate --gen-subset SPLIT`` with the checkpoint's own task
   (``translation`` for fairseq's transformer), beam ``--beam``, subwords
   removed; fairseq's progress bar on the terminal; every sentence decoded
   (``--required-batch-size-multiple 1``).
2. The detokenized hypotheses in corpus order, one per line, written
   atomically to ``--out``. This is the ``--postedit-file`` of the diffuser
   task: DiffusER trained on (hypothesis -> reference) pairs is a post-editor
   of that system, which is what ``--init-mode file`` then starts from.
3. With ``--kd-dest-dir``: a binarized copy of the corpus whose training
   targets are the hypotheses (sequence-level knowledge distillation, the
   training data of most non-autoregressive systems), same dictionaries,
   valid and test splits as the original. Any system trains on it by pointing
   fairseq-train at that directory instead of the original one.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: the imports below need it (noqa: E402)

from data_scripts.corpus_build import load_sentencepiece, publish, staging_directory  # noqa: E402
from data_scripts.fairseq_tools import USER_DIR, run_fairseq  # noqa: E402
from diffuser_mt.data_manifest import MANIFEST_NAME, read_manifest  # noqa: E402
from diffuser_mt.generation_output import read_hypotheses  # noqa: E402
from diffuser_mt.textio import InputError, atomic_write  # noqa: E402

PROGRAM = "decode_train_split"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data-bin/ding.en-de"), help="binarized data dir")
    parser.add_argument("--path", type=Path, required=True, help="fairseq checkpoint to decode with")
    parser.add_argument("--out", type=Path, required=True, help="hypotheses, one per line of the split")
    parser.add_argument("--split", default="train", help="split to decode")
    parser.add_argument("--task", default="translation", help="the checkpoint's fairseq task")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128, help="sentences per decoding batch")
    parser.add_argument("--max-len-a", type=float, default=0.0, help="hypothesis length cap: a x source length + b")
    parser.add_argument("--max-len-b", type=int, default=200, help="hypothesis length cap: a x source length + b")
    parser.add_argument("--source-lang", default="en")
    parser.add_argument("--target-lang", default="de")
    parser.add_argument("--kd-dest-dir", type=Path, help="also write a binarized KD copy of the corpus here")
    parser.add_argument("--workers", type=int, default=1, help="fairseq-preprocess workers (with --kd-dest-dir)")
    parser.add_argument("--cpu", action=argparse.BooleanOptionalAction, default=True,
                        help="decode on the CPU (--no-cpu: fairseq's default device)")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def generate_command(args: argparse.Namespace) -> list:
    return [
        args.data, "--user-dir", USER_DIR, "--task", args.task, "--gen-subset", args.split,
        "--source-lang", args.source_lang, "--target-lang", args.target_lang,
        "--path", args.path, "--beam", args.beam, "--max-len-a", args.max_len_a, "--max-len-b", args.max_len_b,
        "--post-process", "sentencepiece",
        "--batch-size", args.batch_size, "--required-batch-size-multiple", 1, "--seed", args.seed,
        "--log-format", "tqdm", *(["--cpu"] if args.cpu else []),
    ]


def write_kd_corpus(args: argparse.Namespace, hypotheses: list[str]) -> None:
    """Binarize (original sources, hypotheses) as the train split, with the original dictionaries and other splits."""
    manifest = read_manifest(args.data)
    if not manifest or "text_dir" not in manifest or "sentencepiece_model" not in manifest:
        raise InputError(f"{args.data}/{MANIFEST_NAME} must name text_dir and sentencepiece_model for --kd-dest-dir")
    text_dir, spm = Path(manifest["text_dir"]), load_sentencepiece(Path(manifest["sentencepiece_model"]))
    src, tgt = args.source_lang, args.target_lang
    with staging_directory(args.kd_dest_dir, PROGRAM) as staging:
        texts = staging / "text"
        texts.mkdir()
        for split in ("train", "valid", "test"):
            shutil.copy(text_dir / f"{split}.spm.{src}", texts / f"{split}.spm.{src}")
            if split != args.split:
                shutil.copy(text_dir / f"{split}.spm.{tgt}", texts / f"{split}.spm.{tgt}")
        with open(texts / f"{args.split}.spm.{tgt}", "w", encoding="utf-8") as out:
            out.writelines(" ".join(spm.encode(line, out_type=str)) + "\n" for line in hypotheses)
        binary = staging / "bin"
        run_fairseq("fairseq-preprocess", [
            "--source-lang", src, "--target-lang", tgt,
            "--trainpref", texts / "train.spm", "--validpref", texts / "valid.spm", "--testpref", texts / "test.spm",
            "--destdir", binary, "--srcdict", args.data / f"dict.{src}.txt", "--joined-dictionary",
            "--workers", args.workers,
        ])
        kd_manifest = {**manifest, "distilled_from": str(args.path), "distilled_split": args.split,
                       "distilled_beam": args.beam}
        (binary / MANIFEST_NAME).write_text(json.dumps(kd_manifest, indent=2) + "\n", encoding="utf-8")
        publish(binary, args.kd_dest_dir, PROGRAM)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if not args.path.is_file():
            raise InputError(f"{args.path}: no such checkpoint")
        generate_output = args.out.with_name(args.out.name + ".generate.txt")
        run_fairseq("fairseq-generate", generate_command(args), stdout_path=generate_output)
        hypotheses = read_hypotheses(generate_output, prefix="D")
        with atomic_write(args.out) as out:
            out.writelines(h + "\n" for h in hypotheses)
        generate_output.unlink()
        print(f"{len(hypotheses)} hypotheses of the {args.split} split written to {args.out}")
        if args.kd_dest_dir:
            write_kd_corpus(args, hypotheses)
            print(f"knowledge-distillation corpus (targets = these hypotheses) in {args.kd_dest_dir}")
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
