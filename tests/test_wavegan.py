"""Tests of the WaveGAN baseline: model.py and train.py (report §7.4, §7.5).

Expected parameter counts are written here from the layer sizes of §7.4, never read from
model.py. One tiny training run (batch 2, 2 steps, then resumed to 3) on the bundled demo data
is shared by the tests of training, preview and generation.
"""

import functools
import itertools
import os

import keras
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from helpers import DEMO, assert_checkpoint_keys_unchanged, check_report, ema_and_raw, saved_step
from helpers import run as run_main

import adam
import checkpoints
import model
import rules
import train

run = functools.partial(run_main, train.main, tiny=False)
WINDOW = 16384
KERNEL = 25


def conv_params(n_in, n_out, kernel=KERNEL):
    return kernel * n_in * n_out + n_out


def expected_generator_params(channels):
    """Dense 100 -> 16x1024, then transposed convolutions 1024 -> 512 -> 256 -> 128 -> 64 -> C."""
    maps = (1024, 512, 256, 128, 64, channels)
    return 100 * 16 * 1024 + 16 * 1024 + sum(conv_params(a, b) for a, b in itertools.pairwise(maps))


def expected_discriminator_params(channels):
    """Convolutions C -> 64 -> 128 -> 256 -> 512 -> 1024, then dense 16x1024 -> 1."""
    maps = (channels, 64, 128, 256, 512, 1024)
    return sum(conv_params(a, b) for a, b in itertools.pairwise(maps)) + 16 * 1024 + 1


def count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def reference_shift(x, s):
    """x [time, channels] shifted by s (out[t] = x[t - s]) with edges reflected about the
    first and last sample, written out index by index."""
    last = len(x) - 1
    out = np.empty_like(x)
    for t in range(len(x)):
        i = t - s
        i = -i if i < 0 else (2 * last - i if i > last else i)
        out[t] = x[i]
    return out


# ---------------------------------------------------------------------------------------------
# networks

@pytest.mark.parametrize("channels", [1, 2])
def test_parameter_counts_follow_the_architecture(channels):
    generator, discriminator = model.Generator(channels), model.Discriminator(channels)
    assert count(generator.trainable_variables) == expected_generator_params(channels)
    assert count(discriminator.trainable_variables) == expected_discriminator_params(channels)


def test_every_convolution_can_run_in_either_form():
    """The baseline's convolutions are the progressive model's: either form, one output."""
    import model_progressive as mp
    generator = model.Generator(1)
    layers = [layer for layer in generator.named_layers().values()
              if isinstance(layer, mp.Convolution)]
    assert len(layers) == 5
    z = tf.random.uniform([2, 100], -1, 1, seed=2)
    framework = generator(z).numpy()
    for layer in layers:
        layer.form = "matmul"
    np.testing.assert_allclose(generator(z).numpy(), framework, rtol=1e-4, atol=1e-5)


def test_checkpoint_holds_every_layer_by_name(tmp_path):
    """Layers are named attributes, so every parameter is saved under its network (Keras 3
    does not checkpoint layers kept in Python lists)."""
    networks = train.build_networks({"channels": 1, "phaseshuffle_rad": 2}, "float32")
    path = tf.train.Checkpoint(**networks).save(str(tmp_path / "ckpt"))
    sizes = {}
    for key, shape in tf.train.list_variables(path):
        sizes[key.split("/")[0]] = sizes.get(key.split("/")[0], 0) + int(np.prod(shape))
    assert sizes["generator"] == expected_generator_params(1)
    assert sizes["discriminator"] == expected_discriminator_params(1)


def test_mixed_precision_keeps_outputs_and_variables_float32():
    generator = model.Generator(2, dtype="mixed_bfloat16")
    discriminator = model.Discriminator(2, dtype="mixed_bfloat16")
    audio = generator(tf.random.uniform([1, 100], -1.0, 1.0))
    assert audio.shape == (1, WINDOW, 2) and audio.dtype == tf.float32
    assert discriminator.downconv_0.compute_dtype == "bfloat16"
    assert discriminator.prediction.compute_dtype == "float32"
    assert discriminator(audio).dtype == tf.float32
    assert {v.dtype for v in generator.trainable_variables + discriminator.trainable_variables} \
        == {"float32"}


