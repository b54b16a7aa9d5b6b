"""DiffuSeq's core maths: schedules against their closed forms, partial noising, the Gaussian posterior against
Bayes' rule, the training terms, timestep samplers, clamping and the DDPM / DDIM reverse processes."""
import math

import pytest
import torch
import torch.nn.functional as F

from diffuser_mt.diffuseq_diffusion import (
    LossAwareSampler,
    UniformSampler,
    clamp_to_embeddings,
    q_posterior_mean_variance,
    q_sample,
    row_normal,
    sample_reverse,
    self_condition_input,
    training_terms,
    z0_from_embeddings,
)
from diffuser_mt.diffuseq_schedules import SCHEDULES, make_schedule

V, D = 6, 8
# source tokens, then target tokens; sentence 1 ends with one position of batch padding
TOKENS = torch.tensor([[0, 1, 2, 3, 4, 5], [5, 4, 3, 1, 1, 0]])
TARGET = torch.tensor([[False, False, True, True, True, True], [False, True, True, True, True, True]])
PADDING = torch.tensor([[False] * 6, [False] * 5 + [True]])


def embedding_matrix(seed=0):
    """V well-separated rows of norm 3: each row's nearest row and largest inner product is itself."""
    rows = torch.randn(V, D, generator=torch.Generator().manual_seed(seed))
    return 3.0 * rows / rows.norm(dim=-1, keepdim=True)


def sqrt_alpha_bar(u):
    return 1.0 - math.sqrt(u + 1e-4)


def cosine_alpha_bar(u):
    return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2


# ---------------------------------------------------------------- schedules


@pytest.mark.parametrize("name, alpha_bar", [("sqrt", sqrt_alpha_bar), ("cosine", cosine_alpha_bar)])
@pytest.mark.parametrize("num_steps", [1, 5, 50, 2000])
def test_alpha_bar_schedules_equal_their_closed_forms(name, alpha_bar, num_steps):
    schedule = make_schedule(name, num_steps)
    betas = [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), 0.999) for i in range(num_steps)]
    assert schedule.betas.dtype == torch.float64 and schedule.betas.shape == (num_steps,)
    assert torch.allclose(schedule.betas, torch.tensor(betas, dtype=torch.float64), rtol=1e-12, atol=0)
    product = 1.0
    for t in range(num_steps):
        product *= 1 - betas[t]
        assert schedule.alphas_cumprod[t].item() == pytest.approx(product, rel=1e-10)
        if max(betas[: t + 1]) < 0.999:  # uncapped, the product telescopes
            assert schedule.alphas_cumprod[t].item() == pytest.approx(
                alpha_bar((t + 1) / num_steps) / alpha_bar(0), rel=1e-10)


@pytest.mark.parametrize("name", ["sqrt", "cosine"])
@pytest.mark.parametrize("num_steps", [1, 10, 2000])
def test_last_beta_is_capped_at_0_999(name, num_steps):
    betas = make_schedule(name, num_steps).betas
    assert betas[-1].item() == 0.999 and (betas <= 0.999).all()


@pytest.mark.parametrize("num_steps", [21, 1000, 2000])
def test_linear_schedule_scales_ddpm_betas(num_steps):
    betas = make_schedule("linear", num_steps).betas
    scale = 1000 / num_steps
    assert betas[0].item() == pytest.approx(1e-4 * scale) and betas[-1].item() == pytest.approx(0.02 * scale)
    steps = betas[1:] - betas[:-1]
    assert torch.allclose(steps, steps[0].expand_as(steps))


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("num_steps", [30, 2000])
def test_schedules_decrease_inside_zero_one(name, num_steps):
    schedule = make_schedule(name, num_steps)
    alpha = schedule.alphas_cumprod
    assert ((schedule.betas > 0) & (schedule.betas < 1)).all()
    assert ((alpha > 0) & (alpha <= 1)).all() and (alpha[1:] < alpha[:-1]).all()
    assert schedule.alphas_cumprod_prev[0] == 1 and torch.equal(schedule.alphas_cumprod_prev[1:], alpha[:-1])


