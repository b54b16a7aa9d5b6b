"""The ``diffuser`` task: translation/summarization data with edit corruption, and its edit decoder.

Reads the binarized language-pair data of ``fairseq-preprocess`` (as the
``translation`` task does), adds the span sentinels to the dictionary and
wraps each split in an EditCorruptionDataset. ``build_generator`` returns the
iterative edit decoder, so ``fairseq-generate`` and ``--eval-bleu`` validation
decode with it. All corruption and search maths is in ``diffuser_mt``.
"""

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from fairseq import metrics, utils
from fairseq.data import data_utils
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task

from diffuser_mt.canvas import SpecialIds
from diffuser_mt.corruption import NOISE_DISTRIBUTIONS, REVERSE_TARGETS, UNITS, CorruptionConfig, NoiseVocabulary
from diffuser_mt.data_manifest import corpus_task, read_manifest
from diffuser_mt.drafts import piece_encoder
from diffuser_mt.edit_decoder import DecodeConfig
from diffuser_mt.edit_model import DecodeVocabulary, fillable_mask
from diffuser_mt.noise_schedule import SCHEDULES
from diffuser_mt.start_states import INIT_MODES, StartSettings, read_init_hypotheses, resolve_start_mode
from diffuser_mt.textio import InputError
from diffuser_mt.word_errors import WordVocabulary
from fairseq_plugins.diffuser_generator import DiffuserGenerator
from fairseq_plugins.edit_dataset import EditCorruptionDataset
from fairseq_plugins.generator_protocol import refuse_prefix_constraints
from fairseq_plugins.tasks.language_pair_task import LanguagePairConfig, LanguagePairTask, core_config

SENTINEL_FORMAT = "<span:{}>"
WORD_START = "\u2581"  # sentencepiece's word-start marker


