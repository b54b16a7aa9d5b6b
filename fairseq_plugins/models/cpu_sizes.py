"""Model sizes shared by the AR baseline and DiffusER, so both are compared at the same size.

Registers the archs ``transformer_cpu_{small,tiny}`` (fairseq's AR
transformer) and ``levenshtein_transformer_cpu_{small,tiny}``; the
``diffuser_small``/``diffuser_tiny`` archs apply the same sizes to each of the
tagger and the generator.
"""
from fairseq.models import register_model_architecture
from fairseq.models.nat.levenshtein_transformer import levenshtein_base_architecture
from fairseq.models.transformer import base_architecture

# layers per encoder and per decoder, model dim, FFN dim, attention heads, dropout
SIZES = {
    "small": dict(layers=3, embed_dim=256, ffn_dim=1024, heads=4, dropout=0.1),  # the default corpus on CPU
    "tiny": dict(layers=1, embed_dim=32, ffn_dim=64, heads=2, dropout=0.1),  # tests
}


def apply_size(args, size: str) -> None:
    """Set the transformer size fields of ``args`` that the command line left unset."""
    chosen = SIZES[size]
    for side in ("encoder", "decoder"):
        setattr(args, f"{side}_layers", getattr(args, f"{side}_layers", chosen["layers"]))
        setattr(args, f"{side}_embed_dim", getattr(args, f"{side}_embed_dim", chosen["embed_dim"]))
        setattr(args, f"{side}_ffn_embed_dim", getattr(args, f"{side}_ffn_embed_dim", chosen["ffn_dim"]))
        setattr(args, f"{side}_attention_heads", getattr(args, f"{side}_attention_heads", chosen["heads"]))
    args.dropout = getattr(args, "dropout", chosen["dropout"])


@register_model_architecture("transformer", "transformer_cpu_small")
def transformer_cpu_small(args):
    apply_size(args, "small")
    base_architecture(args)


@register_model_architecture("transformer", "transformer_cpu_tiny")
def transformer_cpu_tiny(args):
    apply_size(args, "tiny")
    base_architecture(args)


@register_model_architecture("levenshtein_transformer", "levenshtein_transformer_cpu_small")
def levenshtein_transformer_cpu_small(args):
    apply_size(args, "small")
    levenshtein_base_architecture(args)


@register_model_architecture("levenshtein_transformer", "levenshtein_transformer_cpu_tiny")
def levenshtein_transformer_cpu_tiny(args):
    apply_size(args, "tiny")
    levenshtein_base_architecture(args)
