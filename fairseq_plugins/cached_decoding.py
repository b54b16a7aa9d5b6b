"""Key/value-cached decoding with a fairseq TransformerDecoder for hypotheses of different lengths.

fairseq's own incremental decoding feeds one column of tokens per call and gives every row the same position,
so all rows must have read the same number of tokens. The edit decoder's generator continues prefixes of
different lengths (each its own canvas), so here:

* ``prefill`` reads a block of right-padded prefixes in one call (causal mask plus padding mask) and leaves
  every layer's self-attention keys and values in fairseq's incremental state;
* ``step`` reads one token per row at that row's own position; its key and value are appended after the
  block, so a shorter row has masked padding keys in between. Attention does not depend on the order of its
  keys (positions enter only through the input embeddings), so the result equals a full forward pass over
  each row's unpadded prefix;
* ``reorder`` selects and repeats rows (beam search) in every layer's cache, encoder attention included:
  fairseq's ``reorder_incremental_state`` skips encoder attention when the number of rows is unchanged, which
  is only right when rows of one sentence share their source, not for a batch of different sources.

The layers, their caches and attention masks are fairseq's; only the input embedding step (tokens, positions)
is done here, with per-row positions.
"""
from __future__ import annotations

import torch
from torch import Tensor


def prefill(decoder, tokens: Tensor, encoder_out: dict, cache: dict, positions: Tensor | None = None) -> Tensor:
    """Features (B x P x C) of right-padded prefixes ``tokens`` (B x P) at 0-based ``positions`` (B x P; default:
    their indices); fills the empty ``cache``."""
    if positions is None:
        positions = torch.arange(tokens.size(1), device=tokens.device).expand_as(tokens)
    padding = tokens.eq(decoder.padding_idx)
    return _features(decoder, tokens, positions, encoder_out, cache, causal=True,
                     padding_mask=padding if padding.any() else None)


def step(decoder, tokens: Tensor, positions: Tensor, encoder_out: dict, cache: dict) -> Tensor:
    """Features (B x C) of one token per row, ``tokens`` (B,) at 0-based ``positions`` (B,); extends ``cache``."""
    return _features(decoder, tokens.unsqueeze(1), positions.unsqueeze(1), encoder_out, cache, causal=False,
                     padding_mask=None)[:, 0]


def reorder(decoder, cache: dict, order: Tensor) -> None:
    """Make row i of every layer's cache a copy of row ``order[i]`` (in place)."""
    for layer in decoder.layers:
        for attention in (layer.self_attn, layer.encoder_attn):
            if attention is None:
                continue
            buffer = attention._get_input_buffer(cache)
            for key, value in buffer.items():
                if value is not None:
                    buffer[key] = value.index_select(0, order)
            attention._set_input_buffer(cache, buffer)


def _position_embeddings(decoder, positions: Tensor) -> Tensor | None:
    """Embeddings (B x T x C) of 0-based positions (B x T), read off the decoder's own position module (the
    module a CanvasPositionalEmbedding wraps: the positions given here are already the canvas's)."""
    if decoder.embed_positions is None:
        return None
    return position_embeddings(getattr(decoder.embed_positions, "inner", decoder.embed_positions),
                               decoder.padding_idx, positions)


def position_embeddings(embed_positions, padding_idx: int, positions: Tensor) -> Tensor:
    """Embeddings (B x T x C) of 0-based ``positions`` (B x T) from a fairseq position module (sinusoidal or
    learned), read off its table for one unpadded row."""
    unpadded = torch.full((1, int(positions.max()) + 1), padding_idx + 1, dtype=torch.long, device=positions.device)
    return embed_positions(unpadded)[0][positions]


def _features(decoder, tokens: Tensor, positions: Tensor, encoder_out: dict, cache: dict, causal: bool,
              padding_mask: Tensor | None) -> Tensor:
    """fairseq's TransformerDecoder.extract_features with per-row positions and a cache (B x T x C)."""
    x = decoder.embed_scale * decoder.embed_tokens(tokens)
    if decoder.quant_noise is not None:
        x = decoder.quant_noise(x)
    if decoder.project_in_dim is not None:
        x = decoder.project_in_dim(x)
    position_embeddings = _position_embeddings(decoder, positions)
    if position_embeddings is not None:
        x = x + position_embeddings
    if decoder.layernorm_embedding is not None:
        x = decoder.layernorm_embedding(x)
    x = decoder.dropout_module(x).transpose(0, 1)  # T x B x C
    enc = encoder_out["encoder_out"][0]
    enc_padding = encoder_out["encoder_padding_mask"][0] if encoder_out["encoder_padding_mask"] else None
    self_attn_mask = decoder.buffered_future_mask(x) if causal else None
    for layer in decoder.layers:
        x, _, _ = layer(x, enc, enc_padding, cache, self_attn_mask=self_attn_mask,
                        self_attn_padding_mask=padding_mask)
    if decoder.layer_norm is not None:
        x = decoder.layer_norm(x)
    x = x.transpose(0, 1)
    if decoder.project_out_dim is not None:
        x = decoder.project_out_dim(x)
    return x
