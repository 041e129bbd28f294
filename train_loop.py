"""Training a stage: the loop, with its signals, console progress, TensorBoard summaries,
checkpoints (report §7.6, appendix B) and the watch over it (watch.py).

set_up builds everything a stage's training needs and walks the restore chain; loop trains
until --max_steps or a signal, checkpointing every --save_every_secs, writing summaries
every --summary_every_secs and evaluating every --eval_every_secs, with the watchdog ready
to roll back to the best checkpoint. Under --distribution multi_worker only the chief writes
checkpoints, summaries and progress; every worker restores the same checkpoint (a folder all
of them see).
"""

import dataclasses
import hashlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np

import checkpoints
import conv_forms
import longform
import moving_average
import rules
from dataloader import (
    folder_labels,
    label_parts,
    label_shares,
    load,
    make_dataset,
    split_files,
    stage_windows,
    subset_of_parts,
    summary,
)
from distribute import distribute, make_strategy
from private_apis import write_audio_summary
from rules import default_batch_size, window_length
from runs import Run, build_run
from utils import UserError

SUMMARY_CLIPS = 3
# The moving average restarts from the raw weights where they score better by more than
# this share (closer readings of two generators on the same latents are the same sound).
RESTART_MARGIN = 0.01
# The VAE-GAN's aggregate posterior is fitted to this many training windows, at most this
# many samples in all (fewer at stages 6-8), at every save and evaluation.
POSTERIOR_WINDOWS, POSTERIOR_SAMPLES = 1024, 1 << 23
ROLLBACK_SEED_STRIDE = 7919  # a rollback's seed: --seed + this x the rollback's number


class StopSignal:
    """SIGINT/SIGTERM ask the loop to save and stop; a second one acts at once. `received`,
    of the class, names the last one any loop of this process took, so that a caller that
    trains in-process (the benches) can stop as well."""
    received = None

    def __enter__(self):
        self.requested = None
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT,
                                                                     signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        self.requested = StopSignal.received = signal.Signals(signum).name
        print(f"{self.requested}: saving a checkpoint after this iteration, then stopping "
              f"(send it again to abort without saving)", flush=True)
        signal.signal(signum, self.previous[signum])

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


class Every:
    """True once every `seconds` (and at the first call if `now`)."""

    def __init__(self, seconds, now=True):
        self.seconds, self.last = seconds, None if now else time.monotonic()

    def due(self):
        current = time.monotonic()
        if self.last is not None and current - self.last < self.seconds:
            return False
        self.last = current
        return True


class Progress:
    """Console line with step, losses and steps/s, at most every `every` seconds."""

    def __init__(self, step, every):
        self.every, self.last_step, self.last_time = Every(every), step, time.monotonic()

    def update(self, step, out):
        if not self.every.due():
            return
        now = time.monotonic()
        rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        extra = "".join(f"  {tag.split('/')[-1]} {float(value):+.5f}"
                        for tag, value in out.get("scalars", {}).items())
        print(f"step {step:>8}  D_loss {float(out['d_loss']):+.5f}  G_loss "
              f"{float(out['g_loss']):+.5f}{extra}  {rate:.3f} steps/s", flush=True)
        self.last_step, self.last_time = step, now


def write_summaries(tf, writer, step, out, fake, sampling_rate):
    """The report's TensorBoard tags (§7.6): audio, RMS, losses and critic outputs."""
    real = out["real"]
    real_rms = tf.sqrt(tf.reduce_mean(tf.square(real), axis=[1, 2]))
    fake_rms = tf.sqrt(tf.reduce_mean(tf.square(fake), axis=[1, 2]))
    with writer.as_default(step=step):
        for name, clips in (("real_input", real), ("generator_output", fake)):
            write_audio_summary(name, tf.cast(clips[:SUMMARY_CLIPS], tf.float32), sampling_rate,
                                step)
        tf.summary.scalar("real_input_rms", tf.reduce_mean(real_rms))
        tf.summary.scalar("G_output_rms", tf.reduce_mean(fake_rms))
        tf.summary.histogram("real_input_rms_batch", real_rms)
        tf.summary.histogram("G_output_rms_batch", fake_rms)
        tf.summary.scalar("Loss/Generator_loss", out["g_loss"])
        tf.summary.scalar("Loss/Discriminator_loss", out["d_loss"])
        tf.summary.scalar("Output/real_output", out["real_output"])
        tf.summary.scalar("Output/fake_output", out["fake_output"])
        tf.summary.scalar("Output/mixed_output", out["mixed_output"])
        for tag, value in out.get("scalars", {}).items():  # a trainer's own, by tag
            tf.summary.scalar(tag, value)
    writer.flush()


