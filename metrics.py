"""What a generator makes, measured against real audio: every metric a registered function.

The report judged its output by ear, by average loudness in TensorBoard (its Figure 8.8) and
by waveforms in Audacity; its future work asks for automatic evaluation. These metrics need
no downloaded weights, only NumPy (no TensorFlow), so they work on any two sets of windows:
arrays [windows, samples, channels] in [-1, 1] ([windows, samples] is taken as mono).

A metric is one function of a Comparison returning {key: value}, registered with
@register_metric and the rows it adds to the table: compute_metrics calls every registered
metric, format_table shows their rows, the quality curve logs the rows that name a
TensorBoard tag (tags()), and --evaluate keeps the references of the rows marked reference
(reference_keys()). Each metric's keys are in its docstring; compute_metrics also reports
what was compared (sampling_rate, window_samples, channels, num_real, num_generated,
num_training). Values are JSON-safe: Python numbers, None where undefined.
"""

import functools
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rules import MAX_INT16
from utils import write_json

N_FFT = 512
N_MELS = 64
LOG_FLOOR = 1e-6
NDB_BINS = 20
NDB_ALPHA = 0.05
MEMORISATION_THRESHOLD = 0.05
MAX_LAG = 8
CHUNK_FLOATS = 1 << 22  # float32 values per block of work: bounds memory at any stage
FULL_SCALE = 0.99  # |sample| from which a sample counts as at full scale


# --------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class Row:
    """A line of the table: the key shown as the generated value, its title, what is better;
    real_key: a key shown as the real value; reference: the references' values are shown
    beside it and kept in metrics.json; tag: the quality curve logs it to TensorBoard."""
    key: str
    title: str
    better: str
    real_key: str | None = None
    reference: bool = False
    tag: str | None = None


@dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable  # Comparison -> {key: value}
    rows: tuple


METRICS = {}  # name -> Metric, in the order of the table


def register_metric(*rows):
    """Register a function of a Comparison returning {key: value} as a metric, with the
    table rows it adds."""
    def register(function):
        METRICS[function.__name__] = Metric(function.__name__, function, rows)
        return function
    return register


def table_rows():
    """Every registered metric's rows, in order."""
    return [row for metric in METRICS.values() for row in metric.rows]


class Comparison:
    """Real and generated windows (float32 [windows, samples, channels]) to compare, the
    windows the memorisation check searches, and what several metrics share, computed
    once."""

    def __init__(self, real, generated, sampling_rate, training=None, seed=0):
        self.real, self.generated, self.training = real, generated, training
        self.sampling_rate, self.seed = sampling_rate, seed

    @functools.cached_property
    def mel(self):
        """(real, generated) log-mel frames [windows, channels, frames, bands]."""
        return (log_mel_frames(self.real, self.sampling_rate),
                log_mel_frames(self.generated, self.sampling_rate))


