"""Training, the restore chain, preview and generation of train_progressive.py.

Runs tiny stages (1 and 2, batch 2) on the bundled demo data. One chain of runs is shared
by most tests: stage 1 fresh -> stage 1 resumed -> frozen 2 grown from 1 -> frozen 2
resumed -> stage 2 from frozen 2.
"""

import functools
import hashlib
import math
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from helpers import (
    DEMO,
    NARROW_DIVISOR,
    PICTURES,
    ROOT,
    TINY,
    as_a_user_who_cannot_write,
    assert_checkpoint_keys_unchanged,
    assert_one_line_error,
    check_report,
    ema_and_raw,
    half_life_decay,
    linked_stage_copy,
    networks_of,
    read,
    saved_step,
    tensorboard_scalars,
    tensorboard_tags,
    weights,
)
from helpers import run as run_main

import adam
import checkpoints
import evaluate
import iteration
import longform
import losses
import metrics as metrics_module
import runs
import train_progressive
from rules import default_batch_size, window_length
from utils import to_int16

run = functools.partial(run_main, train_progressive.main)


@pytest.fixture(scope="module")
def chain(module_tmp):
    root = str(module_tmp)
    logs = {}
    logs["fresh"] = run("--num_blocks", "1", "--max_steps", "2", "--checkpoint_dir", root)
    logs["resume"] = run("--num_blocks", "1", "--max_steps", "3", "--checkpoint_dir", root)
    logs["grow"] = run("--num_blocks", "2", "--freeze_early_layers", "--max_steps", "2",
                       "--save_every_secs", "1e-9", "--checkpoint_dir", root)
    logs["frozen_resume"] = run("--num_blocks", "2", "--freeze_early_layers", "--max_steps", "3",
                                "--checkpoint_dir", root)
    logs["from_frozen"] = run("--num_blocks", "2", "--max_steps", "1", "--checkpoint_dir", root)
    for name, (code, out, err) in logs.items():
        assert code == 0, (name, out, err)
    return root, logs


def test_restore_chain_takes_each_path(chain):
    root, logs = chain
    assert "fresh start" in logs["fresh"][1]
    assert "resumed at step 2" in logs["resume"][1]
    assert "blocks 1..1 grown from stage 1" in logs["grow"][1]
    assert "resumed at step 2" in logs["frozen_resume"][1]
    assert "all weights from the frozen stage" in logs["from_frozen"][1]
    assert saved_step(checkpoints.latest_checkpoint(checkpoints.stage_dir(root, 1))) == 3
    assert saved_step(checkpoints.latest_checkpoint(checkpoints.stage_dir(root, 2, True))) == 3
    # weights from the frozen stage come with a fresh step: one step trained, step 1
    assert saved_step(checkpoints.latest_checkpoint(checkpoints.stage_dir(root, 2))) == 1


@pytest.mark.parametrize("name, saved, other", [
    ("feature_map_divisor", NARROW_DIVISOR, "4"), ("critic_emphasis", 0.0, "0.95")])
def test_a_stage_setting_is_saved_and_a_stage_with_another_is_refused(chain, name, saved,
                                                                      other):
    """--feature_map_divisor (the width) and --critic_emphasis are in config.json; resuming
    or growing from a stage with another value is one line, and writes nothing (generation
    reads the width of the stage)."""
    root, _ = chain
    assert checkpoints.read_config(checkpoints.stage_dir(root, 2))[name] == saved
    before = sorted(os.listdir(root))
    for argv in (["--num_blocks", "2", "--max_steps", "5"],  # resume
                 ["--num_blocks", "3", "--freeze_early_layers", "--max_steps", "1"]):  # grow
        code, _, err = run(*argv, "--checkpoint_dir", root, f"--{name}", other)
        assert_one_line_error(code, err, f"{name}={saved}", f"{name}={other}")
    assert sorted(os.listdir(root)) == before


# --------------------------------------------------------------------------- moving average

def test_checkpoints_keep_the_variable_paths_of_earlier_versions(chain):
    root, _ = chain
    for name in ("stage_00001", "stage_00002_frozen", "stage_00002"):
        assert_checkpoint_keys_unchanged(os.path.join(root, name), "progressive_" + name,
                                         divisor=NARROW_DIVISOR)


def assert_average(average, previous, raw, step, layers=None):
    """average = b previous + (1 - b) raw, b the default decay at step, for every (named)
    weight."""
    b = half_life_decay(step)
    for key in (layers or average):
        np.testing.assert_allclose(average[key], b * previous[key] + (1 - b) * raw[key],
                                   rtol=1e-5, atol=1e-6, err_msg=key)


def test_moving_average_survives_resume_growing_and_freezing(chain):
    root, _ = chain
    s1, fz, st = (checkpoints.stage_dir(root, 1), checkpoints.stage_dir(root, 2, True),
                  checkpoints.stage_dir(root, 2))
    config1, config2 = checkpoints.read_config(s1), checkpoints.read_config(fz)
    ema = {}
    for name, path, config in (("s1_2", os.path.join(s1, "ckpt-2"), config1),
                               ("s1_3", os.path.join(s1, "ckpt-3"), config1),
                               ("fz_1", os.path.join(fz, "ckpt-1"), config2),
                               ("fz_2", os.path.join(fz, "ckpt-2"), config2),
                               ("fz_3", os.path.join(fz, "ckpt-3"), config2),
                               ("st_1", os.path.join(st, "ckpt-1"), config2)):
        ema[name] = ema_and_raw(path, config)
    # resumed: step 3 averages step 2's average with step 3's weights
    assert_average(ema["s1_3"][0], ema["s1_2"][0], ema["s1_3"][1], 3)
    # grown into the frozen stage: the frozen block's average is its weights, stage 1's;
    # the carried dense layer continues stage 1's average; new layers start from their
    # initial weights (the run's seed, 0)
    early = [k for k in ema["fz_1"][0] if k.startswith("progressive_block_1/")]
    for key in early:
        np.testing.assert_array_equal(ema["fz_3"][0][key], ema["s1_3"][1][key])
        np.testing.assert_array_equal(ema["fz_3"][1][key], ema["s1_3"][1][key])
    initial = weights(runs.build_run(train_progressive.RECIPE, config2, "float32",
                                            None, seed=0).networks["generator"])
    start = {key: ema["s1_3"][0][key] if key.startswith("projection/") else initial[key]
             for key in ema["fz_1"][0] if key not in early}
    assert_average(ema["fz_1"][0], start, ema["fz_1"][1], 1, list(start))
    assert_average(ema["fz_3"][0], ema["fz_2"][0], ema["fz_3"][1], 3)  # frozen, resumed
    # the stable stage takes the frozen stage's average, then its first step
    assert_average(ema["st_1"][0], ema["fz_3"][0], ema["st_1"][1], 1)


