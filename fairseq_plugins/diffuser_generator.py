"""fairseq adapter of the edit decoder: what ``task.build_generator`` returns for ``--task diffuser``.

``DiffuserGenerator.generate`` follows fairseq's generator protocol: for each
sentence of a batch, a list of hypotheses (dicts with tokens ending in eos,
score, positional_scores, alignment, steps, history, and edit_history: the
decoder's EditRecords), best first, so
fairseq-generate prints its usual S-/T-/H-/D-/P- lines and scores them.
All search logic is in ``diffuser_mt.edit_decoder``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch
from fairseq.data import data_utils

from diffuser_mt.canvas_positions import canvas_positions, step_positions
from diffuser_mt.edit_decoder import DecodeConfig, Hypothesis, decode
from diffuser_mt.edit_model import DecodeVocabulary, EditModel
from diffuser_mt.start_states import StartSettings, length_limit, reverse_steps, sentence_rng, start_state
from diffuser_mt.traces import format_history_line, trace_steps
from fairseq_plugins import cached_decoding
from fairseq_plugins.generator_protocol import single_model


class FairseqEditModel(EditModel):
    """A DiffuserModel bound to one batch of sources; encoder outputs are computed once per batch."""

    def __init__(self, model, src_tokens: torch.Tensor, src_lengths: torch.Tensor, bos: int, pad: int):
        self.model, self.bos, self.pad = model, bos, pad
        self.device = src_tokens.device
        self.tagger_encoder_out, self.generator_encoder_out = model.encode(src_tokens, src_lengths)

    @classmethod
    def for_sources(cls, model, sources: Sequence[Sequence[int]], bos: int, pad: int,
                    device: torch.device | str | None = None) -> FairseqEditModel:
        """Bound to ``sources`` (token ids, each ending in eos), left-padded as fairseq's source batches are, on
        ``device`` (None: the CPU)."""
        tensors = [torch.as_tensor(list(source), dtype=torch.long) for source in sources]
        src_tokens = data_utils.collate_tokens(tensors, pad, left_pad=True).to(device)
        return cls(model, src_tokens, torch.tensor([len(t) for t in tensors], device=device), bos, pad)

    def _collate(self, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
        tensors = [torch.tensor(list(sequence), dtype=torch.long) for sequence in sequences]
        return data_utils.collate_tokens(tensors, self.pad, left_pad=False).to(self.device)

    def _rows(self, rows: Sequence[int]) -> torch.Tensor:
        return torch.tensor(list(rows), dtype=torch.long, device=self.device)

    def tag_log_probs(self, rows, sequences):
        encoder_out = self.model.tagger.encoder.reorder_encoder_out(self.tagger_encoder_out, self._rows(rows))
        tokens = self._collate([[self.bos, *sequence] for sequence in sequences])
        logits, _ = self.model.tag(None, None, tokens, encoder_out=encoder_out)
        log_probs = torch.log_softmax(logits.float(), dim=-1).cpu()
        return [log_probs[i, : len(sequence) + 1] for i, sequence in enumerate(sequences)]

    def next_token_log_probs(self, rows, prefixes):
        encoder_out = self.model.generator.encoder.reorder_encoder_out(self.generator_encoder_out, self._rows(rows))
        tokens = self._collate(prefixes)
        features, _ = self.model.generator.decoder(tokens, encoder_out=encoder_out, features_only=True)
        last = torch.tensor([len(prefix) - 1 for prefix in prefixes], device=self.device)
        return self.model.generator_log_probs(features[torch.arange(len(prefixes), device=self.device), last]).float()

    def start_fills(self, rows, prefixes):
        """As ``next_token_log_probs``, but keeps the generator's keys and values (``cached_decoding``)."""
        rows = self._rows(rows)
        encoder_out = self.model.generator.encoder.reorder_encoder_out(self.generator_encoder_out, rows)
        tokens = self._collate(prefixes)
        lengths = torch.tensor([len(prefix) for prefix in prefixes], device=self.device)
        positions, anchors = None, None
        sentinels = self.model.canvas_sentinels
        if sentinels is not None:
            positions, anchors = canvas_positions(tokens, sentinels, self.pad)
        cache: dict = {}
        features = cached_decoding.prefill(self.model.generator.decoder, tokens, encoder_out, cache, positions)
        last = torch.arange(len(prefixes), device=self.device), lengths - 1
        following = lengths if positions is None else positions[last] + 1
        return (_FillState(rows, following, anchors, encoder_out, cache),
                self.model.generator_log_probs(features[last]).float())

    def extend_fills(self, state, parents, tokens):
        """Consumes ``state``: its cache is reordered and extended in place."""
        order = self._rows(parents)
        decoder = self.model.generator.decoder
        cached_decoding.reorder(decoder, state.cache, order)
        encoder_out = self.model.generator.encoder.reorder_encoder_out(state.encoder_out, order)
        tokens = self._rows(tokens)
        positions = state.following[order]
        anchors = None if state.anchors is None else state.anchors[order]
        if anchors is not None:
            positions = step_positions(tokens, positions, anchors, self.model.canvas_sentinels)
        features = cached_decoding.step(decoder, tokens, positions, encoder_out, state.cache)
        return (_FillState(state.rows[order], positions + 1, anchors, encoder_out, state.cache),
                self.model.generator_log_probs(features).float())


