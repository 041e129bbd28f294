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


class Tones:
    """A stand-in generator: each latent's first value sets a tone's frequency."""

    def __init__(self, window=16384):
        self.t = np.arange(window) / SR

    def __call__(self, z):
        freq = 200 + 100 * np.abs(np.asarray(z)[:, :1])
        return (0.3 * np.sin(2 * np.pi * freq * self.t))[:, :, None].astype(np.float32)


def walk(seconds, directory):
    from config import WalkConfig
    return WalkConfig(output_dir=str(directory), duration=seconds)


def test_a_long_piece_is_written_as_it_is_made_in_bounded_memory(tmp_path):
    """A piece of any length takes the memory of one batch of windows (it used to be joined
    whole in memory: a long --duration ran out of it)."""
    import tracemalloc

    import soundfile as sf

    tracemalloc.start()
    files, samples = longform.write_files(Tones(), walk(1200.0, tmp_path), 1, 3, "uniform",
                                          16384, 64, SR, 1, "stem")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (files, samples) == (1, 1200 * SR)
    info = sf.info(str(tmp_path / longform.file_name("stem", 3, 0, 1200.0)))
    assert (info.frames, info.channels, info.samplerate) == (1200 * SR, 1, SR)
    assert peak < 30e6  # the piece itself is 77 MB as float32


def test_the_streamed_piece_is_the_joined_one():
    """Written chunk by chunk, a piece is the walk's windows joined whole."""
    import tempfile

    import soundfile as sf

    generator, seconds = Tones(1024), 3.3
    samples = round(seconds * SR)
    overlap = longform.default_crossfade(1024, SR)
    needed = longform.windows_needed(samples, 1024, overlap)
    whole = longform.join_windows(generator(longform.latent_walk(
        np.random.default_rng(5), needed, "uniform")), overlap, samples)
    with tempfile.TemporaryDirectory() as folder:
        longform.write_files(generator, walk(seconds, folder), 1, 5, "uniform", 1024, 7, SR, 1,
                             "stem")
        written, _ = sf.read(f"{folder}/{longform.file_name('stem', 5, 0, seconds)}",
                             dtype="int16")
    from utils import to_int16
    np.testing.assert_array_equal(written, to_int16(whole)[:, 0])


@pytest.mark.parametrize("seconds, message", [
    (1e6, "over the 4.3 GB a WAV file holds: ask for at most 134217 s"),
    (3e4, "free space or ask for less"),
])
def test_a_duration_that_cannot_fit_is_one_line_before_any_work(tmp_path, seconds, message,
                                                                monkeypatch):
    import shutil
    from collections import namedtuple

    from utils import UserError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, 10**8))
    with pytest.raises(UserError, match=message):
        longform.write_files(Tones(), walk(seconds, tmp_path), 1, 3, "uniform", 16384, 64, SR,
                             1, "stem")
    assert list(tmp_path.iterdir()) == []
