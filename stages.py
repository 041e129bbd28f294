"""Stage folders, the run configuration beside each checkpoint, and the restore chain
(report §7.6, "model saving and reloading").

Starting stage N: (1) its own folder has a checkpoint: resume everything; else (2) stable N
with a frozen-N checkpoint: take all weights from it, fresh optimisers and step; else (3) a
stable N-1 checkpoint: take blocks 1..N-1 (never its 1x1 layers), block N and the 1x1 layers
start fresh; else (4) start fresh. A frozen stage N skips (2).
"""

import json
import os

import tensorflow as tf

from rules import AVERAGE, stage_dir
from utils import UserError, atomic_write

CONFIG_FILE = "config.json"
# What must agree between a checkpoint and a run that restores from it.
CONFIG_KEYS = ("model", "channels", "feature_map_smoothing", "use_sample_norm", "sampling_rate",
               "model_variant")
# The value of a key that configurations written before it existed lack.
CONFIG_DEFAULTS = {"model_variant": "standard"}


def config_value(config, key):
    return config.get(key, CONFIG_DEFAULTS.get(key))


def latest_checkpoint(directory):
    return tf.train.latest_checkpoint(directory) if os.path.isdir(directory) else None


def write_config(directory, config):
    """Save the run's configuration beside its checkpoints, atomically."""
    text = json.dumps(config, indent=2, sort_keys=True)

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(os.path.join(directory, CONFIG_FILE), write)


def read_config(directory):
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def check_config(directory, config):
    """One-line error when the checkpoints in directory were made with another configuration."""
    saved = read_config(directory)
    if saved is None:
        return
    differ = [key for key in CONFIG_KEYS if config_value(saved, key) != config_value(config, key)]
    if differ:
        made = ", ".join(f"{key}={config_value(saved, key)}" for key in differ)
        asked = ", ".join(f"{key}={config_value(config, key)}" for key in differ)
        raise UserError(f"{directory} holds checkpoints made with {made} but this run asks for "
                        f"{asked}: use the settings it was made with, or another "
                        f"--checkpoint_dir")


def restore(checkpoint, path, partial=False):
    """Restore path into checkpoint; every object of checkpoint must be found in it."""
    try:
        status = checkpoint.restore(path)
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        reason = str(error).split("\n")[0][:200]
        raise UserError(f"cannot restore {path} ({reason}): it was made by another model or "
                        f"configuration, use another --checkpoint_dir") from None


def restore_layers(path, layers_by_network):
    """Weights only, matched by network and layer name, never by position: a grown network
    has a block inserted before its output layer, which would take the old output's place."""
    tree = {network: tf.train.Checkpoint(**layers)
            for network, layers in layers_by_network.items()}
    restore(tf.train.Checkpoint(**tree), path, partial=True)


def saved_entries(path):
    """{top-level checkpoint entry: how many values it holds} of a checkpoint."""
    counts = {}
    for key, _ in tf.train.list_variables(path):
        name = key.split("/")[0]
        counts[name] = counts.get(name, 0) + 1
    return counts


def resume(run, path):
    """Restore everything of a run (recipe.Training) from path; returns notes on what a
    checkpoint of an earlier version lacked: an optional entry (run.optional) starts afresh
    (run.start_afresh), and optimiser state saved for another set of trainable layers (frozen
    stages before the dense layers trained in them) is left fresh."""
    saved = saved_entries(path)
    parts, notes = run.parts, []
    stale = [name for name, optimizer in run.optimizers.items()
             if saved.get(name, 0) != len(optimizer.variables)]
    if stale:
        for name in stale:
            del parts[name]
        notes.append(f"the optimiser state of {path} was saved for other trainable layers "
                     f"(a frozen stage of an earlier version, which froze the dense layers "
                     f"too): weights, step and random stream resumed, "
                     f"{', '.join(stale)} start afresh")
    present = {name: value for name, value in run.optional.items() if name in saved}
    restore(tf.train.Checkpoint(**parts, **present), path, partial=True)
    notes += [f"{path} has no {name} (an earlier version, or trained without it): "
              f"{run.start_afresh(name)}" for name in run.optional if name not in present]
    return notes


def carry_average(run, source, layers):
    """The moving average's layers (names) from source: its average where it has one, else
    its generator's weights."""
    if run.average is None:
        return
    key = AVERAGE if AVERAGE in saved_entries(source) else "generator"
    named = run.average.average.named_layers()
    restore_layers(source, {key: {name: named[name] for name in layers}})


def start_stage(run, root, num_blocks, frozen, config, growing=True):
    """Walk the restore chain for stage num_blocks with the networks, optimisers, step, random
    streams and moving average of run (recipe.Training); returns (stage folder, what was
    done). A grown stage's carried-over layers take the moving average of the stage below;
    its new layers, and a frozen stage's frozen blocks, start with the average = weights."""
    networks = run.networks
    directory = stage_dir(root, num_blocks, frozen) if growing else root
    own = latest_checkpoint(directory)
    if own:
        check_config(directory, config)
        notes = resume(run, own)
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