def write_image_summaries(tf, writer, step, real, fake, sampling_rate):
    """pictures.py's pictures of the real batch against the generated summary batch, as the
    TensorBoard images evaluation/waveforms, /zoom, /spectrograms and /loudness. Drawn only
    at summary time."""
    import pictures

    real, fake = (np.nan_to_num(tf.cast(x, tf.float32).numpy(), posinf=1.0, neginf=-1.0)
                  for x in (real, fake))
    images = pictures.render_plots(real, fake, sampling_rate)
    with writer.as_default(step=step):
        for name, png in images.items():
            tf.summary.image("evaluation/" + os.path.splitext(name)[0],
                             tf.io.decode_png(png, channels=3)[None], max_outputs=1)
    writer.flush()


def weights_fingerprint(networks):
    """First 12 hex digits of a SHA-256 of every weight: equal on workers that agree."""
    digest = hashlib.sha256()
    for network in networks.values():
        for variable in network.weights:
            digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
    return digest.hexdigest()[:12]


@dataclass
class Stage:
    """A stage's training, set up: the run, its data and where it writes."""
    config: object           # config.RunConfig: the flags
    recipe: object
    run: Run
    audio: object
    config_json: dict        # what the networks are made of (config.json)
    strategy: object
    batch_size: int
    policy: str
    directory: str
    loss_scale: float = None  # float16's fixed loss scale, or None
    saver: object = None     # checkpoints.Saver: the rotation and best/
    lock: object = None      # checkpoints.FolderLock of the stage folder (the chief's)
    writer: object = None    # TensorBoard writer (the chief's), or None
    summary_latents: object = None
    iterator: object = None
    curve: object = None     # watch.QualityCurve, on the chief with --eval_every_secs
    watchdog: object = None  # watch.Watchdog
    evaluated_step: int = -1  # the step of the last evaluation
    rollbacks: int = 0
    induced: bool = False    # --induce_collapse_at_step has acted
    end: object = None       # grow.End of a grown stage: its plateau and budget, or None
    posterior_windows: object = None  # training windows the VAE-GAN's posterior is fitted to
    validation: object = None  # the held-out AudioData (--validation_fraction), or None
    parts: list = None       # each label's training AudioData (--condition folders), or None
    validation_parts: list = None  # each label's held-out AudioData, or None
    validation_batches: object = None  # an iterator of its batches, for the ADA heuristic
    stopped: str = ""        # why the loop stopped: user, max_steps, plateau, budget, ...
    ada_heuristic: float = 0.0  # the last r_v of --critic_augment ada
    ada_scores: list = dataclasses.field(default_factory=list)  # its critic scores since

    @property
    def chief(self):
        return self.strategy.extended.should_checkpoint

    @property
    def step(self):
        return int(self.run.step)

    @property
    def best(self):
        """checkpoints.Best, where evaluations keep one."""
        return self.saver.best

    def say(self, *args, **kwargs):
        if self.chief and args and args[0] is not None:
            print(*args, **kwargs, flush=True)

    def close(self):
        """Release the stage folder for another run."""
        if self.lock is not None:
            self.lock.release()

    def fit_posterior(self):
        """The VAE-GAN's aggregate posterior, fitted to the encoder as it is now, in batches
        of the stage's default size (inference: a small training batch would make it many
        more calls)."""
        if self.run.posterior is not None:
            self.run.fit_posterior(self.posterior_windows,
                                   default_batch_size(self.config_json["num_blocks"]))

    def save(self):
        if self.chief:
            self.fit_posterior()
            path = self.saver.save(self.step)
            self.say(f"saved checkpoint {path}")
        return self.step

    def feed(self, seed):
        """Batches in the order of seed, split across the replicas."""
        dataset = make_dataset(self.audio, self.config_json["num_blocks"], self.batch_size,
                               self.config.data.augmentation_level, seed, self.parts,
                               self.config.data.label_balance)
        self.iterator = distribute(dataset, self.strategy)

    def scalar(self, tag, value):
        import tensorflow as tf
        with self.writer.as_default(step=self.step):
            tf.summary.scalar(tag, value)
        self.writer.flush()


