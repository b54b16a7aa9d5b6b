"""D3PM's core maths on small state spaces: closed forms against brute-force matrix products, the absorbing
bound as 1/t-weighted masked cross-entropy, schedules, the training inputs and the strided sampler."""
import math

import pytest
import torch
import torch.nn.functional as F

from diffuser_mt.d3pm_losses import bound_terms, sample_training_inputs
from diffuser_mt.d3pm_sampling import (
    DecodeConfig,
    categorical,
    reverse_diffusion,
    sentence_generator,
    timestep_grid,
)
from diffuser_mt.d3pm_schedules import make_schedule
from diffuser_mt.d3pm_transitions import Transition, make_transition

K, T = 5, 6
MASK = K - 1
COUNTS = torch.tensor([50.0, 3.0, 20.0, 1.0, 0.0])  # [MASK] (state 4) never occurs as a clean token
CASES = [("uniform", "mutual_information"), ("uniform", "cosine"), ("absorbing", "mutual_information"),
         ("absorbing", "cosine"), ("absorbing", "spindle")]


def build(kind, schedule, num_steps=T):
    support = torch.ones(K, dtype=torch.bool)
    if kind == "absorbing":
        support[MASK] = False
    return make_transition(kind, support, num_steps, schedule, mask_id=MASK, token_counts=COUNTS)


def alpha_table(transition):
    """ᾱ_t(i) for t = 0..T and every state i, shape (T + 1, K)."""
    alpha = transition.schedule.alpha_bar(torch.arange(T + 1))
    return alpha.expand(T + 1, K).double()


def step_matrices(kind, transition):
    """Q_1..Q_T from the paper's definitions: (1 - β_t) I + β_t 1 πᵀ with β_t = 1 - ᾱ_t / ᾱ_{t-1} per row."""
    alpha = alpha_table(transition)
    pi = torch.full((K,), 1.0 / K, dtype=torch.float64) if kind == "uniform" else F.one_hot(
        torch.tensor(MASK), K).double()
    matrices = []
    for t in range(1, T + 1):
        beta = 1 - alpha[t] / alpha[t - 1]
        matrices.append(torch.diag(1 - beta) + beta[:, None] * pi[None, :])
    return matrices


def product(matrices):
    out = torch.eye(K, dtype=torch.float64)
    for matrix in matrices:
        out = out @ matrix
    return out


@pytest.mark.parametrize("kind, schedule", CASES)
def test_step_matrices_are_stochastic_and_end_at_the_stationary_distribution(kind, schedule):
    transition = build(kind, schedule)
    matrices = step_matrices(kind, transition)
    for matrix in matrices:
        assert (matrix >= -1e-12).all()
        assert torch.allclose(matrix.sum(1), torch.ones(K, dtype=torch.float64))
    last = product(matrices)  # q(x_T | x_0) for every x_0: π, so the prior term L_T is 0
    assert torch.allclose(last, transition.stationary().double().expand(K, K), atol=1e-6)


@pytest.mark.parametrize("kind, schedule", CASES)
def test_marginals_equal_products_of_transition_matrices(kind, schedule):
    transition = build(kind, schedule)
    matrices = step_matrices(kind, transition)
    eye = torch.eye(K)
    for t in range(T + 1):
        closed = transition.marginal(eye, torch.full((K, 1), t))
        assert torch.allclose(closed.double(), product(matrices[:t]), atol=1e-6), t


@pytest.mark.parametrize("kind, schedule", CASES)
def test_multi_step_likelihoods_equal_products_of_transition_matrices(kind, schedule):
    transition = build(kind, schedule)
    matrices = step_matrices(kind, transition)
    states = torch.arange(K)
    for s in range(T):
        for t in range(s + 1, T + 1):
            closed = transition.likelihood(states, torch.tensor([s]), torch.tensor([t]))  # row j: q(x_t = j | x_s)
            assert torch.allclose(closed.double(), product(matrices[s:t]).T, atol=1e-6), (s, t)


