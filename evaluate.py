"""Evaluate generated audio against real audio: which windows are compared, and the command
line over two folders (metrics.py's metrics, pictures.py's pictures).

    python evaluate.py REAL_DIR GENERATED_DIR [--num_blocks N] [--num_eval_samples M]
                       [--seed S] [--sampling_rate R] [--json] [--plots DIR]

cuts both folders into the full windows of stage N (2^(4+2N) samples), takes M random windows
of each (seeded) and prints a table, or one JSON object with --json. All windows of REAL_DIR
are the training set of the memorisation check. --plots DIR writes the PNGs and metrics.json.
A trainer's --evaluate and the quality curve during training compare the same way.
"""

import json
import os
import sys

import numpy as np

import config
import metrics
import pictures
from dataloader import gather, load_audio, note, stage_windows
from rules import EVAL_MAX_SAMPLES, EVAL_SAMPLES, MAX_INT16, window_length
from utils import UserError, run_cli

# The memorisation check searches all whole windows of the training audio, or a seeded random
# subset of at most this many windows and samples (2^26: about 70 minutes of 16 kHz audio)
# when there are more: its cost grows with the generated windows times both.
EVAL_TRAINING_WINDOWS = 8192
EVAL_TRAINING_SAMPLES = 1 << 26


def default_eval_count(window):
    """Windows compared by default: EVAL_SAMPLES, fewer where they would pass EVAL_MAX_SAMPLES
    samples (stages 6-8), at least 8."""
    return max(8, min(EVAL_SAMPLES, EVAL_MAX_SAMPLES // window))


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


def real_windows(audio, num_blocks, count, seed):
    """(count random whole windows of stage num_blocks, another count of them: the
    real-music reference), seeded, and the random stream that drew them."""
    starts, window = full_window_starts(audio, num_blocks)
    rng = np.random.default_rng(seed)
    return (*sample_windows(audio, starts, window, count, rng, sets=2), rng)


def comparison_windows(audio, num_blocks, count, seed):
    """The real windows an evaluation of stage num_blocks compares against, seeded: (count
    random whole windows, another count of them (the real-music reference), the windows the
    memorisation check searches (int16), how many whole windows there are in all)."""
    real, other, rng = real_windows(audio, num_blocks, count, seed)
    training, total = memorisation_windows(audio, window_length(num_blocks), rng)
    return real, other, training, total


def write_evaluation(folder, real, generated, sampling_rate, measured, fix):
    """The pictures of an evaluation and its metrics.json in folder; returns their paths. A
    folder that cannot be written is one line, ending in `fix`."""
    try:
        paths = pictures.save_plots(real, generated, sampling_rate, folder)
        paths.append(metrics.write_report(folder, measured))
    except OSError as error:
        raise UserError(f"cannot write to {folder} ({error.strerror}): {fix}") from None
    return paths


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
    measured = metrics.compute_metrics(real, generated, rate, training, seed=options.seed)

    if plots:
        note("wrote " + ", ".join(write_evaluation(plots, real, generated, rate, measured,
                                                   "choose a folder you can write to")))
    print(json.dumps(measured) if options.json else metrics.format_table(measured))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
