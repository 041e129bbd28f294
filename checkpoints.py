"""The one home of checkpoints (report §7.6, "model saving and reloading"): where they live,
what they hold, how they are saved and rotated, best/, config.json, the restore chain, and
loading a generator for the jobs and the export.

Folders: <root>/stage_0000N and <root>/stage_0000N_frozen for the progressive trainers (the
WaveGAN's run is its root); each holds the last KEEP_CHECKPOINTS checkpoints ckpt-<step>,
config.json (what the networks are made of) and best/ (the checkpoint with the best
evaluation so far, and best.json).

A checkpoint holds (contents): the step, the run's random stream, every network, every
optimiser ("<network>_optimizer"), and the optional entries a checkpoint of an earlier
version may lack: the moving-average generator ("generator_ema") and the networks' random
states (the WaveGAN's phase shuffle).

Starting stage N (start_stage): (1) its own folder has a checkpoint: resume everything; else
(2) stable N with a frozen-N checkpoint: take all weights from it, fresh optimisers and step;
else (3) a stable N-1 checkpoint: take blocks 1..N-1 (never its 1x1 layers), block N and the
1x1 layers start fresh; else (4) start fresh. A frozen stage N skips (2). Weights move by
network and layer name, never by position.

TensorFlow is imported inside the functions: folder names and config.json are read before
it loads (a bad flag is one fast line).
"""

import os

import rules
from private_apis import error_reason, remove_partial_checkpoint, remove_partial_checkpoints
from rules import AVERAGE
from utils import UserError, read_json, write_json

KEEP_CHECKPOINTS = 3  # the original kept five; a stage-1 checkpoint is 394 MB
CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"  # <stage folder>/.lock: held by the run that trains there
BEST_FOLDER, BEST_FILE = "best", "best.json"
# What must agree between a checkpoint and a run that restores from it.
CONFIG_KEYS = ("model", "channels", "feature_map_smoothing", "feature_map_divisor",
               "use_sample_norm", "sampling_rate", "model_variant", "labels", "label_critic",
               "label_generator", "critic_emphasis")
# The value of a key that configurations written before it existed lack (labels: the
# unconditional model's, as every model's before --condition; label_critic and
# label_generator: the projection critic and the label at the input, the only ones before
# those flags; feature_map_divisor: the report's width; critic_emphasis: none).
CONFIG_DEFAULTS = {"model_variant": "standard", "labels": [], "label_critic": "projection",
                   "label_generator": "input", "feature_map_divisor": 1,
                   "critic_emphasis": 0.0}


# --------------------------------------------------------------------------- folders, config.json

def stage_dir(root, num_blocks, frozen=False):
    """A stage's folder: <root>/stage_0000N or <root>/stage_0000N_frozen."""
    return os.path.join(root, f"stage_{num_blocks:05d}" + ("_frozen" if frozen else ""))


def config_value(config, key):
    return config.get(key, CONFIG_DEFAULTS.get(key))


def write_config(directory, config):
    """Save the run's configuration beside its checkpoints, atomically."""
    write_json(os.path.join(directory, CONFIG_FILE), config)


def read_config(directory):
    return read_json(os.path.join(directory, CONFIG_FILE))


def check_config(directory, asked, fix="use the settings it was made with, or another "
                                       "--checkpoint_dir"):
    """The one compatibility check: a one-line error when the checkpoints in directory were
    made with another value of a key of `asked` (those of CONFIG_KEYS it holds)."""
    saved = read_config(directory)
    if saved is None:
        return
    differ = [key for key in CONFIG_KEYS
              if key in asked and config_value(saved, key) != config_value(asked, key)]
    if differ:
        made = ", ".join(f"{key}={config_value(saved, key)}" for key in differ)
        wanted = ", ".join(f"{key}={config_value(asked, key)}" for key in differ)
        raise UserError(f"{directory} holds checkpoints made with {made} but this run asks for "
                        f"{wanted}: {fix}")


def whole_checkpoints(directory):
    """The checkpoints of a folder whose .index and data files are both there, oldest first."""
    import re

    names = os.listdir(directory) if os.path.isdir(directory) else []
    steps = sorted(int(m.group(1)) for name in names
                   if (m := re.fullmatch(r"ckpt-(\d+)\.index", name))
                   and any(n.startswith(f"ckpt-{m.group(1)}.data-") for n in names))
    return [checkpoint_path(directory, step) for step in steps]


