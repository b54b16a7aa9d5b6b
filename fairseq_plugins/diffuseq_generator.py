"""fairseq adapter of DiffuSeq's sampler: what ``task.build_generator`` returns for ``--task diffuseq``.

``DiffuSeqGenerator.generate`` follows fairseq's generator protocol: for each sentence of a batch a list with
one hypothesis (a dict with tokens ending in eos, score, positional_scores, alignment None), so
fairseq-generate prints its usual S-/T-/H-/D-/P- lines and scores them.

Per sentence and sample: z_T ~ N(0, I) over the target region, the source positions anchored to their word
embeddings, the reverse process of ``diffuser_mt.diffuseq_diffusion.sample_reverse``, then rounding: the most
likely word of each target position under the rounding head; the output is the target region up to its first
eos (``diffuser_mt.joint_sequence.read_target``). A token's positional score is its rounding log-probability,
the eos's that of the filler ending the output; the score is their mean. With k > 1 MBR samples the sentence
keeps the sample with the best mean sentence BLEU against its other samples (``diffuser_mt.metrics.mbr_select``).
All randomness of sentence i's sample j comes from its own generator, seeded by (seed, i, j), so outputs do
not depend on the batch.
"""
from __future__ import annotations

import torch

from diffuser_mt.d3pm_sampling import sentence_generator
from diffuser_mt.diffuseq_diffusion import DecodeConfig, row_normal, sample_reverse
from diffuser_mt.joint_sequence import joint_batch, read_target, unpadded
from diffuser_mt.metrics import mbr_select
from fairseq_plugins.generator_protocol import hypothesis, single_model


class DiffuSeqGenerator:
    """Decodes with one DiffuSeq model."""

    def __init__(self, tgt_dict, config: DecodeConfig, seed: int):
        self.tgt_dict, self.config, self.seed = tgt_dict, config, seed
        self.eos = tgt_dict.eos()  # fairseq-generate strips it from the printed hypotheses

    @torch.no_grad()
    def generate(self, models, sample, **unused):
        model = single_model(models, "diffuseq")
        src_tokens = sample["net_input"]["src_tokens"]
        sources = unpadded(src_tokens, self.tgt_dict.pad(), self.eos)
        batch = joint_batch(sources, None, model.sequence_length, separator=self.eos, filler=self.eos)
        tokens, target_mask = batch.tokens.to(src_tokens.device), batch.target_mask.to(src_tokens.device)
        samples = [self._sample(model, tokens, target_mask, sources, index)
                   for index in range(self.config.mbr_samples)]
        hypotheses = []
        for row in range(len(sources)):
            candidates = [candidate[row] for candidate in samples]
            chosen = mbr_select([self.tgt_dict.string(candidate["tokens"][:-1]) for candidate in candidates])
            hypotheses.append([candidates[chosen]])
        return hypotheses

    def _sample(self, model, tokens, target_mask, sources, index: int) -> list[dict]:
        """One sample (a fairseq hypothesis dict) per row; ``index`` numbers the MBR sample."""
        generators = [sentence_generator(self.seed, source, index) for source in sources]
        anchor = model.word_embedding(tokens)
        z_T = row_normal(anchor.shape, generators, anchor.dtype).to(anchor.device)
        x0 = sample_reverse(model.schedule, model.denoise, z_T, anchor, target_mask, self.config.steps, generators,
                            clamp_embeddings=model.word_embedding.weight if self.config.clamp else None,
                            self_condition=model.self_condition, variance=self.config.variance)
        log_probs = torch.log_softmax(model.logits(x0).float(), dim=-1)
        best = log_probs.argmax(-1)
        results = []
        for row in range(tokens.size(0)):
            region = target_mask[row].nonzero().squeeze(-1)
            output = read_target(best[row, region].tolist(), [True] * len(region), self.eos)
            end = region[len(output)]  # the slot that ends the output
            chosen = torch.cat([best[row, region[: len(output)]], torch.tensor([self.eos], device=best.device)])
            positional = log_probs[row, torch.cat([region[: len(output)], end.view(1)]), chosen].cpu()
            results.append(hypothesis(chosen.cpu(), positional))
        return results