def as_windows(x, name):
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or min(x.shape) == 0:
        raise ValueError(f"{name} must be a non-empty array [windows, samples, channels], "
                         f"got shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise ValueError(f"{name} must hold numbers, got {x.dtype}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def as_float(x):
    """float32 copy of a block; int16 blocks are scaled to [-1, 1] as the loader does."""
    if x.dtype == np.int16:
        return x.astype(np.float32) / MAX_INT16
    return x.astype(np.float32, copy=False)


def _number(value):
    """A JSON-safe number: Python float, or None when undefined (NaN, infinite)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- loudness, stereo

def _loudness(x):
    """Mean |x| and RMS over every sample, accumulated in float64 block by block."""
    total_abs = total_sq = 0.0
    step = max(1, CHUNK_FLOATS // (x.shape[1] * x.shape[2]))
    for first in range(0, len(x), step):
        block = as_float(x[first:first + step]).astype(np.float64)
        total_abs += np.abs(block).sum()
        total_sq += np.square(block).sum()
    return total_abs / x.size, math.sqrt(total_sq / x.size)


def _ratio(generated, real):
    return generated / real if real > 0 else None


def channel_correlation(x):
    """Pearson correlation of channels 0 and 1 over all samples; None if mono or constant."""
    x = as_windows(x, "audio")
    if x.shape[2] != 2:
        return None
    left = as_float(x[:, :, 0]).astype(np.float64).ravel()
    right = as_float(x[:, :, 1]).astype(np.float64).ravel()
    left, right = left - left.mean(), right - right.mean()
    denominator = math.sqrt(np.dot(left, left) * np.dot(right, right))
    return _number(np.dot(left, right) / denominator) if denominator > 0 else None


# --------------------------------------------------------------------------- log-mel

def mel_filterbank(n_fft, sampling_rate, bands):
    """HTK mel filterbank [bands, n_fft // 2 + 1]: triangles of peak 1, 0 Hz to Nyquist."""
    bins_hz = np.linspace(0, sampling_rate / 2, n_fft // 2 + 1)
    top_mel = 2595.0 * math.log10(1.0 + (sampling_rate / 2) / 700.0)
    edges_hz = 700.0 * (10.0 ** (np.linspace(0.0, top_mel, bands + 2) / 2595.0) - 1.0)
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz - lower) / (centre - lower)
    falling = (upper - bins_hz) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def mel_settings(window, sampling_rate):
    """(n_fft, hop, mel filterbank [bands, n_fft // 2 + 1] float32) for windows of this length.

    n_fft is 512, or window // 4 for windows under 2048 samples (16 at stage 1) so that every
    window gives several frames; hop is n_fft // 4. The bands are the most, up to 64, for which
    every triangle weighs at least half an FFT bin: 64 from n_fft 512 at 16 kHz, fewer for the
    short FFTs of stages 1-3, so no band is an almost empty copy of its neighbour.
    """
    n_fft = max(4, min(N_FFT, window // 4))
    for bands in range(N_MELS, 0, -1):
        bank = mel_filterbank(n_fft, sampling_rate, bands)
        if bank.sum(axis=1).min() >= 0.5:
            break
    return n_fft, n_fft // 4, bank.astype(np.float32)


def power_spectra(x, n_fft, hop):
    """(first window, power spectra [windows, channels, frames, n_fft // 2 + 1] float32) of
    x [windows, samples, channels], block by block of at most CHUNK_FLOATS values: each
    channel its own signal, frames Hann-windowed (periodic) and not padded."""
    count, window, channels = x.shape
    hann = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    frames = (window - n_fft) // hop + 1
    step = max(1, CHUNK_FLOATS // (channels * frames * n_fft))
    for first in range(0, count, step):
        signals = np.moveaxis(as_float(x[first:first + step]), 2, 1)  # [windows, channels, time]
        framed = np.lib.stride_tricks.sliding_window_view(signals, n_fft, axis=2)[:, :, ::hop]
        yield first, np.abs(np.fft.rfft(framed * hann, axis=3)).astype(np.float32) ** 2


def log_mel_frames(x, sampling_rate):
    """Log-mel spectrogram of every channel of every window: [windows, channels, frames, bands].

    Each channel is its own signal (an anti-phase stereo pair is not cancelled); frames are
    Hann-windowed, not padded; the value is log(mel power + 1e-6) of the unnormalised power
    spectrum.
    """
    x = as_windows(x, "audio")
    count, window, channels = x.shape
    n_fft, hop, bank = mel_settings(window, sampling_rate)
    frames = (window - n_fft) // hop + 1
    out = np.empty((count, channels, frames, len(bank)), dtype=np.float32)
    for first, power in power_spectra(x, n_fft, hop):
        out[first:first + len(power)] = np.log(power @ bank.T + np.float32(LOG_FLOOR))
    return out


def mean_power_spectrum(x, sampling_rate):
    """The power spectrum averaged over every frame of every channel and window, on the
    linear frequency axis of mel_settings' FFT: (frequencies in Hz, power) float64."""
    x = as_windows(x, "audio")
    n_fft, hop, _ = mel_settings(x.shape[1], sampling_rate)
    total, frames = np.zeros(n_fft // 2 + 1), 0
    for _, power in power_spectra(x, n_fft, hop):
        total += power.sum(axis=(0, 1, 2), dtype=np.float64)
        frames += power.shape[0] * power.shape[1] * power.shape[2]
    return np.fft.rfftfreq(n_fft, 1.0 / sampling_rate), total / frames


# --------------------------------------------------------------------------- Frechet distance

def frechet_distance(a, b):
    """Frechet distance between Gaussians fitted to the rows of a and b [n, features].

    ||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^1/2), the trace of the square root
    taken from the eigenvalues of the symmetric S_a^1/2 S_b S_a^1/2 (no complex round-off).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)

    def fit(x):
        mean = x.mean(axis=0)
        centred = x - mean
        return mean, centred.T @ centred / max(1, len(x) - 1)

    mean_a, cov_a = fit(a)
    mean_b, cov_b = fit(b)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
    distance = (np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                - 2.0 * trace_root)
    return max(0.0, float(distance))


# --------------------------------------------------------------------------- NDB/K

def kmeans(x, k, seed=0, restarts=4, iterations=100):
    """Seeded k-means (k-means++ start, Lloyd steps, best of a few restarts): [k, features].

    k is lowered to the number of distinct rows; an emptied cluster is moved to the point
    farthest from its centre.
    """
    x = np.asarray(x, dtype=np.float64)
    k = max(1, min(k, len(np.unique(x, axis=0))))
    rng = np.random.default_rng(seed)

    def distances(centres):
        return np.maximum(0.0, (x ** 2).sum(1)[:, None] - 2 * x @ centres.T
                          + (centres ** 2).sum(1)[None, :])

    best, best_inertia = None, np.inf
    for _ in range(restarts):
        centres = x[[rng.integers(len(x))]]
        while len(centres) < k:
            nearest = distances(centres).min(axis=1)
            if nearest.sum() <= 0:
                break
            centres = np.vstack([centres, x[rng.choice(len(x), p=nearest / nearest.sum())]])
        for _ in range(iterations):
            d = distances(centres)
            labels = d.argmin(axis=1)
            farthest = iter(np.argsort(-d[np.arange(len(x)), labels]))
            new = centres.copy()
            for j in range(len(centres)):
                members = x[labels == j]
                new[j] = members.mean(axis=0) if len(members) else x[next(farthest)]
            if np.allclose(new, centres):
                break
            centres = new
        inertia = distances(centres).min(axis=1).sum()
        if inertia < best_inertia:
            best, best_inertia = centres, inertia
    return best


def ndb(real_features, generated_features, bins=NDB_BINS, alpha=NDB_ALPHA, seed=0):
    """NDB/K (Richardson & Weiss 2018) and the Jensen-Shannon divergence of the bin histograms.

    Bins are k-means clusters of the real features; a generated or real row falls into the
    bin of its nearest centre. A bin is different if a two-proportion z-test rejects equal
    shares at alpha. K is at most one bin per 5 real rows (at least 1).
    """
    real = np.asarray(real_features, dtype=np.float64)
    generated = np.asarray(generated_features, dtype=np.float64)
    centres = kmeans(real, min(bins, max(1, len(real) // 5)), seed)

    def counts(x):
        d = (x ** 2).sum(1)[:, None] - 2 * x @ centres.T + (centres ** 2).sum(1)[None, :]
        return np.bincount(d.argmin(axis=1), minlength=len(centres)).astype(np.float64)

    n_real, n_generated = counts(real), counts(generated)
    p_real, p_generated = n_real / len(real), n_generated / len(generated)
    pooled = (n_real + n_generated) / (len(real) + len(generated))
    se = np.sqrt(pooled * (1 - pooled) * (1 / len(real) + 1 / len(generated)))
    z = np.abs(p_generated - p_real) / np.where(se > 0, se, 1.0)
    p_values = np.array([math.erfc(value / math.sqrt(2)) for value in z])
    different = int(np.sum((se > 0) & (p_values < alpha)))
    mixture = (p_real + p_generated) / 2

    def kl(p):
        used = p > 0
        return float(np.sum(p[used] * np.log2(p[used] / mixture[used])))

    js = max(0.0, (kl(p_real) + kl(p_generated)) / 2)
    return {"bins": len(centres), "different_bins": different,
            "ndb_over_k": different / len(centres), "js_divergence": js}


# --------------------------------------------------------------------------- memorisation

def _prefix_energy(x):
    """[windows, samples + 1] running sum of squares over time and channels (float64)."""
    energy = np.square(x, dtype=np.float64).sum(axis=2)
    return np.concatenate([np.zeros((len(x), 1)), np.cumsum(energy, axis=1)], axis=1)


def nearest_distances(generated, training, max_lag=MAX_LAG):
    """For each generated window, 1 - max normalised cross-correlation with any training window.

    The correlation of g with t at lag l is <g[n], t[n + l]> over the samples both cover,
    divided by the norms of those two parts, for l in -max_lag..max_lag (at most window // 16).
    A silent window correlates 0 with everything (distance 1). One matrix product per lag and
    block of training windows; int16 training windows are fine (the measure is scale-free).
    """
    generated = as_float(as_windows(generated, "generated"))
    training = as_windows(training, "training_windows")
    window = generated.shape[1]
    max_lag = max(0, min(max_lag, window // 16))
    g_energy = _prefix_energy(generated)
    best = np.full(len(generated), -1.0)
    step = max(1, CHUNK_FLOATS // (window * training.shape[2]))
    for first in range(0, len(training), step):
        block = as_float(training[first:first + step])
        t_energy = _prefix_energy(block)
        for lag in range(-max_lag, max_lag + 1):
            g_from, t_from = max(0, -lag), max(0, lag)
            length = window - abs(lag)
            g_part = generated[:, g_from:g_from + length].reshape(len(generated), -1)
            t_part = block[:, t_from:t_from + length].reshape(len(block), -1)
            g_norm = np.sqrt(g_energy[:, g_from + length] - g_energy[:, g_from])
            t_norm = np.sqrt(t_energy[:, t_from + length] - t_energy[:, t_from])
            norms = g_norm[:, None] * t_norm[None, :]
            dots = (g_part @ t_part.T).astype(np.float64)
            corr = np.where(norms > 1e-12, dots / np.where(norms > 1e-12, norms, 1.0), 0.0)
            best = np.maximum(best, np.clip(corr, -1.0, 1.0).max(axis=1))
    return 1.0 - best, max_lag


# --------------------------------------------------------------------------- the metrics

@register_metric(
    Row("loudness.generated_mean_abs", "mean |amplitude|", "generated near real",
        real_key="loudness.real_mean_abs"),
    Row("loudness.mean_abs_ratio", "  ratio generated/real", "1", reference=True),
    Row("loudness.generated_rms", "RMS", "generated near real", real_key="loudness.real_rms"),
    Row("loudness.rms_ratio", "  ratio generated/real", "1", reference=True,
        tag="Eval/rms_ratio"),
    Row("loudness.full_scale_fraction", "share at full scale", "generated near real",
        real_key="loudness.real_full_scale_fraction"))
def loudness(c):
    """loudness.real_mean_abs, .generated_mean_abs: mean |sample|; .mean_abs_ratio:
    generated / real (1 is best; None if real is silent); .real_rms, .generated_rms: root
    mean square over all samples; .rms_ratio: generated / real (1 is best), the report's
    Figure 8.8; .real_full_scale_fraction, .full_scale_fraction: the share of samples at
    |x| >= 0.99 (real music: under 1 %; a generator stuck at its rails: most)."""
    (real_abs, real_rms), (generated_abs, generated_rms) = map(_loudness, (c.real, c.generated))
    return {"loudness.real_mean_abs": real_abs, "loudness.generated_mean_abs": generated_abs,
            "loudness.mean_abs_ratio": _ratio(generated_abs, real_abs),
            "loudness.real_rms": real_rms, "loudness.generated_rms": generated_rms,
            "loudness.rms_ratio": _ratio(generated_rms, real_rms),
            "loudness.real_full_scale_fraction": full_scale_fraction(c.real),
            "loudness.full_scale_fraction": full_scale_fraction(c.generated)}


@register_metric(Row("frechet_mel_distance", "Frechet log-mel distance", "lower, 0 best",
                     reference=True, tag="Eval/frechet_mel_distance"))
def frechet_mel(c):
    """frechet_mel_distance: the Frechet distance between Gaussians fitted to every log-mel
    frame of every channel of the real and the generated windows (0 is best); mel.n_fft,
    mel.bands: the STFT size and mel bands used for it (mel_settings)."""
    real_mel, generated_mel = c.mel
    n_fft, _, bank = mel_settings(c.real.shape[1], c.sampling_rate)
    return {"frechet_mel_distance": frechet_distance(real_mel.reshape(-1, len(bank)),
                                                     generated_mel.reshape(-1, len(bank))),
            "mel.n_fft": n_fft, "mel.bands": len(bank)}


@register_metric(
    Row("spectrum.distance_db", "spectral distance (dB)", "lower, 0 best", reference=True,
        tag="Eval/spectral_distance_db"),
    Row("spectrum.generated_centroid_hz", "spectral centroid (Hz)", "generated near real",
        real_key="spectrum.real_centroid_hz"))
def spectrum(c):
    """spectrum.distance_db: the energy-weighted log-spectral distance between the real and
    the generated average power spectra R and G on a linear frequency axis (mel_settings'
    FFT), in dB: sqrt(sum over bins of w (10 log10(G / R))^2), each bin weighted by its share
    w = (R + G) / sum(R + G) of the energy of both. A bin counts by how much either set puts
    there, so hiss where the music has none and silence where it has some both cost in full,
    and a generator at a quarter of the loudness scores 12.0 dB (20 log10 4) whatever the
    music. 0 is best; silence scores about 56 dB (the floor: 60 dB under the loudest real
    bin). spectrum.real_centroid_hz, .generated_centroid_hz: the centroids of R and G."""
    frequencies, real = mean_power_spectrum(c.real, c.sampling_rate)
    _, generated = mean_power_spectrum(c.generated, c.sampling_rate)
    floor = LOG_FLOOR * max(real.max(), LOG_FLOOR)  # 60 dB under the loudest real bin
    ratio_db = 10.0 * np.log10((generated + floor) / (real + floor))
    weights = (real + generated) / (real + generated).sum()

    def centroid(power):
        return float((frequencies * power).sum() / power.sum()) if power.sum() > 0 else None
    return {"spectrum.distance_db": float(np.sqrt(np.sum(weights * np.square(ratio_db)))),
            "spectrum.real_centroid_hz": centroid(real),
            "spectrum.generated_centroid_hz": centroid(generated)}


@register_metric(
    Row("ndb.ndb_over_k", "NDB/K (K = {ndb.bins})", "lower, 0 best", reference=True,
        tag="Eval/ndb_over_k"),
    Row("ndb.different_bins", "  different bins", "lower", reference=True),
    Row("ndb.js_divergence", "  JS divergence (bits)", "lower, 0 best", reference=True))
def ndb_over_k(c):
    """ndb.bins: K, the k-means bins fitted to the real windows' mean log-mel spectra (one
    feature per window, over channels and frames); ndb.different_bins: bins whose share of
    generated windows differs from the real share (two-proportion z-test, alpha 0.05);
    ndb.ndb_over_k: their share of K (0 is best); ndb.js_divergence: the Jensen-Shannon
    divergence of the two bin histograms, in bits (0 is best, 1 is disjoint)."""
    real_mel, generated_mel = c.mel
    bins = ndb(real_mel.mean(axis=(1, 2)), generated_mel.mean(axis=(1, 2)), seed=c.seed)
    return {f"ndb.{key}": value for key, value in bins.items()}


@register_metric(
    Row("memorisation.min", "nearest real: min", "higher, 0 = copy"),
    Row("memorisation.median", "  median", "higher"),
    Row("memorisation.mean", "  mean", "higher"),
    Row("memorisation.max", "  max", "higher"),
    Row("memorisation.fraction_below", "  share below {memorisation.threshold}",
        "lower, 0 = no copies", tag="Eval/memorisation_fraction"))
def memorisation(c):
    """memorisation.min, .median, .mean, .max: over generated windows, the distance to the
    nearest training window, 1 - max normalised cross-correlation over lags -max_lag..max_lag
    (0 = a copy, ~1 = unrelated, 2 = an inverted copy); .fraction_below: the share of
    generated windows nearer than the threshold (0 is best: no copies); .threshold,
    .max_lag: the settings used (0.05, up to 8 samples)."""
    distances, used_lag = nearest_distances(c.generated, c.training, MAX_LAG)
    return {"memorisation.min": distances.min(), "memorisation.median": np.median(distances),
            "memorisation.mean": distances.mean(), "memorisation.max": distances.max(),
            "memorisation.fraction_below": np.mean(distances < MEMORISATION_THRESHOLD),
            "memorisation.threshold": MEMORISATION_THRESHOLD, "memorisation.max_lag": used_lag}


@register_metric(Row("stereo.generated_channel_correlation", "channel correlation",
                     "generated near real", real_key="stereo.real_channel_correlation"))
def stereo(c):
    """stereo.real_channel_correlation, .generated_channel_correlation: the Pearson
    correlation of left and right over all samples (closer to real is better; None for mono
    or a constant channel)."""
    return {"stereo.real_channel_correlation": channel_correlation(c.real),
            "stereo.generated_channel_correlation": channel_correlation(c.generated)}


def label_metrics(names, reals, generateds, sampling_rate):
    """Each label's own Frechet mel distance and RMS ratio (its generated windows against its
    real windows): {"label.<name>.frechet_mel_distance": ..., "label.<name>.rms_ratio": ...}."""
    out = {}
    for name, real, generated in zip(names, reals, generateds):
        comparison = Comparison(as_windows(real, "real"), as_windows(generated, "generated"),
                                sampling_rate)
        out[f"label.{name}.frechet_mel_distance"] = frechet_mel(comparison)[
            "frechet_mel_distance"]
        out[f"label.{name}.rms_ratio"] = _number(loudness(comparison)["loudness.rms_ratio"])
    return out


def tags():
    """{key: TensorBoard tag} of the rows the quality curve logs."""
    return {row.key: row.tag for row in table_rows() if row.tag}


def reference_keys():
    """The keys whose references (real against real, noise) --evaluate keeps in
    metrics.json."""
    return [row.key for row in table_rows() if row.reference]


# --------------------------------------------------------------------------- all of them

def compute_metrics(real, generated, sampling_rate, training_windows=None, *, seed=0):
    """Every registered metric of two sets of windows, as one flat dict.

    real, generated: arrays [windows, samples, channels] in [-1, 1] (same samples and
    channels; the counts may differ). training_windows: the set the memorisation check
    searches (default: real). seed makes the k-means of NDB/K reproducible.
    """
    real = as_windows(real, "real")
    generated = as_windows(generated, "generated")
    training = real if training_windows is None else as_windows(training_windows,
                                                                 "training_windows")
    for name, x in (("generated", generated), ("training_windows", training)):
        if x.shape[1:] != real.shape[1:]:
            raise ValueError(f"{name} has windows of shape {x.shape[1:]} (samples, channels) "
                             f"but real has {real.shape[1:]}")
    if not sampling_rate > 0:
        raise ValueError(f"sampling_rate must be positive, got {sampling_rate}")
    metrics = {"sampling_rate": int(sampling_rate), "window_samples": int(real.shape[1]),
               "channels": int(real.shape[2]), "num_real": len(real),
               "num_generated": len(generated), "num_training": len(training)}
    comparison = Comparison(real, generated, sampling_rate, training, seed)
    for metric in METRICS.values():
        metrics.update(metric.compute(comparison))
    return {key: value if isinstance(value, int) and not isinstance(value, bool)
            else _number(value) for key, value in metrics.items()}


# --------------------------------------------------------------------------- reporting

def _show(value, digits=4):
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def noise_like(real, rng):
    """White noise at the loudness (RMS) of real, clipped to [-1, 1]: the metrics' ceiling."""
    real = as_windows(real, "real")
    rms = float(np.sqrt(np.mean(np.square(real, dtype=np.float64))))
    return np.clip(rng.standard_normal(real.shape) * rms, -1.0, 1.0).astype(np.float32)


def reference_metrics(real, other_real, sampling_rate, seed=0):
    """The two references every evaluation is read against: real windows against other real
    windows (the metrics' floor: what real music scores) and white noise at the real RMS
    (their ceiling: where an untrained generator starts). {"real": metrics, "noise": ...}"""
    rng = np.random.default_rng(seed)
    return {name: compute_metrics(real, other, sampling_rate, seed=seed)
            for name, other in (("real", other_real), ("noise", noise_like(real, rng)))}


def progress(distance, references):
    """How far a Frechet distance has come from noise (0) towards real music (1)."""
    floor = references["real"]["frechet_mel_distance"]
    ceiling = references["noise"]["frechet_mel_distance"]
    if distance is None or floor is None or ceiling is None or ceiling <= floor:
        return None
    return (ceiling - distance) / (ceiling - floor)


def full_scale_fraction(windows):
    """Share of samples at full scale (|x| >= FULL_SCALE): a generator stuck there."""
    return float(np.mean(np.abs(windows) >= FULL_SCALE))


def _title(row, metrics):
    """A row's title with its {key} placeholders filled from the metrics."""
    return re.sub(r"\{([\w.]+)\}", lambda m: _show(metrics.get(m.group(1))), row.title)


def format_table(metrics, references=None):
    """A short table of every registered metric's rows: metric, real, generated, what is
    better, and with references the scores of other real windows and of noise at the real
    loudness."""
    m, refs = metrics, references or {}
    head = (f"{m['num_real']} real and {m['num_generated']} generated windows of "
            f"{m['window_samples']} samples ({m['window_samples'] / m['sampling_rate']:.3g} s, "
            f"{m['channels']} channel{'s' if m['channels'] > 1 else ''}); nearest real among "
            f"{m['num_training']} windows, lags up to {m['memorisation.max_lag']}")
    extra = "".join(f" {title:>12}" for title in ("real vs real", "noise")[:len(refs) and 2])
    lines = [head, f"{'metric':<26} {'real':>10} {'generated':>10}{extra}  better"]
    for row in table_rows():
        real = m.get(row.real_key) if row.real_key else None
        scores = "".join(f" {_show(refs[ref].get(row.key) if row.reference else None):>12}"
                         for ref in ("real", "noise") if ref in refs)
        lines.append(f"{_title(row, m):<26} {_show(real):>10} {_show(m.get(row.key)):>10}"
                     f"{scores}  {row.better}")
    done = progress(m["frechet_mel_distance"], refs) if refs else None
    if done is not None:
        lines.append(f"Frechet log-mel distance: {100 * done:.0f} % of the way from noise "
                     f"({_show(refs['noise']['frechet_mel_distance'])}) to real music "
                     f"({_show(refs['real']['frechet_mel_distance'])})")
    return "\n".join(lines)


def write_report(out_dir, metrics):
    """Write metrics as out_dir/metrics.json (atomically); returns its path."""
    return write_json(os.path.join(out_dir, "metrics.json"), metrics)
