"""What every trainer shares: its flags, the training loop, checkpoints, TensorBoard summaries,
console progress, preview and generation (report §7.4 "train.py", §7.6, appendix B).

A trainer describes only what differs in a Recipe: how to build its networks from a
configuration, where its checkpoints live, which prior its latents come from and, where it is
not WGAN-GP's, its training iteration.
"""

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dataloader import (
    MAX_AUGMENTATION_LEVEL,
    add_data_flags,
    gather,
    load,
    make_dataset,
    summary,
)
from utils import (
    UserError,
    default_batch_size,
    float_above,
    import_tensorflow,
    int_in_range,
    positive_float,
    window_length,
    write_wav,
)

PREVIEW_SLICES = 5
DISTRIBUTIONS = ("none", "mirrored", "multi_worker")
PREVIEW_POLL_SECS = 1.0


def wgan_gp_step(networks, optimizers, step, rng, sample_latent, loss_scale, strategy=None,
                 xla=False):
    """The training iteration of a Recipe by default: WGAN-GP's, of G and D."""
    from wgan_gp import WGANGP
    return WGANGP(networks["generator"], networks["discriminator"],
                  optimizers["generator_optimizer"], optimizers["discriminator_optimizer"],
                  step, rng, sample_latent, loss_scale, strategy, xla)


@dataclass
class Recipe:
    """What one trainer does differently from the others."""
    model: str                       # name stored in config.json
    build_networks: Callable         # (config, dtype policy) -> {"generator": G, ...}
    config: Callable                 # (args, channels) -> dict saved beside the checkpoints
    checkpoint_root: Callable        # args -> folder holding the stage folders (or the run)
    growing: bool = True             # progressive restore chain, or one fixed stage
    prior: str = "uniform"           # latent prior: "uniform" on [-1, 1] or "normal"
    preview_gap: Callable = lambda window: 16000  # zeros after each preview slice
    # (networks, {"<name>_optimizer": ...}, step, rng, sample_latent, loss_scale, strategy, xla)
    # -> an object whose iteration(iterator) trains one step and returns the losses (see
    # wgan_gp.WGANGP)
    make_step: Callable = wgan_gp_step


