"""Training runs of train_progressive.py that each make their own checkpoint folder: a
SIGTERM's save, a second training of a folder, a damaged decode cache, a nested folder of
Ogg files, an earlier version's frozen checkpoint, mixed and half precision, one graph or a
graph per update, no graph left behind, and another learning rate.

Runs tiny stages (1 and 2, batch 2) on the bundled demo data. (Apart from
test_train_progressive.py, whose shared chain of runs holds 2 GB, so that it is made and
removed sooner: the suite once ran out of disk on CI.)
"""

import functools
import gc
import math
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from helpers import (
    DEMO,
    NARROW_DIVISOR,
    ROOT,
    TINY,
    networks_of,
    saved_step,
    weights,
)
from helpers import run as run_main

import adam
import checkpoints
import dataloader
import iteration
import precision
import runs
import train_progressive
from rules import GRAPHS

run = functools.partial(run_main, train_progressive.main)


@pytest.mark.slow
def test_frozen_checkpoint_of_an_earlier_version_resumes(tmp_path):
    """Frozen stages used to freeze the dense layers too, so their Adam state covers fewer
    variables: such a checkpoint resumes its weights, step and random stream, with a note."""
    root = str(tmp_path)
    config = {"model": "progressive", "num_blocks": 2, "frozen": True, "channels": 1,
              "feature_map_smoothing": True, "use_sample_norm": False,
              "sampling_rate": 16000, "model_variant": "standard",
              "feature_map_divisor": NARROW_DIVISOR}  # the tests' width, not of that version
    nets = train_progressive.build_networks(config, "float32")
    optimizers = {}
    for name, net in nets.items():
        for layer in net.carried_over_layers().values():  # the earlier freezing
            layer.trainable = False
        optimizers[name + "_optimizer"] = adam.make_optimizer()
        optimizers[name + "_optimizer"].build(net.trainable_variables)
    step, rng = tf.Variable(4, dtype=tf.int64), tf.random.Generator.from_seed(0)
    directory = checkpoints.stage_dir(root, 2, frozen=True)
    checkpoints.write_config(directory, config)
    tf.train.CheckpointManager(tf.train.Checkpoint(step=step, rng=rng, **nets, **optimizers),
                               directory, max_to_keep=1).save(checkpoint_number=4)
    code, out, err = run("--num_blocks", "2", "--freeze_early_layers", "--max_steps", "4",
                         "--checkpoint_dir", root)  # resumes, then nothing to train
    assert code == 0, out + err
    assert "resumed at step 4" in out and "optimiser state" in out
    assert "generator_optimizer, discriminator_optimizer start afresh" in out
    assert "has no generator_ema (an earlier version, or trained without it): the moving " \
           "average starts from the weights" in out


@pytest.mark.slow
def test_trains_on_a_nested_folder_of_ogg_and_restarts_from_the_cache(tmp_path):
    library = tmp_path / "library"
    t = np.arange(3 * 16000) / 16000
    for i, name in enumerate(["a/one.ogg", "a/b/two.ogg", "c/three.ogg"]):
        (library / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(library / name), 0.4 * np.sin(2 * np.pi * 220 * (i + 1) * t), 16000,
                 format="OGG", subtype="VORBIS")
    argv = ["--data_dir", str(library), "--num_blocks", "1", "--checkpoint_dir",
            str(tmp_path / "ck")]
    code, out, err = run(*argv, "--max_steps", "1")
    assert code == 0, out + err
    assert "3 files from 3 folders" in out and "0 hits, 3 misses" in out
    assert "stopped at step 1" in out
    code, out, err = run(*argv, "--max_steps", "1")  # resumes, then nothing to train
    assert code == 0, out + err
    assert "3 hits, 0 misses" in out and "resumed at step 1" in out
    assert len(os.listdir(tmp_path / "ck" / "audio_cache")) == 3


@pytest.mark.slow
def test_a_damaged_cache_entry_met_in_training_is_one_line_and_decoded_again(tmp_path):
    argv = ["--num_blocks", "1", "--checkpoint_dir", str(tmp_path / "ck")]
    # the cache a first run makes (its checks pass in this process: the files are decoded)
    dataloader.load_audio(DEMO, 16000, log=lambda line: None,
                          cache_dir=str(tmp_path / "ck" / "audio_cache"))
    entry = max((tmp_path / "ck" / "audio_cache").iterdir(), key=os.path.getsize)
    data = bytearray(entry.read_bytes())
    data[-3] ^= 0xFF  # a flipped byte; written as another file, as a process checks each once
    (tmp_path / "copy").write_bytes(bytes(data))
    os.replace(tmp_path / "copy", entry)
    code, out, err = run(*argv, "--max_steps", "3")  # seed 0's batches read every file
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "is damaged" in err and "training resumes at step" in err and not entry.exists()
    code, out, err = run(*argv, "--max_steps", "3")
    assert code == 0, out + err
    assert "3 hits, 1 misses" in out and "resumed at step" in out
    assert "stopped at step 3" in out