def test_jobs_use_the_moving_average_unless_raw_generator(chain, tmp_path):
    root, _ = chain
    directory = checkpoints.stage_dir(root, 1)
    average, raw = ema_and_raw(checkpoints.latest_checkpoint(directory), checkpoints.read_config(directory))
    assert any(not np.array_equal(average[k], raw[k]) for k in average)
    for flags, expected in (((), "generator_ema"), (("--raw_generator",), "generator")):
        out_dir = tmp_path / expected
        code, _, err = run("--num_blocks", "1", "--checkpoint_dir", root, "--generate", "3",
                           "--seed", "5", "--output_dir", str(out_dir), *flags)
        assert code == 0, err
        generator, *_ = checkpoints.load_generator(directory, train_progressive.RECIPE,
                                            checkpoints.latest_checkpoint(directory),
                                            raw=expected == "generator")
        windows = to_int16(generator(longform.draw_latents(5, 3, "uniform")).numpy())
        for name, window in zip(sorted(os.listdir(out_dir)), windows):
            audio = sf.read(str(out_dir / name), dtype="int16", always_2d=True)[0]
            assert np.abs(audio.astype(int) - window).max() <= 1, (flags, name)
    assert checkpoints.load_generator(directory, train_progressive.RECIPE,
                               checkpoints.latest_checkpoint(directory))[3] == "generator_ema"


def test_resume_restores_step_and_optimiser_state(chain):
    root, _ = chain
    path = checkpoints.latest_checkpoint(checkpoints.stage_dir(root, 1))
    config = checkpoints.read_config(checkpoints.stage_dir(root, 1))
    nets = train_progressive.build_networks(config, "float32")
    opt = adam.make_optimizer()
    opt.build(nets["generator"].trainable_variables)
    step = tf.Variable(0, dtype=tf.int64)
    checkpoints.restore(tf.train.Checkpoint(step=step, generator_optimizer=opt, **nets), path,
                   partial=True)
    assert int(step.numpy()) == 3
    assert int(opt.iterations.numpy()) == 3  # one Adam update per generator step
    assert any(np.abs(v.numpy()).sum() > 0 for v in opt.variables[2:])  # moments restored


def test_frozen_stage_keeps_early_blocks_bit_identical(chain):
    root, _ = chain
    config1 = checkpoints.read_config(checkpoints.stage_dir(root, 1))
    config2 = checkpoints.read_config(checkpoints.stage_dir(root, 2, True))
    source = networks_of(checkpoints.latest_checkpoint(checkpoints.stage_dir(root, 1)), config1)
    frozen_dir = checkpoints.stage_dir(root, 2, True)
    at_2 = networks_of(os.path.join(frozen_dir, "ckpt-2"), config2)
    at_3 = networks_of(os.path.join(frozen_dir, "ckpt-3"), config2)
    trained = {"generator": ["projection", "progressive_block_2",
                             "progressive_block_2_output"],
               "discriminator": ["progressive_block_2_input", "progressive_block_2",
                                 "prediction"]}
    for name in ("generator", "discriminator"):
        early = list(at_3[name].early_blocks())
        assert early == ["progressive_block_1"]
        before, after = weights(source[name], early), weights(at_3[name], early)
        assert all(np.array_equal(before[k], after[k]) for k in before), name
        # As in the original, every other layer trains, the dense layers included.
        assert sorted(n for n in at_3[name].named_layers() if n not in early) == \
            sorted(trained[name])
        for layer in trained[name]:
            changed = weights(at_2[name], [layer]), weights(at_3[name], [layer])
            assert any(not np.array_equal(changed[0][k], changed[1][k])
                       for k in changed[0]), (name, layer)


def test_stable_stage_takes_all_weights_from_frozen_stage(chain):
    root, _ = chain
    config = checkpoints.read_config(checkpoints.stage_dir(root, 2))
    assert config["frozen"] is False
    frozen = networks_of(checkpoints.latest_checkpoint(checkpoints.stage_dir(root, 2, True)), config)
    stable = networks_of(checkpoints.latest_checkpoint(checkpoints.stage_dir(root, 2)), config)
    # one step of training moved them a little, from the frozen weights, not from scratch
    for name in ("generator", "discriminator"):
        a, b = weights(frozen[name]), weights(stable[name])
        assert max(np.abs(a[k] - b[k]).max() for k in a) < 1e-2


def test_tensorboard_has_the_report_tags(chain):
    root, _ = chain
    directory = checkpoints.stage_dir(root, 1)
    expected = {"real_input", "generator_output", "real_input_rms", "G_output_rms",
                "real_input_rms_batch", "G_output_rms_batch", "Loss/Generator_loss",
                "Loss/Discriminator_loss", "Output/real_output", "Output/fake_output",
                "Output/mixed_output"}
    assert expected <= tensorboard_tags(directory)


