"""Using a checkpoint: preview, generation, interpolation and evaluation (report §7.4 "preview",
appendix B; §8 for the loudness comparison that metrics.py automates).

Every job reads the chosen stage's latest checkpoint with the generator built from the
config.json beside it, and draws its latents with longform.draw_latents (NumPy), so that the
same seed gives the same latents in every job, and in a player without TensorFlow.
"""

import dataclasses
import os
import time

import numpy as np

import longform
from checkpoints import (
    BEST_FOLDER,
    find_checkpoint,
    latest_checkpoint,
    load_generator,
    read_config,
    restore_entries,
    saved_entries,
    stage_dir,
)
from dataloader import folder_labels, label_parts, load, summary
from rules import POSTERIOR, default_batch_size, window_length
from utils import UserError, write_wav

PREVIEW_SLICES = 5
PREVIEW_POLL_SECS = 1.0


def stage_folder(config, recipe):
    """The folder of the stage the flags name (the run's folder for WaveGAN)."""
    root = recipe.checkpoint_root(config.checkpoint_dir, config.model)
    if not recipe.growing:
        return root
    return stage_dir(root, config.model.num_blocks, config.model.freeze_early_layers)


def chosen_checkpoint(config, recipe):
    """(stage folder, checkpoint path) of the flags: --checkpoint of the stage. A path is read
    with the config.json of its own folder where it has one (another run's checkpoint); a
    path of another stage's folder is one line saying which stage it is and how to ask for
    it."""
    directory = stage_folder(config, recipe)
    pick = ("pick the stage with --num_blocks / --freeze_early_layers / --checkpoint_dir"
            if recipe.growing else "point --checkpoint_dir at a training run")
    path = find_checkpoint(directory, config.job.checkpoint, pick)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.basename(folder) == BEST_FOLDER:
        folder = os.path.dirname(folder)
    made = read_config(folder)
    asked = (config.model.num_blocks, config.model.freeze_early_layers)
    if recipe.growing and made and made.get("model") == recipe.model and \
            (made["num_blocks"], made.get("frozen", False)) != asked:
        frozen = made.get("frozen", False)
        raise UserError(f"--checkpoint {path} is a checkpoint of stage {made['num_blocks']}"
                        f"{' (frozen transition)' if frozen else ''}, not of the stage asked "
                        f"for: add --num_blocks {made['num_blocks']}"
                        f"{' --freeze_early_layers' if frozen else ''}")
    return (folder if made else directory), path


def job_generator(directory, recipe, path, job):
    """The generator a job plays from checkpoint path (checkpoints.load_generator), fed from
    the aggregate posterior with --prior posterior: (generator, config.json, step, which)."""
    generator, config_json, step, which = load_generator(directory, recipe, path,
                                                         job.raw_generator)
    if job.prior == "posterior":
        from model_vaegan import AggregatePosterior, WithPosterior

        posterior = AggregatePosterior()
        if POSTERIOR not in saved_entries(path):
            raise UserError(f"{path} has no aggregate posterior (saved by an earlier "
                            f"version): train on to the next save, or drop --prior posterior")
        restore_entries(path, {POSTERIOR: posterior})
        generator = WithPosterior(generator, posterior)
    return generator, config_json, step, which


def chosen_generator(config, recipe):
    """The generator of the chosen stage's checkpoint (--checkpoint, --raw_generator,
    --prior): (generator, config.json, step, stage folder, checkpoint path, which weights),
    with a line saying which."""
    directory, path = chosen_checkpoint(config, recipe)
    generator, config_json, step, which = job_generator(directory, recipe, path, config.job)
    if which == "generator" and not config.job.raw_generator:
        print(f"note: {path} has no moving-average generator (trained with --ema_decay 0 or "
              f"by an earlier version): using its trained weights")
    return generator, config_json, step, directory, path, which


def file_stem(directory, step):
    """How generated files are named: stage folder and step, e.g. stage_00005_step00001234."""
    return f"{os.path.basename(os.path.normpath(directory))}_step{step:08d}"


