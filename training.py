"""Training a stage: the loop, with its signals, console progress, TensorBoard summaries and
checkpoints (report §7.6, appendix B).

set_up builds everything a stage's training needs and walks the restore chain; loop trains
until --max_steps or a signal, checkpointing every --save_every_secs and writing summaries
every --summary_every_secs. Under --distribution multi_worker only the chief writes
checkpoints, summaries and progress; every worker restores the same checkpoint (a folder all
of them see).
"""

import hashlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np

from dataloader import load, make_dataset, summary
from distribute import distribute, make_strategy
from internals import error_reason, remove_partial_checkpoint, write_audio_summary
from recipe import Training, build_training
from rules import default_batch_size, window_length
from utils import UserError

KEEP_CHECKPOINTS = 3  # the original kept five; a stage-1 checkpoint is 335 MB
SUMMARY_CLIPS = 3


class StopSignal:
    """SIGINT/SIGTERM ask the loop to save and stop; a second one acts at once."""

    def __enter__(self):
        self.requested = None
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT,
                                                                     signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        self.requested = signal.Signals(signum).name
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
    """evaluate.py's pictures of the real batch against the generated summary batch, as the
    TensorBoard images evaluation/waveforms, /zoom, /spectrograms and /loudness. Drawn only
    at summary time."""
    import evaluate

    real, fake = (np.nan_to_num(tf.cast(x, tf.float32).numpy(), posinf=1.0, neginf=-1.0)
                  for x in (real, fake))
    images = evaluate.render_plots(real, fake, sampling_rate)
    with writer.as_default(step=step):
        for name, png in images.items():
            tf.summary.image("evaluation/" + os.path.splitext(name)[0],
                             tf.io.decode_png(png, channels=3)[None], max_outputs=1)
    writer.flush()


def checkpoint_bytes(run):
    """Bytes one checkpoint takes: every network weight and optimiser variable (Adam's two
    slots per trainable weight)."""
    import tensorflow as tf

    variables = [v for network in run.networks.values() for v in network.weights]
    variables += [v for optimizer in run.optimizers.values() for v in optimizer.variables]
    return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in variables)


def save_checkpoint(manager, step, size):
    """manager.save, where a failed write (a full disk, a file-size limit) becomes one line.
    TensorFlow writes a new checkpoint aside and renames it only when complete, so the earlier
    checkpoints are whole; the partial one is removed."""
    import tensorflow as tf

    try:
        return manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as error:
        remove_partial_checkpoint(manager.directory, step)
        latest = manager.latest_checkpoint
        resume = f"it resumes from {latest}" if latest else "it starts afresh"
        raise UserError(f"cannot save checkpoint {step} in {manager.directory} "
                        f"({error_reason(error)}; a checkpoint takes {size / 1e6:.0f} MB): "
                        f"free space there and run the same command again: {resume}") from None


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
    args: object
    recipe: object
    run: Training
    audio: object
    config: dict
    strategy: object
    directory: str
    manager: object        # tf.train.CheckpointManager
    checkpoint_size: int
    writer: object         # TensorBoard writer (the chief's), or None
    summary_latents: object
    iterator: object

    @property
    def chief(self):
        return self.strategy.extended.should_checkpoint

    def say(self, *args, **kwargs):
        if self.chief:
            print(*args, **kwargs, flush=True)

    def save(self):
        if self.chief:
            path = save_checkpoint(self.manager, int(self.run.step), self.checkpoint_size)
            self.say(f"saved checkpoint {path}")
        return int(self.run.step)


