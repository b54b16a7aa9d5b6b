"""The ``diffuser`` model: a tagger and a generator, two fairseq Transformers.

* tagger: reads ``[bos] + x_t`` with a bidirectional (non-causal) decoder and
  predicts one of the 4 edit tags per position (``diffuser_mt.edits.Tag``);
* generator: a causal decoder over the canvas and its CM3-style fill section
  (``diffuser_mt.canvas``), predicting the fill tokens left to right.

Layouts (both load from checkpoints of either, see ``load_state_dict``):

* ``--share-encoder``: one source encoder, the generator's, run once per batch
  and read by both decoders (as LevT shares one decoder across its heads); the
  tagger's decoder also reads the generator's embeddings. The tagger does not
  own the encoder, so the checkpoint holds it once, under ``generator.encoder``.
* ``--no-share-encoder``: the paper's layout, two full encoder-decoder models.

``--tagger-layers N`` makes the tagger's decoder N layers deep, whatever the
generator's depth. ``--init-generator-from CKPT`` starts the generator (and the
shared encoder) from a fairseq ``transformer`` trained on the same data: on an
empty canvas the generator is an autoregressive translation model
(``fairseq_plugins.models.warm_start``). ``--visible-replaced`` keeps the
tokens a step replaces on the generator's canvas, marked by a learned type
embedding (``diffuser_mt.replaced_embedding``); the task then lays out its
canvases so (``DiffuserModel.replaced_offset``). ``--canvas-positions`` reads the
fill section at the positions of the spans it fills (``diffuser_mt.canvas_positions``).
``--train-tagger-only`` freezes the generator (with the encoder and embeddings
the tagger reads from it) and skips its pass in training: a second stage that
trains a trained model's tagger alone.

No timestep embedding: the paper does not mention one, and start states such
as an AR hypothesis have no well-defined t. Within each model all embeddings
are shared (joined dictionary); the generator's output layer is tied to them.
"""
from __future__ import annotations

import argparse
import copy
import logging
import re

from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from fairseq.models.transformer import TransformerModel, base_architecture
from torch import nn

from diffuser_mt.edits import NUM_TAGS
from diffuser_mt.replaced_embedding import ReplacedTokenEmbedding
from fairseq_plugins.checkpoint_safety import StateDictFitCheck
from fairseq_plugins.models.canvas_position_embedding import CanvasPositionalEmbedding
from fairseq_plugins.models.cpu_sizes import apply_size
from fairseq_plugins.models.warm_start import init_from_transformer

logger = logging.getLogger(__name__)

TAGGER_ENCODER_PREFIX = "tagger.encoder."
TAGGER_LAYER_KEY = re.compile(r"tagger\.decoder\.layers\.(\d+)\.")


