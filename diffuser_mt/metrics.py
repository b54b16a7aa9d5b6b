"""Corpus BLEU (sacrebleu) and ROUGE (rouge-score), and the ``diffuser-mt score`` subcommand.

Nothing is reimplemented: BLEU is ``sacrebleu.metrics.BLEU`` and ROUGE is
``rouge_score.rouge_scorer.RougeScorer``; this module only prepares their
inputs and formats their results.

``compound-bleu`` is the tokenized BLEU of the non-autoregressive MT
literature on WMT'14 En-De (fairseq's scripts/compound_split_bleu.sh):
tokenized text, every hyphen inside a word split off as ``##AT##-##AT##``,
then multi-bleu (no smoothing). Here the tokens are sacreBLEU's (13a by
default, close to the Moses tokenizer) and multi-bleu is
``BLEU(tokenize="none", smooth_method="none")`` on the split text.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
from typing import Sequence

from sacrebleu.metrics import BLEU
from sacrebleu.metrics.bleu import BLEUScore
from sacrebleu.significance import PairedTest

from diffuser_mt.generation_output import read_hypotheses
from diffuser_mt.textio import InputError, read_lines, read_parallel

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
DEFAULT_SENTENCE_SEPARATOR = "<n>"


def bleu_score(
    hyps: list[str], refs: list[str], tokenize: str = "13a", lowercase: bool = False
) -> tuple[BLEUScore, str]:
    """Score N hypotheses against N references (one each); return sacrebleu's score and long signature."""
    metric = BLEU(tokenize=tokenize, lowercase=lowercase)
    return metric.corpus_score(hyps, [refs]), str(metric.get_signature())


def bleu_result(score: BLEUScore, signature: str) -> dict:
    """The JSON-ready view of a BLEU score: ``bleu`` and ``precisions`` in 0..100, ``bp`` in 0..1."""
    return {
        "bleu": score.score,
        "signature": signature,
        "precisions": score.precisions,
        "bp": score.bp,
        "sys_len": score.sys_len,
        "ref_len": score.ref_len,
    }


def corpus_bleu(hyps: list[str], refs: list[str], tokenize: str = "13a", lowercase: bool = False) -> dict:
    """Corpus BLEU of N hypotheses against N references, as ``bleu_result`` describes it."""
    return bleu_result(*bleu_score(hyps, refs, tokenize, lowercase))


def paired_bootstrap(baseline: list[str], system: list[str], refs: list[str], n_samples: int = 1000,
                     seed: int = 12345) -> dict:
    """sacreBLEU's paired bootstrap resampling (``sacrebleu REF -i BASELINE SYSTEM --paired-bs``) of ``system``
    against ``baseline``: both BLEU scores, each one's bootstrap mean and 95% CI half-width, and the p-value
    of the system's difference from the baseline (small = unlikely by chance)."""
    if not len(baseline) == len(system) == len(refs):
        raise InputError(f"paired bootstrap needs equal line counts: baseline {len(baseline)}, "
                         f"system {len(system)}, references {len(refs)}")
    with _sacrebleu_seed(seed):
        test = PairedTest([("baseline", baseline), ("system", system)], {"BLEU": BLEU()}, [refs], test_type="bs",
                          n_samples=n_samples)
        signatures, scores = test()
    base, other = scores["BLEU"]
    return {"baseline_bleu": base.score, "baseline_mean": base.mean, "baseline_ci": base.ci,
            "bleu": other.score, "mean": other.mean, "ci": other.ci, "p_value": other.p_value,
            "signature": str(signatures["BLEU"])}


@contextlib.contextmanager
def _sacrebleu_seed(seed: int):
    """sacreBLEU's significance tests read their seed from SACREBLEU_SEED when they are built."""
    previous = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = previous


def mbr_select(candidates: Sequence[str], tokenize: str = "none") -> int:
    """Minimum Bayes risk choice among samples of one sentence, with BLEU as the utility (DiffuSeq's MBR):
    the index of the candidate whose mean sentence BLEU against the other candidates is highest (the first on
    ties; 0 for a single candidate). ``tokenize`` "none" suits space-separated subword pieces."""
    if len(candidates) < 2:
        return 0
    metric = BLEU(tokenize=tokenize, effective_order=True)
    utilities = [sum(metric.sentence_score(candidate, [other]).score
                     for j, other in enumerate(candidates) if j != i)
                 for i, candidate in enumerate(candidates)]
    return max(range(len(candidates)), key=lambda i: (utilities[i], -i))