@dataclass
class DiffuserConfig(LanguagePairConfig):
    corruption_keep: float = field(default=0.6, metadata={"help": "E_t: share of corruption spans kept"})
    corruption_replace: float = field(
        default=0.2, metadata={"help": "E_t: share of corruption spans replaced by random tokens"})
    corruption_insert: float = field(
        default=0.1, metadata={"help": "E_t: share of corruption spans that insert random tokens"})
    corruption_delete: float = field(default=0.1, metadata={"help": "E_t: share of corruption spans deleted"})
    span_lambda: float = field(
        default=3.0, metadata={"help": "E_l: Poisson mean of span lengths (paper: 3 for MT, 8 for summarization)"})
    diffusion_steps: int = field(
        default=12, metadata={"help": "T: length of the corruption chain; training draws t from 1..T"})
    noise_schedule: ChoiceEnum(tuple(SCHEDULES)) = field(
        default="constant",
        metadata={"help": "how E_t changes along the chain: constant = the mix above at every step (the paper's; one "
                          "step already edits a third of x_0), linear = a share 1 - t/T of x_0 survives t steps, so "
                          "training also shows sentences with one or two wrong words (diffuser_mt/noise_schedule.py)"})
    edit_unit: ChoiceEnum(UNITS) = field(
        default="token",
        metadata={"help": "unit of an edit span: subword tokens, or whole words (sentencepiece word starts)"})
    reverse_target: ChoiceEnum(REVERSE_TARGETS) = field(
        default="clean",
        metadata={"help": "what one reverse step learns to reach from x_t: clean = x_0 (x_0-parameterised, the "
                          "default), step = x_{t-1} (the paper's wording; from a random start its argmax tags "
                          "are all KEEP)"})
    max_spans: int = field(
        default=64, metadata={"help": "number of span sentinels; a step with more spans is coarsened losslessly"})
    batch_by_clean_length: bool = field(
        default=False,
        metadata={"help": "batch by the clean target's length, as the translation task does; by default "
                          "batches follow the corrupted sequences' lengths (built once per epoch in the main "
                          "process, ~10 us per target token)"})
    postedit_file: Optional[str] = field(
        default=None,
        metadata={"help": "training: another system's hypotheses of the train split's targets (one per train pair, "
                          "as detokenized text or a saved fairseq-generate output, e.g. data_scripts/"
                          "decode_train_split.py of an AR model), mixed in as post-editing pairs; encoded like "
                          "--init-file"})
    postedit_prob: float = field(
        default=0.0,
        metadata={"help": "training: probability that an example is the --postedit-file hypothesis with the edits "
                          "(from a Levenshtein alignment) that take it to the reference, instead of a corruption"})
    rollin_prob: float = field(
        default=0.0,
        metadata={"help": "training: share of examples also trained on the model's own output: fills drawn from "
                          "the generator's teacher-forced distribution, then the edits from that hypothesis back "
                          "to the reference (a second forward pass on those examples)"})
    masking_prob: float = field(
        default=0.0,
        metadata={"help": "training: share of examples that are CMLM-style masking instead of a corruption: x_0 "
                          "with a uniform number (1..L) of its tokens replaced by noise, one for one, so the "
                          "generator learns to rewrite a few tokens in their context (what --remask-share asks)"})
    masking_unchanged: float = field(
        default=0.0,
        metadata={"help": "training: share of the tokens a masking example masks that keep their value instead of "
                          "noise (BERT's unchanged share): the generator still rewrites them, the tagger keeps them; "
                          "with --visible-replaced the generator learns that a token it re-edits may be right"})
    word_errors_prob: float = field(
        default=0.0,
        metadata={"help": "training: share of the examples (of those that are neither post-editing pairs nor masking "
                          "examples) that are x_0 with a few word errors instead of a corruption: 1..--word-errors-max "
                          "of its words substituted by a word of the train split's targets (drawn by frequency), "
                          "dropped, duplicated or preceded by an inserted word, with the edits of their alignment "
                          "back to x_0 (the errors of a fluent hypothesis; diffuser_mt/word_errors.py)"})
    word_errors_max: int = field(
        default=3, metadata={"help": "training: most word errors in one --word-errors-prob example (drawn uniformly "
                                     "from 1..this)"})
    noise_distribution: ChoiceEnum(NOISE_DISTRIBUTIONS) = field(
        default="uniform",
        metadata={"help": "corruption: draw replace/insert noise tokens uniformly from the vocabulary, or by their "
                          "frequency in the train split's targets (unigram: plausible tokens, harder to spot)"})
    repetition_noise: float = field(
        default=0.0,
        metadata={"help": "corruption: probability that a replace/insert span repeats the tokens written just before "
                          "it instead of drawing noise (\"der der geht\" for \"der Mann geht\": a weak generator's "
                          "repetitions, which random noise never shows the tagger); token units only"})
    persistent_workers: bool = field(
        default=False,
        metadata={"help": "keep data-loader workers alive across epochs; off by default, since each epoch "
                          "starts fresh workers that see the new epoch's corruption seed"})
    decode_steps: int = field(default=12, metadata={"help": "decoding: number of reverse (edit) steps"})
    init_mode: ChoiceEnum(INIT_MODES) = field(
        default="auto",
        metadata={"help": "decoding: start state x_T. auto: source when the data directory's manifest.json says "
                          "\"task\": \"summarization\", else random; random: random tokens, as many as the "
                          "source has; null: "
                          "empty (the first step inserts); source: a copy of the source (summarization); ar: the "
                          "model's generator writes a hypothesis on an empty canvas, then --decode-steps edits; "
                          "file: the hypotheses of --init-file"})
    init_file: Optional[str] = field(
        default=None,
        metadata={"help": "decoding with --init-mode file: one hypothesis per source line of the decoded split, "
                          "as detokenized text or a saved fairseq-generate output (its D- lines)"})
    init_spm_model: Optional[str] = field(
        default=None,
        metadata={"help": "sentencepiece model that encodes --init-file; default: the one named in the data "
                          "directory's manifest.json; without either, lines must be space-separated pieces"})
    token_beam: int = field(default=1, metadata={"help": "decoding: token beam b of the span fills (1 = greedy)"})
    revision_beam: int = field(
        default=1, metadata={"help": "decoding: revision beam r; r > 1 is 2D beam search (paper: b=5, r=3)"})
    nucleus_p: float = field(
        default=0.0, metadata={"help": "decoding: sample fill tokens from the top-p nucleus (paper: 0.6); 0 = off"})
    keep_bias: float = field(
        default=0.0,
        metadata={"help": "decoding: log-probability added to the tagger's KEEP before the tags are chosen; > 0 "
                          "edits a token only where the tagger is that much surer of an edit (a tagger trained with "
                          "roll-in on a weak generator over-edits)"})
    remask_share: float = field(
        default=0.0,
        metadata={"help": "decoding: confidence re-editing (Mask-Predict style): on top of the tagger's edits, step "
                          "s of N rewrites the share * L * (N - s + 1) / N tokens the generator is least sure of "
                          "(its probability of each token as a refill of its own position); 0 = off"})
    sample_tags: bool = field(
        default=False,
        metadata={"help": "decoding: draw each tag from the tagger's distribution (after --keep-bias; seeded per "
                          "sentence by --seed) instead of taking the most likely; every step then runs"})
    verify_edits: bool = field(
        default=False,
        metadata={"help": "decoding: keep a step's edit of a sentence only if the generator, reading the edited text "
                          "as a left-to-right model on an empty canvas, gives it a higher mean log-probability per "
                          "token than the text before (not in the paper; diffuser_mt.edit_verification)"})
    whole_word_edits: bool = field(
        default=False,
        metadata={"help": "decoding: widen each of the tagger's edits inside a word to the whole word (sentencepiece "
                          "word starts), so the generator rewrites a wrong word whole instead of its first piece; a "
                          "word with every piece deleted is deleted (the paper's MT edits are over words)"})
    force_decode_steps: bool = field(
        default=False,
        metadata={"help": "decoding: run all --decode-steps for every sentence; by default a sentence stops once a "
                          "step tags every token KEEP, which gives the same output (such a step is a fixed point "
                          "of the tagger) without the no-op steps in the edit history"})
    print_edit_history: bool = field(
        default=False,
        metadata={"help": "decoding: print one E-<id>_<step> line per step (text, tags and fills; read by "
                          "`diffuser-mt trace`) before each batch's S-/H- lines"})


