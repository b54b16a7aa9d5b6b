"""Noise schedules of the corruption chain: each step's mix, and how much of x_0 survives t steps."""
import numpy as np
import pytest

from diffuser_mt.corruption import CorruptionConfig, NoiseVocabulary, corruption_step, sample_training_pair
from diffuser_mt.edits import Tag
from diffuser_mt.noise_schedule import SCHEDULES, ConstantSchedule, LinearSchedule, survival_share

MIXES = [(0.6, 0.2, 0.1, 0.1), (0.25, 0.25, 0.25, 0.25), (0.1, 0.4, 0.0, 0.5), (0.5, 0.0, 0.2, 0.3)]


@pytest.mark.parametrize("mix", MIXES)
@pytest.mark.parametrize("num_steps", [1, 4, 12])
def test_constant_schedule_is_the_base_mix_at_every_step(mix, num_steps):
    assert CorruptionConfig(edit_mix=mix, num_steps=num_steps).step_mixes == (tuple(mix),) * num_steps


@pytest.mark.parametrize("mix", MIXES)
@pytest.mark.parametrize("num_steps", [1, 4, 12])
def test_linear_schedule_keeps_one_minus_t_over_T_and_the_edit_proportions(mix, num_steps):
    config = CorruptionConfig(edit_mix=mix, num_steps=num_steps, schedule="linear")
    for step, step_mix in enumerate(config.step_mixes, start=1):
        assert sum(step_mix) == pytest.approx(1.0) and min(step_mix) >= 0
        np.testing.assert_allclose(np.array(step_mix[1:]) * (1 - mix[0]), np.array(mix[1:]) * (1 - step_mix[0]),
                                   atol=1e-12)
        assert config.survival(step) == pytest.approx(1 - step / num_steps, abs=1e-12)
    assert config.step_mixes[-1][0] == 0.0  # x_T has nothing of x_0 left


def test_constant_survival_is_the_mix_keep_share_to_the_power_t():
    config = CorruptionConfig()
    assert survival_share(config.edit_mix) == pytest.approx(2 / 3)
    assert config.survival(3) == pytest.approx((2 / 3) ** 3)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("t", [1, 3, 6, 11])
def test_the_share_of_x0_kept_after_t_steps_matches_the_schedule(schedule, t):
    """Measured on long sequences (truncation negligible): the x_t tokens the clean target keeps (KEEP, or INSERT
    after them) / len(x_0)."""
    config = CorruptionConfig(num_steps=12, schedule=schedule)
    rng = np.random.default_rng(t)
    x0 = rng.integers(4, 1000, 4000).tolist()
    survivors = [np.isin(sample_training_pair(x0, config, NoiseVocabulary(1000, (0, 1, 2, 3)), rng, t=t).tags[1:],
                         [Tag.KEEP, Tag.INSERT]).sum() / len(x0) for _ in range(5)]
    assert np.mean(survivors) == pytest.approx(config.survival(t), abs=0.02)


def test_the_linear_chain_gives_light_corruption_at_t_1():
    """What the schedule is for: most x_1 of a 20-token sentence have at most two edited spans."""
    config = CorruptionConfig(schedule="linear")
    rng = np.random.default_rng(0)
    noise_vocab = NoiseVocabulary(1000, (0, 1, 2, 3))
    x0 = list(range(10, 30))
    edited_runs = []
    for _ in range(500):
        tags = sample_training_pair(x0, config, noise_vocab, rng, t=1).tags
        edited_runs.append(sum(tag != Tag.KEEP and (i == 0 or tags[i - 1] == Tag.KEEP) for i, tag in enumerate(tags)))
    assert np.mean(np.array(edited_runs) <= 2) > 0.8
    assert 0 < np.mean(np.array(edited_runs) == 0) < 0.6


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_the_same_seed_gives_the_same_step(schedule):
    config = CorruptionConfig(schedule=schedule)
    tokens = list(range(10, 60))
    steps = [corruption_step(tokens, list(range(51)), config, NoiseVocabulary(100), np.random.default_rng(7), step=3)
             for _ in range(2)]
    assert steps[0].x_next == steps[1].x_next


@pytest.mark.parametrize("mix", [(1.0, 0.0, 0.0, 0.0), (0.5, 0.0, 0.5, 0.0)])
def test_linear_schedule_refuses_a_mix_that_cannot_edit_x0(mix):
    with pytest.raises(ValueError, match="linear schedule needs replace or delete mass"):
        CorruptionConfig(edit_mix=mix, schedule="linear")


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="schedule must be one of"):
        CorruptionConfig(schedule="cosine")


def test_schedules_are_registered_by_name():
    assert isinstance(SCHEDULES["constant"], ConstantSchedule) and isinstance(SCHEDULES["linear"], LinearSchedule)