def test_adam_has_the_reports_settings_and_tensorflow_1s_epsilon():
    optimizer = adam.make_optimizer()
    assert (float(optimizer.learning_rate), optimizer.beta_1, optimizer.beta_2) == \
        (pytest.approx(1e-4), 0.5, 0.9)
    assert optimizer.epsilon == 1e-8  # Keras's default is 1e-7


def test_critic_loss_is_wasserstein_with_a_gradient_penalty_of_weight_ten():
    """D_loss = mean(D(fake)) - mean(D(real)) + 10 mean((||grad D(x_hat)||_2 - 1)^2), the norm
    over (time, channels); G_loss = -mean(D(fake)) (§6.8, the original's train_progressive)."""
    assert losses.GP_WEIGHT == 10.0
    loss, mean = losses.WGANGP(), tf.reduce_mean
    d_real, d_fake = tf.constant([[1.0], [3.0]]), tf.constant([[-2.0], [0.0]])
    penalty = tf.constant([0.5, 1.5])
    assert float(loss.critic(mean, d_real, d_fake, penalty)) == pytest.approx(-1 - 2 + 10 * 1)
    assert float(loss.generator(mean, d_fake)) == pytest.approx(1.0)
    # A linear critic D(x) = sum(w x) has the input gradient w everywhere: the penalty is
    # (||w|| - 1)^2 whatever real, fake and alpha.
    w = tf.constant(np.random.default_rng(0).normal(size=(1, 8, 2)), tf.float32)
    real, fake = tf.ones([3, 8, 2]), tf.zeros([3, 8, 2])
    penalties, _ = losses.gradient_penalty(lambda x: tf.reduce_sum(w * x, axis=[1, 2]), real,
                                           fake, tf.constant([[[0.1]], [[0.5]], [[0.9]]]))
    np.testing.assert_allclose(penalties.numpy(), (float(tf.norm(w)) - 1) ** 2, rtol=1e-5)


def test_training_latents_are_uniform_in_minus_one_to_one():
    """z: 100 values from U(-1, 1) (§7.4); the VAE-GAN's prior is N(0, 1)."""
    assert train_progressive.RECIPE.prior == "uniform"
    z = runs.draw_latent(tf.random.Generator.from_seed(0), 20000, "uniform").numpy()
    assert z.shape == (20000, 100) and z.min() >= -1.0 and z.max() <= 1.0
    assert z.mean() == pytest.approx(0.0, abs=0.01) and z.var() == pytest.approx(1 / 3, rel=0.01)
    assert z.min() < -0.999 and z.max() > 0.999


def test_each_stage_trains_at_the_reports_batch_size(tmp_path):
    """The report's table (appendix B.2), used when --batch_size is not given: the stage a
    trainer opens takes it (a step at batch 128 is left to the benchmarks)."""
    import cli
    import train_loop

    assert {n: default_batch_size(n) for n in range(1, 9)} == \
        {1: 128, 2: 112, 3: 96, 4: 80, 5: 64, 6: 32, 7: 8, 8: 4}
    for num_blocks, given in ((1, None), (2, None), (1, 6)):
        argv = ["--data_dir", DEMO, "--num_blocks", str(num_blocks), "--seed", "0",
                "--checkpoint_dir", str(tmp_path)] + (["--batch_size", str(given)] if given
                                                      else [])
        stage = train_loop.open_stage(cli.parse(train_progressive.RECIPE, argv),
                                      train_progressive.RECIPE)
        assert stage.batch_size == (given or default_batch_size(num_blocks))


@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
def test_all_finite_finds_one_bad_value_among_many(bad):
    values = np.random.default_rng(1).normal(size=(64, 300)).astype(np.float32) * 1e30
    if bad is not None:
        values[17, 123] = bad
    tensors = [tf.constant(2.0), tf.constant(values), tf.ones([3], tf.bfloat16)]
    assert bool(iteration.all_finite(tensors)) == (bad is None)


def apply_gradient(optimizer, weights, gradient):
    optimizer.apply_gradients([(gradient, weights)])


@pytest.mark.parametrize("loss_scale", [None, 32.0])
def test_fused_adam_updates_as_keras_adam_with_the_same_slots(loss_scale):
    """adam.Adam runs TensorFlow's fused ResourceApplyAdam: after 30 updates of gradients
    that change sign and size, weights and moments equal Keras's Adam's to float rounding, and
    the slots (checkpoint keys) are Keras's."""
    import keras
    start = np.random.default_rng(0).normal(size=(3, 50)).astype(np.float32)
    results = []
    for optimizer in (keras.optimizers.Adam(1e-4, 0.5, 0.9, 1e-8, loss_scale_factor=loss_scale),
                      adam.make_optimizer(loss_scale)):
        weights = keras.Variable(start, name="weights")
        update = tf.function(functools.partial(apply_gradient, optimizer, weights))
        for i in range(30):
            update(tf.constant(np.sin(start * (i + 1)) * 10.0 ** (i % 3 - 1)))
        results.append((weights.numpy(), [v.numpy() for v in optimizer.variables],
                        [v.name for v in optimizer.variables]))
    (keras_w, keras_slots, keras_names), (ours_w, our_slots, our_names) = results
    assert type(adam.make_optimizer()) is adam.Adam
    assert np.abs(ours_w - start).max() > 1e-3  # it trained
    np.testing.assert_allclose(ours_w, keras_w, rtol=0, atol=1e-6)
    for ours, theirs in zip(our_slots, keras_slots):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-9)
    assert our_names == keras_names


