"""Does a model trained with --condition folders make what it is asked for?

    python bench/conditioning.py FOLDER_A FOLDER_B [--stage 3] [--steps 300]
            [--batch_size 16] [--seeds 0 1 2] [--classifiers 3] [--windows 256] [--keep DIR]
            [--json] [--train_flags "--label_critic auxiliary"] [--spectral_shape]
            [--grow_steps N] [--raw_generator] [--average_with STEP [STEP ...]]
            [--truncation PSI]
    python bench/conditioning.py FOLDER_A FOLDER_B --real_only 3 5 7 [--classifiers 3]

Two folders of clearly different music (e.g. two packages of bench/fetch_music.py's,
~/music/freedroidrpg and ~/music/hedgewars) become the two labels of one library (symbolic
links, named after the folders). For each seed, train_progressive.py trains a conditional
stage (--condition folders, mixed precision as the CPU allows, and --train_flags) to --steps
in a subprocess; with --grow_steps N it grows the stage from stage 1 first (--grow_to, N steps
a smaller stage), so that --steps count the stage's own steps either way.
Then:

- a small classifier (multinomial logistic regression on each window's log-mel mean and
  standard deviation per band, NumPy and SciPy, no downloaded weights) is fitted to real
  windows of half of each label's files (whole files, seeded) and scored on real windows of
  the other half (the trainer's fixed split of the files): the accuracy a generator can
  hope for. There are --classifiers of them, each fitted to and scored on its own random
  windows of the halves (draws 0, 1, ..., the same for every training seed), and each
  accuracy below is their mean: which windows a classifier learned from moves its
  threshold, and with it the accuracy of every generator it judges, more than the training
  seed moves the generator;
- the moving-average generator (what --generate plays; --raw_generator: the trained
  weights; --average_with: the mean of its weights at --steps and at earlier checkpoints of
  the run; --truncation: its latents scaled towards the prior's centre) is asked for each
  label, --windows windows each, and the classifiers say how often they recover the label
  asked for;
- each label's Frechet mel distance and RMS ratio (metrics.label_metrics) against its
  held-out real windows, beside the real-music reference;
- how far apart the first two labels are, real and generated (the Frechet mel distance
  of one label's windows to the other's): whether asking for a label changes anything;
- how well the classifier's score separates the first two labels, real and generated (area
  under the ROC curve): whether they differ in the direction the real ones do, whatever
  error the generator makes in both;
- the mean power in bands 1 kHz wide: how the first two labels' real music differs, and
  where each label's generated windows depart from its real ones.

--real_only trains nothing: it prints the classifiers' accuracy on real held-out windows at
the stages given, the most a generator there can be recovered, and how loud each label's
windows are (their RMS, and the 10th percentile of each window's own RMS).

Target: on generated windows each label is recovered at least 80 % as often as on real ones
(relative accuracy >= 0.8 for the label recovered least well by each classifier, so that a
generator that makes one style whatever it is asked cannot pass; a mean over the
classifiers). Prints the mean and range over the training seeds.

Ctrl+C or SIGTERM while a seed trains: its trainer saves the step it is at and stops, then
the bench does (exit code 130); with --keep DIR the same command trains on from there.
"""

import argparse
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from scipy.optimize import minimize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import checkpoints
import rules
from config import LABEL_STRENGTH
from utils import (
    ArgumentParser,
    UserError,
    float_above,
    int_in_range,
    run_cli,
    stop_on_signals,
    wait_saving_on_stop,
)

TARGET = 0.8
L2 = 1e-2  # the classifier's weight penalty: it must not learn one soundtrack's noise floor


def library(folders, root):
    """A folder with a link to each of `folders`, named after it: a label each."""
    path = os.path.join(root, "library")
    os.makedirs(path, exist_ok=True)
    for folder in folders:
        link = os.path.join(path, os.path.basename(os.path.normpath(folder)))
        if not os.path.islink(link):
            os.symlink(os.path.abspath(os.path.expanduser(folder)), link)
    return path


def run_folder(root, seed):
    """A seed's training run."""
    return os.path.join(root, f"seed{seed}")


def stage_folder(root, seed, args):
    """Where a seed's run keeps its checkpoints of --stage."""
    return checkpoints.stage_dir(run_folder(root, seed), args.stage)