def add_flags(parser, checkpoint_dir="checkpoints", batch_help="the stage's default"):
    """The flags every trainer has, defaults in --help."""
    parser.add_argument("--data_dir", default="data",
                        help="folder of training audio, subfolders included")
    parser.add_argument("--checkpoint_dir", default=checkpoint_dir,
                        help="where checkpoints and TensorBoard logs go")
    parser.add_argument("--batch_size", type=int_in_range(1, 1 << 20), default=None,
                        help=f"windows per batch (default: {batch_help}); lower it on "
                             f"out-of-memory errors")
    parser.add_argument("--use_mixed_precision_training", action="store_true",
                        help="float32 variables with float16 compute and a fixed loss scale "
                             "of 32 on a GPU, bfloat16 compute on a CPU")
    parser.add_argument("--distribution", choices=DISTRIBUTIONS, default="none",
                        help="training only. none: one device; mirrored: every GPU of this "
                             "machine (without GPUs, every logical CPU device); multi_worker: "
                             "the machines of the TF_CONFIG environment variable (README). "
                             "--batch_size is the global batch, split across replicas")
    parser.add_argument("--xla", action="store_true",
                        help="training only: compile each update's forward pass, gradient "
                             "penalty and gradients with XLA (for GPUs; 1.1-1.4x slower on "
                             "a 2-core CPU, see README)")
    parser.add_argument("--augmentation_level", type=int_in_range(0, MAX_AUGMENTATION_LEVEL),
                        default=0, help="also train on windows offset by k*window/10, k=1..L; "
                                        "for small datasets")
    add_data_flags(parser)
    parser.add_argument("--seed", type=int_in_range(0, 2**31 - 1), default=None,
                        help="seed for data order, latents and generation (default: random, "
                             "printed)")
    parser.add_argument("--max_steps", type=int_in_range(1, sys.maxsize), default=None,
                        help="stop when the step (generator updates) reaches this (default: "
                             "train until Ctrl+C)")
    parser.add_argument("--save_every_secs", type=positive_float, default=300.0,
                        help="seconds between checkpoints")
    parser.add_argument("--summary_every_secs", type=positive_float, default=120.0,
                        help="seconds between TensorBoard summaries")
    parser.add_argument("--log_every_secs", type=positive_float, default=5.0,
                        help="seconds between console progress lines")
    parser.add_argument("--preview", action="store_true",
                        help="instead of training, write 5 fixed-latent slices for every new "
                             "checkpoint to <checkpoint folder>/preview/ until Ctrl+C")
    parser.add_argument("--once", action="store_true",
                        help="with --preview: preview the latest checkpoint and exit")
    add_evaluate_flags(parser)
    parser.add_argument("--generate", type=int_in_range(1, 1_000_000), default=None, metavar="N",
                        help="instead of training, write N generated WAV files from the latest "
                             "checkpoint")
    parser.add_argument("--output_dir", default="generated_samples",
                        help="where --generate and --interpolate write their files")
    parser.add_argument("--duration", type=positive_float, default=None, metavar="SECONDS",
                        help="with --generate: each file lasts exactly this long, made of "
                             "windows along a smooth latent walk joined by crossfades "
                             "(default: one window)")
    parser.add_argument("--anchor_every", type=int_in_range(1, 1_000_000), default=4,
                        help="with --duration: a new random anchor latent every this many "
                             "windows")
    parser.add_argument("--crossfade", type=float_above(0.0, inclusive=True), default=None,
                        metavar="SECONDS", help="with --duration or --interpolate: overlap of "
                        "neighbouring windows (default: a quarter of the window, at most 1 s)")
    parser.add_argument("--interpolate", type=int_in_range(0, 2**31 - 1), nargs=2, default=None,
                        metavar=("A", "B"), help="instead of training, write one file that "
                        "morphs from the latent of seed A to that of seed B")
    parser.add_argument("--steps", type=int_in_range(2, 1_000_000), default=None,
                        help="with --interpolate: windows from A to B (default: 8)")


def load_data(args):
    """--data_dir as the data flags ask, its decode cache in <checkpoint_dir>/audio_cache by
    default."""
    return load(args, args.data_dir, os.path.join(args.checkpoint_dir, "audio_cache"))


def check_flags(args):
    if args.distribution == "multi_worker":
        if args.seed is None:
            raise UserError("--distribution multi_worker needs --seed, the same on every "
                            "worker (they draw the same latents and initial weights)")
        check_cluster()
    if args.once and not args.preview:
        raise UserError("--once goes with --preview: add --preview, or drop --once")
    jobs = [flag for flag, on in (("--preview", args.preview), ("--generate", args.generate),
                                  ("--interpolate", args.interpolate),
                                  ("--evaluate", args.evaluate)) if on]
    if len(jobs) > 1:
        raise UserError(f"{' and '.join(jobs)} are separate jobs: use one of them")
    if args.num_eval_samples is not None and not args.evaluate:
        raise UserError("--num_eval_samples goes with --evaluate: add --evaluate")
    if args.duration is not None and not args.generate:
        raise UserError("--duration goes with --generate: add --generate N")
    if args.steps is not None and not args.interpolate:
        raise UserError("--steps goes with --interpolate: add --interpolate A B")
    if args.crossfade is not None and args.duration is None and not args.interpolate:
        raise UserError("--crossfade goes with --generate N --duration S or --interpolate A B")


def run(args, recipe):
    """Dispatch to generation, interpolation, evaluation, preview or training; returns the
    exit code."""
    check_flags(args)
    if args.seed is None and not args.interpolate:  # interpolation's seeds are A and B
        args.seed = random.randrange(2**31)
        print(f"seed {args.seed} (pass --seed {args.seed} to repeat this run)")
    import_tensorflow()
    if args.generate:
        return generate(args, recipe)
    if args.interpolate:
        return interpolate(args, recipe)
    if args.evaluate:
        return evaluate_checkpoint(args, recipe)
    if args.preview:
        return preview(args, recipe)
    with custom_gradients_released():
        return train(args, recipe)