def listed_checkpoint(directory):
    """The newest checkpoint the folder's `checkpoint` file lists, or None where the file is
    missing or damaged or names a checkpoint that is not there."""
    import tensorflow as tf

    state = tf.train.get_checkpoint_state(directory) if os.path.isdir(directory) else None
    if state is None or not state.model_checkpoint_path:
        return None
    path = os.path.join(directory, state.model_checkpoint_path)  # the name, or an absolute path
    return path if checkpoint_exists(path) else None


def latest_checkpoint(directory):
    """A folder's newest checkpoint: the one its `checkpoint` file lists, or, where that file
    is lost or names one that is gone, the newest whole one there (training writes the list
    again: recover_checkpoint_list)."""
    listed = listed_checkpoint(directory)
    if listed:  # the folder is listed only where the list fails (preview polls this each second)
        return listed
    whole = whole_checkpoints(directory)
    return whole[-1] if whole else None


# --------------------------------------------------------------------------- one run a folder

class FolderLock:
    """One training per stage folder: an exclusive flock on <folder>/.lock while training,
    the holder's process and host written in it. The kernel releases a flock when its
    process ends, even by kill -9, so a lock is never left behind; the file is not removed
    (two runs racing on an unlinked lock file could both hold one), it is emptied on release,
    so that finding it written tells of a run that ended without releasing it."""

    def __init__(self, directory):
        self.path, self.fd = os.path.join(directory, LOCK_FILE), None

    def acquire(self):
        """Take the folder or raise a one-line UserError naming the run that has it; returns
        a note when an earlier run ended without releasing it (a crash, kill -9), or None."""
        import fcntl
        import socket
        import time

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UserError(f"{os.path.dirname(self.path)} is being trained by another run "
                            f"({holder or 'a process'}): let it end or stop it, or train in "
                            f"another --checkpoint_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}, since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self.fd = fd
        return (f"note: an earlier run ({holder}) ended without releasing "
                f"{os.path.dirname(self.path)} (a crash or kill -9): this run takes it over"
                if holder else None)

    def release(self):
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the flock
            self.fd = None


# --------------------------------------------------------------------------- what one holds

def contents(run):
    """{entry: object} of everything a checkpoint of the run (runs.Run) holds."""
    return {"step": run.step, "rng": run.rng, **run.networks, **run.optimizers, **run.optional}


def make_checkpoint(run):
    """The tf.train.Checkpoint of the run: every entry of contents(run), by name."""
    import tensorflow as tf
    return tf.train.Checkpoint(**contents(run))


def checkpoint_bytes(run):
    """Bytes one checkpoint takes: every network weight, the moving-average generator and
    every optimiser variable (Adam's two slots per trainable weight)."""
    import numpy as np
    import tensorflow as tf

    networks = list(run.networks.values()) + ([run.average.average] if run.average else [])
    variables = [v for network in networks for v in network.weights]
    variables += [v for optimizer in run.optimizers.values() for v in optimizer.variables]
    return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in variables)


# --------------------------------------------------------------------------- saving

def manager(checkpoint, directory, keep=KEEP_CHECKPOINTS):
    import tensorflow as tf
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep)


def checkpoint_path(directory, step):
    """A stage folder's checkpoint of `step`, as manager() names it (its files are this path
    with .index and .data-* after it)."""
    return os.path.join(directory, f"ckpt-{step}")


def checkpoint_exists(path):
    """Whether a checkpoint path (as checkpoint_path or latest_checkpoint give it, without
    .index) names a saved one: its .index file is there."""
    return os.path.exists(path + ".index")


def save(checkpoints, step, size):
    """checkpoints.save (a CheckpointManager), where a failed write (a full disk, a file-size
    limit) becomes one line. TensorFlow writes a new checkpoint aside and renames it only
    when complete, so the earlier checkpoints are whole; the partial one is removed."""
    import tensorflow as tf

    try:
        return checkpoints.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as error:
        remove_partial_checkpoint(checkpoints.directory, step)
        latest = checkpoints.latest_checkpoint
        resume = f"it resumes from {latest}" if latest else "it starts afresh"
        raise UserError(f"cannot save checkpoint {step} in {checkpoints.directory} "
                        f"({error_reason(error)}; a checkpoint takes {size / 1e6:.0f} MB): "
                        f"free space there and run the same command again: {resume}") from None


