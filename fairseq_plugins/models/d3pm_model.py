"""The ``d3pm`` model: an encoder-decoder Transformer predicting x_0 logits of the target from its noised x_t.

* encoder: fairseq's Transformer encoder over the clean source;
* decoder: fairseq's Transformer decoder over x_t (B x L), bidirectional (no causal mask), cross-attending
  to the source; its output layer (tied to the shared embeddings) gives x_0 logits (B x L x K);
* timestep: t enters as one extra memory slot of the encoder output (sinusoidal features through an MLP,
  ``diffuser_mt.time_embedding``), so every decoder layer can attend to it; fairseq's decoder is unchanged;
* length: the target length is not noised. Training takes it from the clean target (x_t has the
  target's length); decoding takes the argmax of a length predictor, a linear classifier over the mean
  of the encoder states (as fairseq's NAT models do), trained beside the diffusion loss. Its gradient
  stops at the encoder states (fairseq NAT's ``--sg-length-pred``): the diffusion loss per token is about
  CE/T + λ CE, far smaller than a length CE, which would otherwise steer the shared encoder.

The forward process (``--transition``, ``--noise-schedule``, ``--num-diffusion-timesteps``) is part of the
model, so a checkpoint records it and ``fairseq-generate`` decodes with the process it was trained on.
"""
from __future__ import annotations

import torch
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from fairseq.models.transformer import TransformerModel, base_architecture
from torch import Tensor, nn

from diffuser_mt.d3pm_schedules import SCHEDULES
from diffuser_mt.d3pm_transitions import TRANSITIONS, Transition, make_transition
from diffuser_mt.time_embedding import TimeEmbedding
from fairseq_plugins.checkpoint_safety import StateDictFitCheck
from fairseq_plugins.models.cpu_sizes import apply_size


@register_model("d3pm")
class D3PMModel(StateDictFitCheck, BaseFairseqModel):
    """denoise(x_t, t, encoder_out) -> x_0 logits; predict_length(encoder_out) -> length logits."""

    def __init__(self, args, transformer: TransformerModel, transition: Transition):
        super().__init__()
        self.args = args
        self.transformer = transformer
        self.transition = transition
        dim = args.encoder_embed_dim
        self.time_embedding = TimeEmbedding(dim)
        self.length_predictor = nn.Linear(dim, args.max_target_positions + 1)

    @staticmethod
    def add_args(parser):
        TransformerModel.add_args(parser)
        parser.add_argument("--transition", choices=TRANSITIONS,
                            help="forward process: absorbing (tokens become <mask>) or uniform (tokens become "
                                 "uniformly random vocabulary tokens)")
        parser.add_argument("--noise-schedule", choices=SCHEDULES,
                            help="alpha_bar_t: mutual_information (1 - t/T, absorbing's default), cosine (uniform's "
                                 "default), spindle (DiffusionBERT: rare tokens masked first; absorbing only)")
        parser.add_argument("--num-diffusion-timesteps", type=int, metavar="T",
                            help="T, the length of the forward chain")
        parser.add_argument("--spindle-lambda", type=float,
                            help="strength of the spindle schedule's frequency term, in [0, 1/pi]")

    @classmethod
    def build_model(cls, args, task):
        d3pm_base_architecture(args)
        args.share_all_embeddings = True
        args.max_source_positions = getattr(args, "max_source_positions", None) or task.cfg.max_source_positions
        args.max_target_positions = getattr(args, "max_target_positions", None) or task.cfg.max_target_positions
        try:
            counts = task.token_counts() if args.noise_schedule == "spindle" else None
            transition = make_transition(args.transition, task.x0_support(), args.num_diffusion_timesteps,
                                         args.noise_schedule, mask_id=task.mask_idx, token_counts=counts,
                                         spindle_lambda=args.spindle_lambda)
        except ValueError as err:
            raise SystemExit(f"error: invalid d3pm model option: {err}") from None
        return cls(args, TransformerModel.build_model(args, task), transition)

    def encode(self, src_tokens: Tensor, src_lengths: Tensor) -> dict:
        return self.transformer.encoder(src_tokens, src_lengths=src_lengths)

    def predict_length(self, encoder_out: dict) -> Tensor:
        """(B, max_target_positions + 1) logits of the target length (eos excluded)."""
        states = encoder_out["encoder_out"][0]  # S x B x d
        padding = encoder_out["encoder_padding_mask"][0]  # B x S
        keep = (~padding).transpose(0, 1).unsqueeze(-1).type_as(states)
        mean = (states * keep).sum(0) / keep.sum(0).clamp_min(1.0)
        return self.length_predictor(mean.detach())

    def denoise(self, x_t: Tensor, t: Tensor, encoder_out: dict) -> Tensor:
        """x_0 logits (B x L x K) of the noised targets x_t (B x L, padded) at timesteps t (B,)."""
        time = self.time_embedding(t).unsqueeze(0).type_as(encoder_out["encoder_out"][0])  # 1 x B x d
        padding = encoder_out["encoder_padding_mask"][0]
        memory = {
            "encoder_out": [torch.cat([encoder_out["encoder_out"][0], time], dim=0)],
            "encoder_padding_mask": [torch.cat([padding, padding.new_zeros(padding.size(0), 1)], dim=1)],
        }
        logits, _ = self.transformer.decoder(x_t, encoder_out=memory, full_context_alignment=True)
        return logits

    def forward(self, src_tokens, src_lengths, noised_tokens, timesteps, **unused):
        """(x_0 logits B x L x K, length logits B x (max_target_positions + 1))."""
        encoder_out = self.encode(src_tokens, src_lengths)
        return self.denoise(noised_tokens, timesteps, encoder_out), self.predict_length(encoder_out)

    def max_positions(self):
        return (self.args.max_source_positions, self.args.max_target_positions)


def d3pm_base_architecture(args):
    """Transformer-base encoder and decoder (6+6 layers, d 512, FFN 2048, 8 heads), absorbing diffusion."""
    args.dropout = getattr(args, "dropout", 0.1)
    args.transition = getattr(args, "transition", None) or "absorbing"
    args.noise_schedule = getattr(args, "noise_schedule", None)
    args.num_diffusion_timesteps = getattr(args, "num_diffusion_timesteps", None) or 1000
    spindle_lambda = getattr(args, "spindle_lambda", None)
    args.spindle_lambda = 0.3 if spindle_lambda is None else spindle_lambda
    base_architecture(args)


@register_model_architecture("d3pm", "d3pm_base")
def d3pm_base(args):
    d3pm_base_architecture(args)


@register_model_architecture("d3pm", "d3pm_small")
def d3pm_small(args):
    """CPU size for the default corpus: the AR baseline's size (3+3 layers, d 256)."""
    apply_size(args, "small")
    d3pm_base_architecture(args)


@register_model_architecture("d3pm", "d3pm_tiny")
def d3pm_tiny(args):
    """For tests: 1+1 layers, d 32."""
    apply_size(args, "tiny")
    d3pm_base_architecture(args)
