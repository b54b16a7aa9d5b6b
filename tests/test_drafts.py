"""Drafts as decoder input: kept spans, their locks, and the piece encoder that reads the data manifest."""
from __future__ import annotations

import json

import pytest
import sentencepiece

from diffuser_mt.data_manifest import read_manifest
from diffuser_mt.drafts import PieceEncoder, keep_span_bounds, locked_draft, piece_encoder
from diffuser_mt.edit_decoder import FREE
from diffuser_mt.textio import InputError

WORDS = "Das Haus ist sehr klein und alt".split()
PLAIN = PieceEncoder(None)  # text is space-separated pieces


def encode(pieces: str) -> list[int]:
    return [10 + WORDS.index(piece) for piece in pieces.split()]


@pytest.mark.parametrize("draft, spans, bounds", [
    ("Das Haus ist klein", [], []),
    ("Das Haus ist klein", ["Das Haus"], [(0, 8)]),
    ("Das Haus ist klein.", ["klein.", "Das"], [(0, 3), (13, 19)]),  # sorted; a span may end in punctuation
    ("Das Haus ist klein", ["Haus ist klein"], [(4, 18)]),
])
def test_kept_spans_are_found_as_sorted_character_bounds(draft, spans, bounds):
    assert keep_span_bounds(draft, spans, line=1) == bounds


@pytest.mark.parametrize("draft, spans, message", [
    ("Das Haus", ["Katze"], "draft 3: --keep-spans 'Katze' does not occur in it"),
    ("Das Haus", ["Hau"], "'Hau' must cover whole words"),
    ("Das Haus", ["as"], "'as' must cover whole words"),
    ("Das Haus ist klein", ["Das Haus", "Haus ist"], "draft 3: --keep-spans overlap"),
])
def test_bad_kept_spans_are_one_line_errors_naming_the_draft(draft, spans, message):
    with pytest.raises(InputError, match=message):
        keep_span_bounds(draft, spans, line=3)


@pytest.mark.parametrize("draft, spans, ids, locks", [
    ("Das Haus ist klein", [], [10, 11, 12, 14], [FREE] * 4),
    ("Das Haus ist klein", ["Das Haus"], [10, 11, 12, 14], [0, 0, FREE, FREE]),
    ("Das Haus ist sehr klein", ["klein", "Das"], [10, 11, 12, 13, 14], [0, FREE, FREE, FREE, 1]),
    ("  Das   Haus  ", ["Haus"], [10, 11], [FREE, 0]),
    ("", [], [], []),
])
def test_a_locked_draft_gives_each_kept_span_its_own_lock(draft, spans, ids, locks):
    assert locked_draft(draft, spans, PLAIN, encode, line=1) == (ids, locks)


def test_each_part_of_a_locked_draft_is_encoded_on_its_own():
    calls = []
    locked_draft("Das Haus ist klein", ["Haus"], PLAIN, lambda pieces: calls.append(pieces) or encode(pieces), 1)
    assert calls == ["Das", "Haus", "ist klein"]


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spm")
    (folder / "text").write_text("Das Haus ist sehr klein.\nDer Hund ist alt und klein.\n" * 20, encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(input=str(folder / "text"), model_prefix=str(folder / "spm"),
                                             vocab_size=20, minloglevel=2)
    return folder / "spm.model"


def test_without_a_model_text_is_taken_as_pieces(tmp_path):
    pieces = piece_encoder(None, read_manifest(tmp_path), option="--spm-model")
    assert pieces.encode_as_text("▁Das ▁Haus") == "▁Das ▁Haus"
    assert pieces.decode(["▁Das", "▁Haus"]) == "▁Das ▁Haus"


@pytest.mark.parametrize("named_in", ["option", "manifest"])
def test_the_model_comes_from_the_option_or_the_data_manifest(tmp_path, spm_model, named_in):
    manifest = {"sentencepiece_model": str(spm_model)} if named_in == "manifest" else {"sentencepiece_model": "x"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    option = spm_model if named_in == "option" else None
    pieces = piece_encoder(option, read_manifest(tmp_path), option="--spm-model")
    text = "Das Haus ist klein."
    encoded = pieces.encode_as_text(text)
    assert encoded.startswith("▁") and encoded.replace(" ", "").replace("▁", " ").strip() == text
    assert pieces.decode(encoded.split()) == text


def test_a_missing_model_is_an_error_naming_the_option(tmp_path):
    with pytest.raises(InputError, match=r"spm.model: no such sentencepiece model \(pass --init-spm-model PATH\)"):
        piece_encoder(None, {"sentencepiece_model": str(tmp_path / "spm.model")}, option="--init-spm-model")