class Saver:
    """A stage folder's checkpoints as training writes them: the rotation of the last
    KEEP_CHECKPOINTS and best/, with the size one checkpoint takes."""

    def __init__(self, run, directory):
        self.checkpoint, self.directory = run.checkpoint, directory
        self.size = checkpoint_bytes(run)
        # what saves killed part-way left (kill -9, a power cut): removed before the free
        # space is counted
        self.removed = [name for folder in (directory, os.path.join(directory, BEST_FOLDER))
                        for name in remove_partial_checkpoints(folder)]
        self.rotation = manager(self.checkpoint, directory)
        self.best = None  # Best, once evaluations keep one

    @property
    def latest(self):
        return self.rotation.latest_checkpoint

    def save(self, step):
        return save(self.rotation, step, self.size)

    def reread(self):
        """Read the folder's checkpoint list again (after a rollback: the steps after best's
        are trained again and saved under their numbers)."""
        self.rotation = manager(self.checkpoint, self.directory)

    def keep_best(self):
        self.best = Best(self.checkpoint, self.directory)
        return self.best


def read_best(directory):
    """best.json of a stage folder, or None (also where it is damaged: the export's facts go
    without it; training refuses it in one line, Best)."""
    try:
        return read_json(os.path.join(directory, BEST_FOLDER, BEST_FILE))
    except UserError:
        return None


class Best:
    """The best checkpoint so far, in <stage folder>/best/, with best.json beside it."""

    def __init__(self, checkpoint, directory):
        self.directory = os.path.join(directory, BEST_FOLDER)
        self.manager = manager(checkpoint, self.directory, keep=1)
        # a damaged best.json is one line: read as none, the next evaluation would replace
        # a better best/
        self.record = read_json(os.path.join(self.directory, BEST_FILE))
        if self.record and self.path != os.path.join(self.directory,
                                                     self.record.get("checkpoint", "")):
            self.record = None  # a save cut short after its checkpoint: the next one is kept

    @property
    def score(self):
        """The kept evaluation's rules.quality_score (of its record, for a best.json written
        before the record had it), or None."""
        if not self.record:
            return None
        return self.record.get("score", rules.quality_score(
            {"frechet_mel_distance": self.record["frechet_mel_distance"],
             "loudness.rms_ratio": self.record.get("rms_ratio", 1.0)}))

    @property
    def path(self):
        return self.manager.latest_checkpoint

    def offer(self, step, measured, size):
        """Keep this step's checkpoint if it has the lowest rules.quality_score so far;
        True if kept."""
        score, labels = rules.quality_score(measured), rules.label_readings(measured)
        # a conditional run's best.json from before each label was scored holds the pooled
        # score, lower than the labels' mean: not comparable, so the next evaluation replaces it
        scored_alike = self.record is not None and ("labels" in self.record) == bool(labels)
        if score is None or (scored_alike and score >= self.score):
            return False
        save(self.manager, step, size)
        self.record = {"step": step, "score": score,
                       "frechet_mel_distance": measured["frechet_mel_distance"],
                       "rms_ratio": measured["loudness.rms_ratio"],
                       "checkpoint": os.path.basename(self.manager.latest_checkpoint)}
        if labels:
            self.record["labels"] = {name: {"frechet_mel_distance": distance, "rms_ratio": ratio}
                                     for name, (distance, ratio) in labels.items()}
        write_json(os.path.join(self.directory, BEST_FILE), self.record)
        return True


# --------------------------------------------------------------------------- restoring

def restore(checkpoint, path, partial=False):
    """Restore path into checkpoint; every object of checkpoint must be found in it."""
    import tensorflow as tf

    try:
        status = checkpoint.restore(path)
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except (IndexError, tf.errors.DataLossError) as error:  # a data file cut short
        raise damaged(path, error) from None
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        reason = str(error).split("\n")[0][:200]
        raise UserError(f"cannot restore {path} ({reason}): it was made by another model or "
                        f"configuration, use another --checkpoint_dir") from None


def restore_entries(path, entries):
    """Restore {entry: object} from a checkpoint that may hold more (weights only, a step)."""
    import tensorflow as tf
    restore(tf.train.Checkpoint(**entries), path, partial=True)


def restore_layers(path, layers_by_network):
    """Weights only, matched by network and layer name, never by position: a grown network
    has a block inserted before its output layer, which would take the old output's place."""
    import tensorflow as tf
    restore_entries(path, {network: tf.train.Checkpoint(**layers)
                           for network, layers in layers_by_network.items()})


def saved_entries(path):
    """{top-level checkpoint entry: how many values it holds} of a checkpoint."""
    import tensorflow as tf

    try:
        listed = tf.train.list_variables(path)
    except (ValueError, tf.errors.OpError) as error:  # an .index file that is not one
        raise damaged(path, error) from None
    counts = {}
    for key, _ in listed:
        name = key.split("/")[0]
        counts[name] = counts.get(name, 0) + 1
    return counts


