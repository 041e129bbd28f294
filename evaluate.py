"""Measure what a model makes: metrics and pictures comparing real and generated audio.

The report judged its output by ear, by average loudness in TensorBoard (its Figure 8.8) and by
waveforms in Audacity (Figures 8.2-8.7); its future work asks for automatic evaluation. These
metrics need no downloaded weights, only NumPy and SciPy (matplotlib for the pictures); this
module never imports TensorFlow, so it works on any two folders of audio:

    python evaluate.py REAL_DIR GENERATED_DIR [--num_blocks N] [--num_eval_samples M]
                       [--seed S] [--sampling_rate R] [--json] [--plots DIR]

cuts both folders into the full windows of stage N (2^(4+2N) samples), takes M random windows
of each (seeded) and prints a table, or one JSON object with --json. All windows of REAL_DIR
are the training set of the memorisation check. --plots DIR writes the PNGs and metrics.json.

Python API (arrays are float [windows, samples, channels] in [-1, 1]; [windows, samples] is
taken as mono):
    compute_metrics(real, generated, sampling_rate, training_windows=None) -> dict
    format_table(metrics) -> str
    save_plots(real, generated, sampling_rate, out_dir) -> list of PNG paths
    render_plots(real, generated, sampling_rate) -> {PNG name: PNG bytes}, no files
    write_report(out_dir, metrics) -> path of out_dir/metrics.json

Keys of the metrics dict (flat, always all present, JSON-serialisable; null where undefined):
    sampling_rate, window_samples, channels       what was compared
    num_real, num_generated, num_training         windows in each set
    loudness.real_mean_abs, loudness.generated_mean_abs     mean |sample|
    loudness.mean_abs_ratio                       generated / real (1 is best; null if real is 0)
    loudness.real_rms, loudness.generated_rms     root mean square over all samples
    loudness.rms_ratio                            generated / real (1 is best): Figure 8.8
    frechet_mel_distance      Frechet distance between Gaussians fitted to the log-mel frames
                              of real and generated audio (0 is best)
    mel.n_fft, mel.bands      STFT size and number of mel bands used for it
    ndb.bins                  K, the k-means bins fitted to the real windows' mean log-mel
    ndb.different_bins        bins whose share of generated windows differs from the real
                              share (two-proportion z-test, alpha = 0.05)
    ndb.ndb_over_k            ndb.different_bins / ndb.bins (0 is best)
    ndb.js_divergence         Jensen-Shannon divergence of the two bin histograms, in bits
                              (0 is best, 1 is disjoint)
    memorisation.min/median/mean/max   over generated windows, distance to the nearest
                              training window: 1 - max normalised cross-correlation over lags
                              -max_lag..max_lag (0 = a copy, ~1 = unrelated, 2 = inverted copy)
    memorisation.fraction_below        share of generated windows nearer than the threshold
                              (0 is best: no copies)
    memorisation.threshold, memorisation.max_lag   the settings used (0.05, up to 8 samples)
    stereo.real_channel_correlation, stereo.generated_channel_correlation
                              Pearson correlation of left and right over all samples (closer
                              to real is better; null for mono or a constant channel)
"""

import json
import math
import os
import sys

import numpy as np

import config
from dataloader import gather, load_audio, note, stage_windows
from rules import EVAL_MAX_SAMPLES, EVAL_SAMPLES, MAX_INT16
from utils import UserError, atomic_write, run_cli, write_json

N_FFT = 512
N_MELS = 64
LOG_FLOOR = 1e-6
NDB_BINS = 20
NDB_ALPHA = 0.05
MEMORISATION_THRESHOLD = 0.05
MAX_LAG = 8
ZOOM_SAMPLES = 1024
PLOT_POINTS = 4096  # points of a plotted waveform at most: 3.4 per pixel of the 12-inch figure
CHUNK_FLOATS = 1 << 22  # float32 values per block of work: bounds memory at any stage
FULL_SCALE = 0.99  # |sample| from which a sample counts as at full scale
# The memorisation check searches all whole windows of the training audio, or a seeded random
# subset of at most this many windows and samples (2^26: about 70 minutes of 16 kHz audio)
# when there are more: its cost grows with the generated windows times both.
EVAL_TRAINING_WINDOWS = 8192
EVAL_TRAINING_SAMPLES = 1 << 26


# --------------------------------------------------------------------------- inputs

def _as_windows(x, name):
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


def _float(x):
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
        block = _float(x[first:first + step]).astype(np.float64)
        total_abs += np.abs(block).sum()
        total_sq += np.square(block).sum()
    return total_abs / x.size, math.sqrt(total_sq / x.size)