def test_phaseshuffle_radius_is_bounded_by_the_shortest_layer():
    assert rules.MAX_PHASESHUFFLE_RAD == 63
    critic = train.build_networks({"channels": 1, "phaseshuffle_rad": 63}, "float32")
    critic = critic["discriminator"]
    assert critic.phaseshuffle_rad == 63
    assert critic(tf.random.uniform([1, WINDOW, 1], -1.0, 1.0)).shape == (1, 1)
    with pytest.raises(ValueError):
        model.Discriminator(1, phaseshuffle_rad=64)


# ---------------------------------------------------------------------------------------------
# phase shuffle

def test_phase_shuffle_radius_0_is_the_identity():
    x = tf.random.uniform([4, 64, 3])
    out = model.phase_shuffle(x, 0, keras.random.SeedGenerator(0))
    assert out.shape == x.shape and np.array_equal(out.numpy(), x.numpy())


def observed_shift(x, out, rad):
    """The one shift s in [-rad, rad] that turns every example of x into out."""
    found = [s for s in range(-rad, rad + 1)
             if all(np.array_equal(out[b], reference_shift(x[b], s)) for b in range(len(x)))]
    assert len(found) == 1, "the batch is no reflected shift of its input by one amount"
    return found[0]


@pytest.mark.parametrize("rad", [1, 2, 5])
def test_phase_shuffle_shifts_the_whole_batch_by_one_offset(rad):
    # As the original (and chrisdonahue/wavegan): one shift per layer per batch.
    x = np.random.default_rng(rad).standard_normal([8, 40, 3]).astype(np.float32)
    seed = keras.random.SeedGenerator(rad)
    shuffle = tf.function(lambda x: model.phase_shuffle(x, rad, seed))
    # one trace, many calls: a shift is drawn anew at each call, over the whole range
    shifts = [observed_shift(x, shuffle(tf.constant(x)).numpy(), rad) for _ in range(60)]
    assert set(shifts) == set(range(-rad, rad + 1))


def shift_sequence(seed_generator, x, count, rad=2):
    return [observed_shift(x, model.phase_shuffle(tf.constant(x), rad, seed_generator).numpy(),
                           rad) for _ in range(count)]


def test_phase_shuffle_state_in_a_checkpoint_continues_the_shift_sequence(tmp_path):
    x = np.random.default_rng(0).standard_normal([2, 40, 1]).astype(np.float32)
    whole = shift_sequence(model.Discriminator(1, seed=5).phase_shuffle_seed, x, 12)
    first = model.Discriminator(1, seed=5)
    assert shift_sequence(first.phase_shuffle_seed, x, 6) == whole[:6]
    path = tf.train.Checkpoint(**first.random_state()).save(str(tmp_path / "ckpt"))
    resumed = model.Discriminator(1, seed=99)  # another stream until restored
    tf.train.Checkpoint(**resumed.random_state()).restore(path).assert_consumed()
    assert shift_sequence(resumed.phase_shuffle_seed, x, 6) == whole[6:]


def test_phase_shuffle_has_a_second_derivative_in_tf_function():
    """The gradient penalty differentiates the critic's input gradient again (losses.py)."""
    w = tf.Variable(tf.random.uniform([1, 1, 3], 0.5, 1.5))
    seed = keras.random.SeedGenerator(0)

    @tf.function
    def penalty_gradient(x):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = tf.reduce_sum(tf.square(model.phase_shuffle(x * w, 2, seed)))
            norm = tf.norm(inner.gradient(y, x))
        return outer.gradient(norm, w)

    grad = penalty_gradient(tf.random.uniform([4, 64, 3]))
    assert grad is not None and bool(tf.reduce_all(tf.math.is_finite(grad)))
    assert bool(tf.reduce_any(grad != 0))


# ---------------------------------------------------------------------------------------------
# training, preview, generation