def test_sqrt_schedule_noises_much_faster_at_first_than_linear():
    assert make_schedule("sqrt", 2000).alphas_cumprod[0] < make_schedule("linear", 2000).alphas_cumprod[50]


# ---------------------------------------------------------------- forward process and posterior


@pytest.mark.parametrize("t", [0, 100, 1000, 1999])
def test_q_sample_follows_the_marginal_and_keeps_the_source(t):
    schedule = make_schedule("sqrt", 2000)
    n = 20000
    z0 = torch.tensor([-0.7, 1.5]).view(1, 2, 1).expand(n, 2, 1).double()
    target = torch.tensor([[False, True]]).expand(n, 2)
    noise = torch.randn(n, 2, 1, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
    z_t = q_sample(schedule, z0, torch.full((n,), t), noise, target)
    alpha = schedule.alphas_cumprod[t].item()
    assert torch.equal(z_t[:, 0], z0[:, 0])
    noised = z_t[:, 1, 0]
    assert noised.mean().item() == pytest.approx(math.sqrt(alpha) * 1.5, abs=4 * math.sqrt((1 - alpha) / n))
    assert noised.var().item() == pytest.approx(1 - alpha, rel=0.05)


def test_q_sample_uses_each_sentences_own_timestep():
    schedule = make_schedule("linear", 100)
    z0, noise = torch.randn(2, 6, D), torch.randn(2, 6, D)
    t = torch.tensor([3, 70])
    z_t = q_sample(schedule, z0, t, noise, TARGET)
    for row in range(2):
        alpha = schedule.alphas_cumprod[t[row]].item()
        expected = math.sqrt(alpha) * z0[row] + math.sqrt(1 - alpha) * noise[row]
        assert torch.allclose(z_t[row][TARGET[row]], expected[TARGET[row]], atol=1e-6)
        assert torch.equal(z_t[row][~TARGET[row]], z0[row][~TARGET[row]])


def test_z0_adds_the_first_steps_noise_to_the_embeddings():
    schedule = make_schedule("sqrt", 2000)
    emb, noise = torch.randn(2, 6, D), torch.randn(2, 6, D)
    expected = emb + math.sqrt(1 - schedule.alphas_cumprod[0].item()) * noise
    assert torch.allclose(z0_from_embeddings(schedule, emb, noise), expected)


@pytest.mark.parametrize("name, num_steps", [("sqrt", 20), ("linear", 50), ("cosine", 20)])
def test_posterior_equals_bayes_rule(name, num_steps):
    schedule = make_schedule(name, num_steps)
    generator = torch.Generator().manual_seed(0)
    for t in range(1, num_steps):
        z0, z_t = torch.randn(2, 3, 4, generator=generator, dtype=torch.float64), torch.randn(
            2, 3, 4, generator=generator, dtype=torch.float64)
        # prior z_{t-1} ~ N(sqrt(ᾱ_{t-1}) z0, 1 - ᾱ_{t-1}), likelihood z_t ~ N(sqrt(α_t) z_{t-1}, β_t)
        alpha_prev, beta = schedule.alphas_cumprod[t - 1].item(), schedule.betas[t].item()
        precision = 1 / (1 - alpha_prev) + (1 - beta) / beta
        mean = (math.sqrt(alpha_prev) * z0 / (1 - alpha_prev) + math.sqrt(1 - beta) * z_t / beta) / precision
        got_mean, got_variance = q_posterior_mean_variance(schedule, z0, z_t, torch.full((2,), t))
        assert torch.allclose(got_mean, mean, rtol=1e-9, atol=1e-12), t
        assert got_variance.shape == (2, 1, 1)
        assert torch.allclose(got_variance, torch.full((2, 1, 1), 1 / precision, dtype=torch.float64), rtol=1e-9)


def test_posterior_at_step_zero_is_z0():
    schedule = make_schedule("sqrt", 20)
    z0, z_t = torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 3, 4, dtype=torch.float64)
    mean, variance = q_posterior_mean_variance(schedule, z0, z_t, torch.zeros(2, dtype=torch.long))
    assert torch.allclose(mean, z0) and (variance == 0).all()