@register_task("diffuser", dataclass=DiffuserConfig)
class DiffuserTask(LanguagePairTask):
    """DiffusER training on a language pair: targets are corrupted, sources stay clean."""

    cfg: DiffuserConfig
    DECODING_OPTIONS = ("decode_steps", "init_mode", "token_beam", "revision_beam", "nucleus_p",
                        "force_decode_steps", "keep_bias", "remask_share", "sample_tags",
                        "verify_edits", "whole_word_edits", "print_edit_history")

    def __init__(self, cfg: DiffuserConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        for dictionary in (src_dict, tgt_dict):
            for k in range(cfg.max_spans):
                dictionary.add_symbol(SENTINEL_FORMAT.format(k))
        self.corruption = corruption_config(cfg)
        self.special_ids = SpecialIds(
            bos=tgt_dict.bos(), eos=tgt_dict.eos(), pad=tgt_dict.pad(),
            sentinels=tuple(tgt_dict.index(SENTINEL_FORMAT.format(k)) for k in range(cfg.max_spans)),
        )
        counts = target_counts(cfg, tgt_dict) if cfg.noise_distribution == "unigram" else None
        self.noise_vocab = noise_vocabulary(tgt_dict, self.special_ids,
                                            word_starts=cfg.edit_unit == "word" or cfg.word_errors_prob > 0,
                                            counts=counts)
        self.fillable = fillable_mask(self.noise_vocab)
        for name in ("postedit_prob", "rollin_prob", "masking_prob", "masking_unchanged", "word_errors_prob"):
            if not 0.0 <= getattr(cfg, name) <= 1.0:
                raise SystemExit(f"error: --{name.replace('_', '-')} must lie in [0, 1], got {getattr(cfg, name)}")
        if cfg.word_errors_max < 1:
            raise SystemExit(f"error: --word-errors-max must be >= 1, got {cfg.word_errors_max}")
        if cfg.postedit_prob > 0 and not cfg.postedit_file:
            raise SystemExit("error: --postedit-prob needs --postedit-file PATH (hypotheses of the train split)")
        self.words = None  # the words that word errors draw, read from the train split when it is loaded
        self.manifest, self.corpus_task = data_manifest(cfg.data)
        decode_config(self.decoding_options(None), cfg.max_target_positions)  # validate before any work
        self.init_tokens = None  # ids of --init-file's hypotheses, read with the decoded split

    def build_model(self, cfg, from_checkpoint=False):
        """The model; the canvases follow it: with --visible-replaced its generator reads replaced tokens."""
        model = super().build_model(cfg, from_checkpoint)
        self.special_ids = dataclasses.replace(self.special_ids, replaced_offset=model.replaced_offset)
        return model

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        super().load_dataset(split, epoch=epoch, combine=combine, **kwargs)
        pairs = self.datasets[split]
        training = split == self.cfg.train_subset
        if self.cfg.init_mode == "file" and not training:
            self.init_tokens = read_init_tokens(self.cfg, self.tgt_dict, len(pairs), self.manifest)
        hypotheses = None
        if training and self.cfg.postedit_file and self.cfg.postedit_prob > 0:
            hypotheses = read_hypothesis_tokens(self.cfg, self.cfg.postedit_file, "--postedit-file", self.tgt_dict,
                                                len(pairs), self.manifest)
        word_errors_prob = self.cfg.word_errors_prob if training else 0.0
        if word_errors_prob > 0 and self.words is None:
            targets = train_targets(self.cfg, self.tgt_dict, "--word-errors-prob")
            self.words = WordVocabulary.from_sentences([ids[:-1] for ids in targets], self.noise_vocab.is_word_start)
        self.datasets[split] = EditCorruptionDataset(
            pairs, self.corruption, self.noise_vocab, self.special_ids, seed=self.cfg.seed,
            fixed_epoch=None if training else 1, length_aware=not self.cfg.batch_by_clean_length,
            hypotheses=hypotheses, postedit_prob=self.cfg.postedit_prob if training else 0.0,
            rollin_prob=self.cfg.rollin_prob if training else 0.0,
            masking_prob=self.cfg.masking_prob if training else 0.0, masking_unchanged=self.cfg.masking_unchanged,
            words=self.words, word_errors_prob=word_errors_prob, word_errors_max=self.cfg.word_errors_max,
        )

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        validated = any("_bleu_sys_len" in log for log in logging_outputs)
        if validated and not any(log.get("_bleu_totals_0", 0) for log in logging_outputs):
            # every hypothesis empty: the translation task then logs no bleu and --best-checkpoint-metric bleu fails
            metrics.log_derived("bleu", lambda meters: 0.0)

    def decode_vocabulary(self) -> DecodeVocabulary:
        """What the edit decoder may write, and which ids begin a word (for --whole-word-edits)."""
        return DecodeVocabulary(self.special_ids, fillable_mask(self.noise_vocab),
                                word_starts=torch.from_numpy(word_start_flags(self.tgt_dict)))

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, prefix_allowed_tokens_fn=None):
        """The edit decoder. ``args`` (fairseq's generation options, or --eval-bleu-args during training)
        may override the task's decoding options of the same names, e.g. '{"decode_steps": 4}'."""
        refuse_prefix_constraints(prefix_allowed_tokens_fn, "diffuser")
        options = self.decoding_options(args)
        mode = resolve_start_mode(str(options.pop("init_mode")), self.corpus_task)
        if mode == "file" and self.init_tokens is None:
            raise SystemExit("error: --init-mode file needs --init-file, read when fairseq-generate loads the split")
        vocab = self.decode_vocabulary()
        start = StartSettings(mode=mode, noise_vocab=self.noise_vocab, seed=self.cfg.seed,
                              init_tokens=self.init_tokens)
        print_edit_history = options.pop("print_edit_history")
        return DiffuserGenerator(self.tgt_dict, vocab, decode_config(options, self.cfg.max_target_positions), start,
                                 max_len_a=getattr(args, "max_len_a", 0.0), max_len_b=getattr(args, "max_len_b", 200),
                                 print_edit_history=print_edit_history)