@dataclass
class _FillState:
    """Hypotheses being filled: source row and the position of the next token of each, the fill sentinels'
    positions with canvas positions (``diffuser_mt.canvas_positions``; else None), the generator encoder's
    output in their order, and the decoder's key/value cache."""

    rows: torch.Tensor
    following: torch.Tensor
    anchors: torch.Tensor | None
    encoder_out: dict
    cache: dict


class DiffuserGenerator:
    """Runs ``diffuser_mt.edit_decoder.decode`` on fairseq batches (one model; no ensembling).

    Lengths are capped per sentence at fairseq's ``max_len_a * source length + max_len_b``.
    """

    def __init__(self, tgt_dict, vocab: DecodeVocabulary, config: DecodeConfig, start: StartSettings,
                 max_len_a: float = 0.0, max_len_b: int = 200, print_edit_history: bool = False):
        self.tgt_dict, self.vocab, self.config, self.start = tgt_dict, vocab, config, start
        self.max_len_a, self.max_len_b = max_len_a, max_len_b
        self.print_edit_history = print_edit_history
        self.symbols_to_strip_from_output = set(vocab.ids.sentinels)

    @torch.no_grad()
    def generate(self, models, sample, **unused):
        model = single_model(models, "diffuser")
        net_input = sample["net_input"]
        ids = [int(i) for i in sample["id"]]
        edit_model = FairseqEditModel(model, net_input["src_tokens"], net_input["src_lengths"],
                                      self.vocab.ids.bos, self.vocab.ids.pad)
        sources = self._sources(net_input)
        rngs = [sentence_rng(self.start.seed, source) for source in sources]
        starts = [start_state(self.start, sentence_id, source, rng, self.config.max_length)
                  for sentence_id, source, rng in zip(ids, sources, rngs)]
        max_lengths = [length_limit(len(source) + 1, self.max_len_a, self.max_len_b,  # + 1: the source's eos
                                    len(start) if self.start.mode == "file" else 0)
                       for source, start in zip(sources, starts)]
        config = dataclasses.replace(self.config, steps=reverse_steps(self.start.mode, self.config.steps))
        results = decode(edit_model, starts, self.vocab, config, rngs, max_lengths)
        if self.print_edit_history:
            self._print_history(ids, results)
        return [[self._as_fairseq(h) for h in hypotheses] for hypotheses in results]

    def _sources(self, net_input) -> list[list[int]]:
        """Source ids per row without padding and eos."""
        specials = {self.vocab.ids.pad, self.vocab.ids.eos}
        return [[t for t in row.tolist() if t not in specials] for row in net_input["src_tokens"]]

    def _as_fairseq(self, hypothesis: Hypothesis) -> dict:
        eos = self.vocab.ids.eos
        return {
            "tokens": torch.tensor(hypothesis.tokens + [eos], dtype=torch.long),
            "score": hypothesis.score,
            "positional_scores": torch.tensor(hypothesis.keep_log_probs, dtype=torch.float),
            "alignment": None,
            "steps": len(hypothesis.history),
            "history": [{"tokens": torch.tensor(list(record.tokens) + [eos])} for record in hypothesis.history],
            "edit_history": hypothesis.history,  # the decoder's records (tags, fills), for the hub interface
        }

    def _print_history(self, ids: list[int], results: list[list[Hypothesis]]) -> None:
        """E-<id>_<step> lines of the best hypothesis (diffuser_mt.traces format), before fairseq's lines."""
        for sentence_id, hypotheses in zip(ids, results):
            for step, edit in enumerate(trace_steps(hypotheses[0].history, self.tgt_dict.symbols), start=1):
                print(format_history_line(sentence_id, step, edit), flush=True)
