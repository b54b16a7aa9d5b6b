#!/usr/bin/env python
"""Does DiffusER refine? Step sweep, AR bootstrap with significance, controlled post-editing, for one checkpoint.

    python benchmarks/refinement.py --path checkpoints/diffuser/checkpoint_best.pt \\
        --ar-hypotheses checkpoints/ar_baseline/hypotheses.test.de --name diffuser

1. Step sweep: one greedy decode of the test split from random tokens with
   ``--decode-steps`` (12) and the edit history; the output after k steps is
   read off the history for every k (the decoder has no notion of the step
   count, so a k-step decode is the first k steps of a longer one, and a
   sentence that stopped early has reached a fixed point). With
   ``--remask-share`` the re-edit schedule depends on the step count, so
   each k is then a decode of its own (same start states). Reported: BLEU
   after 1, 2, 4, 8, 12 steps and the share of sentences that the steps after
   the first change (in the longest decode).
2. AR bootstrap: DiffusER starting from the AR system's test hypotheses
   (``--init-mode file``) and the paper's own ``--init-mode ar``, each against
   the AR hypotheses with sacreBLEU's paired bootstrap resampling (p-value),
   and the share of AR hypotheses DiffusER changes. The same decode with 0
   steps gives the start states as the decoder reads them, and the row "edits
   alone" tests DiffusER against those: what the edits add. (Until 2026-12-06
   the decoder cut a draft at the length cap, ``--max-len-a`` x source +
   ``--max-len-b``, which alone raised the BLEU of an AR system's run-away
   outputs; it no longer cuts a given draft, and ``ar_baseline.py`` decodes
   with the same cap.)
3. Controlled post-editing (``benchmarks/postedit_check.py``): references with
   one word substituted, dropped or duplicated; the share restored exactly, and
   the same drafts with gold tags (``--gold-tags``): the generator's ceiling,
   and how often the model's tagger ranks the error first.
4. The generator's refill skill (``benchmarks/refill_check.py``): top-1 accuracy
   on the test references as a one-token refill against left to right (and, with
   visible replaced tokens, as a refill of a random token shown there).

Results: ``OUT_DIR/refinement.NAME.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a script: the imports below need it (noqa: E402)

from benchmarks import postedit_check, refill_check  # noqa: E402
from benchmarks.common import command_line, machine, write_results  # noqa: E402
from data_scripts.fairseq_tools import USER_DIR, run_fairseq  # noqa: E402
from diffuser_mt.generation_output import read_hypotheses  # noqa: E402
from diffuser_mt.metrics import bleu_score, corpus_bleu, paired_bootstrap  # noqa: E402
from diffuser_mt.start_states import read_init_hypotheses  # noqa: E402
from diffuser_mt.textio import InputError, read_lines  # noqa: E402
from diffuser_mt.traces import changed_after, detokenize, parse_history_lines  # noqa: E402

SWEEP_STEPS = (1, 2, 4, 8, 12)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    postedit_check.add_shared_arguments(parser)
    parser.add_argument("--ar-hypotheses", type=Path, required=True,
                        help="the AR system's test hypotheses: one per line (ar_baseline.py's hypotheses.test.de), "
                             "or a saved fairseq-generate output (its D- lines)")
    parser.add_argument("--decode-steps", type=int, default=12, help="steps of the sweep and the bootstrap")
    return parser.parse_args(argv)


def decode(args: argparse.Namespace, name: str, *options, steps: int | None = None) -> Path:
    """fairseq-generate --task diffuser on the test split with the edit history (``steps``, default
    --decode-steps); returns the output file."""
    output = args.out_dir / f"refinement_generate.{args.name}.{name}.txt"
    run_fairseq("fairseq-generate", [
        args.data, "--user-dir", USER_DIR, "--task", "diffuser", "--gen-subset", "test", "--path", args.path,
        "--decode-steps", args.decode_steps if steps is None else steps, "--print-edit-history",
        "--bpe", "sentencepiece", "--sentencepiece-model", args.spm_model, "--batch-size", args.batch_size,
        "--max-len-a", args.max_len_a, "--max-len-b", args.max_len_b, "--keep-bias", args.keep_bias,
        "--remask-share", args.remask_share, *postedit_check.decoder_flags(args), "--required-batch-size-multiple", 1,
        "--cpu", "--seed", args.seed,
        *options,
    ], stdout_path=output)
    return output


def ordered_traces(output: Path, references: list[str]) -> list:
    """The edit history of every test sentence, in order."""
    traces = parse_history_lines(read_lines(output))
    if sorted(traces) != list(range(len(references))):
        raise InputError(f"{output}: edit histories for {len(traces)} of {len(references)} sentences")
    return [traces[i] for i in range(len(references))]


def step_sweep(outputs: dict[int, Path], references: list[str]) -> dict:
    """BLEU after each of SWEEP_STEPS steps and the share of sentences the steps after the first change.

    ``outputs`` maps a step count to its decode; a count without one is read off the longest decode's history.
    """
    ordered = ordered_traces(outputs[max(outputs)], references)
    bleu = {}
    for steps in SWEEP_STEPS:
        traces = ordered_traces(outputs[steps], references) if steps in outputs else ordered
        texts = [detokenize(trace[min(steps, len(trace)) - 1].result()) for trace in traces]
        bleu[str(steps)] = corpus_bleu(texts, references)["bleu"]
    return {"bleu": bleu, "changed_after_step_1": sum(map(changed_after, ordered)) / len(ordered),
            "mean_steps_run": sum(map(len, ordered)) / len(ordered)}


def bootstrap_row(output: Path, ar: list[str], references: list[str], seed: int) -> dict:
    """The paired bootstrap test of the hypotheses of ``output`` against ``ar`` (the baseline)."""
    hypotheses = read_hypotheses(output, prefix="D")
    test = paired_bootstrap(ar, hypotheses, references, seed=seed)
    return {"bleu": test["bleu"], "ci": test["ci"], "ar_bleu": test["baseline_bleu"], "p_value": test["p_value"],
            "changed_share": sum(h != a for h, a in zip(hypotheses, ar)) / len(ar), "signature": test["signature"]}


def gold_tag_options(args: argparse.Namespace) -> list[str]:
    """postedit_check.py's arguments for the same drafts with gold tags (named NAME_gold): the tagger's decoding
    options do not apply there."""
    gold = argparse.Namespace(**{**vars(args), "name": f"{args.name}_gold", "keep_bias": 0.0, "remask_share": 0.0,
                                 "verify_edits": False, "whole_word_edits": False})
    return [*postedit_check.shared_options(gold), "--gold-tags"]


def markdown(args: argparse.Namespace, result: dict) -> str:
    """The results table: one row per question (the README shows it), then the paired bootstrap tests in full."""
    sweep, bootstrap = result["step_sweep"], result["bootstrap"]
    shares, refill = result["postedit"]["shares"], result["refill"]
    gold, detection = result["postedit_gold_tags"]["shares"], result["postedit_gold_tags"]["tagger_ranks_error_first"]
    generator_detection = result["postedit_gold_tags"]["generator_least_confident_at_error"]
    edited, own_pass = bootstrap["AR hypotheses (--init-mode file)"], bootstrap["own AR pass (--init-mode ar)"]
    rows = [
        ("random start, greedy: test BLEU after " + " / ".join(sweep["bleu"]) + " steps",
         " / ".join(f"{bleu:.2f}" for bleu in sweep["bleu"].values())),
        ("sentences that the steps after the first change",
         f"{sweep['changed_after_step_1']:.1%} (mean steps before a fixed point: {sweep['mean_steps_run']:.2f})"),
        ("the AR's test hypotheses edited (`--init-mode file`): BLEU against the AR's",
         f"{edited['bleu']:.2f} against {edited['ar_bleu']:.2f} (paired-bs p {edited['p_value']:.3f})"),
        ("the paper's AR bootstrap (`--init-mode ar`): BLEU against the AR's",
         f"{own_pass['bleu']:.2f} against {own_pass['ar_bleu']:.2f} (paired-bs p {own_pass['p_value']:.3f})"),
        ("references with one word substituted / dropped / duplicated: restored exactly in 2 steps",
         " / ".join(f"{shares[kind]['restored']:.1%}" for kind in postedit_check.EDIT_KINDS)
         + f" (all {shares['all']['restored']:.1%})"),
        ("the same with gold tags (the generator's ceiling); the model's tagger ranks the error first",
         " / ".join(f"{gold[kind]['restored']:.1%}" for kind in postedit_check.EDIT_KINDS)
         + f" (all {gold['all']['restored']:.1%}); "
         + " / ".join(f"{detection[kind]:.1%}" for kind in postedit_check.EDIT_KINDS)),
        ("its generator is least confident (one-token refill) of a token at the error: substituted / dropped / "
         "duplicated",
         " / ".join(f"{generator_detection[kind]:.1%}" for kind in postedit_check.EDIT_KINDS)),
        ("generator top-1 accuracy: one-token refill / left to right",
         f"{refill['refill_accuracy']:.1%} / {refill['left_to_right_accuracy']:.1%}"
         + (f" (a random visible token refilled: {refill['noised_refill_accuracy']:.1%})"
            if refill.get("noised_refill_accuracy") is not None else "")),
    ]
    lines = [f"DiffusER refinement check of {args.path}", "", "| check | result |", "|---|---|",
             *(f"| {check} | {figure} |" for check, figure in rows), "",
             "| start | BLEU | baseline BLEU | paired-bs p | baseline hypotheses changed |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {row['bleu']:.2f} +- {row['ci']:.2f} | {row['ar_bleu']:.2f} | {row['p_value']:.4f} "
              f"| {row['changed_share']:.1%} |" for name, row in bootstrap.items()]
    lines += ["", "The p-value says whether a difference is consistent under resampling, not how large it is: a few "
              "changed lines that move BLEU by hundredths can give a small p (read it with the BLEU columns)."]
    lines += ["", f"Controlled post-editing: {len(postedit_check.EDIT_KINDS)} kinds of edit, "
              f"{shares['all']['sentences']} test references; the refill check: {refill['tokens']} test reference "
              "tokens.", "",
              f"sacreBLEU signature: {result['signature']}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        references = read_lines(args.reference, allow_empty_lines=False)
        ar = read_init_hypotheses(args.ar_hypotheses, len(references))
        sweep_outputs = {args.decode_steps: decode(args, "random", "--init-mode", "random")}
        if args.remask_share > 0:
            sweep_outputs.update({steps: decode(args, f"random{steps}", "--init-mode", "random", steps=steps)
                                  for steps in SWEEP_STEPS if steps != args.decode_steps})
        sweep = step_sweep(sweep_outputs, references)
        from_file = ["--init-mode", "file", "--init-file", args.ar_hypotheses, "--init-spm-model", args.spm_model]
        post_edited = decode(args, "file", *from_file)
        start = decode(args, "file0", *from_file, steps=0)
        bootstrap = {
            "AR hypotheses (--init-mode file)": bootstrap_row(post_edited, ar, references, args.seed),
            "AR hypotheses as the decoder reads them (0 steps)": bootstrap_row(start, ar, references, args.seed),
            "edits alone: --init-mode file against the 0-step decode": bootstrap_row(
                post_edited, read_hypotheses(start, prefix="D"), references, args.seed),
            "own AR pass (--init-mode ar)": bootstrap_row(decode(args, "ar", "--init-mode", "ar"), ar, references,
                                                          args.seed),
        }
        if postedit_check.main(postedit_check.shared_options(args)) != 0:
            return 1
        postedit = json.loads((args.out_dir / f"postedit_check.{args.name}.json").read_text())
        if postedit_check.main(gold_tag_options(args)) != 0:
            return 1
        postedit_gold = json.loads((args.out_dir / f"postedit_check.{args.name}_gold.json").read_text())
        refill_check.main(["--data", str(args.data), "--path", str(args.path), "--out-dir", str(args.out_dir),
                           "--name", args.name])
        refill = json.loads((args.out_dir / f"refill_check.{args.name}.json").read_text())
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    result = {"command": command_line("benchmarks/refinement.py", argv),
              "machine": machine(), "checkpoint": str(args.path), "decode_steps": args.decode_steps,
              "step_sweep": sweep, "remask_share": args.remask_share, "verify_edits": args.verify_edits,
              "whole_word_edits": args.whole_word_edits,
              "bootstrap": bootstrap, "postedit": postedit, "postedit_gold_tags": postedit_gold, "refill": refill,
              "signature": bleu_score(ar, references)[1]}
    write_results(args.out_dir / f"refinement.{args.name}", result, markdown(args, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