def corruption_config(cfg: DiffuserConfig) -> CorruptionConfig:
    """The core's CorruptionConfig; an invalid setting stops fairseq with one clear line."""
    return core_config(lambda: CorruptionConfig(
        edit_mix=(cfg.corruption_keep, cfg.corruption_replace, cfg.corruption_insert, cfg.corruption_delete),
        span_lambda=cfg.span_lambda, num_steps=cfg.diffusion_steps, unit=str(cfg.edit_unit),
        reverse_target=str(cfg.reverse_target), schedule=str(cfg.noise_schedule),
        repetition_noise=cfg.repetition_noise), "diffuser task option")


def decode_config(options: dict, max_length: int) -> DecodeConfig:
    """The core's DecodeConfig from the decoding options; an invalid value stops fairseq with one clear line."""
    return core_config(lambda: DecodeConfig(steps=options["decode_steps"], token_beam=options["token_beam"],
                                            revision_beam=options["revision_beam"], nucleus_p=options["nucleus_p"],
                                            max_length=max_length,
                                            stop_when_unchanged=not options["force_decode_steps"],
                                            keep_bias=options["keep_bias"],
                                            remask_share=options["remask_share"],
                                            sample_tags=options["sample_tags"],
                                            verify_edits=options["verify_edits"],
                                            whole_word_edits=options["whole_word_edits"]),
                       "diffuser decoding option")


def data_manifest(data: Optional[str]) -> tuple[Optional[dict], str]:
    """The data directory's manifest.json (None without one) and its corpus task; a broken manifest stops
    fairseq with one clear line."""
    try:
        manifest = read_manifest(data) if data else None
        return manifest, corpus_task(manifest)
    except InputError as err:
        raise SystemExit(f"error: {err}") from None


def read_init_tokens(cfg: DiffuserConfig, dictionary, expected_lines: int,
                     manifest: Optional[dict]) -> list[list[int]]:
    """--init-file's hypotheses as dictionary ids (no eos); one clear line on any problem."""
    if not cfg.init_file:
        raise SystemExit("error: --init-mode file needs --init-file PATH")
    return read_hypothesis_tokens(cfg, cfg.init_file, "--init-file", dictionary, expected_lines, manifest)