def open_stage(config, recipe):
    """A stage's data and strategy: its Stage, to build."""
    from precision import precision

    train = config.train
    audio = load(config.data, config.checkpoint_dir)  # bad data fails before TensorFlow's ops
    names, parts, validation, held = (), None, None, None
    if config.model.condition == "folders":  # each label's files apart
        names, file_labels = folder_labels(audio, config.model.condition_depth)
        parts = label_parts(audio, file_labels, len(names))
    if config.data.validation_fraction is not None:
        fraction = config.data.validation_fraction
        if parts is None:
            audio, validation = split_files(audio, fraction)
        else:  # files held out of every label
            parts, held = map(list, zip(*(split_files(part, fraction, f"the label {name}")
                                          for part, name in zip(parts, names))))
            audio, validation = subset_of_parts(audio, parts), subset_of_parts(audio, held)
    config_json = recipe.make_config(config.model, config.data.sampling_rate, audio.channels,
                                     labels=names)
    batch_size = train.batch_size or default_batch_size(config_json["num_blocks"])
    strategy = make_strategy(train.distribution)  # before any op: multi_worker needs that
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UserError(f"--batch_size {batch_size} does not divide among the {replicas} "
                        f"replicas of --distribution {train.distribution}: use a multiple of "
                        f"{replicas}")
    policy, loss_scale = precision(train.use_mixed_precision_training)
    return Stage(config, recipe, None, audio, config_json, strategy, batch_size, policy, "",
                 loss_scale=loss_scale, validation=validation, parts=parts,
                 validation_parts=held)


def build(stage):
    """The run and the restore chain of an opened stage, and its folder taken for this run
    (FolderLock); False when --max_steps is already reached."""
    config, recipe, config_json = stage.config, stage.recipe, stage.config_json
    train, audio, batch_size, policy = config.train, stage.audio, stage.batch_size, stage.policy
    strategy = stage.strategy
    replicas = strategy.num_replicas_in_sync
    stage.say(summary(audio))
    if stage.validation is not None:
        stage.say(f"validation: {summary(stage.validation)}")
        stage.validation_batches = iter(make_dataset(
            stage.validation, config_json["num_blocks"], batch_size, 0, config.seed,
            stage.validation_parts, config.data.label_balance))
    stage.feed(config.seed)  # a stage with too little audio is refused here
    if train.use_mixed_precision_training and policy == "float32":
        stage.say("mixed precision: no GPU and no bfloat16 support in this CPU, training in "
                  "float32")
    watch = config.watch
    average = moving_average.rule(watch.ema_decay, watch.ema_half_life, watch.ema_rampup,
                                  batch_size)
    shares = None
    if stage.parts is not None:
        shares = label_shares([stage_windows(part, config_json["num_blocks"])
                               for part in stage.parts], config.data.label_balance)
        stage.say("labels: " + ", ".join(
            f"{name} ({part.seconds / 60:.1f} min, {100 * share:.0f} % of the batches)"
            for name, part, share in zip(config_json["labels"], stage.parts, shares)))
    stage.run = build_run(recipe, config_json, policy, stage.loss_scale, config.seed,
                          strategy, train.xla, average, train.graph,
                          augment=train.critic_augment == "ada", label_shares=shares,
                          learning_rate=train.learning_rate, label_weight=train.label_weight)
    stage.say(conv_forms.choose(stage.run.networks.values(), batch_size // replicas, policy,
                                train.conv_forms, train.conv_forms_cache or
                                conv_forms.default_cache(config.checkpoint_dir)))
    stage.directory, how = checkpoints.start_stage(
        stage.run, recipe.checkpoint_root(config.checkpoint_dir, config.model),
        config_json["num_blocks"], config_json.get("frozen", False), config_json,
        recipe.growing, train.init_from)
    stage.say(how)
    if stage.chief:  # one run a folder: a second stops here in one line, before any write
        stage.lock = checkpoints.FolderLock(stage.directory)
        stage.say(stage.lock.acquire())
        checkpoints.write_config(stage.directory, config_json)
    if train.max_steps is not None and stage.step >= train.max_steps:
        stage.say(f"step {stage.step} already reaches --max_steps {train.max_steps}: nothing "
                  f"to do")
        return False
    return True