@pytest.mark.parametrize("variant", ["standard", "pggan"])
def test_real_and_fake_are_scored_in_one_call_only_where_examples_are_scored_alone(variant):
    """Iteration.score: the standard critic scores real and fake in one call, giving the two
    calls' scores and Wasserstein gradients to float rounding. pggan's critic, whose minibatch
    standard deviation mixes the examples, is called twice, as the original did: one call
    would change its scores."""
    import types

    import model_progressive as mp
    D = mp.Discriminator(1, variant=variant)
    rng = np.random.default_rng(0)
    real, fake = (tf.constant(rng.uniform(-1, 1, (3, window_length(1), 1)), tf.float32)
                  for _ in range(2))
    calls = []  # the batch of every call of the critic by score()

    class Counted:
        scores_examples_alone = D.scores_examples_alone

        def __call__(self, x):
            calls.append(int(x.shape[0]))
            return D(x)
    step = types.SimpleNamespace(discriminator=Counted(), classifier=False)
    for method in ("critic", "classified"):
        setattr(step, method, functools.partial(getattr(iteration.Iteration, method), step))
    results = []
    for score in (functools.partial(iteration.Iteration.score, step),
                  lambda r, f: (D(r), D(f), None)):
        with tf.GradientTape() as tape:
            d_real, d_fake, logits = score(real, fake)
            assert logits is None  # no classifier: no logits
            loss = tf.reduce_mean(d_fake) - tf.reduce_mean(d_real)
        results.append([d_real, d_fake] + tape.gradient(loss, D.trainable_variables))
    for ours, two_calls in zip(*results):
        np.testing.assert_allclose(ours, two_calls, rtol=1e-4, atol=1e-5)
    assert calls == ([6] if variant == "standard" else [3, 3])
    together = D(tf.concat([real, fake], axis=0))[:3]
    assert np.allclose(together, results[1][0], rtol=1e-4, atol=1e-5) == (variant == "standard")


def test_rms_summaries_average_over_every_channel(tmp_path):
    """A choice (the original took channel 0 only): stereo loudness counts both channels."""
    import train_loop
    real = np.zeros([2, 64, 2], np.float32)
    real[:, :, 1] = 0.5  # silent left channel, right at 0.5: RMS sqrt(0.125) over both
    fake = np.full([2, 64, 2], 0.25, np.float32)
    out = {"real": tf.constant(real), "g_loss": 0.0, "d_loss": 0.0, "real_output": 0.0,
           "fake_output": 0.0, "mixed_output": 0.0}
    writer = tf.summary.create_file_writer(str(tmp_path))
    train_loop.write_summaries(tf, writer, 1, out, tf.constant(fake), 16000)
    scalars = tensorboard_scalars(str(tmp_path))
    assert scalars["real_input_rms"] == [(1, pytest.approx(math.sqrt(0.125)))]
    assert scalars["G_output_rms"] == [(1, pytest.approx(0.25))]


def test_loss_scale_inside_the_gradient_penalty_keeps_float16_gradients(tmp_path):
    """A choice (the original scaled only the whole critic loss): the input gradient of a
    float16 critic, 9e-8 here, underflows unscaled and is kept when scaled by 32."""
    def critic(x):  # gradient 3e-4 * 3e-4 = 9e-8 for every input sample
        x16 = tf.cast(x, tf.float16)
        return tf.reduce_sum(x16 * tf.constant(3e-4, tf.float16), axis=[1, 2])[:, None] * \
            tf.constant(3e-4, tf.float16)
    real, fake = tf.zeros([1, 4, 1]), tf.ones([1, 4, 1])
    alpha = tf.fill([1, 1, 1], 0.5)
    exact = (math.sqrt(4) * 9e-8 - 1) ** 2
    scaled, _ = losses.gradient_penalty(critic, real, fake, alpha, loss_scale=32.0)
    unscaled, _ = losses.gradient_penalty(critic, real, fake, alpha)
    def norm(penalty):  # the gradient's norm, from (norm - 1)^2 with norm < 1
        return 1 - math.sqrt(float(penalty[0]))
    assert norm(scaled) == pytest.approx(2 * 9e-8, rel=0.05)
    assert abs(norm(unscaled) - 2 * 9e-8) > 0.3 * 2 * 9e-8
    assert float(scaled[0]) == pytest.approx(exact, rel=1e-6)


def test_console_shows_step_losses_and_rate(chain):
    _, logs = chain
    lines = [line for line in logs["fresh"][1].splitlines() if line.startswith("step ")]
    assert len(lines) == 2  # --log_every_secs 0.001: every step
    match = re.match(r"step\s+2\s+D_loss ([-+.\d]+)\s+G_loss ([-+.\d]+)\s+([.\d]+) steps/s",
                     lines[1])
    assert match and all(math.isfinite(float(x)) for x in match.groups())