@register_model("diffuser")
class DiffuserModel(StateDictFitCheck, BaseFairseqModel):
    """tagger(src, [bos]+x_t) -> tag logits; generator(src, Z[:-1]) -> token logits."""

    def __init__(self, args, tagger: TransformerModel, generator: TransformerModel):
        super().__init__()
        self.args = args
        self.tagger = tagger
        self.generator = generator
        if args.share_encoder:
            _read_without_owning(tagger, "encoder", generator.encoder)

    @staticmethod
    def add_args(parser):
        TransformerModel.add_args(parser)
        parser.add_argument("--share-encoder", action=argparse.BooleanOptionalAction,
                            help="tagger and generator read one source encoder (the generator's), run once per "
                                 "batch; --no-share-encoder: the paper's two separate encoder-decoder models")
        parser.add_argument("--tagger-layers", type=int, metavar="N",
                            help="layers of the tagger's decoder (default: the arch's; the generator keeps "
                                 "--decoder-layers)")
        parser.add_argument("--init-generator-from", metavar="CKPT",
                            help="initialise the generator (and the shared encoder) from a fairseq transformer "
                                 "checkpoint trained on the same dictionary; the span sentinels' embeddings stay "
                                 "fresh. Recorded in the checkpoint as generator_initialised_from")
        parser.add_argument("--init-sentinels-as-eos", action=argparse.BooleanOptionalAction,
                            help="with --init-generator-from: the span sentinels' embeddings start as the "
                                 "transformer's eos embedding, the symbol its decoder starts from (which a fill "
                                 "sentinel stands for with --canvas-positions) instead of fresh")
        parser.add_argument("--init-tagger-from-generator", action=argparse.BooleanOptionalAction,
                            help="with --init-generator-from: the tagger's N decoder layers also start as copies of "
                                 "the transformer's first N decoder layers (their self-attention reads the whole "
                                 "sentence in the tagger), so the tagger starts knowing the target language; its "
                                 "output layer stays fresh")
        parser.add_argument("--visible-replaced", action=argparse.BooleanOptionalAction,
                            help="the generator sees the tokens a step replaces (after the span's sentinel, marked "
                                 "by a learned type embedding, as in the paper) instead of only the sentinel")
        parser.add_argument("--canvas-positions", action=argparse.BooleanOptionalAction,
                            help="the generator reads each fill token at the position it will take on the canvas "
                                 "(GLM's blank-infilling positions: fill k starts where its sentinel stands, the "
                                 "canvas to its left as for a left-to-right model) instead of its index in the "
                                 "canvas + fill sequence")
        parser.add_argument("--train-tagger-only", action=argparse.BooleanOptionalAction,
                            help="training: only the tagger learns; the generator and what the tagger reads from it "
                                 "(the shared encoder, the embeddings) are frozen and the generator's pass is "
                                 "skipped, so an update costs a fraction of a joint one (validation still reports "
                                 "the generator's loss). A second stage that teaches a trained model's tagger to "
                                 "find errors, e.g. with --restore-file CKPT --reset-optimizer")

    @classmethod
    def from_pretrained(cls, model_name_or_path, checkpoint_file="checkpoint_best.pt", data_name_or_path=".",
                        **kwargs):
        """A DiffuserHubInterface (``fairseq_plugins.hub_interface``) of ``model_name_or_path/checkpoint_file``,
        with the dictionaries of ``data_name_or_path`` (relative to the model dir when it starts with '.');
        ``kwargs`` override the checkpoint's options, as in fairseq."""
        from fairseq_plugins.hub_interface import load_hub_interface

        return load_hub_interface(model_name_or_path, checkpoint_file, data_name_or_path, **kwargs)

    @classmethod
    def build_model(cls, args, task):
        diffuser_base_architecture(args)
        args.share_all_embeddings = True
        args.max_source_positions = getattr(args, "max_source_positions", None) or task.cfg.max_source_positions
        args.max_target_positions = getattr(args, "max_target_positions", None) or task.cfg.max_target_positions
        generator_args = copy.deepcopy(args)
        # Z holds the canvas (<= target + sentinels) and the fill section (<= target + sentinels + eos)
        generator_args.max_target_positions = 2 * (args.max_target_positions + task.cfg.max_spans) + 2
        tagger_args = copy.deepcopy(args)
        tagger_args.decoder_layers = args.tagger_layers
        if args.share_encoder:
            generator = TransformerModel.build_model(generator_args, task)
            decoder = TransformerModel.build_decoder(tagger_args, task.target_dictionary,
                                                     generator.encoder.embed_tokens)
            tagger = TransformerModel(tagger_args, generator.encoder, decoder)
            tagger.decoder.output_projection = nn.Linear(args.decoder_embed_dim, NUM_TAGS)
        else:  # tagger first, as before the shared layout existed: a seed gives the same initial weights
            tagger = TransformerModel.build_model(tagger_args, task)
            tagger.decoder.output_projection = nn.Linear(args.decoder_embed_dim, NUM_TAGS)
            generator = TransformerModel.build_model(generator_args, task)
        if args.init_generator_from:
            init_from_transformer(generator, args.init_generator_from, len(task.target_dictionary) - task.cfg.max_spans,
                                  sentinels_as=task.target_dictionary.eos() if args.init_sentinels_as_eos else None)
            if args.init_tagger_from_generator:
                copy_decoder_layers(generator.decoder, tagger.decoder)
            # a checkpoint of this model holds the weights: loading it must not read the AR checkpoint again
            args.generator_initialised_from, args.init_generator_from = args.init_generator_from, None
        if args.visible_replaced:
            generator.decoder.embed_tokens = ReplacedTokenEmbedding(generator.decoder.embed_tokens)
        if args.canvas_positions:
            decoder = generator.decoder
            if decoder.embed_positions is None:
                raise ValueError("--canvas-positions needs the generator's positional embeddings "
                                 "(drop --no-token-positional-embeddings)")
            decoder.embed_positions = CanvasPositionalEmbedding(decoder.embed_positions, task.special_ids.sentinels,
                                                                decoder.padding_idx)
        model = cls(args, tagger, generator)
        model.set_trainable_parts()
        return model

    def set_trainable_parts(self) -> None:
        """All parameters learn, or with ``--train-tagger-only`` only the tagger's own (not those it reads from
        the generator)."""
        for parameter in self.tagger.parameters():
            parameter.requires_grad_(True)
        for parameter in self.generator.parameters():
            parameter.requires_grad_(not self.args.train_tagger_only)

    @property
    def canvas_sentinels(self):
        """None, or the span sentinel ids (a LongTensor) by which the generator reads canvas positions."""
        positions = self.generator.decoder.embed_positions
        return positions.sentinels if isinstance(positions, CanvasPositionalEmbedding) else None

    @property
    def replaced_offset(self):
        """None, or V: the generator reads a visible replaced token i as the id V + i (``diffuser_mt.canvas``)."""
        embedding = self.generator.decoder.embed_tokens
        return embedding.offset if isinstance(embedding, ReplacedTokenEmbedding) else None

    def forward(self, src_tokens, src_lengths, tagger_tokens, generator_tokens, **unused):
        """Return (tag logits B x (L+1) x NUM_TAGS, generator features B x |Z|-1 x d).

        The generator's features are returned before its output layer: only the
        fill positions carry a loss, so the criterion projects just those rows
        (``generator_log_probs``) instead of the whole canvas. Training with
        ``--train-tagger-only``, the generator does not run: its features are None.
        """
        tagger_encoder_out, generator_encoder_out = self.encode(src_tokens, src_lengths)
        tag_logits, _ = self.tag(None, None, tagger_tokens, encoder_out=tagger_encoder_out)
        if self.training and self.args.train_tagger_only:
            return tag_logits, None
        generator_features, _ = self.generator.decoder(generator_tokens, encoder_out=generator_encoder_out,
                                                       features_only=True)
        return tag_logits, generator_features

    def encode(self, src_tokens, src_lengths):
        """(tagger's encoder output, generator's encoder output); one encoder pass when the encoder is shared."""
        generator_encoder_out = self.generator.encoder(src_tokens, src_lengths=src_lengths)
        if self.args.share_encoder:
            return generator_encoder_out, generator_encoder_out
        return self.tagger.encoder(src_tokens, src_lengths=src_lengths), generator_encoder_out

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

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        """Load a checkpoint of any layout: the model takes the layout of the checkpoint's tensors (encoder
        shared or not, tagger depth), so checkpoints saved before these options load too."""
        shared = not any(name.startswith(TAGGER_ENCODER_PREFIX) for name in state_dict)
        tagger_layers = 1 + max((int(m.group(1)) for m in map(TAGGER_LAYER_KEY.match, state_dict) if m), default=-1)
        if (shared, tagger_layers) != (self.args.share_encoder, self.args.tagger_layers):
            logger.info(f"the checkpoint's layout: share_encoder={shared}, tagger_layers={tagger_layers}")
            self._set_layout(shared, tagger_layers)
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)

    def _set_layout(self, share_encoder: bool, tagger_layers: int) -> None:
        """Rebuild the tagger for another layout (its weights are then loaded); records it in ``args``."""
        decoder = self.tagger.decoder
        if share_encoder != self.args.share_encoder:
            if share_encoder:
                del self.tagger._modules["encoder"]
                _read_without_owning(self.tagger, "encoder", self.generator.encoder)
                decoder.embed_tokens = self.generator.encoder.embed_tokens
            else:
                self.tagger.encoder = copy.deepcopy(self.generator.encoder)
                decoder.embed_tokens = self.tagger.encoder.embed_tokens
        while len(decoder.layers) > tagger_layers:
            del decoder.layers[-1]
        while len(decoder.layers) < tagger_layers:
            decoder.layers.append(copy.deepcopy(decoder.layers[-1]))
        decoder.num_layers = tagger_layers
        self.args.share_encoder, self.args.tagger_layers = share_encoder, tagger_layers
        self.set_trainable_parts()


