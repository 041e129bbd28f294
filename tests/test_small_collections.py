"""Small personal collections: the critic's adaptive augmentation (augment.py), the
validation split (dataloader.split_files, the quality curve's distance to training windows)
and fine-tuning from another run (--init_from)."""

import functools
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import DEMO, NARROW_DIVISOR, assert_one_line_error, saved_step, weights
from helpers import run as run_main

import augment
import checkpoints
import dataloader
import runs
import train_progressive

run = functools.partial(run_main, train_progressive.main)
CONFIG = {"num_blocks": 1, "channels": 1, "feature_map_smoothing": True,
          "use_sample_norm": False, "model_variant": "standard", "model": "progressive",
          "frozen": False, "sampling_rate": 16000, "feature_map_divisor": NARROW_DIVISOR}


# --------------------------------------------------------------------------- augmentations

@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
@pytest.mark.parametrize("channels", [1, 2])
def test_augmentations_keep_shape_and_dtype_and_are_differentiable(dtype, channels):
    pipe = augment.Augment(channels, p=1.0)  # every augmentation applied
    rng = tf.random.Generator.from_seed(0)
    x = tf.cast(tf.random.stateless_uniform([4, 256, channels], [1, 2], -0.5, 0.5), dtype)
    params = pipe.draw(rng, 4)
    assert params.shape == (4, augment.COLUMNS) and bool(tf.reduce_all(params[:, :7] == 1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = pipe(x, params)
        total = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
    grad = tape.gradient(total, x)
    assert y.shape == x.shape and y.dtype == dtype
    assert grad is not None and grad.shape == x.shape
    assert bool(tf.reduce_all(tf.math.is_finite(tf.cast(grad, tf.float32))))
    assert float(tf.reduce_max(tf.abs(tf.cast(y - x, tf.float32)))) > 0


def test_with_p_zero_nothing_changes_and_each_augmentation_does_what_it_says():
    x = tf.random.stateless_uniform([3, 512, 2], [3, 4], -0.5, 0.5)
    pipe = augment.Augment(2, p=0.0)
    params = pipe.draw(tf.random.Generator.from_seed(1), 3)
    np.testing.assert_array_equal(pipe(x, params).numpy(), x.numpy())

    def only(kind, amount):
        on = np.zeros((3, len(augment.KINDS)), np.float32)
        on[:, augment.KINDS.index(kind)] = 1
        return tf.constant(np.concatenate([on, np.full_like(on, amount)], axis=1))
    np.testing.assert_allclose(pipe(x, only("polarity", 0.3)), -x)
    np.testing.assert_allclose(pipe(x, only("swap", 0.3)), x.numpy()[:, :, ::-1])
    np.testing.assert_allclose(pipe(x, only("gain", 0.5)), x, atol=1e-6)  # the median: 0 dB
    shifted = pipe(x, only("shift", 0.0)).numpy()  # the most to the left: window / 8
    np.testing.assert_allclose(shifted, np.roll(x.numpy(), -64, axis=1))
    noisy = pipe(x, only("noise", 0.0)).numpy() - x.numpy()  # 20 dB under the RMS
    ratio = np.sqrt((noisy ** 2).mean()) / np.sqrt((x.numpy() ** 2).mean())
    assert 0.07 < ratio < 0.13


def test_p_moves_up_when_the_critic_overfits_and_down_when_it_does_not():
    """r_v: held-out music scored as generated audio (overfitting, 1) or as training music (0)
    against the target; p moves by ADJUST_EVERY x batch / ADA_WINDOWS, within [0, 0.8]."""
    overfit = augment.heuristic(train=2.0, validation=-1.9, generated=-2.0)
    healthy = augment.heuristic(train=2.0, validation=1.9, generated=-2.0)
    assert overfit == pytest.approx(0.975) and healthy == pytest.approx(0.025)
    step = augment.ADJUST_EVERY * 16 / augment.ADA_WINDOWS
    assert augment.adjusted(0.2, overfit, 0.5, 16) == pytest.approx(0.2 + step)
    assert augment.adjusted(0.2, healthy, 0.5, 16) == pytest.approx(0.2 - step)
    assert augment.adjusted(0.0, healthy, 0.5, 16) == 0.0
    assert augment.adjusted(0.8, overfit, 0.5, 16) == augment.P_MAX == 0.8


# --------------------------------------------------------------------------- in training

TINY_ADA = ["--data_dir", DEMO, "--num_blocks", "1", "--critic_augment", "ada",
            "--validation_fraction", "0.25", "--eval_every_secs", "1e-9",
            "--num_eval_samples", "8"]


@pytest.fixture(scope="module")
def ada_run(module_tmp):
    """Eight steps with --critic_augment ada, a validation split and an evaluation each step."""
    root = str(module_tmp / "ada")
    code, out, err = run(*TINY_ADA, "--checkpoint_dir", root, "--max_steps", "8")
    assert code == 0, out + err
    return checkpoints.stage_dir(root, 1), out


def test_p_is_saved_and_restored_bit_exact_and_shown(ada_run):
    directory, out = ada_run
    assert "  p +" in out and "r_v" in out
    assert "validation: 1 files" in out and "to training windows" in out
    path = checkpoints.latest_checkpoint(directory)
    saved = dict(tf.train.list_variables(path))
    assert "critic_augment/p/.ATTRIBUTES/VARIABLE_VALUE" in saved
    p = tf.train.load_variable(path, "critic_augment/p/.ATTRIBUTES/VARIABLE_VALUE")
    pipe = augment.Augment(1)
    run_ = runs.build_run(train_progressive.RECIPE, CONFIG, "float32", None, seed=0,
                          augment=True)
    checkpoints.resume(run_, path)
    assert run_.iteration.augment.p.numpy().tobytes() == np.float32(p).tobytes()
    assert pipe.p.numpy() == 0.0  # a new one starts at 0


def test_training_writes_the_validation_and_training_distances(ada_run):
    from helpers import tensorboard_scalars
    directory, out = ada_run
    scalars = tensorboard_scalars(directory)
    evaluations = out.count("evaluation at step")
    assert evaluations >= 2
    assert len(scalars["Eval/frechet_mel_distance"]) == evaluations
    assert len(scalars["Eval/train_frechet_mel_distance"]) == evaluations
    assert "ADA/p" in scalars and "ADA/r_v" in scalars


# --------------------------------------------------------------------------- validation split

def test_the_validation_split_is_whole_files_disjoint_from_training():
    audio = dataloader.load_audio(DEMO, 16000, log=lambda line: None)
    train, held = dataloader.split_files(audio, 0.25)
    assert len(held.files) == 1 and len(train.files) == 3
    assert not set(train.files) & set(held.files)
    assert sorted(train.files + held.files) == sorted(audio.files)
    assert train.num_samples + held.num_samples == audio.num_samples
    again, _ = dataloader.split_files(audio, 0.25)
    assert again.files == train.files  # the same files every time
    whole = np.asarray(audio.buffer)
    starts = np.cumsum([0] + [len(s) for s in audio.buffer.sources])
    index = audio.files.index(held.files[0])
    np.testing.assert_array_equal(np.asarray(held.buffer), whole[starts[index]:starts[index + 1]])


@pytest.mark.parametrize("argv, message", [
    (["--validation_fraction", "0.6"], "must be at most 0.5"),
    (["--validation_fraction", "0"], "must be greater than 0"),
    (["--critic_augment", "ada"], "add --validation_fraction"),
    (["--init_from", "nowhere", "--generate", "1"], "go with training"),
])
def test_bad_small_collection_flags_are_one_line(argv, message, tmp_path):
    code, _, err = run(*argv, "--checkpoint_dir", str(tmp_path / "ck"))
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "ck").exists()


def test_a_validation_split_of_one_file_is_refused(tmp_path):
    import soundfile as sf
    sf.write(str(tmp_path / "only.wav"), np.zeros(20000, np.int16), 16000)
    code, _, err = run("--data_dir", str(tmp_path), "--num_blocks", "1",
                       "--validation_fraction", "0.5", "--checkpoint_dir", str(tmp_path / "ck"))
    assert_one_line_error(code, err, "needs two or more")


# --------------------------------------------------------------------------- fine-tuning

@pytest.fixture(scope="module")
def source(module_tmp):
    root = str(module_tmp / "source")
    code, out, err = run("--num_blocks", "1", "--max_steps", "2", "--checkpoint_dir", root)
    assert code == 0, out + err
    return checkpoints.stage_dir(root, 1)


def test_init_from_copies_the_weights_exactly_and_starts_at_step_0(source, tmp_path):
    run_ = runs.build_run(train_progressive.RECIPE, CONFIG, "float32", None, seed=5,
                          average_rule=None)
    _, how = checkpoints.start_stage(run_, str(tmp_path), 1, False, CONFIG,
                                     init_from=source)
    assert how.startswith("fine-tuning from") and int(run_.step.numpy()) == 0
    nets = train_progressive.build_networks(CONFIG, "float32")
    tf.train.Checkpoint(**nets).restore(checkpoints.latest_checkpoint(source)).expect_partial()
    for name, net in nets.items():
        ours, theirs = weights(run_.networks[name]), weights(net)
        assert all(np.array_equal(ours[k], theirs[k]) for k in theirs), name
    assert all(float(opt.iterations.numpy()) == 0 for opt in run_.optimizers.values())


@pytest.mark.slow
def test_fine_tuning_trains_a_new_stage_from_another_run(source, tmp_path):
    code, out, err = run("--num_blocks", "1", "--max_steps", "1", "--checkpoint_dir",
                         str(tmp_path / "new"), "--init_from", os.path.join(source, "best"))
    assert code == 2 and "no checkpoint there" in err  # the source kept no best/
    code, out, err = run("--num_blocks", "1", "--max_steps", "1", "--checkpoint_dir",
                         str(tmp_path / "new"), "--init_from", source)
    assert code == 0, out + err
    assert "fine-tuning from" in out and "stopped at step 1" in out
    path = checkpoints.latest_checkpoint(checkpoints.stage_dir(str(tmp_path / "new"), 1))
    assert saved_step(path) == 1
    code, out, err = run("--num_blocks", "1", "--max_steps", "2", "--checkpoint_dir",
                         str(tmp_path / "new"), "--init_from", source)
    assert_one_line_error(code, err, "already holds checkpoints")


@pytest.mark.slow
def test_init_from_another_stage_or_model_is_one_line(source, tmp_path):
    code, _, err = run("--num_blocks", "2", "--checkpoint_dir", str(tmp_path / "new"),
                       "--init_from", source)
    assert_one_line_error(code, err, "made with num_blocks=1", "num_blocks=2")
    code, _, err = run("--num_blocks", "1", "--checkpoint_dir", str(tmp_path / "new"),
                       "--init_from", str(tmp_path / "missing"))
    assert_one_line_error(code, err, "no checkpoint there")
