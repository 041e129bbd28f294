"""What many test files share: the demo data, running a trainer in-process, reading
checkpoints' weights and TensorBoard's tags. Imported by the test files (never a test file by
another)."""

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "data", "demo")
# --conv_forms auto's timings, shared by the suite's runs (by both pytest-xdist workers of
# one run): each shape is timed once.
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getpid()))
CONV_FORMS_CACHE = os.path.join(tempfile.gettempdir(), f"test_conv_forms_{RUN_ID}.json")
# Runs of a few steps: a graph per update, which starts a run sooner (the tests of --graph
# iteration, the default, say so); no evaluations (the tests of the quality curve ask for
# them); the suite's convolution timings.
SHORT = ["--graph", "update", "--eval_every_secs", "0", "--conv_forms_cache", CONV_FORMS_CACHE]
# Networks an eighth of the report's width (--feature_map_divisor 8): the same layers, names
# and code, with checkpoints of a few MB instead of hundreds, so a tiny run is mostly its own
# work. Tests of the width itself build the networks at full width.
NARROW_DIVISOR = 8
NARROW = ["--feature_map_divisor", str(NARROW_DIVISOR)]
# A tiny run of a progressive trainer on the demo data: batch 2, a fixed seed, a console line
# every step, narrow networks.
TINY = ["--data_dir", DEMO, "--batch_size", "2", "--seed", "0", "--log_every_secs", "0.001",
        *NARROW, *SHORT]


STEP_LINE = re.compile(r"step\s+(\d+)\s+D_loss ([-+.\d]+)\s+G_loss ([-+.\d]+)")


def losses(text):
    """[(step, D_loss, G_loss)] of a trainer's console lines."""
    return [tuple(float(x) for x in match) for match in STEP_LINE.findall(text)]


def linked_stage_copy(source, target, only=None):
    """shutil.copytree of a stage folder whose checkpoint files are hard links, not copies:
    a stage-1 checkpoint is 394 MB, and the suite once ran out of disk on CI. Neither copy
    changes the other: a save writes new files and renames them into place, and a rotation
    removes a name, so a link is only ever read. The checkpoint list and config.json, which
    tests edit, are copied. only(name): whether to take a file of the folder (default: all)."""
    def link_checkpoints(src, dst):
        if os.path.basename(src).startswith("ckpt-"):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    def left_out(_, names):
        return [name for name in names if only and not only(name)]
    shutil.copytree(source, target, copy_function=link_checkpoints, ignore=left_out)


def ema_and_raw(path, config, build_networks=None):
    """(moving-average generator, raw generator) of a checkpoint, each {layer/i: array}."""
    import tensorflow as tf

    if build_networks is None:
        from train_progressive import build_networks
    nets = {name: build_networks(config, "float32", generator_only=True)["generator"]
            for name in ("generator_ema", "generator")}
    tf.train.Checkpoint(**nets).restore(path).expect_partial().assert_existing_objects_matched()
    return weights(nets["generator_ema"]), weights(nets["generator"])


def warm_decay(step, decay):
    """A fixed --ema_decay's decay at a step, written out: min(decay, (1 + t) / (10 + t))."""
    return min(decay, (1 + step) / (10 + step))


def half_life_decay(step, batch=2, half_life=10_000, rampup=0.05):
    """The moving average's decay at a step by default, written out: 0.5^(B / h) with the
    half-life h = min(H, rampup x t B) windows (StyleGAN2-ADA's rule; the tests' batch 2)."""
    return 0.5 ** (batch / min(half_life, rampup * step * batch))


def run(main, *argv, tiny=True):
    """A trainer's main(argv) in-process, as its command line runs it; returns (exit code,
    stdout, stderr). A UserError is one line on stderr and exit code 2, as for a user."""
    from utils import run_cli

    out, err = io.StringIO(), io.StringIO()
    flags = TINY if tiny else SHORT
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run_cli(main, flags + [str(a) for a in argv])
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def networks_of(path, config, build_networks=None, layers="named_layers"):
    """Fresh networks of config with the weights of checkpoint path restored by layer name
    (all named layers, or those `layers` names: e.g. carried_over_layers)."""
    import checkpoints
    if build_networks is None:
        from train_progressive import build_networks
    nets = build_networks(config, "float32")
    checkpoints.restore_layers(path, {name: getattr(net, layers)() for name, net in nets.items()})
    return nets


def weights(network, names=None):
    """{layer/i: array} of the named layers' weights (all of them by default)."""
    layers = network.named_layers()
    return {f"{name}/{i}": v.numpy() for name in (names or layers)
            for i, v in enumerate(layers[name].weights)}


def changed(before, after):
    """Whether any weight differs between two weights() of the same layers."""
    assert before.keys() == after.keys()
    return any(not np.array_equal(before[k], after[k]) for k in before)


def saved_step(path):
    """The step a checkpoint was saved at."""
    import tensorflow as tf
    step = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(step=step).restore(path).expect_partial()
    return int(step.numpy())


def untrained_checkpoint(root, trainer, config, subfolder):
    """An untrained checkpoint of config at step 7 whose moving average differs from its
    weights (two independent initialisations), for the jobs that read one (export, play);
    returns its stage folder."""
    import functools

    import tensorflow as tf

    import checkpoints
    directory = checkpoints.stage_dir(os.path.join(root, subfolder), config["num_blocks"])
    checkpoints.write_config(directory, config)
    build = functools.partial(trainer.build_networks, config, "float32", generator_only=True)
    parts = {"generator": build()["generator"], "generator_ema": build()["generator"],
             "step": tf.Variable(7, dtype=tf.int64)}
    tf.train.CheckpointManager(tf.train.Checkpoint(**parts), directory,
                               max_to_keep=1).save(checkpoint_number=7)
    return directory