COMPOUND_HYPHEN = re.compile(r"(\S)-(\S)")
COMPOUND_SPLIT = r"\1 ##AT##-##AT## \2"


def compound_split(text: str) -> str:
    """``text`` with each hyphen between two non-spaces split off as `` ##AT##-##AT## ``.

    Matches do not overlap and run left to right, exactly as the perl
    ``s{(\\S)-(\\S)}{$1 ##AT##-##AT## $2}g`` of compound_split_bleu.sh:
    ``a-b-c`` becomes ``a ##AT##-##AT## b-c``.
    """
    return COMPOUND_HYPHEN.sub(COMPOUND_SPLIT, text)


def compound_split_bleu(
    hyps: list[str], refs: list[str], tokenize: str = "13a", lowercase: bool = False
) -> tuple[BLEUScore, str]:
    """Tokenized, compound-split corpus BLEU of N detokenized hypotheses against N references.

    Returns sacrebleu's score and a signature whose ``tok:`` field names the
    tokenizer and the compound split (``tok:13a+compound-split``).
    """
    tokenizer = BLEU(tokenize=tokenize).tokenizer
    metric = BLEU(tokenize="none", lowercase=lowercase, smooth_method="none")
    score = metric.corpus_score([compound_split(tokenizer(hyp)) for hyp in hyps],
                                [[compound_split(tokenizer(ref)) for ref in refs]])
    signature = str(metric.get_signature()).replace("tok:none", f"tok:{tokenize}+compound-split")
    return score, signature


def split_sentences(document: str, separator: str = DEFAULT_SENTENCE_SEPARATOR) -> list[str]:
    """Split one line into its stripped, non-empty sentences (a line without separators is one)."""
    return [sentence.strip() for sentence in document.split(separator) if sentence.strip()]


def corpus_rouge(
    hyps: list[str], refs: list[str], sentence_separator: str = DEFAULT_SENTENCE_SEPARATOR
) -> dict:
    """Average per-document ROUGE F-measures (x100) over N line-aligned documents.

    rougeLsum sees the sentences joined by "\\n" (rouge-score's summary-level
    split); rouge1/2/L see them joined by a space. Both come from one scorer
    call on the "\\n"-joined text, because rouge-score's tokenizer turns every
    non-alphanumeric character, "\\n" included, into a token boundary.
    Returns the four ROUGE_TYPES keys and ``n`` = N; N must be at least 1.
    """
    if not hyps:
        raise ValueError("corpus_rouge needs at least one document")
    from rouge_score.rouge_scorer import RougeScorer  # imports nltk: ~1 s, so only when needed

    scorer = RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for hyp, ref in zip(hyps, refs, strict=True):
        target = "\n".join(split_sentences(ref, sentence_separator))
        prediction = "\n".join(split_sentences(hyp, sentence_separator))
        for rouge_type, score in scorer.score(target, prediction).items():
            totals[rouge_type] += score.fmeasure
    averages = {rouge_type: 100.0 * total / len(hyps) for rouge_type, total in totals.items()}
    return {**averages, "n": len(hyps)}


def read_scoring_inputs(hyp_path: str, ref_path: str, generate_output: bool = False) -> tuple[list[str], list[str]]:
    """Read N >= 1 line-aligned hypotheses and references; an empty reference line is an InputError.

    With ``generate_output`` the hypotheses are the ``D-`` lines of a saved
    fairseq-generate output, in sentence-id order. Empty hypothesis lines are
    kept: a system may legitimately output nothing.
    """
    if generate_output:
        hyps, refs = read_hypotheses(hyp_path, prefix="D"), read_lines(ref_path)
        if len(hyps) != len(refs):
            raise InputError(f"{hyp_path} has {len(hyps)} D- lines but {ref_path} has {len(refs)} lines; "
                             "they must be line-aligned")
    else:
        hyps, refs = read_parallel(hyp_path, ref_path)
    if not refs:
        raise InputError(f"{ref_path}: no lines to score")
    for line_no, ref in enumerate(refs, start=1):
        if not ref.strip():
            raise InputError(f"{ref_path}:{line_no}: empty reference line")
    return hyps, refs