@pytest.mark.slow
def test_a_read_only_checkpoint_folder_is_one_line_and_evaluate_prints_its_table(chain,
                                                                                  tmp_path):
    """--preview --once used to end in a PermissionDeniedError traceback, --evaluate in one
    line without its table."""
    copy = tmp_path / "ck"
    linked_stage_copy(checkpoints.stage_dir(chain[0], 1), copy / "stage_00001")
    base = [sys.executable, "train_progressive.py", "--num_blocks", "1", "--checkpoint_dir",
            str(copy), "--seed", "0"]
    result = as_a_user_who_cannot_write(base + ["--preview", "--once"], [str(copy)], cwd=ROOT,
                                        capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "cannot write the preview to" in result.stderr
    result = as_a_user_who_cannot_write(
        base + ["--evaluate", "--data_dir", DEMO, "--num_eval_samples", "8", "--no_audio_cache"],
        [str(copy)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "Frechet log-mel distance" in result.stdout  # the table, before the line
    assert "make the checkpoint folder writable (the table above" in result.stderr
    result = as_a_user_who_cannot_write(base + TINY + ["--max_steps", "4", "--no_audio_cache"],
                                        [str(copy)], cwd=ROOT, capture_output=True, text=True)
    assert_one_line_error(result.returncode, result.stderr, "cannot use", ".lock",
                          "that you may write there")  # was a PermissionError traceback


def test_preview_once_writes_the_spec_file(chain):
    root, _ = chain
    code, _, err = run("--num_blocks", "1", "--checkpoint_dir", root, "--preview", "--once")
    assert code == 0, err
    path = os.path.join(checkpoints.stage_dir(root, 1), "preview", "00000003.wav")
    info = sf.info(path)
    assert (info.frames, info.samplerate, info.channels, info.subtype) == \
        (5 * (64 + 16000), 16000, 1, "PCM_16")
    audio, _ = sf.read(path, dtype="int16")
    for k in range(5):  # each slice is followed by 16000 zeros
        gap = audio[k * 16064 + 64:(k + 1) * 16064]
        assert len(gap) == 16000 and not gap.any()
        assert audio[k * 16064:k * 16064 + 64].any()


def test_generate_is_reproducible_with_seed(chain, tmp_path):
    root, _ = chain
    for out_dir in ("a", "b"):
        code, _, err = run("--num_blocks", "2", "--checkpoint_dir", root, "--generate", "3",
                             "--output_dir", str(tmp_path / out_dir))
        assert code == 0, err
    names = sorted(os.listdir(tmp_path / "a"))
    assert len(names) == 3 and names == sorted(os.listdir(tmp_path / "b"))
    for name in names:
        info = sf.info(str(tmp_path / "a" / name))
        assert (info.frames, info.samplerate, info.channels, info.subtype) == \
            (256, 16000, 1, "PCM_16")
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    first = [sf.read(str(tmp_path / "a" / n))[0] for n in names]
    assert not np.array_equal(first[0], first[1])  # different latents, different files


def test_other_configuration_is_refused_and_nothing_is_touched(chain):
    root, _ = chain
    directory = checkpoints.stage_dir(root, 1)
    before = {n: os.stat(os.path.join(directory, n)).st_mtime_ns for n in os.listdir(directory)}
    for flag in ("--use_sample_norm", "--no_feature_map_smoothing"):
        code, _, err = run("--num_blocks", "1", "--checkpoint_dir", root, flag)
        assert code == 2
        assert err.count("\n") == 1 and directory in err and "Traceback" not in err
    after = {n: os.stat(os.path.join(directory, n)).st_mtime_ns for n in os.listdir(directory)}
    assert before == after


@pytest.mark.parametrize("argv, message", [
    (["--num_blocks", "0"], "--num_blocks"),
    (["--num_blocks", "9"], "--num_blocks"),
    (["--num_blocks", "five"], "--num_blocks"),
    (["--batch_size", "0"], "--batch_size"),
    (["--learning_rate", "0"], "--learning_rate"),
    (["--augmentation_level", "10"], "--augmentation_level"),
    (["--max_steps", "0"], "--max_steps"),
    (["--save_every_secs", "0"], "--save_every_secs"),
    (["--summary_every_secs", "-1"], "--summary_every_secs"),
    (["--generate", "0"], "--generate"),
    (["--seed", "-3"], "--seed"),
    (["--once"], "--once"),
    (["--preview", "--generate", "2"], "--generate"),
    (["--duration", "3"], "--duration"),
    (["--interpolate", "1", "2", "--generate", "2"], "--interpolate"),
    (["--steps", "4"], "--steps"),
    (["--generate", "1", "--duration", "1", "--crossfade", "-1"], "--crossfade"),
    (["--num_blocks", "1", "--freeze_early_layers"], "--freeze_early_layers"),
    (["--data_dir", "/nonexistent/folder"], "/nonexistent/folder"),
    (["--data_dir", "{short}"], "a stage 5 window is 16384 samples"),
    (["--num_blocks", "8", "--batch_size", "4"], "gives 3 windows"),  # 144 s of 65 s windows
    (["--preview", "--once"], "no checkpoint"),
    (["--generate", "2"], "no checkpoint"),
])
def test_bad_flags_give_one_line_and_exit_2(argv, message, tmp_path):
    short = tmp_path / "short"
    short.mkdir()
    sf.write(str(short / "a.wav"), np.zeros(8000, dtype=np.int16), 16000)
    argv = [a.replace("{short}", str(short)) for a in argv]
    code, _, err = run(*argv, "--checkpoint_dir", str(tmp_path / "ck"))
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    # nothing written for bad input, but the decode cache of audio that was read
    ck = tmp_path / "ck"
    assert (set(os.listdir(ck)) if ck.exists() else set()) <= {"audio_cache"}


def copy_of_stage_1(chain, root):
    """A copy of the chain's stage-1 folder (its checkpoints at steps 2 and 3) under root."""
    source, target = checkpoints.stage_dir(chain[0], 1), checkpoints.stage_dir(str(root), 1)
    linked_stage_copy(source, target, only=lambda name: name.startswith("ckpt-")
                      or name in ("checkpoint", "config.json"))
    return target


def test_the_last_three_checkpoints_are_kept(tmp_path):
    """A choice (the original kept five): a stage-1 checkpoint is 394 MB. The rotation of a
    stage folder's saves (checkpoints.Saver's), with a checkpoint of one variable."""
    rotation = checkpoints.manager(tf.train.Checkpoint(v=tf.Variable(0.0)), str(tmp_path))
    for step in range(1, 5):
        checkpoints.save(rotation, step, size=4)
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".index")) == \
        ["ckpt-2.index", "ckpt-3.index", "ckpt-4.index"]


@pytest.mark.slow
def test_a_lost_checkpoint_list_and_partial_saves_are_recovered_at_the_next_start(chain,
                                                                                   tmp_path):
    """A missing `checkpoint` file beside whole checkpoints used to start a fresh run from
    step 0 in the same folder; what saves killed part-way left stayed for good."""
    directory = copy_of_stage_1(chain, tmp_path)
    os.remove(os.path.join(directory, "checkpoint"))
    os.makedirs(os.path.join(directory, "ckpt-4_temp_1234", "part-00000-of-00001"))
    code, out, err = run("--num_blocks", "1", "--max_steps", "4", "--checkpoint_dir",
                         str(tmp_path))
    assert code == 0, out + err
    assert "had lost its list of checkpoints" in out and "resumed at step 3" in out
    assert "removed ckpt-4_temp_1234" in out
    assert not os.path.exists(os.path.join(directory, "ckpt-4_temp_1234"))
    assert saved_step(checkpoints.latest_checkpoint(directory)) == 4


@pytest.mark.slow
def test_a_checkpoint_list_naming_a_checkpoint_that_is_gone_is_read_past(chain, tmp_path):
    """A `checkpoint` file naming a checkpoint that is not there (a copy, a restore from a
    backup) made --generate say "no checkpoint" and training start afresh at step 0 beside
    the whole checkpoints, which the rotation then removed."""
    directory = copy_of_stage_1(chain, tmp_path)
    with open(os.path.join(directory, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-99"\n')
    code, out, err = run("--num_blocks", "1", "--checkpoint_dir", str(tmp_path), "--generate",
                         "1", "--output_dir", str(tmp_path / "out"))
    assert code == 0 and "ckpt-3" in out, out + err
    code, out, err = run("--num_blocks", "1", "--max_steps", "4", "--checkpoint_dir",
                         str(tmp_path))
    assert code == 0, out + err
    assert "had lost its list of checkpoints" in out and "resumed at step 3" in out
    assert saved_step(checkpoints.latest_checkpoint(directory)) == 4


def damage(path, how):
    """Damage one file of a checkpoint copy: a new file in its place (the copy's files are
    hard links to the chain's), "cut" to half its length or "overwritten" with other bytes."""
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2] if how == "cut" else bytes(range(256)) * 8)


@pytest.mark.parametrize("name, how", [("ckpt-3.data-00000-of-00001", "cut"),
                                       ("ckpt-3.index", "overwritten")])
def test_a_damaged_checkpoint_is_one_line_naming_the_one_before(chain, tmp_path, name, how):
    """Was a traceback (IndexError, or "not an sstable") from --generate and from training;
    the damaged files are left as they were, and set aside the one before is used."""
    directory = copy_of_stage_1(chain, tmp_path)
    damage(os.path.join(directory, name), how)
    before = {n: os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory)}
    for job in (["--generate", "1", "--output_dir", str(tmp_path / "out")], ["--max_steps", "4"]):
        code, _, err = run("--num_blocks", "1", "--checkpoint_dir", str(tmp_path), *job)
        assert_one_line_error(code, err, f"cannot read {directory}{os.sep}ckpt-3 (",
                              "it is damaged", "out of the folder to use ckpt-2")
    assert {n: os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory)} \
        == before
    aside = tmp_path / "aside"
    aside.mkdir()
    for n in os.listdir(directory):
        if n.startswith("ckpt-3."):
            os.rename(os.path.join(directory, n), aside / n)
    code, out, err = run("--num_blocks", "1", "--checkpoint_dir", str(tmp_path), "--generate",
                         "1", "--output_dir", str(tmp_path / "out"))
    assert code == 0 and "ckpt-2" in out, out + err