def damaged(path, error):
    """The one line for a checkpoint that cannot be read, naming the one to fall back to."""
    import re

    step = re.search(r"ckpt-(\d+)$", path)  # a path of another name has no "one before"
    before = [p for p in whole_checkpoints(os.path.dirname(path))
              if step and int(p.rsplit("-", 1)[1]) < int(step.group(1))]
    fix = (f"move its files ({os.path.basename(path)}.index and .data-*) out of the folder to "
           f"use {os.path.basename(before[-1])}, the one before it" if before
           else "restore it from a copy")
    return UserError(f"cannot read {path} ({error_reason(error)}): it is damaged (cut short or "
                     f"overwritten): {fix}")


def resume(run, path):
    """Restore everything of a run (runs.Run) from path; returns notes on what a
    checkpoint of an earlier version lacked: an optional entry (run.optional) starts afresh
    (run.start_afresh), and optimiser state saved for another set of trainable layers (frozen
    stages before the dense layers trained in them) is left fresh."""
    saved = saved_entries(path)
    entries, notes = contents(run), []
    stale = [name for name, optimizer in run.optimizers.items()
             if saved.get(name, 0) != len(optimizer.variables)]
    if stale:
        notes.append(f"the optimiser state of {path} was saved for other trainable layers "
                     f"(a frozen stage of an earlier version, which froze the dense layers "
                     f"too): weights, step and random stream resumed, "
                     f"{', '.join(stale)} start afresh")
    missing = [name for name in run.optional if name not in saved]
    restore_entries(path, {name: value for name, value in entries.items()
                           if name not in stale and name not in missing})
    notes += [f"{path} has no {name} (an earlier version, or trained without it): "
              f"{run.start_afresh(name)}" for name in missing]
    if run.average is None and AVERAGE in saved:
        notes.append(f"{path} has a moving-average generator but this run keeps none "
                     f"(--ema_decay 0): new checkpoints lack it, and it is gone once the "
                     f"older ones rotate out")
    return notes


def carry_average(run, source, layers):
    """The moving average's layers (names) from source: its average where it has one, else
    its generator's weights."""
    if run.average is None:
        return
    key = AVERAGE if AVERAGE in saved_entries(source) else "generator"
    named = run.average.average.named_layers()
    restore_layers(source, {key: {name: named[name] for name in layers}})


def start_stage(run, root, num_blocks, frozen, config, growing=True, init_from=None):
    """Walk the restore chain for stage num_blocks with the networks, optimisers, step, random
    streams and moving average of run (runs.Run); returns (stage folder, what was
    done). A grown stage's carried-over layers take the moving average of the stage below;
    its new layers, and a frozen stage's frozen blocks, start with the average = weights.
    init_from (--init_from): a new stage starts from another run's weights instead."""
    networks = run.networks
    directory = stage_dir(root, num_blocks, frozen) if growing else root
    recovered = recover_checkpoint_list(directory)
    own = latest_checkpoint(directory)
    if own and init_from:
        raise UserError(f"{directory} already holds checkpoints, and --init_from starts a "
                        f"stage afresh: drop --init_from to resume it, or train in another "
                        f"--checkpoint_dir")
    if init_from:
        return directory, fine_tune(run, init_from, config)
    if own:
        check_config(directory, config)
        notes = ([recovered] if recovered else []) + resume(run, own)
        return directory, "\n".join([f"resumed at step {int(run.step.numpy())} from {own}"]
                                     + notes)
    if growing and num_blocks >= 2:
        frozen_dir = stage_dir(root, num_blocks, frozen=True)
        source = None if frozen else latest_checkpoint(frozen_dir)
        if source:
            check_config(frozen_dir, config)
            restore_layers(source, {name: net.named_layers() for name, net in networks.items()})
            carry_average(run, source, networks["generator"].named_layers())
            return directory, (f"all weights from the frozen stage {source}; fresh optimisers, "
                               f"step 0")
        previous_dir = stage_dir(root, num_blocks - 1)
        source = latest_checkpoint(previous_dir)
        if source:
            check_config(previous_dir, config)
            restore_layers(source, {name: net.carried_over_layers()
                                    for name, net in networks.items()})
            start_average(run, source, frozen)
            return directory, (f"blocks 1..{num_blocks - 1} grown from stage {num_blocks - 1} "
                               f"({source}); block {num_blocks} and the 1x1 layers start fresh")
    if run.average is not None:
        run.average.copy()
    return directory, f"fresh start in {directory}: no checkpoint to resume or grow from"