def generate(config, recipe):
    """--generate N: N WAV files from the latest checkpoint, of one window each or, with
    --duration, of windows along a latent walk joined by crossfades (longform.py); a
    conditional model's for each label asked for (--label), every label by default."""
    generator, made_of, step, directory, path, _ = chosen_generator(config, recipe)
    rate, num_blocks = made_of["sampling_rate"], made_of["num_blocks"]
    channels, labels = made_of["channels"], made_of.get("labels", [])
    stem = file_stem(directory, step)
    sets = longform.label_sets(generator, labels, config.job.label, stem, path,
                               config.job.label_strength)
    for playing, name in sets:
        files, samples = longform.write_files(
            playing, config.walk, config.job.generate, config.seed, recipe.prior,
            window_length(num_blocks), default_batch_size(num_blocks), rate, channels, name)
    of_labels = f", {len(sets)} label{'s' if len(sets) > 1 else ''}" if labels else ""
    print(f"wrote {files * len(sets)} files of {samples} samples ({samples / rate:.2f} s) x "
          f"{channels} channels to {config.walk.output_dir} (from {path}, seed "
          f"{config.seed}{of_labels})")
    return 0


def interpolate(config, recipe):
    """--interpolate A B: one file morphing over --steps windows from the latent of seed A
    (the first file `--generate --seed A` writes) to that of seed B, crossfaded."""
    generator, made_of, step, directory, path, _ = chosen_generator(config, recipe)
    name = file_stem(directory, step)
    rate, window = made_of["sampling_rate"], window_length(made_of["num_blocks"])
    first, last = config.job.interpolate
    a, b = (longform.draw_latents(seed, 1, recipe.prior)[0] for seed in (first, last))
    latents = longform.interpolate(a, b, np.linspace(0.0, 1.0, config.job.steps or 8),
                                   recipe.prior)
    labels = made_of.get("labels", [])
    strength = config.job.label_strength
    ends = longform.asked_labels(config.job.label, labels, path, strength)
    if labels:  # from the first label asked for to the last, the one-hot blended as the latent
        t = np.linspace(0.0, 1.0, len(latents))[:, None]
        one_hot = np.eye(len(labels))
        blend = longform.label_input((1 - t) * one_hot[ends[0]] + t * one_hot[ends[-1]],
                                     strength)
        latents = np.concatenate([latents, blend], axis=1)
        name = longform.label_stem(longform.label_stem(name, labels[ends[0]]) + "_to",
                                   labels[ends[-1]], strength)
    windows = longform.generate_windows(generator, latents.astype(np.float32),
                                        default_batch_size(made_of["num_blocks"]))
    overlap = longform.crossfade_samples(config.walk.crossfade, window, rate)
    audio = longform.join_windows(windows, overlap)
    out = write_wav(os.path.join(config.walk.output_dir,
                                 f"{name}_interpolate_{first}_to_{last}.wav"), audio, rate)
    print(f"wrote {out}: {len(windows)} windows, {len(audio) / rate:.2f} s (from {path})")
    return 0


def write_preview(writer, directory, recipe, path, latents, job):
    """<stage folder>/preview/<step>.wav: the slices, each followed by the recipe's gap of
    silence, and a `preview` audio summary."""
    import tensorflow as tf

    from private_apis import write_audio_summary

    generator, made_of, step, _ = job_generator(directory, recipe, path, job)
    slices = generator(longform.with_labels(latents, len(made_of.get("labels", [])))).numpy()
    gap = np.zeros((recipe.preview_gap(slices.shape[1]), slices.shape[2]), dtype=np.float32)
    audio = np.concatenate([part for s in slices for part in (s, gap)])
    out = write_wav(os.path.join(directory, "preview", f"{step:08d}.wav"), audio,
                    made_of["sampling_rate"])
    with writer.as_default(step=step):
        write_audio_summary("preview", tf.constant(slices), made_of["sampling_rate"], step)
    writer.flush()
    print(f"wrote {out}", flush=True)