# ---------------------------------------------------------------- training terms


def make_training_batch(schedule, t, seed=0):
    generator = torch.Generator().manual_seed(seed)
    emb_matrix = embedding_matrix(seed)
    emb_w = emb_matrix[TOKENS]
    z0 = z0_from_embeddings(schedule, emb_w, torch.randn(emb_w.shape, generator=generator))
    x0_pred = torch.randn(emb_w.shape, generator=generator)
    return emb_matrix, emb_w, z0, x0_pred, torch.tensor(t)


def test_training_terms_equal_their_definitions():
    schedule = make_schedule("sqrt", 50)
    emb_matrix, emb_w, z0, x0_pred, t = make_training_batch(schedule, [0, 17])
    terms = training_terms(schedule, emb_w, z0, x0_pred, t, TOKENS, TARGET, PADDING, lambda x: x @ emb_matrix.T)
    alpha_last = schedule.alphas_cumprod[-1].item()
    for row, target in enumerate([emb_w[0], z0[1]]):  # t == 0: the target is Emb(w), else z0
        counted = TARGET[row] & ~PADDING[row]
        mse = ((x0_pred[row] - target) ** 2)[counted].mean()
        t_t = (alpha_last * z0[row] ** 2)[counted].mean()
        rounding = F.cross_entropy(z0[row][counted] @ emb_matrix.T, TOKENS[row][counted])
        nll = F.cross_entropy(x0_pred[row][counted] @ emb_matrix.T, TOKENS[row][counted])
        assert terms.mse[row].item() == pytest.approx(mse.item(), rel=1e-5)
        assert terms.tT[row].item() == pytest.approx(t_t.item(), rel=1e-5)
        assert terms.rounding_nll[row].item() == pytest.approx(rounding.item(), rel=1e-5)
        assert terms.nll[row].item() == pytest.approx(nll.item(), rel=1e-5)
    assert torch.allclose(terms.loss, terms.mse + terms.tT + terms.rounding_nll)


@pytest.mark.parametrize("t, perfect", [(0, "emb_w"), (5, "z0")])
def test_mse_targets_the_word_embeddings_at_step_zero_only(t, perfect):
    schedule = make_schedule("sqrt", 50)
    emb_matrix, emb_w, z0, _, t = make_training_batch(schedule, [t, t])
    logits_fn = lambda x: x @ emb_matrix.T  # noqa: E731  (a one-line stand-in for the rounding head)
    good = emb_w if perfect == "emb_w" else z0
    bad = z0 if perfect == "emb_w" else emb_w
    assert (training_terms(schedule, emb_w, z0, good, t, TOKENS, TARGET, PADDING, logits_fn).mse == 0).all()
    assert (training_terms(schedule, emb_w, z0, bad, t, TOKENS, TARGET, PADDING, logits_fn).mse > 0).all()


def test_training_terms_ignore_source_and_padding_positions():
    schedule = make_schedule("sqrt", 50)
    emb_matrix, emb_w, z0, x0_pred, t = make_training_batch(schedule, [0, 9])
    logits_fn = lambda x: x @ emb_matrix.T  # noqa: E731  (a one-line stand-in for the rounding head)
    before = training_terms(schedule, emb_w, z0, x0_pred, t, TOKENS, TARGET, PADDING, logits_fn)
    ignored = (~TARGET | PADDING).unsqueeze(-1)
    change = lambda x: torch.where(ignored, 10 * torch.randn(x.shape), x)  # noqa: E731  (a one-line change of the ignored positions)
    tokens = torch.where(ignored.squeeze(-1), (TOKENS + 1) % V, TOKENS)
    after = training_terms(schedule, change(emb_w), change(z0), change(x0_pred), t, tokens, TARGET, PADDING,
                           logits_fn)
    for name in ("mse", "tT", "rounding_nll", "nll"):
        assert torch.allclose(getattr(before, name), getattr(after, name)), name