def nonempty_separator(text: str) -> str:
    """argparse type for --sentence-separator: any non-empty string."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def bleu_report(args: argparse.Namespace, hyps: list[str], refs: list[str]) -> list[str]:
    """Output lines for sacreBLEU, in format_bleu's format; with --paired-bs, the paired bootstrap test."""
    if args.paired_bs:
        baseline = read_scoring_inputs(args.paired_bs, args.ref, args.generate_output)[0]
        result = paired_bootstrap(baseline, hyps, refs, args.paired_bs_samples, args.paired_bs_seed)
        if args.json:
            return [json.dumps(result)]
        return [f"baseline BLEU = {result['baseline_bleu']:.2f} ({result['baseline_mean']:.2f} +- "
                f"{result['baseline_ci']:.2f})",
                f"system BLEU = {result['bleu']:.2f} ({result['mean']:.2f} +- {result['ci']:.2f}), "
                f"p = {result['p_value']:.4f}", f"signature: {result['signature']}"]
    score, signature = bleu_score(hyps, refs, args.tokenize, args.lowercase)
    return format_bleu(args, score, signature)


def compound_bleu_report(args: argparse.Namespace, hyps: list[str], refs: list[str]) -> list[str]:
    """Output lines for compound-split tokenized BLEU, in format_bleu's format."""
    score, signature = compound_split_bleu(hyps, refs, args.tokenize, args.lowercase)
    return format_bleu(args, score, signature)


def format_bleu(args: argparse.Namespace, score: BLEUScore, signature: str) -> list[str]:
    """One JSON line (with --json), or the ``BLEU = ...`` line and ``signature: ...``."""
    if args.json:
        return [json.dumps(bleu_result(score, signature))]
    return [str(score), f"signature: {signature}"]


def rouge_report(args: argparse.Namespace, hyps: list[str], refs: list[str]) -> list[str]:
    """Output lines for ROUGE: one JSON line, or one ``<type> = <F x100>`` line per ROUGE type."""
    result = corpus_rouge(hyps, refs, args.sentence_separator)
    if args.json:
        return [json.dumps(result)]
    return [f"{rouge_type} = {result[rouge_type]:.2f}" for rouge_type in ROUGE_TYPES]


REPORTS = {"bleu": bleu_report, "compound-bleu": compound_bleu_report, "rouge": rouge_report}


def run_score(args: argparse.Namespace) -> None:
    """Print the ``--metric`` report of ``--hyp`` against ``--ref``."""
    hyps, refs = read_scoring_inputs(args.hyp, args.ref, args.generate_output)
    print("\n".join(REPORTS[args.metric](args, hyps, refs)))


def add_subcommand(subparsers) -> None:
    """Register ``diffuser-mt score`` on the ``diffuser-mt`` subparsers."""
    parser = subparsers.add_parser(
        "score",
        help="corpus BLEU (sacrebleu) or ROUGE (rouge-score) of hypotheses against references",
        description="Score line-aligned hypotheses against references (one reference per line).",
    )
    parser.add_argument("--metric", choices=sorted(REPORTS), required=True,
                        help="bleu: sacreBLEU; compound-bleu: tokenized BLEU with ##AT##-##AT## compound "
                             "splitting, no smoothing (the WMT'14 En-De figure of the NAT literature); "
                             "rouge: ROUGE-1/2/L/Lsum")
    parser.add_argument("--hyp", required=True, help="hypotheses, one per line (UTF-8; empty lines allowed)")
    parser.add_argument("--ref", required=True, help="references, one per line (UTF-8; no empty lines)")
    parser.add_argument("--generate-output", action="store_true",
                        help="--hyp is a saved fairseq-generate output: score its D- (detokenized) lines in "
                             "sentence-id order")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON line")
    parser.add_argument("--tokenize", choices=sorted(BLEU.TOKENIZERS), default=BLEU.TOKENIZER_DEFAULT,
                        help="BLEU only: sacrebleu tokenizer; for compound-bleu, the tokens that are split and "
                             "counted (default: %(default)s)")
    parser.add_argument("--lowercase", action="store_true", help="BLEU only: case-insensitive BLEU")
    parser.add_argument("--paired-bs", metavar="BASELINE",
                        help="BLEU only: sacreBLEU's paired bootstrap resampling of --hyp against this baseline's "
                             "hypotheses (same format as --hyp): both scores with 95%% CIs and the p-value")
    parser.add_argument("--paired-bs-samples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    parser.add_argument("--paired-bs-seed", type=int, default=12345,
                        help="seed of the resampling (sacreBLEU's default: 12345)")
    parser.add_argument(
        "--sentence-separator", type=nonempty_separator, default=DEFAULT_SENTENCE_SEPARATOR,
        help="ROUGE only: marks sentence ends inside a line (default: %(default)s)",
    )
    parser.set_defaults(run=run_score)
