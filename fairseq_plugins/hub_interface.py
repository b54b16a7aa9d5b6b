"""DiffusER from Python, the way fairseq's hub models are used: ``DiffuserModel.from_pretrained`` returns a
``DiffuserHubInterface``.

    from fairseq_plugins.models.diffuser_model import DiffuserModel

    diffuser = DiffuserModel.from_pretrained("checkpoints/diffuser", checkpoint_file="checkpoint_best.pt",
                                             data_name_or_path="data-bin/ding.en-de")
    diffuser.translate("The house is small.", decode_steps=12)          # any decoding option of the task
    diffuser.revise("The house is small.", "Das Haus ist gross.", keep_spans=["Das Haus"])
    history = diffuser.history("The house is small.")                   # SentenceHistory: the steps as data
    history.texts(), history.steps[0].tags, history.html()

It is fairseq's ``GeneratorHubInterface`` (``translate``/``sample``/``generate``, ``.cuda()``, ``.to(device)``,
``encode``/``decode``); decoding options are the diffuser task's (``decode_steps``, ``init_mode``,
``token_beam``, ``revision_beam``, ``nucleus_p``, ``keep_bias``, ...). The sentencepiece model is the one the
data directory's manifest.json names unless ``bpe``/``sentencepiece_model`` are given.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from fairseq import hub_utils

from diffuser_mt.data_manifest import read_manifest, sentencepiece_model
from diffuser_mt.drafts import PieceEncoder, keep_span_bounds, locked_draft
from diffuser_mt.edit_decoder import DecodeConfig
from diffuser_mt.start_states import length_limit
from diffuser_mt.traces import EditStep, detokenize, render_html, trace_steps


@dataclass
class SentenceHistory:
    """One sentence's decoding: its source, final text, and every edit step (x_t, tags, fills as symbols)."""

    source: str
    text: str
    steps: list[EditStep]

    def texts(self) -> list[str]:
        """The detokenized text after each step; the last is ``text``."""
        return [detokenize(step.result()) for step in self.steps]

    def html(self) -> str:
        """The edit trace as one HTML page (as ``diffuser-mt trace --html``)."""
        return render_html({self.source: self.steps}, title="DiffusER edit trace")


def load_hub_interface(model_name_or_path: str, checkpoint_file: str, data_name_or_path: str, **kwargs):
    """fairseq's ``hub_utils.from_pretrained`` as a DiffuserHubInterface, with the manifest's sentencepiece model
    as the default ``bpe``."""
    import fairseq_plugins  # noqa: F401  (the task and model registered, the checkpoint guard in place)

    data = data_name_or_path if not data_name_or_path.startswith(".") else os.path.join(model_name_or_path,
                                                                                        data_name_or_path)
    spm_model = sentencepiece_model(read_manifest(data))
    if "bpe" not in kwargs and spm_model is not None:
        kwargs.update(bpe="sentencepiece", sentencepiece_model=spm_model)
    loaded = hub_utils.from_pretrained(model_name_or_path, checkpoint_file, data_name_or_path, **kwargs)
    if loaded["task"].__class__.__name__ != "DiffuserTask":
        raise SystemExit(f"error: {checkpoint_file}: a checkpoint of task {loaded['task'].__class__.__name__}, not "
                         "diffuser")
    return DiffuserHubInterface(loaded["args"], loaded["task"], loaded["models"])


class DiffuserHubInterface(hub_utils.GeneratorHubInterface):
    """fairseq's hub interface for one DiffusER model, with ``history`` and ``revise``."""

    def translate(self, sentences: str | list[str], verbose: bool = False, **decoding) -> str | list[str]:
        """The translation of each sentence (a str for a str); ``decoding``: the task's decoding options."""
        return self.sample(sentences, beam=1, verbose=verbose, **decoding)

    def history(self, sentences: str | list[str], **decoding) -> SentenceHistory | list[SentenceHistory]:
        """As ``translate``, with every edit step of each sentence (a SentenceHistory for a str)."""
        if isinstance(sentences, str):
            return self.history([sentences], **decoding)[0]
        tokenized = [self.encode(sentence) for sentence in sentences]
        outputs = self.generate(tokenized, beam=1, **decoding)
        return [SentenceHistory(source, self.decode(hypotheses[0]["tokens"]),
                                trace_steps(hypotheses[0]["edit_history"], self.tgt_dict.symbols))
                for source, hypotheses in zip(sentences, outputs)]

    def revise(self, source: str, draft: str, keep_spans: Sequence[str] = (), steps: int = 12, token_beam: int = 1,
               revision_beam: int = 1, nucleus_p: float = 0.0, seed: int = 1, max_len_a: float = 1.2,
               max_len_b: int = 10) -> SentenceHistory:
        """``draft`` edited for ``steps`` steps as a translation of ``source``; ``keep_spans`` (whole-word
        substrings of the draft) stay unchanged. As ``diffuser-mt revise``."""
        from fairseq_plugins.revise import check_source_length, revise

        config = DecodeConfig(steps=steps, token_beam=token_beam, revision_beam=revision_beam, nucleus_p=nucleus_p)
        keep_span_bounds(draft, keep_spans, line=1)
        pieces = PieceEncoder(getattr(self.bpe, "sp", None))
        encode = lambda text: self.tgt_dict.encode_line(text, add_if_not_exist=False, append_eos=False).long().tolist()  # noqa: E731  (a one-line encoder)
        state, locks = locked_draft(draft, keep_spans, pieces, encode, line=1)
        source_ids = self.encode(source).tolist()
        check_source_length(source_ids, self.task.cfg.max_source_positions, "source")
        max_length = length_limit(len(source_ids), max_len_a, max_len_b, len(state))
        symbols, traces = revise(self.models[0], self.task, [source_ids], [state], [locks], config, seed,
                                 [max_length], device=self.device)
        return SentenceHistory(source, pieces.decode(symbols[0]), traces[0])