def test_only_the_optimised_terms_carry_gradients():
    schedule = make_schedule("sqrt", 50)
    emb_matrix, _, _, x0_pred, t = make_training_batch(schedule, [0, 9])
    emb_matrix.requires_grad_(True)
    x0_pred.requires_grad_(True)
    emb_w = emb_matrix[TOKENS]
    z0 = z0_from_embeddings(schedule, emb_w, torch.randn(emb_w.shape))
    terms = training_terms(schedule, emb_w, z0, x0_pred, t, TOKENS, TARGET, PADDING, lambda x: x @ emb_matrix.T)
    assert not terms.nll.requires_grad
    terms.loss.sum().backward()
    assert (x0_pred.grad[~TARGET | PADDING] == 0).all() and x0_pred.grad[TARGET & ~PADDING].abs().sum() > 0
    assert torch.isfinite(emb_matrix.grad).all() and emb_matrix.grad.abs().sum() > 0


# ---------------------------------------------------------------- timestep samplers


def warm(sampler, losses):
    """Give every t ``sampler.history`` losses equal to losses[t]."""
    steps = torch.arange(sampler.num_steps).repeat(sampler.history)
    sampler.update(steps, losses[steps])


def test_loss_aware_sampler_is_uniform_until_every_step_has_its_history():
    sampler = LossAwareSampler(8, history=3)
    losses = torch.arange(1.0, 9.0)
    warm(sampler, losses)
    sampler.counts[5] = 2  # one loss short at t = 5
    assert not sampler.warmed_up
    assert torch.equal(sampler.probabilities(), torch.full((8,), 1 / 8, dtype=torch.float64))
    t, weights = sampler.sample(100, torch.Generator().manual_seed(0))
    assert ((0 <= t) & (t < 8)).all() and torch.equal(weights, torch.ones(100))
    sampler.update(torch.tensor([5]), torch.tensor([6.0]))
    assert sampler.warmed_up


def test_loss_aware_probabilities_follow_the_root_mean_square_loss():
    sampler = LossAwareSampler(4, history=2, uniform_mix=0.1)
    sampler.update(torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), torch.tensor([1.0, 7.0, 3.0, 4.0, 0.0, 2.0, 5.0, 5.0]))
    rms = torch.tensor([math.sqrt(25), math.sqrt(12.5), math.sqrt(2), 5.0], dtype=torch.float64)
    expected = 0.9 * rms / rms.sum() + 0.1 / 4
    assert torch.allclose(sampler.probabilities(), expected)
    assert sampler.probabilities().sum().item() == pytest.approx(1.0)


def test_loss_aware_sampler_keeps_only_the_latest_losses():
    sampler = LossAwareSampler(2, history=3)
    sampler.update(torch.tensor([0] * 5 + [1] * 3), torch.tensor([9.0, 9.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0]))
    assert sampler.losses[0].tolist() == [1.0, 2.0, 3.0] and sampler.counts.tolist() == [3, 3]


def test_loss_aware_weights_make_the_estimate_unbiased():
    num_steps = 50
    losses = torch.linspace(0.1, 5.0, num_steps, dtype=torch.float64) ** 2
    sampler = LossAwareSampler(num_steps, history=2)
    warm(sampler, losses)
    p = sampler.probabilities()
    assert p.max() / p.min() > 10  # far from uniform
    # exactly: Σ_t p_t w_t L_t = mean_t L_t
    assert (p * losses / (num_steps * p)).sum().item() == pytest.approx(losses.mean().item(), rel=1e-12)
    t, weights = sampler.sample(200000, torch.Generator().manual_seed(0))
    assert torch.allclose(weights.double(), 1 / (num_steps * p[t]), rtol=1e-6)
    estimate = (weights.double() * losses[t]).mean().item()
    assert estimate == pytest.approx(losses.mean().item(), rel=0.01)
    counts = torch.bincount(t, minlength=num_steps).double() / len(t)
    assert torch.allclose(counts, p, atol=0.005)


