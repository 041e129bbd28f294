"""--distribution (tf.distribute) of the shared training step, on the CPU.

Two replicas are two logical CPU devices, set up in a fresh process (TensorFlow fixes its
devices when it starts); two workers are two processes on 127.0.0.1.
"""

import contextlib
import functools
import io
import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import DEMO, NARROW, ROOT, SHORT, TINY, ema_and_raw, losses, networks_of, weights
from helpers import run as run_main

import checkpoints
import train_loop
import train_progressive
from rules import LEARNING_RATE
from utils import run_cli

run = functools.partial(run_main, train_progressive.main)

# Runs each job of argv[1] (a JSON list of [trainer module, argv]) in one process whose CPU
# is split into two logical devices, after a line "== <job number>".
TWO_DEVICES = """
import json, sys
sys.path.insert(0, {root!r})
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import importlib
from utils import run_cli
for number, (module, argv) in enumerate(json.loads(sys.argv[1])):
    print("==", number, flush=True)
    try:
        code = run_cli(importlib.import_module(module).main, argv)
    except SystemExit as exit_:  # a refused run: one line on stderr, exit code 2
        code = exit_.code
    print("exit", code, flush=True)
"""

def on_two_devices(*processes):
    """(stdout of each job, stderr of each process), each list of jobs run in its own
    process with two logical CPU devices (one mirrored run per process: a second one's
    collectives collide with the first's; a run refused before it trains may come first),
    the processes side by side. Each job's exit code is the last line of its stdout."""
    running = [subprocess.Popen([sys.executable, "-c", TWO_DEVICES.format(root=ROOT),
                                 json.dumps(jobs)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT)
               for jobs in processes]
    outputs, errors = [], []
    for process, jobs in zip(running, processes):
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, out + err[-3000:]
        parts = re.split(r"^== \d+\n", out, flags=re.MULTILINE)[1:]
        assert len(parts) == len(jobs), out + err[-3000:]
        outputs += parts
        errors.append(err)
    return outputs, errors


def assert_trained(output, errors):
    assert output.rstrip().endswith("exit 0"), output + "".join(errors)[-3000:]


@pytest.fixture(scope="module")
def two_devices(module_tmp):
    root = module_tmp / "two_devices"
    common = ["--data_dir", DEMO, "--num_blocks", "1", "--batch_size", "8", "--seed", "5",
              "--max_steps", "2", "--log_every_secs", "1e-9", *NARROW, *SHORT]
    indivisible = [*TINY, "--num_blocks", "1", "--batch_size", "3", "--distribution", "mirrored",
                   "--checkpoint_dir", str(root / "indivisible")]
    return root, *on_two_devices(
        [["train_progressive", common + ["--checkpoint_dir", str(root / "none")]],
         ["train_progressive", common + ["--distribution", "mirrored",
                                         "--checkpoint_dir", str(root / "mirrored")]]],
        [["train_progressive_vaegan", common + ["--distribution", "mirrored", "--max_steps",
                                                "1", "--checkpoint_dir", str(root / "vaegan")]]],
        [["train_progressive", indivisible],
         ["train", ["--data_dir", DEMO, "--batch_size", "2", "--seed", "5", "--max_steps", "1",
                    *SHORT, "--distribution", "mirrored",
                    "--checkpoint_dir", str(root / "wavegan")]]])


def test_mirrored_on_two_devices_trains_as_one_device(two_devices):
    """Same seed and data: global batch 8 split 4 + 4 gives one device's losses and weights."""
    root, (none, mirrored, *_), errors = two_devices
    for output in (none, mirrored):
        assert_trained(output, errors)
    assert "2 replicas of mirrored" in mirrored
    assert len(losses(none)) == 2
    np.testing.assert_allclose(losses(mirrored), losses(none), atol=2e-5)
    config = checkpoints.read_config(checkpoints.stage_dir(str(root / "none"), 1))
    nets = [networks_of(checkpoints.latest_checkpoint(checkpoints.stage_dir(str(root / folder), 1)),
                        config) for folder in ("none", "mirrored")]
    # Adam's first steps are about learning_rate x sign(gradient): where a gradient sums to
    # nearly zero, the round-off of another summation order (4 + 4 rows, not 8) can flip its
    # sign and move that weight by up to about 2 x learning_rate per update. So nearly every
    # element must agree closely (99 %; gradients left unsummed over the replicas would part
    # nearly all), and every one within what such flips can add up to.
    averages = [ema_and_raw(checkpoints.latest_checkpoint(checkpoints.stage_dir(str(root / folder), 1)),
                            config)[0] for folder in ("none", "mirrored")]
    def share_close(two, one):  # over every element of the network (a bias has few)
        return np.mean(np.concatenate([np.isclose(two[key], one[key], rtol=1e-4, atol=1e-6)
                                       .ravel() for key in one]))
    assert share_close(averages[1], averages[0]) > 0.99  # the average of the mirrored weights
    for name, updates in (("generator", 2), ("discriminator", 10)):
        one, two = weights(nets[0][name]), weights(nets[1][name])
        assert share_close(two, one) > 0.99, name
        for key in one:
            np.testing.assert_allclose(two[key], one[key], rtol=0,
                                       atol=3 * LEARNING_RATE * updates, err_msg=key)


def test_mirrored_trains_the_vaegan_and_wavegan(two_devices):
    root, (_, _, vaegan, _, wavegan), errors = two_devices
    for output in (vaegan, wavegan):
        assert_trained(output, errors)
    assert "2 replicas of mirrored" in vaegan and "2 replicas of mirrored" in wavegan
    assert checkpoints.latest_checkpoint(os.path.join(root, "vaegan", "vaegan", "stage_00001"))
    assert checkpoints.latest_checkpoint(os.path.join(root, "wavegan"))
    kl = re.search(r"KL_divergence ([-+.\d]+)", vaegan)
    assert kl and float(kl.group(1)) >= 0.0


def test_batch_that_does_not_divide_among_replicas_is_one_line(two_devices):
    root, (_, _, _, indivisible, _), errors = two_devices
    assert indivisible.rstrip().endswith("exit 2"), indivisible + "".join(errors)[-3000:]
    assert ("error: --batch_size 3 does not divide among the 2 replicas of --distribution "
            "mirrored: use a multiple of 2") in errors[2]
    folder = root / "indivisible"
    assert (os.listdir(folder) if folder.exists() else []) in ([], ["audio_cache"])


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_in_step_and_only_the_chief_saves(tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {
            "type": "worker", "index": index}})}
        command = [sys.executable, os.path.join(ROOT, "train_progressive.py"),
                   "--data_dir", DEMO, "--num_blocks", "1", "--batch_size", "4", "--seed", "3",
                   "--max_steps", "2", "--distribution", "multi_worker", *NARROW, *SHORT,
                   "--checkpoint_dir", str(tmp_path / f"worker{index}")]
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, cwd=ROOT))
    outputs = [worker.communicate(timeout=600) for worker in workers]
    # Both workers' logs: the first to fail is often the one that saw the other one die.
    assert [worker.returncode for worker in workers] == [0, 0], "\n".join(
        f"worker {index}:\n{out}{err[-3000:]}" for index, (out, err) in enumerate(outputs))
    chief, other = outputs[0][0], outputs[1][0]
    assert "2 replicas of multi_worker" in chief and "saved checkpoint" in chief
    assert other.strip().count("\n") == 0  # its last line only, no progress or saves
    fingerprints = [re.search(r"worker \d: stopped at step 2, weights (\w+)", out).group(1)
                    for out, _ in outputs]
    assert fingerprints[0] == fingerprints[1]
    saved = [name for _, _, names in os.walk(tmp_path / "worker1") for name in names]
    assert not any(name.startswith("ckpt") or name == "checkpoint" for name in saved), saved
    directory = checkpoints.stage_dir(str(tmp_path / "worker0"), 1)
    nets = train_progressive.build_networks(checkpoints.read_config(directory), "float32")
    checkpoints.restore(tf.train.Checkpoint(**nets), checkpoints.latest_checkpoint(directory),
                   partial=True)
    assert train_loop.weights_fingerprint(nets) == fingerprints[0]


@pytest.mark.parametrize("tf_config, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "needs the TF_CONFIG environment variable"),
    ('{"task": {"type": "worker", "index": 0}}', "needs the TF_CONFIG environment variable"),
])
def test_multi_worker_without_a_cluster_is_one_line(tmp_path, monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    code, _, err = run("--num_blocks", "1", "--checkpoint_dir", str(tmp_path),
                       "--distribution", "multi_worker")
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert os.listdir(tmp_path) == []


def test_bad_distribution_flags_are_one_line(tmp_path):
    code, _, err = run("--num_blocks", "1", "--distribution", "ring")
    assert code == 2 and "argument --distribution: invalid choice: 'ring'" in err
    without_seed = [a for i, a in enumerate(TINY) if "--seed" not in TINY[i - 1:i + 1]]
    err = io.StringIO()
    with (contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err),
          pytest.raises(SystemExit) as exit_):
        run_cli(train_progressive.main, [*without_seed, "--distribution", "multi_worker"])
    assert exit_.value.code == 2
    assert err.getvalue() == ("error: --distribution multi_worker needs --seed, the same on "
                              "every worker (they draw the same latents and initial weights)\n")