@pytest.mark.parametrize("kind, schedule", CASES)
def test_posteriors_equal_bayes_rule_on_matrix_products_and_sum_to_one(kind, schedule):
    transition = build(kind, schedule)
    matrices = step_matrices(kind, transition)
    for t in range(1, T + 1):
        before, now = product(matrices[: t - 1]), product(matrices[:t])
        for x0 in range(K):
            for x_t in range(K):
                if now[x0, x_t] < 1e-9:
                    continue  # x_t impossible from x0
                expected = matrices[t - 1][:, x_t] * before[x0] / now[x0, x_t]
                closed = transition.posterior(torch.tensor(x_t), F.one_hot(torch.tensor(x0), K).float(),
                                              torch.tensor(t - 1), torch.tensor(t))
                assert torch.allclose(closed.double(), expected, atol=1e-5), (t, x0, x_t)
                assert closed.sum().item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("kind, schedule", CASES)
@pytest.mark.parametrize("s, t", [(0, 1), (2, 3), (1, 5), (0, T)])
def test_x0_parameterised_reverse_step_marginalises_the_joint_over_the_predicted_x0(kind, schedule, s, t):
    transition = build(kind, schedule)
    matrices = step_matrices(kind, transition)
    x0_probs = torch.softmax(torch.randn(K), 0) * transition.support
    x0_probs = x0_probs / x0_probs.sum()
    jump, before = product(matrices[s:t]), product(matrices[:s])
    for x_t in range(K):
        # p(x_s | x_t) ∝ Σ_x0 q(x_s, x_t | x0) p̃(x0) = Σ_x0 p̃(x0) Q̄_s[x0, x_s] Q_{s+1..t}[x_s, x_t]
        joint = (x0_probs.double()[:, None] * before).sum(0) * jump[:, x_t]
        if joint.sum() < 1e-12:
            continue
        closed = transition.posterior(torch.tensor(x_t), x0_probs, torch.tensor(s), torch.tensor(t))
        assert torch.allclose(closed.double(), joint / joint.sum(), atol=1e-5), x_t


def random_batch(transition, batch=64, length=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    support_ids = transition.support.nonzero().squeeze(1)
    x0 = support_ids[torch.randint(len(support_ids), (batch, length), generator=generator)]
    t = torch.randint(1, transition.num_steps + 1, (batch,), generator=generator)
    x_t = transition.sample_marginal(x0, t[:, None], generator)
    logits = 3 * torch.randn(batch, length, transition.num_states, generator=generator)
    return x0, t, x_t, transition.x0_log_probs(logits)


@pytest.mark.parametrize("kind, schedule", CASES)
def test_kl_terms_are_non_negative_and_the_closed_forms_match_the_general_kl(kind, schedule):
    transition = build(kind, schedule)
    x0, t, x_t, log_probs = random_batch(transition)
    kl = transition.kl_terms(x0, x_t, t[:, None], log_probs)
    assert kl.shape == x0.shape and torch.isfinite(kl).all()
    assert (kl >= -1e-5).all()
    general = Transition.kl_terms(transition, x0, x_t, t[:, None], log_probs)
    assert torch.allclose(kl, general, atol=1e-4)


def test_kl_term_at_t1_is_the_negative_log_likelihood_of_x0():
    transition = build("uniform", "cosine")
    x0, _, _, log_probs = random_batch(transition)
    t = torch.ones(x0.size(0), dtype=torch.long)
    x_t = transition.sample_marginal(x0, t[:, None], torch.Generator().manual_seed(1))
    p_x0_given_x1 = transition.posterior(x_t, log_probs.exp(), torch.zeros(x0.size(0), 1), t[:, None])
    expected = -torch.log(p_x0_given_x1.gather(-1, x0.unsqueeze(-1)).squeeze(-1))
    assert torch.allclose(transition.kl_terms(x0, x_t, t[:, None], log_probs), expected, atol=1e-4)


@pytest.mark.parametrize("num_steps", [1, 6, 1000])
def test_absorbing_bound_is_masked_cross_entropy_weighted_by_one_over_t(num_steps):
    transition = build("absorbing", "mutual_information", num_steps=num_steps)
    x0, t, x_t, log_probs = random_batch(transition, seed=num_steps)
    assert (x_t == MASK).any() and ((x_t != MASK).any() or num_steps == 1)
    masked_ce = -log_probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1) * (x_t == MASK)
    expected = masked_ce / t[:, None]  # D3PM App. A.3: L_{t-1} = -(1/t) Σ_{masked} log p̃(x_0 | x_t)
    assert torch.allclose(transition.kl_terms(x0, x_t, t[:, None], log_probs), expected, atol=1e-5)
    assert torch.allclose(Transition.kl_terms(transition, x0, x_t, t[:, None], log_probs), expected, atol=1e-4)

    is_token = torch.ones_like(x0, dtype=torch.bool)
    logits = log_probs.masked_fill(~transition.support, 0.0)  # finite logits with the same softmax on the support
    terms = bound_terms(transition, x0, x_t, t, logits, is_token)
    assert terms.kl.item() == pytest.approx(expected.sum().item(), rel=1e-5)
    assert terms.nelbo.item() == pytest.approx(num_steps * expected.sum().item(), rel=1e-5)
    ce = -log_probs.gather(-1, x0.unsqueeze(-1)).sum()
    assert terms.hybrid(0.01).item() == pytest.approx(expected.sum().item() + 0.01 * ce.item(), rel=1e-5)