@pytest.mark.slow
def test_sigterm_saves_a_restorable_checkpoint(tmp_path):
    command = [sys.executable, os.path.join(ROOT, "train_progressive.py"), *TINY,
               "--num_blocks", "1", "--checkpoint_dir", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=str(tmp_path))
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("step ") and int(line.split()[1]) >= 2:
            process.send_signal(signal.SIGTERM)
            break
    rest, err = process.communicate(timeout=300)
    output = "".join(lines) + rest
    assert process.returncode == 0, output + err
    reached = int(re.search(r"stopped at step (\d+)", output).group(1))
    assert reached >= 2
    path = checkpoints.latest_checkpoint(checkpoints.stage_dir(str(tmp_path), 1))
    assert path.endswith(f"ckpt-{reached}") and saved_step(path) == reached
    config = checkpoints.read_config(checkpoints.stage_dir(str(tmp_path), 1))
    networks_of(path, config)  # every layer restores


@pytest.mark.slow
def test_mixed_precision_cli_trains_with_float32_variables(tmp_path):
    code, out, err = run("--num_blocks", "1", "--max_steps", "2", "--checkpoint_dir",
                         str(tmp_path), "--use_mixed_precision_training")
    assert code == 0, err
    expected = "mixed_bfloat16" if precision.cpu_has_bfloat16() else "float32"
    assert expected in out
    losses = re.findall(r"D_loss ([-+.\w]+)\s+G_loss ([-+.\w]+)", out)
    assert len(losses) == 2 and all(math.isfinite(float(x)) for pair in losses for x in pair)
    reader = tf.train.load_checkpoint(checkpoints.latest_checkpoint(checkpoints.stage_dir(str(tmp_path), 1)))
    dtypes = reader.get_variable_to_dtype_map()
    assert {dtypes[k] for k in dtypes if "kernel" in k} == {tf.float32}
    assert any(k.startswith("generator_ema/") and "kernel" in k for k in dtypes)  # its average


@pytest.mark.slow
def test_one_graph_or_a_graph_per_update_train_alike(tmp_path):
    """--graph iteration (the default) and update run the same updates in the same order:
    the same losses and, but for float rounding, the same weights. Adam divides by the
    root of its second moment, which turns the rounding of a near-zero gradient into up to a
    few per cent of one step (learning rate 1e-4): hence atol 1e-5, a tenth of a step."""
    logs, nets = {}, {}
    for graph in GRAPHS:
        folder = str(tmp_path / graph)
        code, out, err = run("--num_blocks", "1", "--max_steps", "2", "--checkpoint_dir", folder,
                             "--graph", graph)
        assert code == 0, err
        logs[graph] = np.array(re.findall(r"D_loss ([-+.\w]+)\s+G_loss ([-+.\w]+)", out), float)
        path = checkpoints.latest_checkpoint(checkpoints.stage_dir(folder, 1))
        nets[graph] = {name: weights(net) for name, net in
                       networks_of(path, checkpoints.read_config(checkpoints.stage_dir(folder, 1))).items()}
    assert logs["iteration"].shape == (2, 2)
    np.testing.assert_allclose(logs["update"], logs["iteration"], rtol=1e-3)
    for name, values in nets["iteration"].items():
        for key, value in values.items():
            np.testing.assert_allclose(nets["update"][name][key], value, rtol=1e-4, atol=1e-5,
                                       err_msg=f"{name} {key}")


