"""Audio of any length from a fixed-window generator: latent walks and crossfaded windows.

A GAN's window is fixed (16384 samples at stage 5, up to 65 s at stage 8); what it learned to
keep coherent does not grow past it. To hand a user a piece of any length, consecutive windows
come from consecutive points of a smooth path through the latent space and neighbouring
windows overlap, joined by a crossfade, so the music drifts instead of cutting (the report's
"continuous generation" future work, §8.4). NumPy only: the generator is any callable.
"""

import itertools
import math
import os

import numpy as np

from rules import LATENT_DIM
from utils import UserError, write_wav, write_wav_stream


def file_name(stem, seed, index, duration=None):
    """How --generate (and play.py) names file `index` of a seed: <stem>_seed<S>[_<D>s]_<i>.wav,
    stem the stage folder and step (stage_00005_step00001234)."""
    length = "" if duration is None else f"_{duration:g}s"
    return f"{stem}_seed{seed}{length}_{index:04d}.wav"


def generate_windows(generator, latents, batch_size):
    """Generator output [N, window, channels] as NumPy, in batches (generator: any callable
    from latents to a tensor, e.g. a Keras generator)."""
    return np.concatenate([np.asarray(generator(latents[i:i + batch_size]))
                           for i in range(0, len(latents), batch_size)])


def windows_needed(num_samples, window, overlap):
    """Windows whose overlapped join covers num_samples (one when it fits in a window)."""
    if num_samples <= window:
        return 1
    return math.ceil((num_samples - overlap) / (window - overlap))


def crossfade_gains(overlap, correlation=0.0):
    """(fade-out, fade-in) gains over `overlap` samples that keep the power constant.

    With g_out = (1 - t) k and g_in = t k, the power of g_out a + g_in b for signals of equal
    loudness and correlation rho is k^2 ((1-t)^2 + t^2 + 2 rho t (1-t)); k makes it 1. For
    uncorrelated signals this is an equal-power crossfade (g_out^2 + g_in^2 = 1); for
    identical ones (rho = 1) it is a linear crossfade, which reproduces the signal exactly.
    """
    rho = float(np.clip(correlation, 0.0, 1.0))  # anti-correlated joins fade as uncorrelated
    t = (np.arange(overlap) + 0.5) / overlap
    k = 1.0 / np.sqrt((1 - t) ** 2 + t ** 2 + 2 * rho * t * (1 - t))
    return (1 - t) * k, t * k


def correlation(a, b):
    """Pearson correlation of two equally long pieces of audio (0 if either is constant)."""
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 0 else 0.0


class Joiner:
    """Windows joined with crossfades of `overlap` samples as they come, for a stream that
    never ends (a live player): push(window) returns the samples that are final, all but the
    overlap that the next window fades into; end() returns that last overlap."""

    def __init__(self, overlap):
        self.overlap, self.tail = overlap, None

    def push(self, window):
        window = np.asarray(window, dtype=np.float32)
        if not 0 <= self.overlap < len(window):
            raise ValueError(f"overlap {self.overlap} must be in [0, {len(window)})")
        if self.tail is not None and self.overlap:
            head = window[:self.overlap]
            fade_out, fade_in = crossfade_gains(self.overlap, correlation(self.tail, head))
            window = np.concatenate([self.tail * fade_out[:, None] + head * fade_in[:, None],
                                     window[self.overlap:]])
        cut = len(window) - self.overlap
        self.tail = window[cut:]
        return window[:cut]

    def end(self):
        tail, self.tail = self.tail, None
        return tail if tail is not None else np.zeros((0, 1), np.float32)


def join_windows(windows, overlap, num_samples=None):
    """Join windows [n, window, channels] with crossfades of `overlap` samples.

    The result has n * window - (n - 1) * overlap samples, cut to num_samples if given.
    """
    joiner = Joiner(overlap)
    out = np.concatenate([joiner.push(window) for window in windows] + [joiner.end()])
    return out[:num_samples] if num_samples is not None else out


def interpolate(a, b, t, prior):
    """Points between latents a and b at fractions t: linear for the uniform prior (it stays in
    the cube), spherical for the normal prior (it keeps the norms a Gaussian draw has)."""
    t = np.asarray(t, dtype=np.float64)[:, None]
    if prior == "uniform":
        return (1 - t) * a + t * b
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = math.acos(float(np.clip(cos, -1.0, 1.0)))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / math.sin(omega)


def draw_prior(rng, count, prior):
    """count latents from the trainer's prior, U(-1, 1) or N(0, 1), drawn from a NumPy
    generator: [count, LATENT_DIM] float64."""
    if prior == "uniform":
        return rng.uniform(-1.0, 1.0, (count, LATENT_DIM))
    return rng.standard_normal((count, LATENT_DIM))


