"""Stitching windows into audio of any length (longform.py): pure NumPy, no TensorFlow."""

import numpy as np
import pytest

import longform

WINDOW, OVERLAP, SR = 1024, 256, 16000


@pytest.mark.parametrize("num_samples", [100, WINDOW, WINDOW + 1, 5 * WINDOW + 17, 40000])
def test_output_has_exactly_the_asked_length(num_samples):
    count = longform.windows_needed(num_samples, WINDOW, OVERLAP)
    windows = np.random.default_rng(0).uniform(-1, 1, (count, WINDOW, 2))
    out = longform.join_windows(windows, OVERLAP, num_samples)
    assert out.shape == (num_samples, 2)
    if count > 1:  # one window fewer would not have been enough
        assert (count - 1) * WINDOW - (count - 2) * OVERLAP < num_samples


def block_rms(x, size=64):
    blocks = x[: len(x) // size * size].reshape(-1, size)
    return np.sqrt((blocks ** 2).mean(axis=1))


def test_crossfade_keeps_the_rms_of_uncorrelated_signals():
    rms = []
    for seed in range(20):  # average over draws: a block's RMS of noise is itself noisy
        # equal loudness, independent
        a, b = np.random.default_rng(seed).standard_normal((2, 8 * WINDOW, 1)) * 0.3
        out = longform.join_windows(np.stack([a, b]), 4 * WINDOW)[:, 0]
        rms.append(block_rms(out))
    rms = np.mean(rms, axis=0)
    # blocks inside the join (samples 4*WINDOW .. 8*WINDOW) against those outside it
    join, outside = rms[4 * WINDOW // 64:8 * WINDOW // 64], np.r_[rms[:4 * WINDOW // 64],
                                                                 rms[8 * WINDOW // 64:]]
    assert np.all(np.abs(join / outside.mean() - 1) < 0.10)
    # a linear (equal-gain) crossfade would dip by 3 dB in the middle: check we are not that
    assert join.min() > 0.9 * outside.mean()


def test_joining_a_signal_with_itself_at_the_right_offset_reproduces_it():
    x = np.random.default_rng(2).uniform(-0.8, 0.8, (3 * WINDOW - 2 * OVERLAP, 1))
    hop = WINDOW - OVERLAP
    windows = np.stack([x[i * hop:i * hop + WINDOW] for i in range(3)])
    np.testing.assert_allclose(longform.join_windows(windows, OVERLAP), x, atol=1e-6)


def test_gains_are_equal_power_when_uncorrelated_and_linear_when_identical():
    out_, in_ = longform.crossfade_gains(512, 0.0)
    np.testing.assert_allclose(out_ ** 2 + in_ ** 2, 1.0, atol=1e-12)
    out_, in_ = longform.crossfade_gains(512, 1.0)
    np.testing.assert_allclose(out_ + in_, 1.0, atol=1e-12)
    assert np.all(np.diff(out_) < 0) and np.all(np.diff(in_) > 0)


@pytest.mark.parametrize("prior", ["uniform", "normal"])
def test_consecutive_windows_of_a_walk_are_closer_than_random_pairs(prior):
    latents = longform.latent_walk(np.random.default_rng(3), 64, prior, anchor_every=4)
    assert latents.shape == (64, 100)
    steps = np.linalg.norm(np.diff(latents, axis=0), axis=1)
    random = longform.draw_prior(np.random.default_rng(4), 128, prior)
    pairs = np.linalg.norm(random[::2] - random[1::2], axis=1)
    assert steps.mean() < 0.5 * pairs.mean()
    if prior == "uniform":
        assert latents.min() >= -1 and latents.max() <= 1


def test_walk_passes_through_its_anchors_and_repeats_with_a_seed():
    a = longform.latent_walk(np.random.default_rng(5), 9, "normal", anchor_every=4)
    b = longform.latent_walk(np.random.default_rng(5), 9, "normal", anchor_every=4)
    np.testing.assert_array_equal(a, b)
    anchors = longform.draw_prior(np.random.default_rng(5), 9 // 4 + 2, "normal")
    np.testing.assert_allclose(a[[0, 4, 8]], anchors[:3], rtol=1e-5, atol=1e-6)


def test_spherical_interpolation_ends_at_both_latents():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 100))
    path = longform.interpolate(a, b, np.linspace(0, 1, 5), "normal")
    np.testing.assert_allclose(path[0], a, atol=1e-12)
    np.testing.assert_allclose(path[-1], b, atol=1e-12)
    norms = np.linalg.norm(path, axis=1)  # slerp keeps norms near a Gaussian draw's
    assert norms.min() > 0.8 * min(np.linalg.norm(a), np.linalg.norm(b))