def test_uniform_sampler_has_unit_weights():
    sampler = UniformSampler(7)
    t, weights = sampler.sample(5000, torch.Generator().manual_seed(0))
    assert set(t.tolist()) == set(range(7)) and torch.equal(weights, torch.ones(5000))
    sampler.update(t, torch.rand(5000))
    assert torch.equal(sampler.probabilities(), torch.full((7,), 1 / 7, dtype=torch.float64))


# ---------------------------------------------------------------- clamping


def test_clamping_snaps_to_the_nearest_rows_exactly():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(50, D, generator=generator)
    x = torch.randn(3, 7, D, generator=generator)
    x[0, 0] = weight[17]
    snapped, ids = clamp_to_embeddings(x, weight)
    expected = torch.cdist(x.reshape(-1, D).double(), weight.double()).argmin(-1).view(3, 7)
    assert torch.equal(ids, expected) and ids[0, 0] == 17
    assert torch.equal(snapped, weight[ids])


# ---------------------------------------------------------------- reverse process


class Oracle:
    """A denoiser that predicts the clean embeddings of ``TOKENS`` (plus optional ``error``), leaves the source
    to the anchor, and records what it is given."""

    def __init__(self, emb, error=0.0, seed=0):
        self.x0 = emb[TOKENS] + error * torch.randn(2, 6, D, generator=torch.Generator().manual_seed(seed))
        self.calls = []

    def __call__(self, z_t, t, prev_x0):
        assert z_t.shape == (2, 6, D) and t.shape == (2,) and t.dtype == torch.long
        self.calls.append((z_t.clone(), t.clone(), None if prev_x0 is None else prev_x0.clone()))
        return torch.where(TARGET.unsqueeze(-1), self.x0 + 0.01 * len(self.calls), z_t)


def row_generators(rows, seed):
    return [torch.Generator().manual_seed(seed * 1000 + row) for row in range(rows)]


def start(schedule, x0, seed=1):
    """z_T ~ q(z_{T-1} | x0) at target positions (and x0 elsewhere), with its noise."""
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=x0.dtype)
    t = torch.full((x0.size(0),), schedule.num_steps - 1)
    return q_sample(schedule, x0, t, noise, TARGET), noise