def test_padding_neither_noised_nor_counted():
    transition = build("absorbing", "mutual_information")
    pad = 0
    x0 = torch.tensor([[1, 2, 3, pad, pad], [2, 2, 1, 3, 1]])
    is_token = x0 != pad
    t, x_t = sample_training_inputs(transition, x0, is_token, torch.Generator().manual_seed(0))
    assert ((1 <= t) & (t <= T)).all()
    assert (x_t[~is_token] == pad).all()
    logits = torch.randn(2, 5, K, requires_grad=True)
    terms = bound_terms(transition, x0, x_t, t, logits, is_token)
    (terms.kl + terms.ce).backward()
    assert torch.isfinite(terms.kl) and torch.isfinite(terms.ce)
    assert (logits.grad[~is_token] == 0).all() and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("kind, schedule", CASES)
def test_forward_samples_follow_the_marginal(kind, schedule):
    transition = build(kind, schedule)
    t = 3
    x0 = torch.full((20000,), 2)
    x_t = transition.sample_marginal(x0, torch.tensor([t]), torch.Generator().manual_seed(0))
    empirical = torch.bincount(x_t, minlength=K).double() / len(x_t)
    expected = transition.marginal(F.one_hot(torch.tensor(2), K).float(), torch.tensor(t)).double()
    assert torch.allclose(empirical, expected, atol=0.015)


def test_mutual_information_schedule_has_rates_one_over_t_minus_t_plus_one():
    alpha = make_schedule("mutual_information", 10).alpha_bar(torch.arange(11)).squeeze(-1).double()
    beta = 1 - alpha[1:] / alpha[:-1]
    assert torch.allclose(beta, 1.0 / (10 - torch.arange(1, 11).double() + 1))


@pytest.mark.parametrize("name", ["mutual_information", "cosine", "spindle"])
def test_schedules_decrease_from_one_to_zero(name):
    alpha = make_schedule(name, 50, COUNTS, spindle_lambda=1 / math.pi).alpha_bar(torch.arange(51))
    assert torch.allclose(alpha[0], torch.ones(1)) and (alpha[-1] == 0).all()
    assert (alpha[1:] <= alpha[:-1] + 1e-7).all() and (alpha >= 0).all()


def test_spindle_schedule_masks_rare_tokens_first():
    alpha = make_schedule("spindle", 100, COUNTS, spindle_lambda=0.3).alpha_bar(torch.arange(1, 100))
    frequent, rare = alpha[:, 0], alpha[:, 3]  # counts 50 and 1
    assert (rare < frequent).all()
    plain = make_schedule("spindle", 100, COUNTS, spindle_lambda=0.0).alpha_bar(torch.arange(101))
    assert torch.allclose(plain, make_schedule("mutual_information", 100).alpha_bar(torch.arange(101)).expand(-1, K))