def _ratio(generated, real):
    return generated / real if real > 0 else None


def channel_correlation(x):
    """Pearson correlation of channels 0 and 1 over all samples; None if mono or constant."""
    x = _as_windows(x, "audio")
    if x.shape[2] != 2:
        return None
    left = _float(x[:, :, 0]).astype(np.float64).ravel()
    right = _float(x[:, :, 1]).astype(np.float64).ravel()
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


def log_mel_frames(x, sampling_rate):
    """Log-mel spectrogram of every channel of every window: [windows, channels, frames, bands].

    Each channel is its own signal (an anti-phase stereo pair is not cancelled); frames are
    Hann-windowed, not padded; the value is log(mel power + 1e-6) of the unnormalised power
    spectrum.
    """
    x = _as_windows(x, "audio")
    count, window, channels = x.shape
    n_fft, hop, bank = mel_settings(window, sampling_rate)
    hann = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    frames = (window - n_fft) // hop + 1
    out = np.empty((count, channels, frames, len(bank)), dtype=np.float32)
    step = max(1, CHUNK_FLOATS // (channels * frames * n_fft))
    for first in range(0, count, step):
        signals = np.moveaxis(_float(x[first:first + step]), 2, 1)  # [windows, channels, time]
        framed = np.lib.stride_tricks.sliding_window_view(signals, n_fft, axis=2)[:, :, ::hop]
        power = np.abs(np.fft.rfft(framed * hann, axis=3)).astype(np.float32) ** 2
        out[first:first + step] = np.log(power @ bank.T + np.float32(LOG_FLOOR))
    return out


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
    generated = _float(_as_windows(generated, "generated"))
    training = _as_windows(training, "training_windows")
    window = generated.shape[1]
    max_lag = max(0, min(max_lag, window // 16))
    g_energy = _prefix_energy(generated)
    best = np.full(len(generated), -1.0)
    step = max(1, CHUNK_FLOATS // (window * training.shape[2]))
    for first in range(0, len(training), step):
        block = _float(training[first:first + step])
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


# --------------------------------------------------------------------------- all metrics

def compute_metrics(real, generated, sampling_rate, training_windows=None, *, seed=0,
                    ndb_bins=NDB_BINS, threshold=MEMORISATION_THRESHOLD, max_lag=MAX_LAG):
    """Every metric of the module docstring for two sets of windows, as a flat dict.

    real, generated: float arrays [windows, samples, channels] in [-1, 1] (same samples and
    channels; the counts may differ). training_windows: the set the memorisation check
    searches (default: real). seed makes the k-means of NDB/K reproducible.
    """
    real = _as_windows(real, "real")
    generated = _as_windows(generated, "generated")
    training = real if training_windows is None else _as_windows(training_windows,
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

    real_abs, real_rms = _loudness(real)
    generated_abs, generated_rms = _loudness(generated)
    metrics.update({
        "loudness.real_mean_abs": real_abs, "loudness.generated_mean_abs": generated_abs,
        "loudness.mean_abs_ratio": _ratio(generated_abs, real_abs),
        "loudness.real_rms": real_rms, "loudness.generated_rms": generated_rms,
        "loudness.rms_ratio": _ratio(generated_rms, real_rms)})

    real_mel = log_mel_frames(real, sampling_rate)
    generated_mel = log_mel_frames(generated, sampling_rate)
    n_fft, _, bank = mel_settings(real.shape[1], sampling_rate)
    metrics["frechet_mel_distance"] = frechet_distance(  # every frame of every channel
        real_mel.reshape(-1, len(bank)), generated_mel.reshape(-1, len(bank)))
    metrics["mel.n_fft"], metrics["mel.bands"] = n_fft, len(bank)

    # NDB/K: one feature per window, its mean log-mel spectrum over channels and frames.
    bins = ndb(real_mel.mean(axis=(1, 2)), generated_mel.mean(axis=(1, 2)), ndb_bins, seed=seed)
    metrics.update({f"ndb.{key}": value for key, value in bins.items()})

    distances, used_lag = nearest_distances(generated, training, max_lag)
    metrics.update({
        "memorisation.min": distances.min(), "memorisation.median": np.median(distances),
        "memorisation.mean": distances.mean(), "memorisation.max": distances.max(),
        "memorisation.fraction_below": np.mean(distances < threshold),
        "memorisation.threshold": threshold, "memorisation.max_lag": used_lag})

    metrics["stereo.real_channel_correlation"] = channel_correlation(real)
    metrics["stereo.generated_channel_correlation"] = channel_correlation(generated)
    return {key: value if isinstance(value, int) and not isinstance(value, bool)
            else _number(value) for key, value in metrics.items()}


# --------------------------------------------------------------------------- reporting

def _show(value, digits=4):
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def default_eval_count(window):
    """Windows compared by default: EVAL_SAMPLES, fewer where they would pass EVAL_MAX_SAMPLES
    samples (stages 6-8), at least 8."""
    return max(8, min(EVAL_SAMPLES, EVAL_MAX_SAMPLES // window))


def noise_like(real, rng):
    """White noise at the loudness (RMS) of real, clipped to [-1, 1]: the metrics' ceiling."""
    real = _as_windows(real, "real")
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


def format_table(metrics, references=None):
    """A short table: metric, real, generated (or the score), what is better, and with
    references the scores of other real windows and of noise at the real loudness."""
    m = metrics
    rows = [
        ("mean |amplitude|", m["loudness.real_mean_abs"], m["loudness.generated_mean_abs"],
         "generated near real"),
        ("  ratio generated/real", None, m["loudness.mean_abs_ratio"], "1"),
        ("RMS", m["loudness.real_rms"], m["loudness.generated_rms"], "generated near real"),
        ("  ratio generated/real", None, m["loudness.rms_ratio"], "1"),
        ("Frechet log-mel distance", None, m["frechet_mel_distance"], "lower, 0 best"),
        (f"NDB/K (K = {m['ndb.bins']})", None, m["ndb.ndb_over_k"], "lower, 0 best"),
        ("  different bins", None, m["ndb.different_bins"], "lower"),
        ("  JS divergence (bits)", None, m["ndb.js_divergence"], "lower, 0 best"),
        ("nearest real: min", None, m["memorisation.min"], "higher, 0 = copy"),
        ("  median", None, m["memorisation.median"], "higher"),
        ("  mean", None, m["memorisation.mean"], "higher"),
        ("  max", None, m["memorisation.max"], "higher"),
        (f"  share below {_show(m['memorisation.threshold'])}", None,
         m["memorisation.fraction_below"], "lower, 0 = no copies"),
        ("channel correlation", m["stereo.real_channel_correlation"],
         m["stereo.generated_channel_correlation"], "generated near real"),
    ]
    head = (f"{m['num_real']} real and {m['num_generated']} generated windows of "
            f"{m['window_samples']} samples ({m['window_samples'] / m['sampling_rate']:.3g} s, "
            f"{m['channels']} channel{'s' if m['channels'] > 1 else ''}); nearest real among "
            f"{m['num_training']} windows, lags up to {m['memorisation.max_lag']}")
    keys = [None, "loudness.mean_abs_ratio", None, "loudness.rms_ratio", "frechet_mel_distance",
            "ndb.ndb_over_k", "ndb.different_bins", "ndb.js_divergence"] + [None] * 6
    refs = references or {}
    extra = "".join(f" {title:>12}" for title in ("real vs real", "noise")[:len(refs) and 2])
    lines = [head, f"{'metric':<26} {'real':>10} {'generated':>10}{extra}  better"]
    for (name, real, generated, better), key in zip(rows, keys):
        scores = "".join(f" {_show(refs[ref].get(key) if key else None):>12}"
                         for ref in ("real", "noise") if ref in refs)
        lines.append(f"{name:<26} {_show(real):>10} {_show(generated):>10}{scores}  {better}")
    done = progress(m["frechet_mel_distance"], refs) if refs else None
    if done is not None:
        lines.append(f"Frechet log-mel distance: {100 * done:.0f} % of the way from noise "
                     f"({_show(refs['noise']['frechet_mel_distance'])}) to real music "
                     f"({_show(refs['real']['frechet_mel_distance'])})")
    return "\n".join(lines)


def write_report(out_dir, metrics):
    """Write metrics as out_dir/metrics.json (atomically); returns its path."""
    return write_json(os.path.join(out_dir, "metrics.json"), metrics)


def _figures(real, generated, sampling_rate, names=None):
    """The pictures of save_plots (or those named) as (file name, matplotlib figure), drawn one
    at a time as the caller iterates; the caller closes each figure. Bad arrays are refused at
    once."""
    real = _float(_as_windows(real, "real"))
    generated = _float(_as_windows(generated, "generated"))
    return ((name, PICTURES[name](real, generated, sampling_rate))
            for name in (names or PICTURES))


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def envelope(samples, points=PLOT_POINTS):
    """(sample indices, values) to draw a waveform with at most `points` points: all of it if
    short, else the minimum and the maximum of each of points / 2 equal spans, both at the
    span's start. A line through them fills the pixels a line through every sample fills at
    the figure's width (as audio editors draw waveforms), and a 65 s window draws in a
    fraction of a second instead of seconds."""
    samples = np.asarray(samples)
    if len(samples) <= points:
        return np.arange(len(samples)), samples
    starts = np.linspace(0, len(samples), points // 2, endpoint=False).astype(np.int64)
    low, high = np.minimum.reduceat(samples, starts), np.maximum.reduceat(samples, starts)
    return np.repeat(starts, 2), np.stack([low, high], axis=1).reshape(-1)


def _waveforms(real, generated, sampling_rate, length=None):
    """Real above generated, one row per channel (as the report's Figures 8.4-8.7)."""
    plt = _pyplot()
    channels = real.shape[2]
    pairs = (("real", real[0]), ("generated", generated[0]))
    rows = 2 * channels
    fig, axes = plt.subplots(rows, 1, figsize=(12, 1.6 * rows + 0.6), sharex=True,
                             sharey=True, squeeze=False)
    for p, (label, window) in enumerate(pairs):
        shown = window[:length]
        for c in range(channels):
            ax = axes[p * channels + c, 0]
            at, values = envelope(shown[:, c])
            ax.plot(at / sampling_rate, values, linewidth=0.5,
                    color="tab:blue" if label == "real" else "tab:orange")
            ax.set_ylim(-1, 1)
            suffix = f", channel {c + 1}" if channels > 1 else ""
            ax.set_ylabel(f"{label}{suffix}", fontsize=8)
    axes[-1, 0].set_xlabel("seconds")
    zoom = f" (first {len(pairs[0][1][:length])} samples)" if length else ""
    fig.suptitle(f"waveforms: real above generated{zoom}")
    fig.tight_layout()
    return fig


def _zoom(real, generated, sampling_rate):
    return _waveforms(real, generated, sampling_rate, ZOOM_SAMPLES)


def _spectrograms(real, generated, sampling_rate):
    """Log-mel spectrograms of the first real and generated window, on one colour scale."""
    plt = _pyplot()
    channels = real.shape[2]
    mels = log_mel_frames(np.stack([real[0, :, :1], generated[0, :, :1]]), sampling_rate)[:, 0]
    n_fft, hop, _ = mel_settings(real.shape[1], sampling_rate)
    seconds = real.shape[1] / sampling_rate
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, label, mel in zip(axes, ("real", "generated"), mels):
        image = ax.imshow(mel.T, origin="lower", aspect="auto", vmin=mels.min(),
                          vmax=mels.max(), extent=(0, seconds, 0, mel.shape[1]))
        first = ", channel 1" if channels > 1 else ""
        ax.set_title(f"{label}{first}: log-mel (n_fft {n_fft}, hop {hop})")
        ax.set_xlabel("seconds")
    axes[0].set_ylabel("mel band")
    fig.colorbar(image, ax=axes, label="log(mel power + 1e-6)")
    return fig


def _loudness_histogram(real, generated, sampling_rate):
    """Histograms of the RMS of every window (the report's Figure 8.8)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    window_rms = [np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=(1, 2)))
                  for x in (real, generated)]
    edges = np.linspace(0, max(1e-9, max(r.max() for r in window_rms)), 31)
    for label, values in zip(("real", "generated"), window_rms):
        ax.hist(values, bins=edges, alpha=0.6, label=f"{label} (mean {values.mean():.4f})")
    ax.set_xlabel("RMS of a window")
    ax.set_ylabel("windows")
    ax.set_title("loudness of real and generated windows (the report's Figure 8.8)")
    ax.legend()
    fig.tight_layout()
    return fig


PICTURES = {"waveforms.png": _waveforms, "zoom.png": _zoom,
            "spectrograms.png": _spectrograms, "loudness.png": _loudness_histogram}


def save_plots(real, generated, sampling_rate, out_dir):
    """PNGs of the first real and generated window; returns their paths.

    waveforms.png: real above generated (as the report's Figures 8.4-8.7), one row per
    channel; zoom.png: their first 1024 samples; spectrograms.png: log-mel spectrograms side
    by side on one colour scale; loudness.png: histograms of the RMS of every window.
    """
    import matplotlib.pyplot as plt

    figures = _figures(real, generated, sampling_rate)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, fig in figures:
        path = os.path.join(out_dir, name)
        try:
            atomic_write(path, lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=100))
        finally:
            plt.close(fig)
        paths.append(path)
    return paths


def render_plots(real, generated, sampling_rate, dpi=100, names=None):
    """The pictures of save_plots (or those named) as {file name: PNG bytes}, without writing
    files (for TensorBoard image summaries)."""
    import io

    import matplotlib.pyplot as plt

    images = {}
    for name, fig in _figures(real, generated, sampling_rate, names):
        buffer = io.BytesIO()
        try:
            fig.savefig(buffer, format="png", dpi=dpi)
        finally:
            plt.close(fig)
        images[name] = buffer.getvalue()
    return images


# --------------------------------------------------------------------------- command line

def full_window_starts(audio, num_blocks):
    """Starts of the stage's windows that lie wholly inside the audio (no zero padding)."""
    windows = stage_windows(audio, num_blocks)
    starts = windows.starts(np.arange(len(windows)))
    return starts[starts + windows.window <= audio.num_samples], windows.window


def sample_windows(audio, starts, window, count, rng, log=note, sets=1):
    """count random windows of audio from starts (all of them, with a note, if fewer); with
    sets > 1, that many disjoint samples (a list), sharing the windows if there are too few."""
    if len(starts) < count * sets:
        log(f"{audio.data_dir} has {len(starts)} windows of {window} samples, fewer than "
            f"{count * sets} to compare: using all of them")
        count = len(starts) // sets
    if count == 0:  # one window: every set is that window
        chosen = np.tile(starts[:1], sets)
    else:
        chosen = rng.choice(starts, size=count * sets, replace=False)
    samples = [gather(audio.buffer, np.sort(part), window).astype(np.float32) / MAX_INT16
               for part in np.split(chosen, sets)]
    return samples[0] if sets == 1 else samples


def memorisation_windows(audio, window, rng):
    """The whole windows of audio as int16 [windows, window, channels], or a seeded random
    subset of at most EVAL_TRAINING_WINDOWS windows and EVAL_TRAINING_SAMPLES samples (128 MB)
    when there are more; and how many whole windows there are."""
    count = audio.num_samples // window
    cap = max(1, min(EVAL_TRAINING_WINDOWS, EVAL_TRAINING_SAMPLES // window))
    chosen = np.arange(count) if count <= cap else np.sort(rng.choice(count, cap, replace=False))
    return gather(audio.buffer, chosen * window, window), count


EVALUATE_FLAGS = ("real_dir", "generated_dir", "num_blocks", "num_eval_samples", "seed",
                  "sampling_rate", "json", "plots")


def make_parser():
    return config.make_parser(
        config.EvaluateConfig, "Compare generated audio with real audio: loudness, Frechet "
        "log-mel distance, NDB/K, a memorisation check and stereo correlation, as a table, JSON "
        "and pictures.", EVALUATE_FLAGS, {"num_eval_samples": EVAL_SAMPLES},
        positional=("real_dir", "generated_dir"))


def main(argv=None):
    options = config.parse(config.EvaluateConfig, argv, make_parser())
    plots, rate, count = options.plots, options.data.sampling_rate, options.watch.num_eval_samples
    if plots and os.path.exists(plots) and not os.path.isdir(plots):
        raise UserError(f"--plots {plots} is a file: give a folder for the pictures")

    real_audio = load_audio(options.real_dir, rate)
    generated_audio = load_audio(options.generated_dir, rate)
    if real_audio.channels != generated_audio.channels:
        raise UserError(f"{options.real_dir} has {real_audio.channels} channel(s) but "
                        f"{options.generated_dir} has {generated_audio.channels}: compare audio "
                        f"with the same number of channels")
    real_starts, window = full_window_starts(real_audio, options.model.num_blocks)
    generated_starts, _ = full_window_starts(generated_audio, options.model.num_blocks)
    rng = np.random.default_rng(options.seed)
    real = sample_windows(real_audio, real_starts, window, count, rng)
    generated = sample_windows(generated_audio, generated_starts, window, count, rng)
    training = gather(real_audio.buffer, real_starts, window)  # int16: the check is scale-free
    metrics = compute_metrics(real, generated, rate, training, seed=options.seed)

    if plots:
        try:
            paths = save_plots(real, generated, rate, plots)
            paths.append(write_report(plots, metrics))
        except OSError as error:
            raise UserError(f"cannot write to --plots {plots} ({error.strerror}): choose a "
                            f"folder you can write to") from None
        note("wrote " + ", ".join(paths))
    print(json.dumps(metrics) if options.json else format_table(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