@pytest.mark.parametrize("steps", [20, 5])
@pytest.mark.parametrize("clamp", [False, True])
@pytest.mark.parametrize("name", ["sqrt", "cosine"])
def test_sampling_with_an_oracle_recovers_the_target_and_keeps_the_anchor(steps, clamp, name):
    schedule = make_schedule(name, 20)
    emb = embedding_matrix()
    denoise = Oracle(emb, error=0.3)
    anchor = emb[TOKENS]
    z_T = torch.randn(2, 6, D, generator=torch.Generator().manual_seed(2))
    x0 = sample_reverse(schedule, denoise, z_T, anchor, TARGET, steps, row_generators(2, 3),
                        clamp_embeddings=emb if clamp else None)
    assert len(denoise.calls) == steps
    grid = [20 * (steps - i) // steps - 1 for i in range(steps)]
    assert [call[1].tolist() for call in denoise.calls] == [[t, t] for t in grid]
    for z_t, _, prev in denoise.calls:
        assert torch.equal(z_t[~TARGET], anchor[~TARGET]) and prev is None
    assert torch.equal(x0[~TARGET], anchor[~TARGET])
    rounded = (x0 @ emb.T).argmax(-1)
    assert torch.equal(rounded[TARGET], TOKENS[TARGET])
    if clamp:
        assert torch.equal(x0[TARGET], emb[TOKENS][TARGET])
    else:
        assert torch.allclose(x0[TARGET], denoise.x0[TARGET] + 0.01 * steps)


@pytest.mark.parametrize("name", SCHEDULES)
def test_ddim_with_an_exact_x0_follows_the_forward_marginal_of_the_starting_noise(name):
    """With x̂_0 = x_0, DDIM keeps ε̂ = ε: the input at every grid step t is sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε.
    DiffuSeq's jump to ᾱ_{t-1} instead of ᾱ_{t - stride} would break this from the second step on."""
    schedule = make_schedule(name, 40)
    emb = embedding_matrix().double()
    x0 = emb[TOKENS]
    z_T, noise = start(schedule, x0)
    calls = []

    def denoise(z_t, t, prev_x0):
        calls.append((z_t.clone(), t[0].item()))
        return x0

    out = sample_reverse(schedule, denoise, z_T, x0, TARGET, 8, row_generators(2, 0))
    assert [t for _, t in calls] == [39, 34, 29, 24, 19, 14, 9, 4]
    for z_t, t in calls:
        alpha = schedule.alphas_cumprod[t].item()
        expected = q_sample(schedule, x0, torch.full((2,), t), noise, TARGET)
        assert torch.allclose(z_t, expected, atol=1e-9), (t, alpha)
    assert torch.allclose(out, x0, atol=1e-9)


def test_ddpm_with_an_exact_x0_and_posterior_variance_follows_the_forward_marginals():
    schedule = make_schedule("sqrt", 10)
    n = 5000
    x0 = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0, -2.0]).view(1, 6, 1).expand(n, 6, 1).contiguous()
    target = TARGET[:1].expand(n, 6)
    z_T = q_sample(schedule, x0, torch.full((n,), 9), torch.randn(n, 6, 1, generator=torch.Generator().manual_seed(0)),
                   target)
    seen = {}

    def denoise(z_t, t, prev_x0):
        seen[t[0].item()] = z_t[:, 2:]
        return x0

    sample_reverse(schedule, denoise, z_T, x0, target, 10, row_generators(n, 1), variance="posterior")
    for t in [7, 4, 1, 0]:
        alpha = schedule.alphas_cumprod[t].item()
        mean, var = seen[t].mean(0).squeeze(-1), seen[t].var(0).squeeze(-1)
        assert torch.allclose(mean, math.sqrt(alpha) * x0[0, 2:, 0], atol=4 * math.sqrt((1 - alpha) / n)), t
        assert torch.allclose(var, torch.full_like(var, 1 - alpha), rtol=0.08), t


@pytest.mark.parametrize("variance, table", [("beta", "betas"), ("posterior", "posterior_variance")])
def test_ancestral_step_adds_noise_of_the_chosen_variance_around_the_posterior_mean(variance, table):
    schedule = make_schedule("sqrt", 3)
    n = 20000
    x0 = torch.ones(n, 6, 1)
    target = TARGET[:1].expand(n, 6)
    z_T = q_sample(schedule, x0, torch.full((n,), 2), torch.randn(n, 6, 1, generator=torch.Generator().manual_seed(0)),
                   target)
    seen = {}

    def denoise(z_t, t, prev_x0):
        seen[t[0].item()] = z_t
        return x0

    sample_reverse(schedule, denoise, z_T, x0, target, 3, row_generators(n, 1), variance=variance)
    mean, _ = q_posterior_mean_variance(schedule, x0, z_T, torch.full((n,), 2))
    residual = (seen[1] - mean)[target]
    assert residual.mean().item() == pytest.approx(0.0, abs=0.02)
    assert residual.var().item() == pytest.approx(getattr(schedule, table)[2].item(), rel=0.05)
    assert torch.equal(seen[1][~target], x0[~target])


