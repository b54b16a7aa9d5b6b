"""The generator's key/value cache (fairseq_plugins.cached_decoding) gives the log-probs of full forward passes,
with index positions and with canvas positions (--canvas-positions)."""
from __future__ import annotations

import pytest
import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq_helpers import USER_DIR

import fairseq_plugins  # noqa: F401  (registers the diffuser task and model)
from fairseq_plugins.diffuser_generator import FairseqEditModel
from fairseq_plugins.tasks.diffuser_task import SENTINEL_FORMAT


@pytest.fixture(scope="module", params=[False, True], ids=["index positions", "canvas positions"])
def edit_model(small_corpus, request):
    """A randomly initialised diffuser_tiny bound to 3 sources of different lengths."""
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [str(small_corpus / "bin"), "--user-dir", USER_DIR, "--task", "diffuser",
                                                "--arch", "diffuser_tiny", "--cpu", "--seed", "1",
                                                *(["--canvas-positions"] if request.param else [])])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    model = task.build_model(cfg.model).eval()
    dictionary = task.target_dictionary
    sources = [[10, 11, 12, 13, dictionary.eos()], [1, 1, 20, 21, dictionary.eos()], [1, 30, 31, 32, dictionary.eos()]]
    src_tokens = torch.tensor(sources)  # left-padded, as fairseq batches sources
    assert (model.canvas_sentinels is not None) == request.param
    return FairseqEditModel(model, src_tokens, (src_tokens != 1).sum(1), dictionary.bos(), dictionary.pad())


SENTINEL = -1  # in the steps below: S_1, the terminator of fill 0 and the start of fill 1


@torch.no_grad()
@pytest.mark.parametrize("steps", [
    [([0, 1, 2], [5, 6, 7])],  # one token each
    [([2, 1, 0], [5, 6, 7]), ([0, 0, 2], [8, 9, 10])],  # rows of different sources swapped, then repeated
    [([1], [5]), ([0, 0, 0, 0], [6, 7, 8, 9])],  # shrink to one hypothesis, grow to four
    [([0, 1, 2], [5, SENTINEL, 7]), ([0, 1, 2], [SENTINEL, 8, SENTINEL]), ([0, 1, 2], [9, 10, 11])],  # next spans
])
def test_cached_fills_equal_full_forward_passes(edit_model, steps):
    rows = [0, 1, 2]
    s0, s1 = (edit_model.model.generator.decoder.dictionary.index(SENTINEL_FORMAT.format(k)) for k in range(2))
    steps = [(parents, [s1 if token == SENTINEL else token for token in tokens]) for parents, tokens in steps]
    # canvases of different lengths (padded in one block), each ending with the fill sentinel S_0
    prefixes = [[0, 40, s0, 41, 42, 43, s1, 44, 45, s0], [0, s0, s0], [0, 60, s0, 61, s1, 62, s0]]
    state, log_probs = edit_model.start_fills(rows, prefixes)
    torch.testing.assert_close(log_probs, edit_model.next_token_log_probs(rows, prefixes), atol=1e-5, rtol=1e-5)
    for parents, tokens in steps:
        state, log_probs = edit_model.extend_fills(state, parents, tokens)
        rows = [rows[p] for p in parents]
        prefixes = [prefixes[p] + [token] for p, token in zip(parents, tokens)]
        torch.testing.assert_close(log_probs, edit_model.next_token_log_probs(rows, prefixes), atol=1e-5, rtol=1e-5)