def fine_tune(run, path, config):
    """--init_from: every network's weights and the moving average from another run's
    checkpoint (a stage folder, its best/, or a checkpoint path) of the same stage and
    configuration; the optimisers, step and random stream stay fresh. Returns what was
    done."""
    source = path if checkpoint_exists(path) else latest_checkpoint(path)
    if source is None:
        raise UserError(f"--init_from {path}: no checkpoint there: give a stage folder (e.g. "
                        f"checkpoints/stage_00005), its best/ or a checkpoint path")
    folder = os.path.dirname(os.path.abspath(source))
    made = read_config(os.path.dirname(folder) if os.path.basename(folder) == BEST_FOLDER
                       else folder)
    keys = ("num_blocks",) + CONFIG_KEYS
    differ = [key for key in keys
              if made is None or config_value(made, key) != config_value(config, key)]
    if differ:
        theirs = "no config.json" if made is None else ", ".join(
            f"{key}={config_value(made, key)}" for key in differ)
        ours = ", ".join(f"{key}={config_value(config, key)}" for key in differ)
        raise UserError(f"--init_from {source} was made with {theirs} but this run has {ours}: "
                        f"fine-tune from a checkpoint of the same stage and configuration")
    restore_layers(source, {name: net.named_layers() for name, net in run.networks.items()})
    carry_average(run, source, run.networks["generator"].named_layers())
    return (f"fine-tuning from {source}: its weights and moving average; fresh optimisers, "
            f"step 0 and random stream")


def recover_checkpoint_list(directory):
    """Where a folder holds whole checkpoints (ckpt-N.index and its data) but its `checkpoint`
    file, which lists them, is lost (deleted, lost with a disk) or names one that is gone,
    write the list again; returns a note saying so, or None."""
    import tensorflow as tf

    whole = whole_checkpoints(directory)
    if not whole or listed_checkpoint(directory):
        return None
    paths = whole[-KEEP_CHECKPOINTS:]
    tf.compat.v1.train.update_checkpoint_state(directory, paths[-1],
                                               all_model_checkpoint_paths=paths)
    return (f"note: {directory} had lost its list of checkpoints (its `checkpoint` file, or "
            f"the checkpoint it named): made again from the whole ones there, "
            f"{os.path.basename(whole[0])} to {os.path.basename(whole[-1])}")


def start_average(run, source, frozen):
    """The moving average of a stage grown from source."""
    if run.average is None:
        return
    generator = run.networks["generator"]
    carried = generator.carried_over_layers()
    carry_average(run, source, carried)
    run.average.copy([name for name in generator.named_layers() if name not in carried])
    if frozen:
        run.average.copy(list(generator.early_blocks()))


# --------------------------------------------------------------------------- the jobs' generator

def find_checkpoint(directory, choice, pick):
    """The checkpoint --checkpoint names: the stage's latest, its best (best/), or a path;
    `pick` says how to choose another folder where there is none."""
    if choice not in ("latest", "best"):
        if not checkpoint_exists(choice):  # the example: the stage's latest, where it has one
            example = latest_checkpoint(directory) or os.path.join(directory, "ckpt-300")
            raise UserError(f"--checkpoint {choice}: no checkpoint there (give the path without "
                            f".index, e.g. {example})")
        return choice
    folder = os.path.join(directory, BEST_FOLDER) if choice == "best" else directory
    path = latest_checkpoint(folder)
    if path is None:
        what = ("no best checkpoint (it is kept by evaluations during training)"
                if choice == "best" else "no checkpoint")
        raise UserError(f"{what} in {folder}: train first, or {pick}")
    return path


def load_generator(directory, recipe, path, raw=False):
    """The generator of a checkpoint in float32, built from the config.json beside it:
    (generator, config, step, which weights: "generator" or "generator_ema"). Its moving
    average unless raw or the checkpoint has none (trained with --ema_decay 0 or by an
    earlier version)."""
    import tensorflow as tf

    config = read_config(directory)
    if config is None:
        raise UserError(f"{directory} holds no checkpoints of this project (no {CONFIG_FILE}): "
                        f"point --checkpoint_dir at a training run")
    check_config(directory, {"model": recipe.model}, fix="use the trainer that made them")
    generator = recipe.build_networks(config, "float32", generator_only=True)["generator"]
    step = tf.Variable(0, dtype=tf.int64)
    which = "generator" if raw or AVERAGE not in saved_entries(path) else AVERAGE
    restore_entries(path, {which: generator, "step": step})
    return generator, config, int(step), which