@pytest.mark.parametrize("steps", [20, 4])
def test_self_conditioning_passes_the_previous_estimate(steps):
    schedule = make_schedule("sqrt", 20)
    emb = embedding_matrix()
    denoise = Oracle(emb)
    z_T = torch.randn(2, 6, D, generator=torch.Generator().manual_seed(2))
    sample_reverse(schedule, denoise, z_T, emb[TOKENS], TARGET, steps, row_generators(2, 3),
                   clamp_embeddings=emb, self_condition=True)
    assert torch.equal(denoise.calls[0][2], torch.zeros(2, 6, D))
    for i in range(1, steps):  # the previous call's raw (unclamped) output
        z_prev = denoise.calls[i - 1][0]
        expected = torch.where(TARGET.unsqueeze(-1), denoise.x0 + 0.01 * i, z_prev)
        assert torch.equal(denoise.calls[i][2], expected)


def test_sampling_is_reproducible_from_the_generator():
    schedule = make_schedule("sqrt", 20)
    emb = embedding_matrix()
    z_T = torch.randn(2, 6, D)

    def denoise(z_t, t, prev_x0):  # depends on z_t, so the ancestral noise shows in the output
        return 0.5 * z_t

    runs = [sample_reverse(schedule, denoise, z_T, emb[TOKENS], TARGET, 20, row_generators(2, seed))
            for seed in (0, 0, 1)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_a_rows_sample_does_not_depend_on_the_other_rows():
    schedule = make_schedule("sqrt", 20)
    emb = embedding_matrix()
    z_T = torch.randn(2, 6, D)

    def denoise(z_t, t, prev_x0):
        return 0.5 * z_t

    both = sample_reverse(schedule, denoise, z_T, emb[TOKENS], TARGET, 20, row_generators(2, 5))
    generator = row_generators(2, 5)[1]
    alone = sample_reverse(schedule, denoise, z_T[1:], emb[TOKENS][1:], TARGET[1:], 20, [generator])
    assert torch.equal(both[1:], alone)


def test_row_normal_draws_row_i_from_generator_i():
    rows = row_normal((2, 3, 4), row_generators(2, 9))
    assert torch.equal(rows[1], torch.randn(3, 4, generator=row_generators(2, 9)[1]))


def test_self_condition_input_is_zeros_or_a_gradient_free_first_pass_half_the_time():
    weight = torch.ones((), requires_grad=True)
    calls = []

    def denoise(z_t, t, prev_x0):
        calls.append(prev_x0)
        return weight * z_t + 1

    z_t, t = torch.randn(2, 6, D), torch.zeros(2, dtype=torch.long)
    first_pass = 0
    for seed in range(200):
        calls.clear()
        prev = self_condition_input(denoise, z_t, t, torch.Generator().manual_seed(seed))
        assert not prev.requires_grad
        if calls:
            first_pass += 1
            assert len(calls) == 1 and torch.equal(calls[0], torch.zeros_like(z_t))
            assert torch.equal(prev, z_t + 1)
        else:
            assert torch.equal(prev, torch.zeros_like(z_t))
    assert 70 <= first_pass <= 130


# ---------------------------------------------------------------- invalid settings


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: make_schedule("quadratic", 10), "unknown noise schedule"),
        (lambda: make_schedule("sqrt", 0), "T must be >= 1"),
        (lambda: make_schedule("linear", 20), "T > 20"),
        (lambda: UniformSampler(0), "T must be >= 1"),
        (lambda: LossAwareSampler(10, history=0), "history"),
        (lambda: LossAwareSampler(10, uniform_mix=0.0), "uniform_mix"),
    ],
)
def test_invalid_settings_raise_clear_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("options, message", [({"steps": 0}, "decoding steps"), ({"steps": 21}, "decoding steps"),
                                              ({"variance": "large"}, "unknown reverse variance"),
                                              ({"generators": row_generators(1, 0)}, "one generator per row")])
def test_invalid_sampling_settings_raise_clear_errors(options, message):
    emb = embedding_matrix()
    settings = {"steps": 5, "generators": row_generators(2, 0), **options}
    with pytest.raises(ValueError, match=message):
        sample_reverse(make_schedule("sqrt", 20), Oracle(emb), torch.zeros(2, 6, D), emb[TOKENS], TARGET, **settings)
