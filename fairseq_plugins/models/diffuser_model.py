"""The ``diffuser`` model: a tagger and a generator, two fairseq Transformers.

As in the paper, tagger and generator are separate encoder-decoder
Transformers, each conditioned on the source through its own encoder:

* tagger: reads ``[bos] + x_t`` with a bidirectional (non-causal) decoder and
  predicts one of the 4 edit tags per position (``diffuser_mt.edits.Tag``);
* generator: a causal decoder over the canvas and its CM3-style fill section
  (``diffuser_mt.canvas``), predicting the fill tokens left to right.

No timestep embedding: the paper does not mention one, and start states such
as an AR hypothesis have no well-defined t. Within each model all embeddings
are shared (joined dictionary); the generator's output layer is tied to them.
"""
from __future__ import annotations

import copy

from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from fairseq.models.transformer import TransformerModel, base_architecture
from torch import nn

from diffuser_mt.edits import NUM_TAGS
from fairseq_plugins.checkpoint_safety import StateDictFitCheck
from fairseq_plugins.models.cpu_sizes import apply_size


@register_model("diffuser")
class DiffuserModel(StateDictFitCheck, BaseFairseqModel):
    """tagger(src, [bos]+x_t) -> tag logits; generator(src, Z[:-1]) -> token logits."""

    def __init__(self, args, tagger: TransformerModel, generator: TransformerModel):
        super().__init__()
        self.args = args
        self.tagger = tagger
        self.generator = generator

    @staticmethod
    def add_args(parser):
        TransformerModel.add_args(parser)

    @classmethod
    def build_model(cls, args, task):
        diffuser_base_architecture(args)
        args.share_all_embeddings = True
        args.max_source_positions = getattr(args, "max_source_positions", None) or task.cfg.max_source_positions
        args.max_target_positions = getattr(args, "max_target_positions", None) or task.cfg.max_target_positions
        tagger = TransformerModel.build_model(copy.deepcopy(args), task)
        tagger.decoder.output_projection = nn.Linear(args.decoder_embed_dim, NUM_TAGS)
        generator_args = copy.deepcopy(args)
        # Z holds the canvas (<= target + sentinels) and the fill section (<= target + sentinels + eos)
        generator_args.max_target_positions = 2 * (args.max_target_positions + task.cfg.max_spans) + 2
        generator = TransformerModel.build_model(generator_args, task)
        return cls(args, tagger, generator)

    def forward(self, src_tokens, src_lengths, tagger_tokens, generator_tokens, **unused):
        """Return (tag logits B x (L+1) x NUM_TAGS, generator features B x |Z|-1 x d).

        The generator's features are returned before its output layer: only the
        fill positions carry a loss, so the criterion projects just those rows
        (``generator_log_probs``) instead of the whole canvas.
        """
        tag_logits, _ = self.tag(src_tokens, src_lengths, tagger_tokens)
        encoder_out = self.generator.encoder(src_tokens, src_lengths=src_lengths)
        generator_features, _ = self.generator.decoder(generator_tokens, encoder_out=encoder_out, features_only=True)
        return tag_logits, generator_features

    def generator_log_probs(self, features):
        """Log-probabilities over the vocabulary for generator features (..., d) -> (..., V)."""
        logits = self.generator.decoder.output_layer(features)
        return self.generator.get_normalized_probs((logits, None), log_probs=True)

    def tag(self, src_tokens, src_lengths, tagger_tokens, encoder_out=None):
        """Tag logits of ``[bos] + x_t``; the decoder attends to every position (full context)."""
        if encoder_out is None:
            encoder_out = self.tagger.encoder(src_tokens, src_lengths=src_lengths)
        return self.tagger.decoder(tagger_tokens, encoder_out=encoder_out, full_context_alignment=True)

    def max_positions(self):
        return (self.args.max_source_positions, self.args.max_target_positions)


def diffuser_base_architecture(args):
    """Paper setting: tagger and generator each Transformer-base (6+6 layers, d 512, FFN 2048, 8 heads)."""
    args.dropout = getattr(args, "dropout", 0.3)
    base_architecture(args)


@register_model_architecture("diffuser", "diffuser_base")
def diffuser_base(args):
    diffuser_base_architecture(args)


@register_model_architecture("diffuser", "diffuser_small")
def diffuser_small(args):
    """CPU size for the default corpus: the AR baseline's size (3+3 layers, d 256) for each model."""
    apply_size(args, "small")
    diffuser_base_architecture(args)


@register_model_architecture("diffuser", "diffuser_tiny")
def diffuser_tiny(args):
    """For tests: 1+1 layers, d 32."""
    apply_size(args, "tiny")
    diffuser_base_architecture(args)
