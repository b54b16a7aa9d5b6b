"""Warm start of DiffusER's generator from a fairseq ``transformer`` checkpoint.

On an empty canvas the generator reads ``[bos, S_0, S_0]`` and then writes the
target left to right: it is an autoregressive translation model. A transformer
trained on the same data directory has the same dictionary minus the span
sentinels that the diffuser task appends (``<span:k>``, after fairseq's padding
symbols), so its embedding rows are the first rows of the generator's; the
sentinels' rows keep their fresh initialisation, or (``sentinels_as``) start as
copies of one of the transformer's rows: its eos, the symbol its decoder starts
from, which a fill sentinel stands for with canvas positions
(``diffuser_mt.canvas_positions``). Every other tensor must have the
generator's shape: the transformer must have the generator's size.
"""
from __future__ import annotations

import torch
from fairseq import checkpoint_utils
from torch import nn

EMBEDDINGS = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "decoder.output_projection.weight")


def init_from_transformer(generator: nn.Module, path: str, dictionary_rows: int,
                          sentinels_as: int | None = None) -> None:
    """Copy the transformer checkpoint at ``path`` into ``generator`` (a fairseq TransformerModel) in place.

    ``dictionary_rows``: the size of the data's dictionary without the span sentinels, which the
    checkpoint's embeddings must have; ``sentinels_as``: None (the sentinels' rows stay as initialised) or
    the id whose row they copy. Anything that does not fit stops with one ``error:`` line.
    """
    theirs = checkpoint_utils.load_checkpoint_to_cpu(path)["model"]
    if not all(name in theirs for name in EMBEDDINGS[:2]):
        raise SystemExit(f"error: --init-generator-from {path}: not a fairseq transformer checkpoint "
                         "(no encoder/decoder embeddings)")
    rows = theirs["encoder.embed_tokens.weight"].size(0)
    if rows != dictionary_rows:
        raise SystemExit(f"error: --init-generator-from {path}: its dictionary has {rows} symbols and this data's "
                         f"has {dictionary_rows} (span sentinels aside); train the transformer on this data directory")
    if not torch.equal(theirs["encoder.embed_tokens.weight"], theirs["decoder.embed_tokens.weight"]):
        raise SystemExit(f"error: --init-generator-from {path}: the transformer must be trained with "
                         "--share-all-embeddings, as the generator is")
    state = {}
    for name, own in generator.state_dict().items():
        if name not in theirs:
            raise SystemExit(f"error: --init-generator-from {path}: the checkpoint has no {name}; is it a transformer "
                             "of the generator's size?")
        tensor = theirs[name]
        if name in EMBEDDINGS and tensor.shape[1:] == own.shape[1:]:
            extension = own[rows:] if sentinels_as is None else tensor[sentinels_as].expand_as(own[rows:])
            tensor = torch.cat([tensor, extension.to(tensor.dtype)])
        if tensor.shape != own.shape:
            raise SystemExit(f"error: --init-generator-from {path}: {name} is {tuple(tensor.shape)} in the checkpoint "
                             f"and {tuple(own.shape)} in the generator; use a transformer of the generator's size")
        state[name] = tensor.to(own.dtype)
    generator.load_state_dict(state, strict=True)