@pytest.mark.parametrize(
    "kind, schedule, options, message",
    [
        ("uniform", "spindle", {}, "does not depend on the token"),
        ("absorbing", "spindle", {"spindle_lambda": 0.5}, "spindle lambda"),
        ("absorbing", "linear", {}, "unknown noise schedule"),
        ("gaussian", None, {}, "unknown transition"),
        ("absorbing", None, {"num_steps": 0}, "T must be >= 1"),
        ("absorbing", None, {"mask_id": 1}, "outside the clean-token support"),
    ],
)
def test_invalid_settings_raise_clear_errors(kind, schedule, options, message):
    support = torch.tensor([True, True, True, True, False])
    settings = {"num_steps": T, "mask_id": MASK, "token_counts": COUNTS, **options}
    with pytest.raises(ValueError, match=message):
        make_transition(kind, support, settings.pop("num_steps"), schedule, **settings)


@pytest.mark.parametrize("num_steps, steps, expected", [(10, 10, list(range(10, -1, -1))),
                                                        (1000, 4, [1000, 750, 500, 250, 0]),
                                                        (7, 1, [7, 0]), (10, 3, [10, 6, 3, 0])])
def test_timestep_grid_strides_from_t_to_zero(num_steps, steps, expected):
    assert timestep_grid(num_steps, steps) == expected


@pytest.mark.parametrize("steps", [0, 11])
def test_timestep_grid_rejects_more_steps_than_t(steps):
    with pytest.raises(ValueError, match="decoding steps"):
        timestep_grid(10, steps)


@pytest.mark.parametrize("options, message", [({"steps": 0}, "steps"), ({"temperature": 0.0}, "temperature"),
                                              ({"mode": "beam"}, "decoding mode")])
def test_invalid_decode_config(options, message):
    with pytest.raises(ValueError, match=message):
        DecodeConfig(**options)


def test_categorical_follows_the_probabilities_and_skips_impossible_states():
    probs = torch.tensor([0.0, 0.2, 0.0, 0.8, 0.0]).expand(10000, K)
    draws = categorical(probs, torch.rand(10000, generator=torch.Generator().manual_seed(0)))
    assert set(draws.tolist()) == {1, 3}
    assert (draws == 3).double().mean().item() == pytest.approx(0.8, abs=0.02)
    edges = categorical(probs[:2], torch.tensor([0.0, 1.0 - 1e-7]))
    assert edges.tolist() == [1, 3]


def oracle(targets):
    """A denoiser that always predicts ``targets`` (B x L) as x_0."""
    def denoise(x_t, t):
        assert x_t.shape == targets.shape and t.shape == (targets.size(0),)
        return 30.0 * F.one_hot(targets, K).float()
    return denoise


@pytest.mark.parametrize("kind, schedule", CASES)
@pytest.mark.parametrize("mode", ["argmax", "sample"])
def test_sampling_with_an_oracle_denoiser_recovers_x0(kind, schedule, mode):
    transition = build(kind, schedule, num_steps=100)
    targets = torch.tensor([[0, 1, 2, 3, 1], [3, 3, 0, 0, 0]])
    lengths = [5, 2]
    generators = [sentence_generator(1, [i]) for i in range(2)]
    tokens, scores = reverse_diffusion(transition, oracle(targets), lengths, generators,
                                       DecodeConfig(steps=7, mode=mode), pad=0)
    assert tokens[0].tolist() == targets[0].tolist() and tokens[1, :2].tolist() == targets[1, :2].tolist()
    assert (scores <= 0).all() and (scores[0] > -1e-3).all() and (scores[1, 2:] == 0).all()


@pytest.mark.parametrize("mode", ["argmax", "sample"])
def test_each_sentence_draws_from_its_own_generator(mode):
    transition = build("absorbing", "mutual_information", num_steps=50)
    torch.manual_seed(0)
    logits = torch.randn(3, 6, K)

    def denoise(x_t, t):  # position-wise and independent of the other rows of the batch
        return logits[: x_t.size(0), : x_t.size(1)] + 0.1 * F.one_hot(x_t, K)

    config = DecodeConfig(steps=10, mode=mode)
    together, _ = reverse_diffusion(transition, denoise, [6, 6, 6], [sentence_generator(5, [i]) for i in range(3)],
                                    config, pad=0)
    alone, _ = reverse_diffusion(transition, denoise, [6], [sentence_generator(5, [0])], config, pad=0)
    assert together[0].tolist() == alone[0].tolist()
    assert (together != MASK).all()