@pytest.fixture(scope="module")
def trained(module_tmp):
    """Two steps from scratch, then resumed to step 3, in one checkpoint folder."""
    root = str(module_tmp)
    base = ["--data_dir", DEMO, "--batch_size", "2", "--seed", "0", "--checkpoint_dir", root]
    consoles = []
    for max_steps in ("2", "3"):
        code, out, err = run(*base, "--max_steps", max_steps)
        assert code == 0, out + err
        consoles.append(out)
    return root, consoles


def test_checkpoints_keep_the_variable_paths_of_earlier_versions(trained):
    assert_checkpoint_keys_unchanged(trained[0], "wavegan")


def test_training_resumes_at_the_saved_step(trained):
    root, (fresh, resumed) = trained
    assert "fresh start" in fresh and "stopped at step 2" in fresh
    assert "resumed at step 2" in resumed
    assert saved_step(checkpoints.latest_checkpoint(root)) == 3
    average, raw = ema_and_raw(checkpoints.latest_checkpoint(root), checkpoints.read_config(root),
                               train.build_networks)  # the moving average, resumed
    assert any(not np.array_equal(average[k], raw[k]) for k in average)
    assert checkpoints.read_config(root) == {"model": "wavegan", "num_blocks": 5, "frozen": False,
                                        "channels": 1, "sampling_rate": 16000,
                                        "phaseshuffle_rad": 2}


def phase_shuffle_state(path):
    state = model.Discriminator(1).phase_shuffle_seed.state
    tf.train.Checkpoint(phase_shuffle=state).restore(path).expect_partial()
    return state.numpy().tolist()


def test_resumed_run_continues_the_phase_shuffle_sequence(trained):
    """The stream's state is [seed, draws so far]: an iteration draws the same number of
    shifts every time, so after the resumed third iteration it has drawn 3/2 of what it had
    at step 2, as an uninterrupted run has; a stream started afresh would be at 1/2."""
    root, _ = trained
    (seed2, drawn2), (seed3, drawn3) = (phase_shuffle_state(os.path.join(root, f"ckpt-{n}"))
                                        for n in (2, 3))
    assert seed3 == seed2 and drawn2 > 0 and drawn3 == drawn2 * 3 // 2


@pytest.mark.slow
def test_checkpoint_without_phase_shuffle_state_resumes_with_a_note(trained, tmp_path):
    """A checkpoint of an earlier version (no phase_shuffle entry) still resumes."""
    root, _ = trained
    config = checkpoints.read_config(root)
    old = train.build_networks(config, "float32")
    optimizers = {f"{name}_optimizer": adam.make_optimizer() for name in old}
    for name, network in old.items():
        optimizers[f"{name}_optimizer"].build(network.trainable_variables)
    step, rng = tf.Variable(0, dtype=tf.int64), tf.random.Generator.from_seed(0)
    parts = dict(step=step, rng=rng, **old, **optimizers)
    checkpoints.restore(tf.train.Checkpoint(**parts), checkpoints.latest_checkpoint(root), partial=True)
    folder = tmp_path / "old"
    checkpoints.write_config(str(folder), config)
    tf.train.CheckpointManager(tf.train.Checkpoint(**parts), str(folder),
                               max_to_keep=1).save(checkpoint_number=3)
    code, out, err = run("--data_dir", DEMO, "--batch_size", "2", "--seed", "0",
                         "--checkpoint_dir", str(folder), "--max_steps", "3")
    assert code == 0, out + err  # it resumed, then had nothing to train
    assert "resumed at step 3" in out and "has no phase_shuffle (an earlier version" in out


def test_preview_once_writes_five_slices_with_half_window_gaps(trained):
    root, _ = trained
    code, _, err = run("--checkpoint_dir", root, "--preview", "--once", "--seed", "0")
    assert code == 0, err
    path = os.path.join(root, "preview", "00000003.wav")
    info = sf.info(path)
    span = WINDOW + WINDOW // 2
    assert (info.frames, info.samplerate, info.channels, info.subtype) == \
        (5 * span, 16000, 1, "PCM_16")
    audio, _ = sf.read(path, dtype="int16")
    for k in range(5):
        assert audio[k * span:k * span + WINDOW].any()
        assert not audio[k * span + WINDOW:(k + 1) * span].any()