def _read_without_owning(model: nn.Module, name: str, module: nn.Module) -> None:
    """Make ``model.<name>`` refer to ``module`` without registering it: it is not saved, counted or converted
    twice (its owner moves it to a device or dtype)."""
    model._modules.pop(name, None)
    object.__setattr__(model, name, module)


def copy_decoder_layers(source: nn.Module, target: nn.Module) -> None:
    """Load ``source``'s first len(target.layers) decoder layers into ``target``'s layers (one error line when
    ``target`` is deeper)."""
    if len(target.layers) > len(source.layers):
        raise SystemExit(f"error: --init-tagger-from-generator: the tagger has {len(target.layers)} decoder layers and "
                         f"the generator {len(source.layers)}; use --tagger-layers {len(source.layers)} or fewer")
    for theirs, own in zip(source.layers, target.layers):
        own.load_state_dict(theirs.state_dict())


def diffuser_base_architecture(args):
    """Paper setting: tagger and generator each Transformer-base (6+6 layers, d 512, FFN 2048, 8 heads).

    Defaults of diffuser_base: separate encoders and a 6-layer tagger decoder, the paper's layout (see
    configs/diffuser_wmt14_en_de.yaml for the measured cheaper layout).
    """
    args.dropout = getattr(args, "dropout", 0.3)
    base_architecture(args)
    args.share_encoder = getattr(args, "share_encoder", False)
    args.tagger_layers = getattr(args, "tagger_layers", None) or args.decoder_layers
    args.init_generator_from = getattr(args, "init_generator_from", None)
    args.generator_initialised_from = getattr(args, "generator_initialised_from", None)
    args.visible_replaced = getattr(args, "visible_replaced", False)
    args.canvas_positions = getattr(args, "canvas_positions", False)
    args.init_sentinels_as_eos = getattr(args, "init_sentinels_as_eos", False)
    args.init_tagger_from_generator = getattr(args, "init_tagger_from_generator", False)
    args.train_tagger_only = getattr(args, "train_tagger_only", False)


@register_model_architecture("diffuser", "diffuser_base")
def diffuser_base(args):
    diffuser_base_architecture(args)


@register_model_architecture("diffuser", "diffuser_small")
def diffuser_small(args):
    """CPU size for the default corpus: the AR baseline's size (3+3 layers, d 256), one shared encoder, a
    1-layer tagger decoder (the measurements: README, "Train DiffusER")."""
    apply_size(args, "small")
    args.share_encoder = getattr(args, "share_encoder", True)
    args.tagger_layers = getattr(args, "tagger_layers", 1)
    diffuser_base_architecture(args)


@register_model_architecture("diffuser", "diffuser_tiny")
def diffuser_tiny(args):
    """For tests: 1+1 layers, d 32."""
    apply_size(args, "tiny")
    diffuser_base_architecture(args)