def build(args, recipe):
    """Data, strategy, run and restore chain of a stage; returns (Stage fields, batch size,
    dtype policy) or None when --max_steps is already reached."""
    import tensorflow as tf

    from stages import start_stage, write_config
    from wgan_gp import precision

    audio = load(args, args.data_dir)  # bad data fails before TensorFlow's ops
    config = recipe.config(args, audio.channels)
    batch_size = args.batch_size or default_batch_size(config["num_blocks"])
    strategy = make_strategy(args.distribution)  # before any op: multi_worker needs that
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UserError(f"--batch_size {batch_size} does not divide among the {replicas} "
                        f"replicas of --distribution {args.distribution}: use a multiple of "
                        f"{replicas}")
    chief = strategy.extended.should_checkpoint
    if chief:
        print(summary(audio), flush=True)
    dataset = make_dataset(audio, config["num_blocks"], batch_size, args.augmentation_level,
                           args.seed)
    policy, loss_scale = precision(args.use_mixed_precision_training)
    if args.use_mixed_precision_training and policy == "float32" and chief:
        print("mixed precision: no GPU and no bfloat16 support in this CPU, training in float32")
    run = build_training(recipe, config, policy, loss_scale, args.seed, strategy, args.xla)
    directory, how = start_stage(run, recipe.checkpoint_root(args), config["num_blocks"],
                                 config.get("frozen", False), config, recipe.growing)
    if chief:
        print(how, flush=True)
        write_config(directory, config)
    if args.max_steps is not None and int(run.step) >= args.max_steps:
        if chief:
            print(f"step {int(run.step)} already reaches --max_steps {args.max_steps}: "
                  f"nothing to do")
        return None
    manager = tf.train.CheckpointManager(run.checkpoint, directory,
                                         max_to_keep=KEEP_CHECKPOINTS)
    writer = tf.summary.create_file_writer(directory) if chief else None
    return (Stage(args, recipe, run, audio, config, strategy, directory, manager,
                  checkpoint_bytes(run), writer, summary_latents(args, recipe, batch_size),
                  distribute(dataset, strategy)), batch_size, policy)


def summary_latents(args, recipe, batch_size):
    """Fixed latents for the generator_output summary: the same sounds over time, drawn apart
    from the training random stream, so that it does not depend on when summaries happen."""
    import longform
    return longform.draw_latents(args.seed + 1, batch_size, recipe.prior)


def set_up(args, recipe):
    """The Stage of args, its start reported; None when there is nothing to do."""
    built = build(args, recipe)
    if built is None:
        return None
    stage, batch_size, policy = built
    free = shutil.disk_usage(stage.directory).free if stage.chief else stage.checkpoint_size
    if free < stage.checkpoint_size:
        stage.say(f"warning: {free / 1e6:.0f} MB free in {stage.directory} but a checkpoint "
                  f"takes {stage.checkpoint_size / 1e6:.0f} MB: free space, or the first save "
                  f"will stop training")
    config, replicas = stage.config, stage.strategy.num_replicas_in_sync
    what = (f"stage {config['num_blocks']}{' (frozen)' if config.get('frozen') else ''}"
            if recipe.growing else recipe.model)
    where = (f", {replicas} replicas of {args.distribution}" if args.distribution != "none"
             else "") + (", XLA" if args.xla else "")
    stage.say(f"training {what}: windows of {window_length(config['num_blocks'])} samples, "
              f"batch {batch_size}, {stage.audio.seconds:.1f} s of audio, {policy}{where}; "
              f"TensorBoard: tensorboard --logdir {stage.directory}")
    return stage


def write_all_summaries(stage, out):
    import tensorflow as tf

    step, rate = int(stage.run.step), stage.audio.sampling_rate
    fake = stage.run.networks["generator"](stage.summary_latents)
    write_summaries(tf, stage.writer, step, out, fake, rate)
    write_image_summaries(tf, stage.writer, step, out["real"], fake, rate)


def loop(stage):
    """Train until --max_steps or a signal, saving on the way; returns the exit code."""
    args, step = stage.args, stage.run.step
    progress = Progress(int(step), args.log_every_secs)
    summaries, saves = Every(args.summary_every_secs), Every(args.save_every_secs, now=False)
    saved_step = int(step)
    with StopSignal() as stop:
        while not stop.requested and (args.max_steps is None or int(step) < args.max_steps):
            out = stage.run.iteration(stage.iterator)
            if not bool(out["finite"]):  # all-reduced: every worker stops here
                print(f"error: non-finite loss or gradient at step {int(step)} (D_loss "
                      f"{float(out['d_loss'])}, G_loss {float(out['g_loss'])}): stopped "
                      f"without saving; the last good checkpoint is "
                      f"{stage.manager.latest_checkpoint}", file=sys.stderr, flush=True)
                return 1
            if stage.chief:
                progress.update(int(step), out)
                if summaries.due():
                    write_all_summaries(stage, out)
            if saves.due():
                saved_step = stage.save()
        if int(step) != saved_step or stage.manager.latest_checkpoint is None:
            stage.save()
    if args.distribution == "multi_worker":
        resolver = stage.strategy.cluster_resolver
        print(f"{resolver.task_type} {resolver.task_id}: stopped at step {int(step)}, weights "
              f"{weights_fingerprint(stage.run.networks)}", flush=True)
    else:
        print(f"stopped at step {int(step)}", flush=True)
    return 0


def train(args, recipe):
    """Train a stage until --max_steps or a signal; returns the exit code."""
    stage = set_up(args, recipe)
    return 0 if stage is None else loop(stage)