def test_generate_writes_one_window_per_file(trained, tmp_path):
    root, _ = trained
    code, _, err = run("--checkpoint_dir", root, "--generate", "2", "--seed", "0",
                       "--output_dir", str(tmp_path))
    assert code == 0, err
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 2
    for name in names:
        info = sf.info(str(tmp_path / name))
        assert (info.frames, info.samplerate, info.channels, info.subtype) == \
            (WINDOW, 16000, 1, "PCM_16")


def test_preview_and_generate_take_channels_from_the_checkpoint(tmp_path):
    """A stereo checkpoint (written here, untrained) gives stereo files."""
    root = tmp_path / "stereo"
    config = {"model": "wavegan", "num_blocks": 5, "frozen": False, "channels": 2,
              "sampling_rate": 16000, "phaseshuffle_rad": 2}
    checkpoints.write_config(str(root), config)
    generator = train.build_networks(config, "float32", generator_only=True)["generator"]
    step = tf.Variable(7, dtype=tf.int64)
    tf.train.CheckpointManager(tf.train.Checkpoint(generator=generator, step=step), str(root),
                               max_to_keep=1).save(checkpoint_number=7)
    code, out, err = run("--checkpoint_dir", str(root), "--preview", "--once", "--seed", "1")
    assert code == 0, err
    assert "has no moving-average generator" not in out  # preview says nothing of it
    code, out, err = run("--checkpoint_dir", str(root), "--generate", "1", "--seed", "1",
                         "--output_dir", str(tmp_path / "note"))
    assert code == 0 and "has no moving-average generator" in out  # a checkpoint without it
    assert sf.info(str(root / "preview" / "00000007.wav")).channels == 2
    out = tmp_path / "out"
    assert run("--checkpoint_dir", str(root), "--generate", "1", "--seed", "1",
               "--output_dir", str(out))[0] == 0
    (name,) = os.listdir(out)
    assert (sf.info(str(out / name)).frames, sf.info(str(out / name)).channels) == (WINDOW, 2)


def assert_one_line_error(tmp_path, message, *argv):
    code, _, err = run(*argv, "--data_dir", DEMO, "--checkpoint_dir", str(tmp_path / "ck"))
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    # nothing written for bad input, but the decode cache of audio that was read
    ck = tmp_path / "ck"
    assert (set(os.listdir(ck)) if ck.exists() else set()) <= {"audio_cache"}


@pytest.mark.parametrize("rad", ["-1", "64", "two"])
def test_bad_phaseshuffle_rad_gives_one_line_and_exit_2(rad, tmp_path):
    assert_one_line_error(tmp_path, "--phaseshuffle_rad", "--phaseshuffle_rad", rad)


@pytest.mark.parametrize("job", [("--preview", "--once"), ("--generate", "2")])
def test_no_checkpoint_gives_one_line_and_exit_2(job, tmp_path):
    assert_one_line_error(tmp_path, "no checkpoint", *job)


def test_progressive_checkpoints_are_refused(tmp_path):
    """Preview and generation read config.json first: another trainer's folder is one line."""
    checkpoints.write_config(str(tmp_path), {"model": "progressive", "num_blocks": 5,
                                             "channels": 1})
    tf.train.Checkpoint(step=tf.Variable(1, dtype=tf.int64)).save(str(tmp_path / "ckpt"))
    code, _, err = run("--checkpoint_dir", str(tmp_path), "--generate", "1")
    assert code == 2 and err.count("\n") == 1
    assert "made with model=progressive but this run asks for model=wavegan" in err


def test_wavegan_evaluate_searches_every_whole_window(trained):
    wavegan, _ = trained
    code, out, err = run("--data_dir", DEMO, "--checkpoint_dir", wavegan, "--evaluate",
                         "--num_eval_samples", "6", "--seed", "0")
    assert code == 0, err
    metrics = check_report(os.path.join(wavegan, "evaluation", "00000003"), 6, 16384)
    whole = sum(sf.info(os.path.join(DEMO, n)).frames for n in os.listdir(DEMO)) // 16384
    assert metrics["num_training"] == whole and f"over all {whole} whole windows" in out