def preview(config, recipe):
    """--preview: 5 fixed latents, one preview file per new checkpoint (§7.4, appendix B)."""
    import tensorflow as tf

    job = config.job
    directory = stage_folder(config, recipe)
    watched = os.path.join(directory, BEST_FOLDER) if job.checkpoint == "best" else directory
    one = job.once or job.checkpoint not in ("latest", "best")
    if one:
        chosen_checkpoint(config, recipe)
    latents = longform.draw_latents(config.seed, PREVIEW_SLICES, recipe.prior)
    folder = os.path.join(directory, "preview")
    done = None
    print(f"previewing new checkpoints of {watched} (Ctrl+C to stop)", flush=True)
    try:
        writer = tf.summary.create_file_writer(folder)
        while True:
            path = (latest_checkpoint(watched) if job.checkpoint in ("latest", "best")
                    else job.checkpoint)
            if path and path != done:
                write_preview(writer, directory, recipe, path, latents, job)
                done = path
                if one:
                    return 0
            time.sleep(PREVIEW_POLL_SECS)
    except KeyboardInterrupt:
        print("preview stopped")
        return 0
    except (OSError, tf.errors.OpError) as error:
        from private_apis import error_reason
        raise UserError(f"cannot write the preview to {folder} ({error_reason(error)}): make "
                        f"the checkpoint folder writable, or copy the stage folder somewhere "
                        f"you can write") from None


def evaluate_checkpoint(config, recipe):
    """--evaluate: M windows generated by the chosen stage's latest checkpoint against M random
    whole windows of --data_dir at that stage (a conditional model's: each label's against
    that label's folder, asked for at --label_strength), as the quality curve measures them;
    metrics.json and PNGs in <stage folder>/evaluation/<step>[_strength<S>]/, the table on
    stdout."""
    import evaluate
    import metrics
    import watch

    generator, made_of, step, directory, path, _ = chosen_generator(config, recipe)
    strength = config.job.label_strength
    longform.asked_labels(None, made_of.get("labels", []), path, strength)
    rate, num_blocks, data_dir = made_of["sampling_rate"], made_of["num_blocks"], \
        config.data.data_dir
    audio = load(dataclasses.replace(config.data, sampling_rate=rate),  # the checkpoint's
                 config.checkpoint_dir)
    if audio.channels != made_of["channels"]:
        raise UserError(f"{path} makes {made_of['channels']}-channel audio but {data_dir} "
                        f"holds {audio.channels}-channel audio: evaluate against the kind of "
                        f"data it was trained on")
    print(summary(audio))
    labels, parts = made_of.get("labels", []), None
    if labels:
        depth = labels[0].count("/") + 1  # the depth it was trained with: a/b is 2 deep
        found, file_labels = folder_labels(audio, depth)
        if found != labels:
            raise UserError(f"{data_dir} has the label folders {', '.join(found)} but {path} "
                            f"was trained on {', '.join(labels)}: evaluate against its music")
        parts = label_parts(audio, file_labels, len(labels))
    window = window_length(num_blocks)
    count = config.watch.num_eval_samples or evaluate.default_eval_count(window)
    curve = watch.QualityCurve(audio, num_blocks, count, config.seed, recipe.prior,
                               labels=labels, parts=parts, label_strength=strength)
    searched = (f"all {curve.whole}" if len(curve.training) == curve.whole
                else f"a random {len(curve.training)} of the {curve.whole}")
    print(f"evaluating {path} (step {step}): {len(curve.latents)} generated against "
          f"{len(curve.real)} real windows of {window} samples from {data_dir}; memorisation "
          f"check over {searched} whole windows; seed {config.seed}", flush=True)
    measured, generated = curve.measure(generator)
    if not curve.finite:
        raise UserError(f"the generator of {path} outputs NaN or infinite values: it diverged, "
                        f"evaluate or resume from an earlier checkpoint")
    measured.update({f"reference.{name}.{key}": ref[key]
                     for name, ref in curve.references.items()
                     for key in metrics.reference_keys()})
    print(metrics.format_table(measured, curve.references), flush=True)  # before any write
    for name in labels:
        print(f"label {name}: Frechet mel distance "
              f"{measured[f'label.{name}.frechet_mel_distance']:.4g}, RMS ratio "
              f"{measured[f'label.{name}.rms_ratio']:.3g}")
    folder = f"{step:08d}{longform.strength_suffix(strength)}"  # beside the one as trained
    paths = evaluate.write_evaluation(os.path.join(directory, "evaluation", folder),
                                      curve.real, generated, rate, measured,
                                      "make the checkpoint folder writable (the table above "
                                      "is the evaluation)")
    print("wrote " + ", ".join(paths))
    return 0