# ---------------------------------------------------------------------------------------------
# training

@contextlib.contextmanager
def custom_gradients_released():
    """Unregister, when training is over, the gradient functions its step's trace registered.

    Every @tf.custom_gradient traced inside a tf.function registers its gradient function in
    TensorFlow's global gradient registry, which never removes it (custom_gradient.py,
    _graph_mode_decorator). The function holds the traced graph and, through the graph's
    captured handles, every variable of the run. model_progressive.lrelu and the identity
    all-reduce in Keras's optimizer.apply are such gradients, so each training run in one
    process (the tests, a notebook) kept its weights and Adam moments, 335-441 MB. The step is
    gone once train returns: nothing can differentiate its graph again.
    """
    from tensorflow.python.framework import ops  # private: there is no public unregister

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    before = set(registry) if isinstance(registry, dict) else None
    try:
        yield
    finally:
        if before is not None:
            for name in set(registry) - before:
                if name.startswith("CustomGradient-"):
                    del registry[name]


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


class Progress:
    """Console line with step, losses and steps/s, at most every `every` seconds."""

    def __init__(self, step, every):
        self.every, self.last_step, self.last_time = every, step, time.monotonic()
        self.printed = False

    def update(self, step, out):
        now = time.monotonic()
        if self.printed and now - self.last_time < self.every:
            return
        rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        extra = "".join(f"  {tag.split('/')[-1]} {float(value):+.5f}"
                        for tag, value in out.get("scalars", {}).items())
        print(f"step {step:>8}  D_loss {float(out['d_loss']):+.5f}  G_loss "
              f"{float(out['g_loss']):+.5f}{extra}  {rate:.3f} steps/s", flush=True)
        self.last_step, self.last_time, self.printed = step, now, True


def draw_latent(rng, batch, prior):
    """The generator's input: 100 values from U(-1, 1) (§7.4) or N(0, 1) (VAE-GAN prior)."""
    from model_progressive import LATENT_DIM
    shape = [batch, LATENT_DIM]
    return rng.uniform(shape, -1.0, 1.0) if prior == "uniform" else rng.normal(shape)


def write_summaries(tf, writer, step, out, fake, sampling_rate):
    """The report's TensorBoard tags (§7.6, SPEC): audio, RMS, losses and critic outputs."""
    real = out["real"]
    real_rms = tf.sqrt(tf.reduce_mean(tf.square(real), axis=[1, 2]))
    fake_rms = tf.sqrt(tf.reduce_mean(tf.square(fake), axis=[1, 2]))
    with writer.as_default(step=step):
        tf.summary.audio("real_input", real, sampling_rate, max_outputs=3)
        tf.summary.audio("generator_output", fake, sampling_rate, max_outputs=3)
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


def make_strategy(name):
    """The tf.distribute strategy of --distribution: none, mirrored or multi_worker."""
    import tensorflow as tf
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    check_cluster()
    return tf.distribute.MultiWorkerMirroredStrategy()


def check_cluster():
    """multi_worker's TF_CONFIG must name a cluster: a one-line error otherwise."""
    config = os.environ.get("TF_CONFIG")
    try:
        cluster = json.loads(config)["cluster"] if config else None
    except (ValueError, KeyError, TypeError):
        cluster = None
    if not isinstance(cluster, dict) or not cluster:
        raise UserError("--distribution multi_worker needs the TF_CONFIG environment variable "
                        "to describe the cluster and this worker's task, e.g. TF_CONFIG="
                        "'{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
                        "\"task\": {\"type\": \"worker\", \"index\": 0}}' (README)")


def distribute(dataset, strategy):
    """An iterator of the dataset's global batches, split across the strategy's replicas
    (and sharded across workers: each worker takes its own batches)."""
    import tensorflow as tf
    if strategy is tf.distribute.get_strategy():  # the default: one device
        return iter(dataset)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return iter(strategy.experimental_distribute_dataset(dataset.with_options(options)))


