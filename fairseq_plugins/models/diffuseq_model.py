"""The ``diffuseq`` model: a bidirectional Transformer that predicts z_0 over the joint sequence x ⊕ y.

As DiffuSeq's ``TransformerNetModel``:

* one word embedding Emb (V x D, D = ``--word-embed-dim``, 128 in the paper, N(0, 1) init) embeds the tokens;
  its transpose is the rounding head (``logits``: z -> z Embᵀ);
* the network maps z_t (B x L x D) up to the hidden size H (Linear-Tanh-Linear), adds learned positions and
  the timestep embedding (sinusoidal features of t * 1000 / T through an MLP, ``diffuser_mt.time_embedding``)
  at every position, applies LayerNorm and dropout (BERT's embedding block), then fairseq's Transformer encoder
  layers (post-norm, GELU: BERT), and maps back down to D (Linear-Tanh-Linear): the z_0 estimate;
* with ``--self-condition`` the previous z_0 estimate is concatenated to z_t before the up-projection.

The forward process (``--noise-schedule``, ``--num-diffusion-timesteps``) and the joint sequence length L
(the task's ``--sequence-length``) are part of the model, so a checkpoint records them and
``fairseq-generate`` decodes with what it was trained on. All diffusion maths is in ``diffuser_mt.diffuseq_*``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from fairseq.modules import TransformerEncoderLayer
from torch import Tensor, nn

from diffuser_mt.diffuseq_diffusion import q_sample, self_condition_input, z0_from_embeddings
from diffuser_mt.diffuseq_schedules import SCHEDULES, make_schedule
from diffuser_mt.time_embedding import TimeEmbedding
from fairseq_plugins.checkpoint_safety import StateDictFitCheck
from fairseq_plugins.models.cpu_sizes import apply_size


def _projection(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.Tanh(), nn.Linear(out_dim, out_dim))


@register_model("diffuseq")
class DiffuSeqModel(StateDictFitCheck, BaseFairseqModel):
    """forward(tokens, target_mask, t) -> (Emb(w), z_0, z_0 estimate); denoise(z_t, t, prev_x0) -> z_0 estimate."""

    def __init__(self, args, vocab_size: int):
        super().__init__()
        self.args = args
        word_dim, hidden = args.word_embed_dim, args.encoder_embed_dim
        self.schedule = make_schedule(args.noise_schedule, args.num_diffusion_timesteps)
        self.sequence_length = args.sequence_length
        self.self_condition = args.self_condition
        self.word_embedding = nn.Embedding(vocab_size, word_dim)
        self.input_projection = _projection(word_dim * (2 if args.self_condition else 1), hidden)
        self.position_embedding = nn.Embedding(args.sequence_length, hidden)
        self.time_embedding = TimeEmbedding(hidden)
        self.embedding_norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(args.dropout)
        self.layers = nn.ModuleList(TransformerEncoderLayer(args) for _ in range(args.encoder_layers))
        self.output_projection = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, word_dim))

    @staticmethod
    def add_args(parser):
        parser.add_argument("--encoder-layers", type=int, metavar="N", help="Transformer layers")
        parser.add_argument("--encoder-embed-dim", type=int, metavar="H", help="hidden size")
        parser.add_argument("--encoder-ffn-embed-dim", type=int, metavar="N", help="feed-forward size")
        parser.add_argument("--encoder-attention-heads", type=int, metavar="N", help="attention heads")
        parser.add_argument("--dropout", type=float, metavar="P", help="dropout after embeddings and sublayers")
        parser.add_argument("--attention-dropout", type=float, metavar="P", help="dropout of attention weights")
        parser.add_argument("--activation-dropout", type=float, metavar="P", help="dropout inside the FFN")
        parser.add_argument("--word-embed-dim", type=int, metavar="D",
                            help="size D of the word embeddings, the space the diffusion runs in (paper: 128)")
        parser.add_argument("--noise-schedule", choices=SCHEDULES,
                            help="alpha_bar_t: sqrt (DiffuSeq, the default), linear (DDPM) or cosine")
        parser.add_argument("--num-diffusion-timesteps", type=int, metavar="T",
                            help="T, the length of the forward chain (DiffuSeq: 2000)")
        parser.add_argument("--self-condition", action="store_true",
                            help="condition the network on its previous z_0 estimate (Chen et al. 2022; not in "
                                 "DiffuSeq): half of the training steps take it from a first pass without "
                                 "gradients, decoding from the previous step")

    @classmethod
    def build_model(cls, args, task):
        diffuseq_base_architecture(args)
        args.sequence_length = getattr(args, "sequence_length", None) or task.cfg.sequence_length  # a checkpoint's L
        try:
            return cls(args, len(task.target_dictionary))
        except ValueError as err:
            raise SystemExit(f"error: invalid diffuseq model option: {err}") from None

    def logits(self, z: Tensor) -> Tensor:
        """Rounding logits z Embᵀ (..., V) of vectors z (..., D)."""
        return F.linear(z, self.word_embedding.weight)

    def denoise(self, z_t: Tensor, t: Tensor, prev_x0: Tensor | None = None) -> Tensor:
        """z_0 estimate (B x L x D) from z_t (B x L x D) at 0-based timesteps t (B,); prev_x0 (B x L x D): the
        previous estimate when self-conditioning (zeros if None)."""
        if self.self_condition:
            z_t = torch.cat([z_t, torch.zeros_like(z_t) if prev_x0 is None else prev_x0], dim=-1)
        time = self.time_embedding(t.float() * (1000.0 / self.schedule.num_steps))
        positions = self.position_embedding.weight[: z_t.size(1)]
        x = self.dropout(self.embedding_norm(self.input_projection(z_t) + positions + time.unsqueeze(1)))
        x = x.transpose(0, 1)  # L x B x H
        for layer in self.layers:
            x = layer(x, encoder_padding_mask=None)
        return self.output_projection(x.transpose(0, 1))

    def forward(self, tokens: Tensor, target_mask: Tensor, timesteps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One training pass over joint sequences ``tokens`` (B x L) with noised positions ``target_mask`` (B x L):
        Emb(w), z_0 ~ q(z_0 | w) and the network's z_0 estimate from z_t ~ q(z_t | z_0) at ``timesteps`` (B,),
        each B x L x D. The noise comes from torch's generator, which fairseq seeds per update."""
        emb_w = self.word_embedding(tokens)
        z0 = z0_from_embeddings(self.schedule, emb_w, torch.randn_like(emb_w))
        z_t = q_sample(self.schedule, z0, timesteps, torch.randn_like(z0), target_mask)
        prev_x0 = self_condition_input(self.denoise, z_t, timesteps) if self.self_condition else None
        return emb_w, z0, self.denoise(z_t, timesteps, prev_x0)

    def max_positions(self):
        """(source tokens with eos, no target limit): a source must leave a target slot in L; a longer target is
        cut to fit in training and does not matter in decoding."""
        return (self.sequence_length - 1, None)