def train(data, root, seed, args):
    """train_progressive.py to --steps (skipped where that checkpoint is there), grown from
    stage 1 first with --grow_steps; returns the stage folder."""
    run = run_folder(root, seed)
    directory = stage_folder(root, seed, args)
    if checkpoints.checkpoint_exists(checkpoints.checkpoint_path(directory, args.steps)):
        return directory
    print(f"training seed {seed} to step {args.steps}", file=sys.stderr, flush=True)
    shared = [sys.executable, os.path.join(REPO, "train_progressive.py"), "--data_dir", data,
              "--checkpoint_dir", run, "--condition", "folders", "--batch_size",
              str(args.batch_size), "--seed", str(seed), "--use_mixed_precision_training",
              "--audio_cache", os.path.join(root, "audio_cache"), "--save_every_secs", "1e9",
              "--log_every_secs", "60"] + shlex.split(args.train_flags)  # by both commands
    commands = [shared + ["--num_blocks", str(args.stage), "--max_steps", str(args.steps)]]
    if args.grow_steps:  # stages 1..N first (a grown stage N is where the same command goes on)
        commands.insert(0, shared + ["--grow_to", str(args.stage), "--stage_steps",
                                     str(args.grow_steps), "--output_dir",
                                     os.path.join(run, "previews")])
    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, "train.log"), "a") as log:
        for command in commands:  # in a session of its own: see wait_saving_on_stop
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            code = wait_saving_on_stop(process, f"seed {seed}", run, args.keep)
            if code:
                raise UserError(f"seed {seed} stopped with exit code {code}: see "
                                f"{os.path.join(run, 'train.log')}")
    return directory


def features(windows, rate, shape_only=False):
    """Each window's log-mel mean and standard deviation per band, over frames and channels;
    shape_only: the means less their mean over the bands (the spectrum's shape, not its level:
    a generator a few dB too quiet is not called the quieter label for it)."""
    import metrics

    mel = metrics.log_mel_frames(windows, rate)  # [windows, channels, frames, bands]
    mean = mel.mean(axis=(1, 2))
    if shape_only:
        mean -= mean.mean(axis=1, keepdims=True)
    return np.concatenate([mean, mel.std(axis=(1, 2))], axis=1)


class Classifier:
    """Multinomial logistic regression with an L2 penalty, on standardised features."""

    def __init__(self, x, labels, classes):
        self.mean, self.scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        x = (x - self.mean) / self.scale
        one_hot = np.eye(classes)[labels]
        shape = (x.shape[1] + 1, classes)

        def loss(flat):
            w = flat.reshape(shape)
            logits = x @ w[:-1] + w[-1]
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            value = -np.mean(np.sum(one_hot * np.log(p + 1e-12), axis=1))
            grad = np.vstack([x.T @ (p - one_hot), (p - one_hot).sum(axis=0)]) / len(x)
            grad[:-1] += L2 * w[:-1]
            return value + 0.5 * L2 * np.sum(w[:-1] ** 2), grad.ravel()
        self.w = minimize(loss, np.zeros(np.prod(shape)), jac=True,
                          method="L-BFGS-B").x.reshape(shape)

    def logits(self, x):
        return ((x - self.mean) / self.scale) @ self.w[:-1] + self.w[-1]

    def predict(self, x):
        return np.argmax(self.logits(x), axis=1)


def separation(classifier, first, second):
    """How well the classifier's score (its logit of the first label less the second's)
    ranks windows of the first label above those of the second (their features): the area
    under the ROC curve, 0.5 by chance. Unlike the accuracy, a shift of every window (a
    generator's error common to its labels) does not change it: it asks whether the labels
    differ in the direction the real ones do."""
    a, b = (s[:, 0] - s[:, 1] for s in map(classifier.logits, (first, second)))
    return float(np.mean(a[:, None] > b[None, :]) + 0.5 * np.mean(a[:, None] == b[None, :]))


def labelled_music(data, root):
    """(labels, each label's audio, sampling rate) of the library, decoded once (cached)."""
    import dataloader

    audio = dataloader.load_audio(data, cache_dir=os.path.join(root, "audio_cache"),
                                  log=lambda _: None)
    names, file_labels = dataloader.folder_labels(audio)
    return names, dataloader.label_parts(audio, file_labels, len(names)), audio.sampling_rate


