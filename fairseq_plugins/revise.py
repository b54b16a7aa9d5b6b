"""``diffuser-mt revise``: a trained DiffusER edits the user's own draft, with an edit trace.

    diffuser-mt revise --checkpoint checkpoints/diffuser/checkpoint_best.pt \\
        --source "The house is small." --draft "Das Haus ist gross." --keep-spans "Das Haus"

The draft is the start state x_T (a draft translation, a prototype, an
incomplete sentence, or nothing); the decoder edits it for ``--steps`` steps
and the trace shows every edit. ``--keep-spans`` names whole-word substrings of
the draft that must survive unchanged (``diffuser_mt.edit_decoder`` locks).
With ``--source-file``/``--draft-file`` each line pair is revised and
``--output`` receives the revised lines.

This is the fairseq side of the command (it loads a fairseq checkpoint); the
``diffuser-mt`` program finds it through the ``diffuser_mt.subcommands`` entry points.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import torch

from diffuser_mt.drafts import keep_span_bounds, locked_draft, piece_encoder
from diffuser_mt.edit_decoder import DecodeConfig, decode
from diffuser_mt.start_states import length_limit, sentence_rng
from diffuser_mt.textio import InputError, atomic_write, read_lines
from diffuser_mt.traces import render_ansi, render_html, trace_steps


def add_subcommand(subparsers) -> None:
    parser = subparsers.add_parser(
        "revise", help="edit a draft with a trained DiffusER checkpoint and show the edit trace",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a diffuser checkpoint (fairseq-train)")
    parser.add_argument("--data", type=Path,
                        help="binarized data dir with the dictionaries (default: the checkpoint's training data)")
    parser.add_argument("--spm-model", type=Path,
                        help="sentencepiece model (default: the one named in the data dir's manifest.json)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--source", help="the source sentence")
    source.add_argument("--source-file", type=Path, help="source sentences, one per line")
    draft = parser.add_mutually_exclusive_group(required=True)
    draft.add_argument("--draft", help="the draft to revise ('' starts from nothing)")
    draft.add_argument("--draft-file", type=Path, help="drafts, one per source line")
    parser.add_argument("--keep-spans", nargs="+", default=[], metavar="TEXT",
                        help="whole-word substrings of the draft (each draft, with files) that must not change")
    parser.add_argument("--steps", type=int, default=12, help="edit steps (default: %(default)s)")
    parser.add_argument("--token-beam", type=int, default=1, help="token beam b (default: %(default)s)")
    parser.add_argument("--revision-beam", type=int, default=1, help="revision beam r (default: %(default)s)")
    parser.add_argument("--nucleus-p", type=float, default=0.0, help="nucleus sampling of fill tokens (0 = off)")
    parser.add_argument("--seed", type=int, default=1, help="seed of nucleus sampling")
    parser.add_argument("--max-len-a", type=float, default=1.2,
                        help="cap the text at a * source length + b tokens, or the draft's length if longer")
    parser.add_argument("--max-len-b", type=int, default=10, help="see --max-len-a")
    parser.add_argument("--output", type=Path, help="write the revised texts here, one per line")
    parser.add_argument("--html", type=Path, help="write the edit traces as one HTML page")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="ANSI colours in the terminal trace (auto: only on a terminal)")
    parser.set_defaults(run=run_revise)


def run_revise(args: argparse.Namespace) -> None:
    sources = [args.source] if args.source is not None else read_lines(args.source_file, allow_empty_lines=False)
    drafts = [args.draft] if args.draft is not None else read_lines(args.draft_file)
    if len(drafts) != len(sources):
        raise InputError(f"{args.draft_file}: {len(drafts)} drafts for {len(sources)} source lines")
    try:
        config = DecodeConfig(steps=args.steps, token_beam=args.token_beam, revision_beam=args.revision_beam,
                              nucleus_p=args.nucleus_p)
    except ValueError as err:
        raise InputError(str(err)) from None
    for line, draft in enumerate(drafts, start=1):
        keep_span_bounds(draft, args.keep_spans, line)  # cheap checks before loading the model
    model, task = load_diffuser(args.checkpoint, args.data)
    pieces = piece_encoder(args.spm_model, task.manifest, option="--spm-model")
    dictionary = task.target_dictionary
    encode = lambda text: dictionary.encode_line(text, add_if_not_exist=False, append_eos=False).long().tolist()  # noqa: E731  (a one-line encoder)
    states, locks = zip(*(locked_draft(draft, args.keep_spans, pieces, encode, line)
                          for line, draft in enumerate(drafts, start=1)))
    source_ids = [encode(pieces.encode_as_text(source)) + [dictionary.eos()] for source in sources]
    where = args.source_file or "--source"
    for line, ids in enumerate(source_ids, start=1):
        check_source_length(ids, task.cfg.max_source_positions, f"{where} line {line}")
    max_lengths = [length_limit(len(source), args.max_len_a, args.max_len_b, len(state))
                   for source, state in zip(source_ids, states)]
    revised_symbols, traces = revise(model, task, source_ids, list(states), list(locks), config, args.seed,
                                     max_lengths)
    revised = [pieces.decode(symbols) for symbols in revised_symbols]

    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    for line, (source, trace, text) in enumerate(zip(sources, traces, revised), start=1):
        print(f"# {line}: {source}")
        if trace:
            print(render_ansi(trace, color=color))
        print(f"revised: {text}")
    if args.output:
        with atomic_write(args.output) as out:
            out.writelines(text + "\n" for text in revised)
    if args.html:
        with atomic_write(args.html) as out:
            out.write(render_html({f"{line}: {source}": trace for line, (source, trace)
                                   in enumerate(zip(sources, traces), start=1)}, title="diffuser-mt revise"))


def check_source_length(source_ids: list[int], max_positions: int, where: str) -> None:
    """InputError naming ``where`` when a source (ids with eos) is longer than the model's positions."""
    if len(source_ids) > max_positions:
        raise InputError(f"{where}: the source has {len(source_ids)} tokens, over the model's "
                         f"--max-source-positions {max_positions}")