@pytest.mark.slow
def test_float16_step_with_fixed_loss_scale(tmp_path):
    """The GPU path (float16, loss scale 32 also inside the GP), run on the CPU."""
    policy, scale = precision.precision(True, on_gpu=True)
    assert (policy, scale) == ("mixed_float16", 32.0)
    config = {"num_blocks": 1, "channels": 1, "feature_map_smoothing": True,
              "use_sample_norm": False}
    nets = train_progressive.build_networks(config, policy)
    opts = {name + "_optimizer": adam.make_optimizer(scale) for name in nets}
    for name, net in nets.items():
        opts[name + "_optimizer"].build(net.trainable_variables)
    step, rng = tf.Variable(0, dtype=tf.int64), tf.random.Generator.from_seed(0)
    gan = iteration.Iteration(nets, opts, step, rng,
                              lambda batch: rng.uniform([batch, 100], -1, 1), scale,
                              graph=GRAPHS[1])
    before = weights(nets["generator"])
    real = tf.data.Dataset.from_tensors(tf.random.uniform([1, 64, 1], -0.5, 0.5)).repeat()
    out = gan(iter(real))
    assert bool(out["finite"]) and math.isfinite(float(out["d_loss"]))
    assert int(step.numpy()) == 1
    after = weights(nets["generator"])
    assert all(v.dtype == np.float32 for v in after.values())
    assert any(not np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_training_leaves_no_graph_behind(tmp_path):
    """A run in one process frees its step: the gradient functions that TensorFlow registers
    globally for each traced @tf.custom_gradient (lrelu, Keras's all-reduce) would otherwise
    keep its graph, and through it every weight and Adam moment, alive."""
    from tensorflow.python.framework import ops
    from tensorflow.python.framework.func_graph import FuncGraph

    def alive():
        gc.collect()
        return (sum(name.startswith("CustomGradient-") for name in ops._gradient_registry._registry),
                sum(isinstance(o, FuncGraph) for o in gc.get_objects()))

    before = alive()
    code, _, err = run("--num_blocks", "1", "--max_steps", "1", "--checkpoint_dir", str(tmp_path))
    assert code == 0, err
    assert alive() == before


@pytest.mark.slow
def test_a_second_training_of_a_folder_is_refused_and_a_killed_ones_lock_is_taken_over(tmp_path):
    """Two trainings of one stage folder used to both report saves, one run's work lost."""
    root = str(tmp_path / "ck")
    first = subprocess.Popen([sys.executable, "train_progressive.py", *TINY, "--num_blocks",
                              "1", "--checkpoint_dir", root, "--max_steps", "100000"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    for line in first.stdout:
        if line.startswith("step"):
            break
    code, out, err = run("--num_blocks", "1", "--checkpoint_dir", root, "--max_steps", "5")
    assert code == 2 and err.count("\n") == 1, out + err
    assert f"being trained by another run (process {first.pid} on" in err
    first.kill()  # kill -9: no save, no release but the kernel's
    first.wait()
    code, out, err = run("--num_blocks", "1", "--checkpoint_dir", root, "--max_steps", "2")
    assert code == 0, out + err
    assert f"an earlier run (process {first.pid} on" in out and "takes it over" in out
    with open(os.path.join(root, "stage_00001", ".lock")) as f:
        assert f.read() == ""  # released


@pytest.mark.slow
def test_learning_rate_sets_every_optimisers_step_and_a_resumed_run_keeps_it(tmp_path):
    """Adam's first update moves each weight by the learning rate (its moments' ratio is
    the gradient's sign then): after one step at --learning_rate 3e-4 the generator's (one
    update a step) largest change of a weight from its seeded start is 3e-4, not the
    report's 1e-4. Both optimisers save that rate, and a resumed run without the flag keeps
    it."""
    folder = str(tmp_path)
    code, _, err = run("--num_blocks", "1", "--max_steps", "1", "--checkpoint_dir", folder,
                       "--learning_rate", "3e-4")
    assert code == 0, err
    directory = checkpoints.stage_dir(folder, 1)
    config = checkpoints.read_config(directory)
    start = runs.build_run(train_progressive.RECIPE, config, "float32", None, seed=0)
    after = networks_of(checkpoints.latest_checkpoint(directory), config)
    before, trained = weights(start.networks["generator"]), weights(after["generator"])
    assert max(np.abs(trained[key] - before[key]).max() for key in before) == \
        pytest.approx(3e-4, rel=1e-3)

    def saved_rates():
        reader = tf.train.load_checkpoint(checkpoints.latest_checkpoint(directory))
        return {key.split("/")[0]: float(reader.get_tensor(key))
                for key in reader.get_variable_to_shape_map()
                if "optimizer/" in key and "learning_rate" in key}

    assert saved_rates() == {"generator_optimizer": pytest.approx(3e-4),
                             "discriminator_optimizer": pytest.approx(3e-4)}
    code, _, err = run("--num_blocks", "1", "--max_steps", "2", "--checkpoint_dir", folder)
    assert code == 0, err
    assert saved_step(checkpoints.latest_checkpoint(directory)) == 2
    assert list(saved_rates().values()) == [pytest.approx(3e-4)] * 2