def read_hypothesis_tokens(cfg: DiffuserConfig, path: str, option: str, dictionary, expected_lines: int,
                           manifest: Optional[dict]) -> list[list[int]]:
    """The hypotheses of ``path`` (text or fairseq-generate output) as dictionary ids (no eos), one per line of
    the split; one clear line naming ``option`` on any problem."""
    try:
        hypotheses = read_init_hypotheses(path, expected_lines)
    except InputError as err:
        raise SystemExit(f"error: {option} {err}") from None
    try:
        pieces = piece_encoder(cfg.init_spm_model, manifest, option="--init-spm-model")
    except InputError as err:
        raise SystemExit(f"error: {option}: {err}") from None
    tokens = []
    for line_no, text in enumerate(hypotheses, start=1):
        ids = dictionary.encode_line(pieces.encode_as_text(text), add_if_not_exist=False,
                                     append_eos=False).long().tolist()
        if len(ids) > cfg.max_target_positions:
            raise SystemExit(f"error: {option} {path}: hypothesis {line_no} has {len(ids)} tokens, "
                             f"over --max-target-positions {cfg.max_target_positions}")
        tokens.append(ids)
    pieces_read = sum(map(len, tokens))
    unknown = sum(ids.count(dictionary.unk()) for ids in tokens)
    if pieces_read and unknown > UNKNOWN_PIECES_LIMIT * pieces_read:
        raise SystemExit(f"error: {option} {path}: {unknown / pieces_read:.0%} of its pieces are not in the data's "
                         "dictionary; is --init-spm-model (default: the manifest's) the sentencepiece model of "
                         "this data?")
    return tokens


# the share of unknown pieces beyond which hypotheses were encoded by another sentencepiece model
UNKNOWN_PIECES_LIMIT = 0.2


def word_start_flags(dictionary) -> np.ndarray:
    """(V,) bool: does the symbol begin a word (sentencepiece's ▁)?"""
    return np.array([symbol.startswith(WORD_START) for symbol in dictionary.symbols], dtype=bool)


def noise_vocabulary(dictionary, ids: SpecialIds, word_starts: bool, counts: np.ndarray | None = None
                     ) -> NoiseVocabulary:
    """Noise is drawn from real subwords: no special symbol, sentinel or fairseq padding word; with ``counts``
    (V,), by those frequencies (the unigram distribution, ``target_counts``), else uniformly."""
    symbols = dictionary.symbols
    special = {dictionary.bos(), dictionary.pad(), dictionary.eos(), dictionary.unk(), *ids.sentinels}
    special |= {i for i, symbol in enumerate(symbols) if symbol.startswith("madeupword")}
    is_word_start = None
    if word_starts:
        is_word_start = word_start_flags(dictionary)
        if not is_word_start.any():
            raise SystemExit("error: --edit-unit word and --word-errors-prob need a sentencepiece dictionary (no "
                             "symbol starts with ▁)")
    try:
        return NoiseVocabulary(len(dictionary), special_ids=special, is_word_start=is_word_start, weights=counts)
    except ValueError as err:
        raise SystemExit(f"error: no noise to draw from the target dictionary: {err}") from None


# the target sentences of the train split that --noise-distribution unigram and --word-errors-prob count over
COUNTED_SENTENCES = 200_000


def train_targets(cfg: DiffuserConfig, dictionary, option: str) -> list[np.ndarray]:
    """The first COUNTED_SENTENCES targets of the train split (of the first data directory), ids with eos, for the
    counts ``option`` needs. Not the dictionary's counts: a joined dictionary counts the source language's tokens
    too."""
    path = os.path.join(utils.split_paths(cfg.data)[0],
                        f"{cfg.train_subset}.{cfg.source_lang}-{cfg.target_lang}.{cfg.target_lang}")
    targets = data_utils.load_indexed_dataset(path, dictionary, cfg.dataset_impl)
    if targets is None:
        raise SystemExit(f"error: {option} counts the train split's target tokens, but {path}.bin is missing")
    return [targets[index].numpy() for index in range(min(len(targets), COUNTED_SENTENCES))]


def target_counts(cfg: DiffuserConfig, dictionary) -> np.ndarray:
    """(V,) how often each id occurs in ``train_targets`` (the unigram distribution of --noise-distribution)."""
    targets = train_targets(cfg, dictionary, "--noise-distribution unigram")
    return np.bincount(np.concatenate(targets), minlength=len(dictionary)).astype(np.float64)