@pytest.mark.parametrize("name, text", [("config.json", "[1, 2]"),
                                        ("best/best.json", '{"step": 3, "sco')])
def test_a_damaged_run_file_is_one_line_and_best_is_not_replaced(chain, tmp_path, name, text):
    """A config.json holding a list was an AttributeError traceback; a damaged best.json was
    read as no best, and the next evaluation replaced best/ with a worse checkpoint."""
    directory = copy_of_stage_1(chain, tmp_path)
    os.makedirs(os.path.dirname(os.path.join(directory, name)), exist_ok=True)
    with open(os.path.join(directory, name), "w") as f:
        f.write(text)
    code, _, err = run("--num_blocks", "1", "--max_steps", "4", "--eval_every_secs", "600",
                       "--checkpoint_dir", str(tmp_path))
    assert_one_line_error(code, err, f"cannot read {os.path.join(directory, name)} (",
                          "restore it or remove it")
    assert saved_step(checkpoints.latest_checkpoint(directory)) == 3
    assert read(os.path.join(directory, name)) == text


@pytest.mark.slow
def test_sigterm_stops_a_job_in_one_line_leaving_no_half_written_file(chain, tmp_path):
    """SIGTERM killed --generate at once, leaving its .wav.tmp (and an export its .export-*
    folder); now it stops as Ctrl+C does: exit code 130, one line, nothing half written."""
    out = tmp_path / "out"
    job = subprocess.Popen([sys.executable, "train_progressive.py", "--num_blocks", "1",
                            "--checkpoint_dir", chain[0], "--generate", "2", "--duration",
                            "3000", "--seed", "0", "--output_dir", str(out)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out.exists() and any(n.endswith(".tmp") for n in os.listdir(out))):
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=60)
    assert_one_line_error(job.returncode, err, "stopped (Ctrl+C or SIGTERM) before the end",
                          expected=130)
    assert os.listdir(out) == []