def load_diffuser(checkpoint: Path, data: Path | None):
    """(model, task) of a diffuser checkpoint; InputError for a missing, truncated or foreign file."""
    from fairseq import checkpoint_utils

    import fairseq_plugins  # noqa: F401  (registers the task and model; the checkpoint allow-list)
    from fairseq_plugins.checkpoint_safety import DamagedCheckpoint, verify_checkpoint_file

    logging.getLogger("fairseq").setLevel(logging.WARNING)  # fairseq's INFO lines would bury the trace

    if not checkpoint.is_file():
        raise InputError(f"{checkpoint}: no such checkpoint")
    try:
        verify_checkpoint_file(checkpoint)
    except DamagedCheckpoint as err:
        raise InputError(f"{checkpoint}: cannot load this checkpoint: {err}") from None
    overrides = {"data": str(data)} if data is not None else {}
    try:
        models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)], arg_overrides=overrides)
    except FileNotFoundError as err:
        raise InputError(f"{checkpoint}: {err.strerror}: {err.filename} (pass --data DIR with the dictionaries)") \
            from None
    except Exception as err:  # torch's unpickler and fairseq raise many kinds for a damaged file
        raise InputError(f"{checkpoint}: cannot load this checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'no detail'})") from None
    if task.__class__.__name__ != "DiffuserTask":
        raise InputError(f"{checkpoint}: a checkpoint of task {task.__class__.__name__}, not diffuser")
    model = models[0]
    model.eval()
    return model, task


def revise(model, task, source_ids, states, locks, config: DecodeConfig, seed: int, max_lengths: list[int],
           device: torch.device | None = None):
    """Decode each draft (ids, with locks) on ``device`` (the CPU by default); per draft the best text's symbols
    and its trace (EditStep list)."""
    from fairseq_plugins.diffuser_generator import FairseqEditModel

    dictionary = task.target_dictionary
    vocab = task.decode_vocabulary()
    with torch.no_grad():
        edit_model = FairseqEditModel.for_sources(model, source_ids, dictionary.bos(), dictionary.pad(), device)
        rngs = [sentence_rng(seed, ids[:-1]) for ids in source_ids]  # without eos, as fairseq-generate's
        config = dataclasses.replace(config, max_length=task.cfg.max_target_positions)
        results = decode(edit_model, states, vocab, config, rngs, max_lengths, locks)
    symbols = dictionary.symbols
    best = [hypotheses[0] for hypotheses in results]
    return [[symbols[t] for t in h.tokens] for h in best], [trace_steps(h.history, symbols) for h in best]