def label_input(rows, strength=1.0):
    """A conditional generator's label values for one-hot (or blended) `rows`, pushed
    `strength` S times as far from the blend of every label: (1 - S) / labels + S * rows
    (--label_strength; 1: as trained, 0: every label alike). Past 1 a label is asked for
    beyond what training showed, away from the others, as the guidance scale of
    classifier-free guidance does: told apart more often, further from the music
    (BENCHMARKS.md, "Asking harder")."""
    rows = np.asarray(rows, dtype=np.float32)
    return (1.0 - strength) / rows.shape[-1] + strength * rows  # float32, as rows


def with_labels(latents, labels, which=None, strength=1.0):
    """The input of a generator conditioned on `labels` labels: the latents followed by
    one-hot labels, `which` (an index per latent; by default label i % labels for latent i),
    at `strength` (label_input). Unconditional (labels 0): the latents as they are."""
    if not labels:
        return latents
    which = np.arange(len(latents)) % labels if which is None else np.asarray(which)
    chosen = label_input(np.eye(labels)[which], strength)
    return np.concatenate([latents, chosen.astype(latents.dtype)], axis=1)


def asked_labels(asked, labels, where, strength=1.0):
    """The indices of the labels --label asks for (every label of a conditional model when
    none is named); one line for a label the model does not know, or --label or
    --label_strength for a model trained without --condition (`where` names the checkpoint
    or export)."""
    for flag, given in (("--label", asked), ("--label_strength", strength != 1.0)):
        if given and not labels:
            raise UserError(f"{flag} asks a model trained with --condition folders for a "
                            f"style, but {where} was trained without: drop {flag}")
    unknown = [name for name in asked or () if name not in labels]
    if unknown:
        raise UserError(f"{where} knows no label {unknown[0]}: it knows {', '.join(labels)}")
    return [labels.index(name) for name in asked] if asked else list(range(len(labels)))


def strength_suffix(strength):
    """What names files (and evaluations) made at a --label_strength other than 1."""
    return f"_strength{strength:g}" if strength != 1.0 else ""


def label_stem(stem, label, strength=1.0):
    """A label's file names: the stem, then the label with / as -, then any strength."""
    return f"{stem}_{label.replace('/', '-')}{strength_suffix(strength)}"


def label_sets(generator, labels, asked, stem, where, strength=1.0):
    """[(generator, file stem)] of --generate: one set, or a conditional model's one per label
    asked for (longform.asked_labels) at `strength`, each named after its label."""
    if not labels:
        asked_labels(asked, labels, where, strength)
        return [(generator, stem)]
    return [(WithLabel(generator, k, len(labels), strength),
             label_stem(stem, labels[k], strength))
            for k in asked_labels(asked, labels, where)]


class WithLabel:
    """A conditional generator asked for one label: latents [n, 100] to audio, the label's
    one-hot after them. The latent walks, crossfades and file writing take it as any
    generator."""

    def __init__(self, generator, index, labels, strength=1.0):
        self.generator, self.index, self.labels = generator, index, labels
        self.strength = strength

    def __call__(self, latents):
        latents = np.asarray(latents, dtype=np.float32)
        return self.generator(with_labels(latents, self.labels,
                                          np.full(len(latents), self.index), self.strength))


def draw_latents(seed, count, prior):
    """The latents of a seed: the first `count` draws of NumPy's default generator, as float32.
    Every job that makes audio from a seed (--generate, --preview, --interpolate, --evaluate,
    the summaries) draws them here, and so can a player without TensorFlow."""
    return draw_prior(np.random.default_rng(seed), count, prior).astype(np.float32)