@dataclass
class Training:
    """What a training run is made of; `checkpoint` holds all of it but the step function."""
    networks: dict
    optimizers: dict
    step: object       # tf.Variable: generator updates so far
    rng: object        # tf.random.Generator of every draw of the step
    gan: object        # recipe.make_step's object: gan.iteration(iterator)
    checkpoint: object
    # Checkpoint entries that checkpoints of earlier versions lack: {name: variable}
    optional: dict

    @property
    def parts(self):
        """Checkpoint entries that every checkpoint of this project has."""
        return {"step": self.step, "rng": self.rng, **self.networks, **self.optimizers}


def build_training(recipe, config, policy, loss_scale, seed, strategy=None, xla=False):
    """Networks (frozen as config says), one optimiser per network built on its trainable
    variables, step counter, random stream and training step: the same for the trainers
    and bench/train_step.py. Initial weights come from seed."""
    import keras
    import tensorflow as tf

    from wgan_gp import make_optimizer

    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(seed)
    with strategy.scope():  # mirrored variables; optimisers built here (TF2_NOTES)
        networks = recipe.build_networks(config, policy)
        if config.get("frozen"):
            for network in networks.values():
                network.freeze_early_layers()
        optimizers = {}
        for name, network in networks.items():
            optimizers[name + "_optimizer"] = make_optimizer(loss_scale)
            optimizers[name + "_optimizer"].build(network.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, name="step")
    rng = tf.random.Generator.from_seed(seed)
    gan = recipe.make_step(networks, optimizers, step, rng,
                           lambda batch: draw_latent(rng, batch, recipe.prior), loss_scale,
                           strategy=strategy, xla=xla)
    optional = {name: state for network in networks.values()
                for name, state in getattr(network, "random_state", dict)().items()}
    checkpoint = tf.train.Checkpoint(step=step, rng=rng, **networks, **optimizers, **optional)
    return Training(networks, optimizers, step, rng, gan, checkpoint, optional)


def checkpoint_bytes(run):
    """Bytes one checkpoint takes: every network weight and optimiser variable (Adam's two
    slots per trainable weight). About 335 MB at stage 1, for block 1's 1024 x 512 x 25
    kernels."""
    import tensorflow as tf

    variables = [v for network in run.networks.values() for v in network.weights]
    variables += [v for optimizer in run.optimizers.values() for v in optimizer.variables]
    return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in variables)


