"""Pictures of real against generated audio, where the report used Audacity (its Figures
8.2-8.8): waveforms, a zoom on the first samples, log-mel spectrograms on one colour scale,
and the loudness of every window. matplotlib without a screen; no TensorFlow.

    save_plots(real, generated, sampling_rate, out_dir) -> the PNG files' paths
    render_plots(real, generated, sampling_rate) -> {PNG name: PNG bytes}, no files
"""

import os

import numpy as np

from metrics import as_float, as_windows, log_mel_frames, mel_settings
from utils import atomic_write

ZOOM_SAMPLES = 1024
PLOT_POINTS = 4096  # points of a plotted waveform at most: 3.4 per pixel of the 12-inch figure


def _figures(real, generated, sampling_rate, names=None):
    """The pictures of save_plots (or those named) as (file name, matplotlib figure), drawn one
    at a time as the caller iterates; the caller closes each figure. Bad arrays are refused at
    once."""
    real = as_float(as_windows(real, "real"))
    generated = as_float(as_windows(generated, "generated"))
    return ((name, PICTURES[name](real, generated, sampling_rate))
            for name in (names or PICTURES))


def pyplot():
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


def window_rms(windows):
    """The loudness of every window: RMS over its samples and channels, in float64."""
    return np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=(1, 2)))


def typical(windows):
    """The window of median loudness (window_rms): the one the waveform and spectrogram
    pictures show, so that a silent gap between pieces, which a random real window often is,
    does not stand for the music."""
    rms = window_rms(windows)
    return windows[np.argsort(rms, kind="stable")[(len(rms) - 1) // 2]]


def _waveforms(real, generated, sampling_rate, length=None):
    """A typical real window above a typical generated one, one row per channel (as the
    report's Figures 8.4-8.7)."""
    plt = pyplot()
    channels = real.shape[2]
    pairs = (("real", typical(real)), ("generated", typical(generated)))
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
    """Log-mel spectrograms of a typical real and generated window, on one colour scale."""
    plt = pyplot()
    channels = real.shape[2]
    mels = log_mel_frames(np.stack([typical(real)[:, :1], typical(generated)[:, :1]]),
                          sampling_rate)[:, 0]
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
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    loudness = [window_rms(x) for x in (real, generated)]
    edges = np.linspace(0, max(1e-9, max(r.max() for r in loudness)), 31)
    for label, values in zip(("real", "generated"), loudness):
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
    """PNGs of a typical real and generated window (typical(): median loudness) and of the
    loudness of all of them; returns their paths.

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