def diffuseq_base_architecture(args):
    """DiffuSeq's network: BERT-base (12 layers, 12 heads, hidden 768, FFN 3072, GELU) over 128-d embeddings,
    sqrt schedule, T = 2000."""
    defaults = dict(encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=3072, encoder_attention_heads=12,
                    dropout=0.1, attention_dropout=0.1, activation_dropout=0.0, word_embed_dim=128,
                    noise_schedule="sqrt", num_diffusion_timesteps=2000)
    for name, value in defaults.items():
        setattr(args, name, getattr(args, name, value))
    args.activation_fn = "gelu"
    args.encoder_normalize_before = False
    args.self_condition = getattr(args, "self_condition", False)


@register_model_architecture("diffuseq", "diffuseq_base")
def diffuseq_base(args):
    diffuseq_base_architecture(args)


@register_model_architecture("diffuseq", "diffuseq_small")
def diffuseq_small(args):
    """CPU size for the default corpus: the AR baseline's layer size (d 256, FFN 1024, 4 heads), 6 layers (the AR
    model's 3 encoder + 3 decoder layers)."""
    args.encoder_layers = getattr(args, "encoder_layers", 6)
    apply_size(args, "small")
    diffuseq_base_architecture(args)


@register_model_architecture("diffuseq", "diffuseq_tiny")
def diffuseq_tiny(args):
    """For tests: 1 layer, d 32."""
    apply_size(args, "tiny")
    diffuseq_base_architecture(args)