def real_music(music, seed, stage, args):
    """(labels, the classifier fitted to real windows of half of each label's files, two
    sets of windows of the other half, sampling rate) at `stage`; music: labelled_music's."""
    import dataloader
    import evaluate

    names, parts, rate = music
    fit, held = zip(*(dataloader.split_files(part, 0.5) for part in parts))
    fit_windows = [evaluate.real_windows(p, stage, args.windows, seed)[0] for p in fit]
    real, other = zip(*(evaluate.real_windows(p, stage, args.windows, seed + 1)[:2]
                        for p in held))
    fitted = [features(w, rate, args.spectral_shape) for w in fit_windows]
    classifier = Classifier(np.concatenate(fitted),
                            np.repeat(np.arange(len(names)), [len(w) for w in fit_windows]),
                            len(names))
    return names, classifier, real, other, rate


def accuracy(classifier, feature_sets):
    """How often the classifier names each label's windows [features of label k's, ...]."""
    return [float(np.mean(classifier.predict(x) == k)) for k, x in enumerate(feature_sets)]


def averaged_generator(directory, args):
    """(generator, step, which weights) of the --steps checkpoint (not a later one trained
    since), its weights the mean of theirs and those of the --average_with checkpoints."""
    import train_progressive

    loaded = [checkpoints.load_generator(directory, train_progressive.RECIPE,
                                         checkpoints.checkpoint_path(directory, step),
                                         raw=args.raw_generator)
              for step in [args.steps] + args.average_with]
    generator, _, step, which = loaded[0]
    for mine, *theirs in zip(generator.weights, *(g.weights for g, *_ in loaded[1:])):
        mine.assign(np.mean([w.numpy() for w in [mine, *theirs]], axis=0))
    if args.average_with:
        which += " averaged with steps " + " ".join(map(str, args.average_with))
    return generator, step, which


BAND_HZ = 1000  # the width of the bands band_levels reports