def default_crossfade(window, sampling_rate):
    """Overlap of neighbouring windows by default: a quarter of the window, at most 1 s."""
    return min(window // 4, sampling_rate)


def crossfade_samples(seconds, window, sampling_rate):
    """--crossfade in samples (the default without it); a one-line error if it is not
    shorter than a window."""
    if seconds is None:
        return default_crossfade(window, sampling_rate)
    overlap = round(seconds * sampling_rate)
    if overlap >= window:
        raise UserError(f"--crossfade {seconds:g} s is not shorter than a window "
                        f"({window / sampling_rate:.3f} s): use a shorter crossfade")
    return overlap


def walk_chunks(generator, rng, needed, prior, anchor_every, batch, overlap, samples):
    """One piece of `samples` samples along the next `needed` latents of a walk (rng's),
    windows crossfaded: float32 chunks of at most `batch` windows each, so that a piece of
    any length takes the memory of one batch."""
    latents, joiner, left = walk(rng, prior, anchor_every), Joiner(overlap), samples
    for first in range(0, needed, batch):
        step = np.stack(list(itertools.islice(latents, min(batch, needed - first))))
        chunk = np.concatenate([joiner.push(w) for w in generate_windows(generator, step,
                                                                         batch)])
        if first + batch >= needed:
            chunk = np.concatenate([chunk, joiner.end()])
        yield chunk[:left]
        left -= len(chunk[:left])


WAV_LIMIT = 2**32 - 1 - 44  # bytes of samples a WAV file's 32-bit sizes can hold


def check_room(folder, count, samples, channels, seconds):
    """One line, before any work, when `count` files of `samples` 16-bit samples would not
    fit a WAV file or the free space in folder."""
    import shutil

    size = samples * channels * 2
    if size > WAV_LIMIT:
        most = int(WAV_LIMIT // (channels * 2) / (samples / seconds))
        raise UserError(f"--duration {seconds:g} s makes files of {size / 1e9:.1f} GB, over "
                        f"the 4.3 GB a WAV file holds: ask for at most {most} s")
    existing = folder
    while not os.path.isdir(existing):
        existing = os.path.dirname(os.path.abspath(existing))
    free = shutil.disk_usage(existing).free
    if count * (size + 44) > free:
        raise UserError(f"{count} files of {seconds:g} s take {count * size / 1e9:.1f} GB but "
                        f"{existing} has {free / 1e9:.1f} GB free: free space or ask for less")


def write_files(generator, walk_config, count, seed, prior, window, batch, rate, channels,
                stem):
    """The files --generate writes, the trainers' and play.py's, in --output_dir, named by
    file_name: `count` windows of the seed's latents (--duration None; file 0 of seed A is
    --interpolate's A), or `count` pieces of --duration each along its own stretch of one
    latent walk, windows joined by crossfades, written as they are made (bounded memory).
    Returns (files, samples) of what was written."""
    if walk_config.duration is None:
        windows = generate_windows(generator, draw_latents(seed, count, prior), batch)
        for i, audio in enumerate(windows):
            write_wav(os.path.join(walk_config.output_dir, file_name(stem, seed, i)), audio,
                      rate)
        return len(windows), windows.shape[1]
    samples = round(walk_config.duration * rate)
    check_room(walk_config.output_dir, count, samples, channels, walk_config.duration)
    overlap = crossfade_samples(walk_config.crossfade, window, rate)
    rng, needed = np.random.default_rng(seed), windows_needed(samples, window, overlap)
    for i in range(count):
        write_wav_stream(os.path.join(walk_config.output_dir,
                                      file_name(stem, seed, i, walk_config.duration)),
                         walk_chunks(generator, rng, needed, prior, walk_config.anchor_every,
                                     batch, overlap, samples), rate, channels)
    return count, samples


def walk(rng, prior, anchor_every=4, labels=0, sequence=(), anchors=None, strength=1.0):
    """Latents along a smooth path through random anchors (or those of the endless iterator
    `anchors`, e.g. itertools.cycle of chosen latents), one anchor every `anchor_every`
    windows, without end: window i sits i / anchor_every of the way along the anchors. A
    conditional generator's (`labels` labels) end with a one-hot label blended the same way
    from anchor to anchor, the anchors taking the labels of `sequence` in turn, at
    `strength` (label_input)."""
    if anchors is None:
        anchors = random_anchors(rng, prior)
    start, end = next(anchors), next(anchors)
    one_hot = np.eye(labels, dtype=np.float32)
    anchor = 0
    while True:
        for t in range(anchor_every):
            latent = interpolate(start, end, [t / anchor_every], prior)[0].astype(np.float32)
            if labels:
                first, then = (one_hot[sequence[(anchor + k) % len(sequence)]] for k in (0, 1))
                share = t / anchor_every
                latent = np.concatenate([latent, label_input((1 - share) * first
                                                             + share * then, strength)])
            yield latent
        start, end = end, next(anchors)
        anchor += 1


def random_anchors(rng, prior):
    """A walk's random anchors: two draws from the prior, then one at a time."""
    yield from draw_prior(rng, 2, prior)
    while True:
        yield draw_prior(rng, 1, prior)[0]


def latent_walk(rng, num_windows, prior, anchor_every=4):
    """The first num_windows latents of walk: [num_windows, LATENT_DIM] float32."""
    return np.stack(list(itertools.islice(walk(rng, prior, anchor_every), num_windows)))