@pytest.mark.slow
def test_resuming_without_the_moving_average_says_so(chain, tmp_path):
    copy_of_stage_1(chain, tmp_path)
    code, out, err = run("--num_blocks", "1", "--max_steps", "4", "--checkpoint_dir",
                         str(tmp_path), "--ema_decay", "0")
    assert code == 0, out + err
    assert "has a moving-average generator but this run keeps none" in out


def test_a_checkpoint_path_of_another_run_is_read_with_its_own_config(chain, tmp_path):
    """--checkpoint PATH was built from --checkpoint_dir's config.json: another run's
    checkpoint was refused for want of one there, or restored into other networks."""
    other = copy_of_stage_1(chain, tmp_path / "other")
    code, out, err = run("--num_blocks", "1", "--checkpoint_dir", str(tmp_path / "empty"),
                         "--generate", "1", "--checkpoint", os.path.join(other, "ckpt-2"),
                         "--output_dir", str(tmp_path / "out"))
    assert code == 0 and f"from {os.path.join(other, 'ckpt-2')}" in out, out + err
    assert os.listdir(tmp_path / "out") == ["stage_00001_step00000002_seed0_0000.wav"]


def test_a_checkpoint_of_another_stage_is_named_with_the_flags_to_ask_for_it(chain):
    root, _ = chain
    path = os.path.join(checkpoints.stage_dir(root, 2, True), "ckpt-3")
    code, _, err = run("--num_blocks", "1", "--checkpoint_dir", root, "--generate", "1",
                       "--checkpoint", path)
    assert_one_line_error(code, err, "is a checkpoint of stage 2 (frozen transition)",
                          "add --num_blocks 2 --freeze_early_layers")


def test_a_checkpoint_that_is_not_there_is_one_line_naming_one_that_is(chain):
    root, _ = chain
    code, _, err = run("--num_blocks", "1", "--checkpoint_dir", root, "--generate", "1",
                       "--checkpoint", "ckpt-3")
    latest = checkpoints.latest_checkpoint(checkpoints.stage_dir(root, 1))
    assert_one_line_error(code, err, "--checkpoint ckpt-3: no checkpoint there",
                          f"e.g. {latest})")


def test_non_finite_loss_stops_without_saving(chain, tmp_path, monkeypatch):
    directory = copy_of_stage_1(chain, tmp_path)
    # A save that crashed half-way leaves files the checkpoint index does not name yet.
    for name in ("ckpt-5.index", "ckpt-5.data-00000-of-00001"):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(b"\0partial")
    before = {n: os.stat(os.path.join(directory, n)).st_mtime_ns for n in os.listdir(directory)
              if n.startswith("ckpt-") or n == "checkpoint"}
    monkeypatch.setattr(losses, "GP_WEIGHT", float("nan"))
    code, out, err = run("--num_blocks", "1", "--max_steps", "5", "--checkpoint_dir",
                         str(tmp_path))
    assert "resumed at step 3" in out  # the half-written save was not taken
    assert code == 1 and "non-finite" in err
    after = {n: os.stat(os.path.join(directory, n)).st_mtime_ns for n in os.listdir(directory)
             if n.startswith("ckpt-") or n == "checkpoint"}
    assert before == after
    assert saved_step(checkpoints.latest_checkpoint(directory)) == 3


def test_config_error_is_one_line_from_the_command(chain):
    """Run as a command, TensorFlow's start-up lines must not bury the one error line."""
    root, _ = chain
    command = [sys.executable, os.path.join(ROOT, "train_progressive.py"), *TINY,
               "--num_blocks", "1", "--checkpoint_dir", root, "--use_sample_norm"]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "use_sample_norm" in result.stderr


@pytest.mark.parametrize("seconds", [0.01, 0.016, 0.5])  # shorter than, equal to, longer than
def test_generate_with_duration_has_exact_length_and_repeats(chain, tmp_path, seconds):
    root, _ = chain  # stage 2: windows of 256 samples = 0.016 s
    for out_dir in ("a", "b"):
        code, _, err = run("--num_blocks", "2", "--checkpoint_dir", root, "--generate", "2",
                           "--duration", str(seconds), "--output_dir", str(tmp_path / out_dir))
        assert code == 0, err
    names = sorted(os.listdir(tmp_path / "a"))
    assert len(names) == 2
    for name in names:
        assert sf.info(str(tmp_path / "a" / name)).frames == round(seconds * 16000)
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_interpolate_goes_from_seed_a_to_seed_b(chain, tmp_path):
    root, _ = chain
    window, overlap = 256, 64  # default crossfade: a quarter of the window
    code, _, err = run("--num_blocks", "2", "--checkpoint_dir", root, "--interpolate", "11",
                       "12", "--steps", "5", "--output_dir", str(tmp_path))
    assert code == 0, err
    (path,) = [str(p) for p in tmp_path.iterdir()]
    morph = sf.read(path, dtype="int16")[0]
    assert len(morph) == 5 * window - 4 * overlap
    ends = {}
    for seed in ("11", "12"):
        out_dir = tmp_path / f"seed{seed}"
        assert run("--num_blocks", "2", "--checkpoint_dir", root, "--generate", "1", "--seed",
                   seed, "--output_dir", str(out_dir))[0] == 0
        (single,) = list(out_dir.iterdir())
        ends[seed] = sf.read(str(single), dtype="int16")[0].astype(int)
    # outside the crossfades, the first window is seed A's and the last is seed B's
    assert np.abs(morph[:window - overlap] - ends["11"][:window - overlap]).max() <= 1
    assert np.abs(morph[-(window - overlap):] - ends["12"][overlap:]).max() <= 1
    assert np.abs(ends["11"] - ends["12"]).max() > 100  # the two seeds do sound different