def band_levels(windows, rate):
    """The windows' mean power in bands BAND_HZ wide from 0 Hz (the last one up to and with
    the Nyquist frequency), in dB: where a generator's spectrum departs from its label's."""
    import metrics

    frequencies, power = metrics.mean_power_spectrum(windows, rate)
    bands = int(np.ceil(rate / 2 / BAND_HZ))
    index = np.minimum(frequencies // BAND_HZ, bands - 1).astype(int)
    return (10 * np.log10(np.bincount(index, power, bands) / np.bincount(index, None, bands)
                          + 1e-12)).tolist()


def classified(fitted, draw, generated_features, args):
    """One classifier's figures (fitted: real_music's of seed `draw`): its accuracy
    on the held-out real windows and on each label's generated windows (their features), and
    how well it separates the first two labels of each."""
    names, classifier, real, _, rate = fitted
    real_features = [features(w, rate, args.spectral_shape) for w in real]
    predicted = [classifier.predict(x) for x in generated_features]
    return {"draw": draw, "real_accuracy": accuracy(classifier, real_features),
            "generated_accuracy": [float(np.mean(p == k)) for k, p in enumerate(predicted)],
            "confusion": [np.bincount(p, minlength=len(names)).tolist() for p in predicted],
            "separation_real": separation(classifier, *real_features[:2]),
            "separation_generated": separation(classifier, *generated_features[:2])}


def score(directory, music, seed, args):
    """The classifiers' accuracies and each label's metrics for one trained run; music:
    labelled_music's. Every run is judged by the same --classifiers classifiers (their windows
    drawn with seeds 0, 1, ...), and each accuracy is a mean over them."""
    import longform
    import metrics
    import train_progressive

    names, _, rate = music
    window = rules.window_length(args.stage)
    generator, step, which = averaged_generator(directory, args)
    latents = args.truncation * longform.draw_latents(seed + 100, args.windows,
                                                      train_progressive.RECIPE.prior)
    generated = [longform.generate_windows(longform.WithLabel(generator, k, len(names),
                                                              args.label_strength),
                                           latents, rules.default_batch_size(args.stage))
                 for k in range(len(names))]
    generated_features = [features(g, rate, args.spectral_shape) for g in generated]
    fitted = [real_music(music, draw, args.stage, args) for draw in range(args.classifiers)]
    judged = [classified(f, draw, generated_features, args) for draw, f in enumerate(fitted)]
    relative = [np.divide(j["generated_accuracy"], j["real_accuracy"]) for j in judged]
    _, _, real, other, _ = fitted[0]  # the held-out windows the metrics compare with
    measured = metrics.label_metrics(names, real, generated, rate)

    def apart(a, b):  # how far two labels' windows are from each other
        return metrics.frechet_mel(metrics.Comparison(a, b, rate))["frechet_mel_distance"]
    reference = metrics.label_metrics(names, real, other, rate)

    def mean(key):
        return np.mean([j[key] for j in judged], axis=0).tolist()
    return {"seed": seed, "step": step, "weights": which, "labels": names, "window": window,
            "real_accuracy": mean("real_accuracy"),
            "generated_accuracy": mean("generated_accuracy"),
            "relative_accuracy": np.mean(relative, axis=0).tolist(),
            # the label recovered least well by each classifier, a mean over the classifiers:
            # a generator that makes one style whatever it is asked scores near 0 here
            "least_recovered": float(np.mean([r.min() for r in relative])),
            "separation_real": mean("separation_real"),
            "separation_generated": mean("separation_generated"),
            "frechet_mel_distance": [measured[f"label.{n}.frechet_mel_distance"]
                                     for n in names],
            "rms_ratio": [measured[f"label.{n}.rms_ratio"] for n in names],
            "real_reference_distance": [reference[f"label.{n}.frechet_mel_distance"]
                                        for n in names],
            # the first two labels' distance from each other: does asking change anything?
            "labels_apart_real": apart(real[0], real[1]),
            "labels_apart_generated": apart(generated[0], generated[1]),
            "band_levels_real": [band_levels(w, rate) for w in real],
            "band_levels_generated": [band_levels(w, rate) for w in generated],
            "classifiers": judged,
            **critic_naming(os.path.dirname(directory), args.stage)}


def critic_naming(run, stage):
    """How often the run's critic named the labels while it trained at `stage`: the mean of
    its TensorBoard summaries after step 1 of Labels/real_recognised (real windows' labels)
    and Labels/fake_recognised (the labels the fakes were asked for), each summary one
    batch's share (--summary_every_secs sets how many), and how many summaries; {} where
    the critic names none (--label_critic projection, centred, pooled)."""
    from learning import evaluations

    summaries = [values for _, step, values in evaluations(run, stage, prefix="Labels/")
                 if step > 1 and values]
    if not summaries:
        return {}
    return {"critic_named_real": float(np.mean([v["Labels/real_recognised"]
                                                for v in summaries])),
            "critic_named_fake": float(np.mean([v["Labels/fake_recognised"]
                                                for v in summaries])),
            "critic_summaries": len(summaries)}


def spread(values):
    values = np.asarray(values, np.float64)
    return f"{values.mean():.3g} ({values.min():.3g}-{values.max():.3g})"


def print_report(runs, args):
    names = runs[0]["labels"]
    print(f"stage {args.stage} ({runs[0]['window']} samples), {args.steps} steps, batch "
          f"{args.batch_size}, seeds {' '.join(str(r['seed']) for r in runs)}, "
          f"{args.windows} windows per label, {runs[0]['weights']}; each seed's accuracies "
          f"the mean of {args.classifiers} classifiers (windows drawn with seeds "
          f"0-{args.classifiers - 1}); mean (range) over the seeds")
    print("| label | classifier on real held-out | on generated (asked for it) | relative | "
          "Frechet mel distance (real reference) | RMS ratio |")
    print("|---|---|---|---|---|---|")
    for k, name in enumerate(names):
        real = [r["real_accuracy"][k] for r in runs]
        made = [r["generated_accuracy"][k] for r in runs]
        print(f"| {name} | {spread(real)} | {spread(made)} | "
              f"{spread([r['relative_accuracy'][k] for r in runs])} | "
              f"{spread([r['frechet_mel_distance'][k] for r in runs])} "
              f"({spread([r['real_reference_distance'][k] for r in runs])}) | "
              f"{spread([r['rms_ratio'][k] for r in runs])} |")
    print(f"the first two labels' Frechet mel distance from each other: real "
          f"{spread([r['labels_apart_real'] for r in runs])}, generated "
          f"{spread([r['labels_apart_generated'] for r in runs])}")
    print(f"how well the classifier's score separates the first two labels (area under the "
          f"ROC curve, 0.5 by chance; a shift common to both labels does not change it): "
          f"real {spread([r['separation_real'] for r in runs])}, generated "
          f"{spread([r['separation_generated'] for r in runs])}")
    bands = len(runs[0]["band_levels_real"][0])
    print(f"mean power in bands of {BAND_HZ} Hz, dB (mean over the seeds): | " + " | ".join(
        f"{BAND_HZ * b // 1000}-{BAND_HZ * (b + 1) // 1000} kHz" for b in range(bands)) + " |")

    def levels(name, values):
        print(f"| {name} | " + " | ".join(f"{v:+.1f}" for v in np.mean(values, axis=0)) + " |")
    levels(f"{names[0]} less {names[1]}, real", [np.subtract(*r["band_levels_real"][:2])
                                                 for r in runs])
    for k, name in enumerate(names):
        levels(f"{name}, generated less real", [np.subtract(r["band_levels_generated"][k],
                                                            r["band_levels_real"][k])
                                                for r in runs])
    named = [r for r in runs if "critic_named_real" in r]
    if named:
        print(f"the critic's own naming while it trained (its summaries' mean after step 1, "
              f"each of one batch; {spread([r['critic_summaries'] for r in named])} "
              f"summaries a run): real windows' labels "
              f"{spread([r['critic_named_real'] for r in named])}, the labels the fakes were "
              f"asked for {spread([r['critic_named_fake'] for r in named])}")
    relative = [r["least_recovered"] for r in runs]
    print(f"relative accuracy of the label recovered least well: {spread(relative)}; target "
          f">= {TARGET}: {'met' if np.mean(relative) >= TARGET else 'not met'}")


def loudness_spread(windows):
    """(the windows' RMS, the 10th percentile of each window's own RMS): how loud a label
    is, and how quiet its quiet windows are."""
    power = np.mean(np.square(np.asarray(windows, np.float64).reshape(len(windows), -1)), axis=1)
    return float(np.sqrt(power.mean())), float(np.percentile(np.sqrt(power), 10))


def print_real_only(data, root, args):
    """--real_only: the classifier's accuracy on real held-out windows at each stage, and
    how loud they are."""
    music, rows = labelled_music(data, root), []
    names, _, rate = music
    for stage in args.real_only:
        accuracies, loudness = [], []
        for draw in range(args.classifiers):
            _, classifier, real, _, _ = real_music(music, draw, stage, args)
            accuracies.append(accuracy(classifier, [features(w, rate, args.spectral_shape)
                                                    for w in real]))
            loudness.append([loudness_spread(w) for w in real])
        window = rules.window_length(stage)
        rows.append(f"| {stage} | {window} samples ({1000 * window / rate:.0f} ms) | " +
                    " | ".join(spread([a[k] for a in accuracies]) for k in range(len(names))) +
                    " | " + " | ".join(
                        " / ".join(spread([d[k][i] for d in loudness]) for i in range(2))
                        for k in range(len(names))) + " |")
    print(f"the classifier on real held-out windows, {args.windows} windows per label, mean "
          f"(range) over {args.classifiers} classifiers (windows drawn with seeds "
          f"0-{args.classifiers - 1})")
    print("| stage | window | " + " | ".join(names) + " | " + " | ".join(
        f"{name}: RMS / 10th percentile of the windows' RMS" for name in names) + " |")
    print("|---|---|" + "---|" * 2 * len(names))
    print("\n".join(rows))


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs=2, metavar="FOLDER",
                        help="two folders of different music: the two labels")
    parser.add_argument("--stage", type=int_in_range(1, rules.MAX_BLOCKS), default=3)
    parser.add_argument("--steps", type=int_in_range(1, 10**9), default=300,
                        help="training steps per seed")
    parser.add_argument("--batch_size", type=int_in_range(1, 4096), default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--windows", type=int_in_range(16, 100_000), default=256,
                        help="windows per label for the classifier and the metrics")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="train in DIR and keep it (default: a temporary folder); runs "
                             "already there are not trained again")
    parser.add_argument("--grow_steps", type=int_in_range(1, 10**9), default=None,
                        metavar="N",
                        help="grow each seed's stage from stage 1 first (--grow_to STAGE "
                             "--stage_steps N: N steps a stable stage, a frozen transition "
                             "half), then train it on to --steps; default: the stage from "
                             "scratch")
    parser.add_argument("--raw_generator", action="store_true",
                        help="score the trained weights instead of their moving average")
    parser.add_argument("--average_with", type=int_in_range(1, 10**9), nargs="+", default=[],
                        metavar="STEP",
                        help="score the mean of the --steps checkpoint's generator weights "
                             "and those of these earlier checkpoints of the same runs (a "
                             "longer average than the trainer's; a run keeps its last three)")
    parser.add_argument("--truncation", type=float_above(0.0), default=1.0, metavar="PSI",
                        help="scale the latents by PSI towards the prior's centre before "
                             "generating (BigGAN's truncation trick; 1: none)")
    parser.add_argument("--label_strength", type=LABEL_STRENGTH, default=1.0, metavar="S",
                        help="ask for each label S times as far from the blend of every "
                             "label as its one-hot (generation's --label_strength; 1: the "
                             "one-hot as trained)")
    parser.add_argument("--classifiers", type=int_in_range(1, 100), default=3, metavar="K",
                        help="judge every run by the same K classifiers, each fitted to and "
                             "scored on its own random real windows (drawn with seeds "
                             "0..K-1), and give their mean")
    parser.add_argument("--train_flags", default="", metavar="FLAGS",
                        help="more flags of train_progressive.py for every seed, in one "
                             "quoted string (e.g. \"--label_critic auxiliary\"); give each "
                             "set of flags its own --keep DIR")
    parser.add_argument("--spectral_shape", action="store_true",
                        help="the classifier reads each window's spectral shape, not its level "
                             "(log-mel means less their mean over the bands): loudness is "
                             "judged by the RMS ratio beside it")
    parser.add_argument("--real_only", type=int_in_range(1, rules.MAX_BLOCKS), nargs="+",
                        metavar="STAGE", default=None,
                        help="train nothing: the classifier's accuracy on real held-out "
                             "windows at these stages, what a generator there can hope for, "
                             "and how loud they are")
    parser.add_argument("--json", action="store_true", help="also print the runs as JSON")
    args = parser.parse_args(argv)
    stop_on_signals()  # SIGTERM as Ctrl+C: the seed in training saves before the bench stops
    for folder in args.folders:
        if not os.path.isdir(os.path.expanduser(folder)):
            raise UserError(f"{folder} is not a folder: give two folders of music")
    if any(step >= args.steps for step in args.average_with):
        raise UserError(f"--average_with takes checkpoints before --steps {args.steps}: give "
                        f"earlier steps")
    if args.keep is not None and os.path.exists(args.keep) and not os.path.isdir(args.keep):
        raise UserError(f"--keep {args.keep} is a file: give a folder for the runs")
    if args.grow_steps and args.grow_steps >= args.steps:
        raise UserError(f"--grow_steps {args.grow_steps} trains the stage itself that long "
                        f"too: give --steps above it")
    root = args.keep or tempfile.mkdtemp(prefix="bench_conditioning_")
    try:
        data = library(args.folders, root)
        if args.real_only:
            print_real_only(data, root, args)
            return 0
        for seed, step in itertools.product(args.seeds, args.average_with):
            # before training: the bench saves a run's checkpoint only where it stops
            path = checkpoints.checkpoint_path(stage_folder(root, seed, args), step)
            if not checkpoints.checkpoint_exists(path):
                raise UserError(f"--average_with {step}: {path} is not there (a run keeps "
                                f"its last three checkpoints): give steps of the --keep "
                                f"DIR's runs that it kept")
        trained = [train(data, root, seed, args) for seed in args.seeds]
        music = labelled_music(data, root)  # decoded once for every seed, after training
        runs = [score(directory, music, seed, args)
                for directory, seed in zip(trained, args.seeds)]
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print_report(runs, args)
    if args.json:
        print(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
