"""fairseq adapter of D3PM's sampler: what ``task.build_generator`` returns for ``--task d3pm``.

``D3PMGenerator.generate`` follows fairseq's generator protocol: for each sentence of a batch a list with
one hypothesis (a dict with tokens ending in eos, score, positional_scores, alignment None), so
fairseq-generate prints its usual S-/T-/H-/D-/P- lines and scores them. The target length is the
argmax of the model's length predictor, at most ``max_len_a * source length + max_len_b`` and the model's
``max_target_positions - 1`` (+ eos). A token's positional score is log p̃(x_0 | x_t) at the last step,
the eos's is the log-probability of the chosen length; the score is their mean. The sampling itself is
``diffuser_mt.d3pm_sampling.reverse_diffusion``.
"""
from __future__ import annotations

import torch

from diffuser_mt.d3pm_sampling import DecodeConfig, reverse_diffusion, sentence_generator
from diffuser_mt.joint_sequence import unpadded
from fairseq_plugins.generator_protocol import hypothesis, single_model


class D3PMGenerator:
    """Decodes with one D3PM model; each sentence's randomness is seeded by ``seed`` and its sample id."""

    def __init__(self, tgt_dict, config: DecodeConfig, seed: int, max_len_a: float = 0.0, max_len_b: int = 200):
        self.tgt_dict, self.config, self.seed = tgt_dict, config, seed
        self.eos = tgt_dict.eos()  # fairseq-generate strips it from the printed hypotheses
        self.max_len_a, self.max_len_b = max_len_a, max_len_b

    @torch.no_grad()
    def generate(self, models, sample, **unused):
        model = single_model(models, "d3pm")
        net_input = sample["net_input"]
        encoder_out = model.encode(net_input["src_tokens"], net_input["src_lengths"])
        length_log_probs = torch.log_softmax(model.predict_length(encoder_out).float(), dim=-1)
        lengths = self._lengths(length_log_probs, net_input["src_lengths"])
        sources = unpadded(net_input["src_tokens"], self.tgt_dict.pad(), self.eos)
        generators = [sentence_generator(self.seed, source) for source in sources]
        tokens, scores = reverse_diffusion(model.transition, lambda x_t, t: model.denoise(x_t, t, encoder_out),
                                           lengths, generators, self.config, pad=self.tgt_dict.pad())
        hypotheses = []
        for row, length in enumerate(lengths):
            positional = torch.cat([scores[row, :length], length_log_probs[row, length:length + 1]]).cpu()
            hypotheses.append([hypothesis(torch.cat([tokens[row, :length].cpu(), torch.tensor([self.eos])]),
                                          positional)])
        return hypotheses

    def _lengths(self, length_log_probs: torch.Tensor, src_lengths: torch.Tensor) -> list[int]:
        """Most likely target length (no eos) per sentence, in 1..cap."""
        limits = (self.max_len_a * (src_lengths - 1).float() + self.max_len_b).long()
        limits = limits.clamp(1, length_log_probs.size(1) - 1)
        allowed = torch.arange(length_log_probs.size(1), device=limits.device)
        allowed = (allowed >= 1) & (allowed <= limits.unsqueeze(1))
        return length_log_probs.masked_fill(~allowed, float("-inf")).argmax(-1).tolist()