def error_reason(error):
    """The cause in a TensorFlow or OS error: "No space left on device", not its op trace."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    message = getattr(error, "message", str(error))
    return message.split(" [Op:")[0].rsplit("; ", 1)[-1].strip()


def save_checkpoint(manager, step, size):
    """manager.save, where a failed write (a full disk, a file-size limit) becomes one line.
    TensorFlow writes into ckpt-N_temp and renames it only when complete, so the earlier
    checkpoints are whole; the partial folder is removed."""
    import tensorflow as tf

    try:
        return manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as error:
        for name in os.listdir(manager.directory):
            if name.startswith(f"ckpt-{step}_temp"):
                shutil.rmtree(os.path.join(manager.directory, name), ignore_errors=True)
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


def train(args, recipe):
    """Train a stage until --max_steps or a signal; returns the exit code. Under
    --distribution multi_worker only the chief writes checkpoints, summaries and progress;
    every worker restores the same checkpoint (a folder all of them see)."""
    audio = load_data(args)  # bad data fails before TensorFlow
    config = recipe.config(args, audio.channels)
    batch_size = args.batch_size or default_batch_size(config["num_blocks"])
    strategy = make_strategy(args.distribution)  # before any op: multi_worker needs that
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UserError(f"--batch_size {batch_size} does not divide among the {replicas} "
                        f"replicas of --distribution {args.distribution}: use a multiple of "
                        f"{replicas}")

    import tensorflow as tf

    from stages import start_stage, write_config
    from wgan_gp import precision

    chief = strategy.extended.should_checkpoint
    say = print if chief else (lambda *args, **kwargs: None)
    dataset = make_dataset(audio, config["num_blocks"], batch_size, args.augmentation_level,
                           args.seed)
    policy, loss_scale = precision(args.use_mixed_precision_training)
    if args.use_mixed_precision_training and policy == "float32":
        say("mixed precision: no GPU and no bfloat16 support in this CPU, training in float32")
    run = build_training(recipe, config, policy, loss_scale, args.seed, strategy, args.xla)
    networks, step, checkpoint = run.networks, run.step, run.checkpoint
    directory, how = start_stage(run, recipe.checkpoint_root(args), config["num_blocks"],
                                 config.get("frozen", False), config, recipe.growing)
    say(how, flush=True)
    if chief:
        write_config(directory, config)
    if args.max_steps is not None and int(step) >= args.max_steps:
        say(f"step {int(step)} already reaches --max_steps {args.max_steps}: nothing to do")
        return 0

    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=3)
    size = checkpoint_bytes(run)
    free = shutil.disk_usage(directory).free if chief else size  # only the chief has a folder
    if free < size:
        say(f"warning: {free / 1e6:.0f} MB free in {directory} but a checkpoint takes "
            f"{size / 1e6:.0f} MB: free space, or the first save will stop training", flush=True)
    writer = tf.summary.create_file_writer(directory) if chief else None
    # Fixed latents for the generator_output summary: the same sounds over time, and the
    # training random stream stays independent of when summaries happen.
    summary_z = draw_latent(tf.random.Generator.from_seed(args.seed + 1), batch_size,
                            recipe.prior)
    what = (f"stage {config['num_blocks']}{' (frozen)' if config.get('frozen') else ''}"
            if recipe.growing else recipe.model)
    where = (f", {replicas} replicas of {args.distribution}" if args.distribution != "none"
             else "") + (", XLA" if args.xla else "")
    say(summary(audio))
    say(f"training {what}: windows of {window_length(config['num_blocks'])} samples, batch "
        f"{batch_size}, {audio.seconds:.1f} s of audio, {policy}{where}; TensorBoard: "
        f"tensorboard --logdir {directory}", flush=True)

    def save():
        if chief:
            say(f"saved checkpoint {save_checkpoint(manager, int(step), size)}", flush=True)
        return int(step)

    iterator = distribute(dataset, strategy)
    progress = Progress(int(step), args.log_every_secs)
    saved_step, last_save, last_summary = int(step), time.monotonic(), None
    with StopSignal() as stop:
        while not stop.requested and (args.max_steps is None or int(step) < args.max_steps):
            out = run.gan.iteration(iterator)
            current = int(step)
            if not bool(out["finite"]):  # all-reduced: every worker stops here
                print(f"error: non-finite loss or gradient at step {current} (D_loss "
                      f"{float(out['d_loss'])}, G_loss {float(out['g_loss'])}): stopped without "
                      f"saving; the last good checkpoint is {manager.latest_checkpoint}",
                      file=sys.stderr, flush=True)
                return 1
            if chief:
                progress.update(current, out)
            now = time.monotonic()
            if chief and (last_summary is None or now - last_summary >= args.summary_every_secs):
                fake = networks["generator"](summary_z)
                write_summaries(tf, writer, current, out, fake, audio.sampling_rate)
                write_image_summaries(tf, writer, current, out["real"], fake,
                                      audio.sampling_rate)
                last_summary = now
            if now - last_save >= args.save_every_secs:
                saved_step, last_save = save(), now
        if int(step) != saved_step or manager.latest_checkpoint is None:
            save()
    if args.distribution == "multi_worker":
        task = strategy.cluster_resolver.task_type, strategy.cluster_resolver.task_id
        print(f"{task[0]} {task[1]}: stopped at step {int(step)}, weights "
              f"{weights_fingerprint(networks)}", flush=True)
    else:
        print(f"stopped at step {int(step)}", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# preview and generation

def load_generator(directory, recipe, path):
    """The generator of a checkpoint in float32, built from the config saved beside it."""
    import tensorflow as tf

    from stages import read_config, restore

    config = read_config(directory)
    if config is None or config.get("model") != recipe.model:
        raise UserError(f"{directory} holds no {recipe.model} checkpoints of this project "
                        f"(config.json missing or from another trainer)")
    generator = recipe.build_networks(config, "float32", generator_only=True)["generator"]
    step = tf.Variable(0, dtype=tf.int64)
    restore(tf.train.Checkpoint(generator=generator, step=step), path, partial=True)
    return generator, config, int(step)


def require_checkpoint(directory, recipe):
    from stages import latest_checkpoint
    path = latest_checkpoint(directory)
    if path is None:
        pick = ("pick the stage with --num_blocks / --freeze_early_layers / --checkpoint_dir"
                if recipe.growing else "point --checkpoint_dir at a training run")
        raise UserError(f"no checkpoint in {directory}: train first, or {pick}")
    return path


def stage_folder(args, recipe):
    from stages import stage_dir
    root = recipe.checkpoint_root(args)
    if not recipe.growing:
        return root
    return stage_dir(root, args.num_blocks, getattr(args, "freeze_early_layers", False))


def generate_windows(generator, latents, batch_size):
    """Generator output [N, window, channels] as NumPy, in batches."""
    return np.concatenate([generator(latents[i:i + batch_size]).numpy()
                           for i in range(0, len(latents), batch_size)])


def latest_generator(args, recipe):
    """The generator of the chosen stage's latest checkpoint: (generator, config, step,
    stage folder, checkpoint path)."""
    directory = stage_folder(args, recipe)
    path = require_checkpoint(directory, recipe)
    generator, config, step = load_generator(directory, recipe, path)
    return generator, config, step, directory, path


def file_stem(directory, step):
    """How generated files are named: stage folder and step, e.g. stage_00005_step00001234."""
    return f"{os.path.basename(os.path.normpath(directory))}_step{step:08d}"


def crossfade_samples(args, window, sampling_rate):
    """--crossfade in samples: by default a quarter of the window, at most one second."""
    if args.crossfade is None:
        return min(window // 4, sampling_rate)
    overlap = round(args.crossfade * sampling_rate)
    if overlap >= window:
        raise UserError(f"--crossfade {args.crossfade:g} s is not shorter than a window "
                        f"({window / sampling_rate:.3f} s): use a shorter crossfade")
    return overlap


def generate(args, recipe):
    """--generate N: N WAV files from the latest checkpoint, of one window each or, with
    --duration, of windows along a latent walk joined by crossfades (longform.py)."""
    import longform
    from model_progressive import LATENT_DIM

    generator, config, step, directory, path = latest_generator(args, recipe)
    name = file_stem(directory, step)
    rate, window = config["sampling_rate"], window_length(config["num_blocks"])
    batch = default_batch_size(config["num_blocks"])
    rng = np.random.default_rng(args.seed)  # file 0 of seed A starts at --interpolate's A
    if args.duration is None:
        latents = longform.draw_prior(rng, args.generate, LATENT_DIM, recipe.prior)
        pieces = generate_windows(generator, latents.astype(np.float32), batch)
    else:
        samples, overlap = round(args.duration * rate), crossfade_samples(args, window, rate)
        count = longform.windows_needed(samples, window, overlap)
        pieces = []
        for _ in range(args.generate):
            latents = longform.latent_walk(rng, count, LATENT_DIM, recipe.prior,
                                           args.anchor_every)
            pieces.append(longform.join_windows(generate_windows(generator, latents, batch),
                                                overlap, samples))
    length = "" if args.duration is None else f"_{args.duration:g}s"
    for i, audio in enumerate(pieces):
        write_wav(os.path.join(args.output_dir, f"{name}_seed{args.seed}{length}_{i:04d}.wav"),
                  audio, rate)
    print(f"wrote {len(pieces)} files of {len(pieces[0])} samples ({len(pieces[0]) / rate:.2f} s)"
          f" x {pieces[0].shape[1]} channels to {args.output_dir} (from {path}, seed "
          f"{args.seed})")
    return 0


def interpolate(args, recipe):
    """--interpolate A B: one file morphing over --steps windows from the latent of seed A
    (the first file `--generate --seed A` writes) to that of seed B, crossfaded."""
    import longform
    from model_progressive import LATENT_DIM

    generator, config, step, directory, path = latest_generator(args, recipe)
    name = file_stem(directory, step)
    rate, window = config["sampling_rate"], window_length(config["num_blocks"])
    a, b = (longform.draw_prior(np.random.default_rng(seed), 1, LATENT_DIM, recipe.prior)[0]
            for seed in args.interpolate)
    latents = longform.interpolate(a, b, np.linspace(0.0, 1.0, args.steps or 8), recipe.prior)
    windows = generate_windows(generator, latents.astype(np.float32),
                               default_batch_size(config["num_blocks"]))
    audio = longform.join_windows(windows, crossfade_samples(args, window, rate))
    out = write_wav(os.path.join(args.output_dir, f"{name}_interpolate_{args.interpolate[0]}"
                                                  f"_to_{args.interpolate[1]}.wav"), audio, rate)
    print(f"wrote {out}: {len(windows)} windows, {len(audio) / rate:.2f} s (from {path})")
    return 0


def write_preview(tf, writer, directory, recipe, path, latents):
    generator, config, step = load_generator(directory, recipe, path)
    slices = generator(latents).numpy()
    gap = np.zeros((recipe.preview_gap(slices.shape[1]), slices.shape[2]), dtype=np.float32)
    audio = np.concatenate([part for s in slices for part in (s, gap)])
    out = write_wav(os.path.join(directory, "preview", f"{step:08d}.wav"), audio,
                    config["sampling_rate"])
    with writer.as_default(step=step):
        tf.summary.audio("preview", slices, config["sampling_rate"], max_outputs=PREVIEW_SLICES)
    writer.flush()
    print(f"wrote {out}", flush=True)


def preview(args, recipe):
    """--preview: 5 fixed latents, one preview file per new checkpoint (§7.4, appendix B)."""
    import tensorflow as tf

    directory = stage_folder(args, recipe)
    if args.once:
        require_checkpoint(directory, recipe)
    latents = draw_latent(tf.random.Generator.from_seed(args.seed), PREVIEW_SLICES, recipe.prior)
    writer = tf.summary.create_file_writer(os.path.join(directory, "preview"))
    from stages import latest_checkpoint
    done = None
    print(f"previewing new checkpoints of {directory} (Ctrl+C to stop)", flush=True)
    try:
        while True:
            path = latest_checkpoint(directory)
            if path and path != done:
                write_preview(tf, writer, directory, recipe, path, latents)
                done = path
                if args.once:
                    return 0
            time.sleep(PREVIEW_POLL_SECS)
    except KeyboardInterrupt:
        print("preview stopped")
        return 0


# ---------------------------------------------------------------------------------------------
# evaluation (evaluate.py's metrics and pictures, from a checkpoint and during training)

# The memorisation check searches all whole windows of --data_dir, or a seeded random subset of
# at most this many windows and samples (2^26: about 70 minutes of 16 kHz audio) when there are
# more: its cost grows with the generated windows times both (~3 s for 256 at stage 5 on 2 cores).
EVAL_TRAINING_WINDOWS = 8192
EVAL_TRAINING_SAMPLES = 1 << 26
EVAL_SAMPLES = 256


def add_evaluate_flags(parser):
    parser.add_argument("--evaluate", action="store_true",
                        help="instead of training, compare windows generated by the latest "
                             "checkpoint with windows of --data_dir (evaluate.py's metrics); "
                             "writes <checkpoint folder>/evaluation/<step>/")
    parser.add_argument("--num_eval_samples", type=int_in_range(1, 1 << 20), default=None,
                        metavar="M", help=f"with --evaluate: generated and real windows "
                                          f"compared (default: {EVAL_SAMPLES})")


def memorisation_windows(audio, window, rng):
    """The whole windows of audio as int16 [windows, window, channels], or a seeded random
    subset of at most EVAL_TRAINING_WINDOWS windows and EVAL_TRAINING_SAMPLES samples (128 MB)
    when there are more; and how many whole windows there are."""
    count = audio.num_samples // window
    cap = max(1, min(EVAL_TRAINING_WINDOWS, EVAL_TRAINING_SAMPLES // window))
    chosen = np.arange(count) if count <= cap else np.sort(rng.choice(count, cap, replace=False))
    return gather(audio.buffer, chosen * window, window), count


def evaluate_checkpoint(args, recipe):
    """--evaluate: M windows generated by the chosen stage's latest checkpoint against M random
    whole windows of --data_dir at that stage; metrics.json and PNGs in
    <stage folder>/evaluation/<step>/, the table on stdout."""
    import tensorflow as tf

    import evaluate

    generator, config, step, directory, path = latest_generator(args, recipe)
    rate, num_blocks = config["sampling_rate"], config["num_blocks"]
    args.sampling_rate = rate  # the checkpoint's
    audio = load_data(args)
    if audio.channels != config["channels"]:
        raise UserError(f"{path} makes {config['channels']}-channel audio but {args.data_dir} "
                        f"holds {audio.channels}-channel audio: evaluate against the kind of "
                        f"data it was trained on")
    print(summary(audio))
    starts, window = evaluate.full_window_starts(audio, num_blocks)
    rng = np.random.default_rng(args.seed)
    count = args.num_eval_samples or EVAL_SAMPLES
    real = evaluate.sample_windows(audio, starts, window, count, rng)
    training, total = memorisation_windows(audio, window, rng)
    latents = draw_latent(tf.random.Generator.from_seed(args.seed), count, recipe.prior)
    generated = generate_windows(generator, latents, default_batch_size(num_blocks))
    if not np.isfinite(generated).all():
        raise UserError(f"the generator of {path} outputs NaN or infinite values: it diverged, "
                        f"evaluate or resume from an earlier checkpoint")
    searched = (f"all {total}" if len(training) == total
                else f"a random {len(training)} of the {total}")
    print(f"evaluating {path} (step {step}): {count} generated against {len(real)} real "
          f"windows of {window} samples from {args.data_dir}; memorisation check over "
          f"{searched} whole windows; seed {args.seed}", flush=True)
    metrics = evaluate.compute_metrics(real, generated, rate, training, seed=args.seed)
    out_dir = os.path.join(directory, "evaluation", f"{step:08d}")
    try:
        paths = evaluate.save_plots(real, generated, rate, out_dir)
        paths.append(evaluate.write_report(out_dir, metrics))
    except OSError as error:
        raise UserError(f"cannot write to {out_dir} ({error.strerror}): make the checkpoint "
                        f"folder writable") from None
    print(evaluate.format_table(metrics))
    print("wrote " + ", ".join(paths))
    return 0


def write_image_summaries(tf, writer, step, real, fake, sampling_rate):
    """evaluate.py's pictures of the real batch against the generated summary batch, as the
    TensorBoard images evaluation/waveforms, /zoom, /spectrograms and /loudness. Drawn only
    at summary time: about 0.5 s at stage 5, 1 s at stage 8 (2-core CPU)."""
    import evaluate

    real, fake = (np.nan_to_num(tf.cast(x, tf.float32).numpy(), posinf=1.0, neginf=-1.0)
                  for x in (real, fake))
    images = evaluate.render_plots(real, fake, sampling_rate)
    with writer.as_default(step=step):
        for name, png in images.items():
            tf.summary.image("evaluation/" + os.path.splitext(name)[0],
                             tf.io.decode_png(png, channels=3)[None], max_outputs=1)
    writer.flush()