def set_up(config, recipe):
    """The Stage of the configuration, ready to train, its start reported; None when there is
    nothing to do. Its folder is the run's until stage.close() (released here on failure)."""
    stage = open_stage(config, recipe)
    try:
        if not build(stage):
            stage.close()
            return None
        return watch_and_report(stage)
    except BaseException:
        stage.close()
        raise


def watch_and_report(stage):
    """The saver, writer, summary latents, quality curve and watchdog of a built stage, and
    its first line."""
    import tensorflow as tf

    config, recipe = stage.config, stage.recipe
    stage.saver = checkpoints.Saver(stage.run, stage.directory)
    if stage.saver.removed:
        stage.say(f"note: removed {', '.join(stage.saver.removed)} from {stage.directory}, "
                  f"left by saves that were stopped part-way")
    size = stage.saver.size
    free = shutil.disk_usage(stage.directory).free if stage.chief else size
    if free < size:
        stage.say(f"warning: {free / 1e6:.0f} MB free in {stage.directory} but a checkpoint "
                  f"takes {size / 1e6:.0f} MB: free space, or the first save will stop "
                  f"training")
    if stage.chief and stage.run.posterior is not None:
        import evaluate
        starts, window = evaluate.full_window_starts(stage.audio,
                                                     stage.config_json["num_blocks"])
        count = max(16, min(POSTERIOR_WINDOWS, POSTERIOR_SAMPLES // window))
        stage.posterior_windows = evaluate.sample_windows(
            stage.audio, starts, window, count, np.random.default_rng(config.seed + 3))
    if stage.chief:
        stage.writer = tf.summary.create_file_writer(stage.directory)
        # Fixed latents for the generator_output summary: the same sounds over time.
        stage.summary_latents = longform.with_labels(
            longform.draw_latents(config.seed + 1, stage.batch_size, recipe.prior),
            len(stage.config_json.get("labels", [])))
        watch_over(stage)
    made_of, replicas = stage.config_json, stage.strategy.num_replicas_in_sync
    train = config.train
    what = (f"stage {made_of['num_blocks']}{' (frozen)' if made_of.get('frozen') else ''}"
            if recipe.growing else recipe.model)
    where = (f", {replicas} replicas of {train.distribution}" if train.distribution != "none"
             else "") + (", XLA" if train.xla else "")
    stage.say(f"training {what}: windows of {window_length(made_of['num_blocks'])} samples, "
              f"batch {stage.batch_size}, {stage.audio.seconds:.1f} s of audio, "
              f"{stage.policy}{where}; TensorBoard: tensorboard --logdir {stage.directory}")
    return stage


def watch_over(stage):
    """The chief's quality curve, best checkpoint and watchdog (--eval_every_secs 0: only
    the watchdog over the summaries)."""
    import evaluate
    import watch

    options = stage.config.watch
    stage.watchdog = watch.Watchdog(options.collapse_rms_ratio, options.collapse_full_scale,
                                    options.collapse_frechet_factor, options.collapse_patience)
    if not options.eval_every_secs:
        return
    num_blocks = stage.config_json["num_blocks"]
    count = options.num_eval_samples or evaluate.default_eval_count(window_length(num_blocks))
    stage.curve = watch.QualityCurve(stage.audio, num_blocks, count, stage.config.seed,
                                     stage.recipe.prior, stage.validation,
                                     stage.config_json.get("labels", ()),
                                     stage.validation_parts or stage.parts)
    stage.saver.keep_best()
    refs = stage.curve.references
    best = (f"; the best so far: step {stage.best.record['step']}, score {stage.best.score:.4g}"
            if stage.best.record else "")
    stage.say(f"evaluations every {options.eval_every_secs:g} s on {len(stage.curve.real)} "
              f"windows: Frechet mel distance of real music "
              f"{refs['real']['frechet_mel_distance']:.4g}, of noise at its loudness "
              f"{refs['noise']['frechet_mel_distance']:.4g}{best}")


def write_all_summaries(stage, out):
    """The summaries, the generator's output from the moving average; returns the real batch
    and the raw generator's summary batch for the watchdog."""
    import tensorflow as tf

    rate, latents = stage.audio.sampling_rate, stage.summary_latents
    fake = stage.run.sound_generator(latents)
    write_summaries(tf, stage.writer, stage.step, out, fake, rate)
    write_image_summaries(tf, stage.writer, stage.step, out["real"], fake, rate)
    raw = fake if stage.run.average is None else stage.run.networks["generator"](latents)
    return tf.cast(out["real"], tf.float32).numpy(), np.asarray(raw)


def check_summary(stage, real, raw):
    """The watchdog's look at the raw generator's summary batch: silence or full scale."""
    import metrics

    rms = [float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) for x in (real, raw)]
    symptom = stage.watchdog.symptom(*rms, metrics.full_scale_fraction(raw))
    return stage.watchdog.observe("summary", symptom)


def evaluate_now(stage):
    """One point of the quality curve: TensorBoard, the console, best/; returns the collapse
    it completes, or None."""
    import tensorflow as tf

    import metrics
    import pictures
    import watch

    stage.evaluated_step = stage.step
    measured, generated = stage.curve.measure(stage.run.sound_generator)
    restarted = restart_average(stage, measured)
    if restarted:
        measured, generated, average_score = restarted
    with stage.writer.as_default(step=stage.step):
        for key, tag in {**metrics.tags(), **watch.TAGS}.items():
            if measured.get(key) is not None:
                tf.summary.scalar(tag, measured[key])
        if stage.run.average is not None:
            tf.summary.scalar("Eval/average_restarted", float(bool(restarted)))
        for key in (key for key in measured if key.startswith("label.")):
            tf.summary.scalar("Label/" + key[len("label."):], measured[key])
        done = metrics.progress(measured["frechet_mel_distance"], stage.curve.references)
        if done is not None:
            tf.summary.scalar("Eval/progress_from_noise", done)
        png = pictures.render_plots(stage.curve.real, generated, stage.audio.sampling_rate,
                                    names=["spectrograms.png"])["spectrograms.png"]
        tf.summary.image("Eval/spectrograms", tf.io.decode_png(png, channels=3)[None])
    stage.writer.flush()
    best_distance = stage.best.record["frechet_mel_distance"] if stage.best.record else None
    symptom = stage.watchdog.symptom(measured["loudness.real_rms"], None,  # the summaries'
                                     measured["loudness.full_scale_fraction"],
                                     measured["frechet_mel_distance"], best_distance)
    if symptom is None:
        stage.fit_posterior()  # best/ keeps the posterior of its weights
    kept = symptom is None and stage.best.offer(stage.step, measured, stage.saver.size)
    stage.say(stage.curve.line(stage.step, measured)
              + (f"; the average restarts from the raw weights, which score "
                 f"{rules.quality_score(measured):.4g} against its "
                 f"{average_score:.4g}" if restarted else "")
              + ("; kept as the best" if kept else ""))
    if stage.end is not None:
        stage.end.evaluated(stage, measured)
    return stage.watchdog.observe("evaluation", symptom)


def restart_average(stage, averaged):
    """Measure the raw weights too; where they score better than the moving average (its
    metrics `averaged`), the average starts again from them: (their metrics, their windows,
    the average's score), else None (also without an average, or within RESTART_MARGIN of
    it: the same sound). On real music every average of a 300-step run was quieter and
    farther from the music than the raw weights (BENCHMARKS.md, "The moving average of a
    short run"): an average plays only once it measures better. Not for a conditional
    model: the score cannot hear the label, and the raw weights of one recovered it far less
    often than their average (BENCHMARKS.md, "Conditioning")."""
    if stage.run.average is None or stage.config_json.get("labels"):
        return None
    raw_measured, raw_generated = stage.curve.measure(stage.run.networks["generator"])
    mine, theirs = (rules.quality_score(m) for m in (averaged, raw_measured))
    if theirs is None or (mine is not None and mine <= theirs * (1 + RESTART_MARGIN)):
        return None
    stage.run.average.copy()
    return raw_measured, raw_generated, mine


def induce_collapse(stage):
    """Test-only (--induce_collapse_at_step): zero the generator's output layer, once."""
    if stage.config.watch.induce_collapse_at_step == stage.step and not stage.induced:
        stage.induced = True
        output = list(stage.run.networks["generator"].named_layers().values())[-1]
        for weight in output.weights:
            weight.assign(np.zeros(weight.shape, np.float32))


def on_collapse(stage, symptom):
    """--on_collapse: roll back to best/, stop (exit code 3) or warn; returns an exit code
    to stop with, or None to go on."""
    options = stage.config.watch
    stage.say(f"collapse at step {stage.step}: {symptom}")
    stage.scalar("Watchdog/collapse", 1.0)
    if options.on_collapse == "warn" or stage.config.train.distribution == "multi_worker":
        stage.say("training goes on (--on_collapse warn; under multi_worker the chief alone "
                  "watches and only warns)")
        return None
    best = stage.best.path if stage.best else None
    if options.on_collapse == "rollback" and not best:
        stage.say("no best checkpoint to roll back to yet (it is kept by evaluations): "
                  "training goes on")
        return None
    if options.on_collapse == "rollback" and stage.rollbacks < options.max_rollbacks:
        roll_back(stage, best)
        return None
    why = ("--on_collapse stop" if options.on_collapse == "stop" else
           f"{stage.rollbacks} rollbacks already (--max_rollbacks {options.max_rollbacks})")
    stage.save()
    print(f"error: training collapsed at step {stage.step} ({symptom}) and stopped: {why}; the "
          f"best checkpoint is {best}", file=sys.stderr, flush=True)
    return 3


def roll_back(stage, best):
    """Restore best/, re-draw data order and latents from a new seed, scale the learning
    rates."""
    options = stage.config.watch
    notes = checkpoints.resume(stage.run, best)
    stage.rollbacks += 1
    seed = stage.config.seed + ROLLBACK_SEED_STRIDE * stage.rollbacks
    stage.run.rng.reset_from_seed(seed)
    stage.feed(seed)
    for optimizer in stage.run.optimizers.values():
        optimizer.learning_rate.assign(optimizer.learning_rate * options.rollback_lr_factor)
    stage.saver.reread()  # the steps after best's are trained and saved again
    rate = float(stage.run.optimizers["generator_optimizer"].learning_rate)
    stage.say(f"rolled back to {best} (step {stage.step}), new seed {seed} for data order "
              f"and latents, learning rate {rate:.3g} (rollback {stage.rollbacks} of "
              f"{options.max_rollbacks})" + "".join(f"; {note}" for note in notes))
    stage.scalar("Watchdog/rollback", float(stage.rollbacks))


def watch_step(stage, out, summaries, evaluations):
    """The chief's periodic work after an iteration: summaries, evaluations and the
    watchdog; returns an exit code to stop with, or None."""
    induce_collapse(stage)
    if not stage.chief:
        return None
    symptom = None
    if summaries.due():
        symptom = check_summary(stage, *write_all_summaries(stage, out))
    if stage.curve is not None and evaluations.due() and symptom is None:
        symptom = evaluate_now(stage)
    return on_collapse(stage, symptom) if symptom else None


def why_stop(stage, stop):
    """Why training stops now, or None: a signal ("user"), --max_steps, or what a grown
    stage's end (stage.end) says ("plateau", "budget")."""
    max_steps = stage.config.train.max_steps
    if stop.requested:
        return "user"
    if max_steps is not None and stage.step >= max_steps:
        return "max_steps"
    return stage.end.reason(stage) if stage.end is not None else None


def adapt_augmentation(stage, out):
    """--critic_augment ada: every ADJUST_EVERY iterations, move p towards --ada_target of
    the overfitting heuristic r_v = (E[D(train)] - E[D(validation)]) / (E[D(train)] -
    E[D(generated)]), from this iteration's scores and a held-out batch's; p and r_v go to
    the console line and TensorBoard (ADA/p, ADA/r_v)."""
    import augment

    gan = stage.run.iteration
    if gan.augment is None:
        return
    stage.ada_scores.append((float(out["real_output"]), float(out["fake_output"])))
    if stage.step % augment.ADJUST_EVERY == 0:
        train, fake = np.mean(stage.ada_scores, axis=0)  # over the iterations since the last
        held = float(gan.validation_score(next(stage.validation_batches)))
        stage.ada_heuristic = augment.heuristic(train, held, fake)
        stage.ada_scores = []
        gan.augment.p.assign(augment.adjusted(float(gan.augment.p), stage.ada_heuristic,
                                              stage.config.train.ada_target,
                                              stage.batch_size))
    out["scalars"] = {**out["scalars"], "ADA/p": gan.augment.p.numpy(),
                      "ADA/r_v": stage.ada_heuristic}


def stop_on_damaged_data(stage, error):
    """A damaged decode-cache entry met by the data pipeline (audio_cache.Damaged, which
    tf.data wraps in its own error): save, say it in one line, exit code 2. Anything else
    is raised again."""
    import re

    found = re.search(r"the decode cache entry .*? decoded again", str(error))
    if not found:
        raise error
    stage.save()
    stage.stopped = "damaged data"
    print(f"error: {found.group(0)}; training resumes at step {stage.step}", file=sys.stderr,
          flush=True)
    return 2


def loop(stage):
    """Train until why_stop says, saving on the way; returns the exit code, and says why it
    stopped in stage.stopped."""
    import tensorflow as tf

    train = stage.config.train
    progress = Progress(stage.step, train.log_every_secs)
    summaries, saves = Every(train.summary_every_secs), Every(train.save_every_secs, now=False)
    evaluations = Every(stage.config.watch.eval_every_secs)
    saved_step = stage.step
    with StopSignal() as stop:
        while not (stopped := why_stop(stage, stop)):
            try:
                out = stage.run.iteration(stage.iterator)
            except tf.errors.OpError as error:  # the data pipeline's, wrapped by TensorFlow
                return stop_on_damaged_data(stage, error)
            if not bool(out["finite"]):  # all-reduced: every worker stops here
                print(f"error: non-finite loss or gradient at step {stage.step} (D_loss "
                      f"{float(out['d_loss'])}, G_loss {float(out['g_loss'])}): stopped "
                      f"without saving; the last good checkpoint is "
                      f"{stage.saver.latest}", file=sys.stderr, flush=True)
                stage.stopped = "non-finite"
                return 1
            adapt_augmentation(stage, out)
            if stage.chief:
                progress.update(stage.step, out)
            code = watch_step(stage, out, summaries, evaluations)
            if code is not None:
                stage.stopped = "collapse"
                return code
            if saves.due():
                saved_step = stage.save()
        stage.stopped = stopped
        if stopped in ("max_steps", "budget") and stage.chief and stage.curve is not None \
                and stage.evaluated_step != stage.step:
            # The run's last weights get their point on the curve, a chance at best/, and
            # the average its chance to restart from them (a signal stops at once instead).
            code = on_collapse(stage, symptom) if (symptom := evaluate_now(stage)) else None
            if code is not None:
                stage.stopped = "collapse"
                return code
        if stage.step != saved_step or stage.saver.latest is None:
            stage.save()
    if train.distribution == "multi_worker":
        resolver = stage.strategy.cluster_resolver
        print(f"{resolver.task_type} {resolver.task_id}: stopped at step {stage.step}, weights "
              f"{weights_fingerprint(stage.run.networks)}", flush=True)
    else:
        print(f"stopped at step {stage.step}", flush=True)
    return 0


def train(config, recipe):
    """Train a stage (config: config.RunConfig) until --max_steps or a signal; returns the
    exit code."""
    stage = set_up(config, recipe)
    if stage is None:
        return 0
    try:
        return loop(stage)
    finally:
        stage.close()