def limited(max_bytes, *argv):
    """train_progressive.py in a process that may write no file larger than max_bytes: writes
    past it fail with "File too large" (Python ignores SIGXFSZ), as on a full disk."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return subprocess.run([sys.executable, "train_progressive.py", *TINY, *argv], cwd=ROOT,
                          preexec_fn=limit, capture_output=True, text=True, check=False)


def file_digests(directory):
    digests = {}
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isfile(path) and not name.startswith(("events.", ".lock")):
            with open(path, "rb") as f:
                digests[name] = hashlib.sha256(f.read()).hexdigest()
    return digests


@pytest.mark.slow
def test_failed_save_stops_with_one_line_and_keeps_the_last_checkpoint(chain, tmp_path):
    root = str(tmp_path)
    directory = copy_of_stage_1(chain, tmp_path)
    before = file_digests(directory)
    data = os.path.join(directory, "ckpt-3.data-00000-of-00001")
    assert os.path.getsize(data) > 8e6  # so a 6 MB limit fails the next save

    result = limited(6_000_000, "--num_blocks", "1", "--max_steps", "4",
                     "--checkpoint_dir", root)
    assert result.returncode == 2, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error == [result.stderr.strip().splitlines()[-1]] and "Traceback" not in result.stderr
    assert (f"cannot save checkpoint 4 in {directory} (File too large; a checkpoint takes "
            f"{os.path.getsize(data) / 1e6:.0f} MB)") in error[0]
    assert f"it resumes from {os.path.join(directory, 'ckpt-3')}" in error[0]
    assert file_digests(directory) == before  # ckpt-2, ckpt-3, "checkpoint", config.json
    assert not [name for name in os.listdir(directory) if "_temp" in name]
    assert checkpoints.latest_checkpoint(directory).endswith("ckpt-3")
    networks_of(checkpoints.latest_checkpoint(directory), checkpoints.read_config(directory))  # whole


def test_failed_wav_write_is_one_line_and_leaves_no_partial_file(chain, tmp_path):
    root, _ = chain
    out_dir = tmp_path / "generated"
    result = limited(100_000, "--num_blocks", "2", "--checkpoint_dir", root, "--generate", "1",
                     "--duration", "10", "--output_dir", str(out_dir))  # 320 kB
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    assert last.startswith(f"error: cannot write {out_dir}/") and "(File too large)" in last
    assert os.listdir(out_dir) == []


# --------------------------------------------------------------------------- --evaluate

def test_progressive_evaluate_writes_metrics_pictures_and_the_table(chain):
    progressive, _ = chain
    code, out, err = run("--num_blocks", "1", "--checkpoint_dir", progressive, "--evaluate", "--num_eval_samples",
                         "16", "--seed", "3")
    assert code == 0, err
    folder = os.path.join(checkpoints.stage_dir(progressive, 1), "evaluation", "00000003")
    metrics = check_report(folder, 16, 64)
    # the demo has 36000 whole windows of 64 samples: the memorisation check takes a subset
    assert metrics["num_training"] == evaluate.EVAL_TRAINING_WINDOWS
    assert f"a random {evaluate.EVAL_TRAINING_WINDOWS} of the 36000 whole windows" in out
    table = metrics_module.format_table(metrics).splitlines()
    assert table[0] in out and "real vs real" in out  # the head, then the two references
    fmd = next(line for line in out.splitlines() if line.startswith("Frechet log-mel distance "))
    assert fmd.split()[4:6] == [
        metrics_module._show(metrics["frechet_mel_distance"]),
        metrics_module._show(metrics["reference.real.frechet_mel_distance"])]
    path = os.path.join(folder, "metrics.json")
    first = read(path)
    assert run("--num_blocks", "1", "--checkpoint_dir", progressive, "--evaluate",
               "--num_eval_samples", "16", "--seed", "3")[0] == 0
    assert read(path) == first  # the seed repeats it


def test_training_logs_the_pictures_as_image_summaries(chain):
    directory = checkpoints.stage_dir(chain[0], 1)
    images = {}
    for name in os.listdir(directory):
        if name.startswith("events.out.tfevents"):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
                for value in event.summary.value:
                    if value.metadata.plugin_data.plugin_name == "images":
                        images[value.tag] = value.tensor.string_val
    assert set(images) == {"evaluation/" + name[:-4] for name in PICTURES}
    for encoded in images.values():  # width, height, then the PNG
        picture = tf.io.decode_png(encoded[2]).numpy()
        assert picture.shape[:2] == (int(encoded[1]), int(encoded[0])) and picture.std() > 0


@pytest.fixture(scope="module")
def stereo_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stereo")
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, (4000, 2))
    sf.write(str(folder / "noise.wav"), noise, 16000)
    return str(folder)


@pytest.mark.parametrize("extra, expected", [
    (["--preview"], "--preview and --evaluate are separate jobs"),
    (["--generate", "2"], "--generate and --evaluate are separate jobs"),
    (["--interpolate", "1", "2"], "--interpolate and --evaluate are separate jobs"),
    (["--checkpoint_dir", "{empty}"], "no checkpoint in"),
    (["--data_dir", "{stereo}"], "makes 1-channel audio but"),
])
def test_bad_combinations_are_one_line_and_exit_2(chain, stereo_dir, tmp_path, extra, expected):
    extra = [a.format(empty=str(tmp_path), stereo=stereo_dir) for a in extra]
    argv = ["--num_blocks", "1", "--checkpoint_dir", chain[0], "--evaluate", *extra]
    code, _, err = run(*argv)
    assert code == 2 and err.count("\n") == 1 and expected in err and "Traceback" not in err


def test_num_eval_samples_needs_evaluate(chain):
    code, _, err = run("--num_blocks", "1", "--checkpoint_dir", chain[0], "--generate", "1",
                       "--num_eval_samples", "4")
    assert code == 2 and err.count("\n") == 1 and "--num_eval_samples goes with training or --evaluate" in err