def assert_checkpoint_keys_unchanged(directory, name, added=(), divisor=1):
    """The latest checkpoint of a folder keys its variables (path and shape) as the list
    tests/checkpoint_keys/<name>.txt, written by the code of 2026-11-28 (commit 763b863):
    checkpoints written before a redesign still resume, grow and generate. Entries a later
    version added (`added`, which an earlier checkpoint may lack) are the only new keys.
    Of a run with --feature_map_divisor K, each shape's feature-map sizes are the list's / K:
    at stages 1 and 2 those are its sizes of 256 and more (the others are the kernel's 25,
    the latent's 100 and the audio's channels)."""
    import tensorflow as tf

    path = tf.train.latest_checkpoint(directory)
    keys = {f"{key} {list(shape)}\n" for key, shape in tf.train.list_variables(path)}
    with open(os.path.join(ROOT, "tests", "checkpoint_keys", name + ".txt")) as f:
        earlier = set()
        for line in f:
            key, shape = line.rstrip("\n").split(" ", 1)
            shape = [size // divisor if size >= 256 else size for size in json.loads(shape)]
            earlier.add(f"{key} {shape}\n")
    assert earlier <= keys, (name, sorted(earlier - keys))
    new = {key for key in keys - earlier if key.split("/")[0] not in added}
    assert new == {"_CHECKPOINTABLE_OBJECT_GRAPH []\n"} - earlier, (name, sorted(new))


def tensorboard_tags(directory):
    """Every tag of the event files in a folder (audio tags without their /audio_summary)."""
    import tensorflow as tf
    tags = set()
    for name in os.listdir(directory):
        if name.startswith("events.out.tfevents"):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
                tags.update(re.sub(r"/audio_summary$", "", v.tag) for v in event.summary.value)
    return tags


def tensorboard_scalars(directory):
    """{tag: [(step, value)]} of the scalar summaries in a folder's event files."""
    import tensorflow as tf
    scalars = {}
    for name in sorted(os.listdir(directory)):
        if name.startswith("events.out.tfevents"):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
                for value in event.summary.value:
                    if value.metadata.plugin_data.plugin_name == "scalars":
                        scalars.setdefault(value.tag, []).append(
                            (event.step, float(tf.make_ndarray(value.tensor))))
    return scalars


def assert_one_line_error(code, err, *fragments, expected=2):
    """Exit code 2 (or `expected`) and one line on stderr holding every fragment, no
    traceback."""
    assert code == expected, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


PICTURES = ("waveforms.png", "zoom.png", "spectrograms.png", "loudness.png")


def read(path):
    with open(path) as f:
        return f.read()


def check_report(folder, count, window):
    """--evaluate's metrics.json with every key, and its PNGs, which open as pictures."""
    import json

    import matplotlib.image

    import metrics as metrics_module

    assert sorted(os.listdir(folder)) == sorted(PICTURES + ("metrics.json",))
    with open(os.path.join(folder, "metrics.json")) as f:
        metrics = json.load(f)
    windows = np.random.default_rng(0).uniform(-0.5, 0.5, (10, 64, 1))
    references = {f"reference.{name}.{key}" for name in ("real", "noise")
                  for key in metrics_module.reference_keys()}
    assert set(metrics) == set(metrics_module.compute_metrics(windows, windows, 16000)) | references
    assert metrics["reference.real.frechet_mel_distance"] < \
        metrics["reference.noise.frechet_mel_distance"]
    assert (metrics["num_generated"], metrics["num_real"], metrics["window_samples"],
            metrics["channels"], metrics["sampling_rate"]) == (count, count, window, 1, 16000)
    for name in PICTURES:
        image = matplotlib.image.imread(os.path.join(folder, name))
        assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 600
    return metrics


def as_a_user_who_cannot_write(command, folders, **kwargs):
    """subprocess.run(command) by a user who can read but not write `folders`, made read-only
    for the while. Root writes everywhere: as root the command runs without the capabilities
    that override file permissions (setpriv, util-linux)."""
    import subprocess

    def chmod(folder_mode, file_mode):
        for folder in folders:
            for path, _, files in os.walk(folder):
                os.chmod(path, folder_mode)
                for name in files:
                    os.chmod(os.path.join(path, name), file_mode)
    if os.getuid() == 0:
        command = [shutil.which("setpriv"),
                   "--bounding-set=-dac_override,-dac_read_search,-fowner", *command]
    chmod(0o555, 0o444)
    try:
        return subprocess.run(command, check=False, **kwargs)
    finally:
        chmod(0o755, 0o644)


def play_with_ctrl_c_ignored(*flags):
    """play.py FLAGS started as a background job of a shell script is: with SIGINT ignored,
    which Python then leaves so. Its stdout and stderr are binary pipes."""
    ignoring = 'trap "" INT; exec "$0" play.py "$@"'
    return subprocess.Popen(["sh", "-c", ignoring, sys.executable, *map(str, flags)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def assert_stops_cleanly(process, signum):
    """The process ends within a minute of signum, with exit code 0, "stopped" and no
    traceback on stderr."""
    import pytest
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"it did not stop on {signal.Signals(signum).name}")
    err = err.decode()
    assert process.returncode == 0 and "stopped" in err and "Traceback" not in err, err
