"""The progressive VAE-GAN (report §7.3, §7.7): model_vaegan.py and train_progressive_vaegan.py.

Expected sizes are literals from the report's tables (nf per block), not derived from the code.
Training runs tiny stages (1 and 2, batch 2) on the bundled demo data, as one chain shared by
most tests: stage 1 fresh -> frozen 2 grown from 1 (a checkpoint every step) -> stage 2 from
frozen 2.
"""

import functools
import math
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from helpers import (
    DEMO,
    NARROW_DIVISOR,
    ROOT,
    assert_checkpoint_keys_unchanged,
    ema_and_raw,
    networks_of,
    saved_step,
    tensorboard_tags,
    weights,
)
from helpers import run as run_main

import adam
import checkpoints
import iteration as iterations
import longform
import losses
import model_vaegan as mv
import precision
import runs
import train_progressive_vaegan as tv
from rules import GRAPHS
from utils import to_int16

run = functools.partial(run_main, tv.main)
NF = (1024, 512, 256, 128, 64, 48, 32, 24, 16)  # nf(b), b = 0..8, smoothed (§7.6)
LATENT, FEATURES, KERNEL = 100, 16 * 1024, 25
CONFIG = {"num_blocks": 1, "channels": 1, "feature_map_smoothing": True,
          "use_sample_norm": False}


def block(b):
    return f"progressive_block_{b}"


# --------------------------------------------------------------------------- the encoder

def expected_encoder_params(stage, channels):
    """D's 1x1 input and blocks N..1 (table 7.2), then the mu and log sigma^2 heads."""
    params = {block(stage) + "_input": channels * NF[stage] + NF[stage]}
    for b in range(stage, 0, -1):
        params[block(b)] = KERNEL * NF[b] * NF[b - 1] + NF[b - 1]
    params["mean"] = params["log_variance"] = FEATURES * LATENT + LATENT
    return params


@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("stage", range(1, 9))
def test_encoder_parameter_counts(stage, channels):
    E = mv.Encoder(stage, channels)
    expected = expected_encoder_params(stage, channels)
    layers = E.named_layers()
    assert list(layers) == list(expected)  # D's names and order, then the heads
    assert {name: layer.count_params() for name, layer in layers.items()} == expected
    assert E.count_params() == sum(expected.values())
    assert E.name == "encoder" and len(E.weights) == 2 * len(expected)  # no critic score


def test_encoder_parameter_count_spot_value():
    # 1*512 + 512 + 25*512*1024 + 1024 + 2 * (16384*100 + 100), worked out by hand
    assert mv.Encoder(1, 1).count_params() == 16_386_248


def test_encoder_freezes_its_early_blocks_only():
    E = mv.Encoder(3)
    E.freeze_early_layers()
    trainable = {id(v) for v in E.trainable_variables}
    for name, layer in E.named_layers().items():
        expected = name not in (block(1), block(2))  # the heads train, like D's dense layer
        assert all((id(v) in trainable) == expected for v in layer.weights), name


def test_encoder_outputs_and_reparameterised_latent():
    E = mv.Encoder(2, 2, dtype="mixed_bfloat16")
    x = tf.random.uniform([3, 256, 2], -0.5, 0.5, seed=1)
    mean, log_variance = E(x)
    assert mean.shape == log_variance.shape == (3, LATENT)
    assert mean.dtype == log_variance.dtype == tf.float32  # they feed the losses
    noise = tf.random.Generator.from_seed(7).normal([3, LATENT])
    z = mv.reparameterise(mean, log_variance, noise)
    noise = noise.numpy()
    expected = mean.numpy() + noise * np.exp(log_variance.numpy() / 2)
    np.testing.assert_allclose(z.numpy(), expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- the losses

def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    zeros = tf.zeros([4, LATENT])
    assert losses.kl_divergence(zeros, zeros).numpy().tolist() == [0.0] * 4
    rng = np.random.default_rng(0)
    for mean, log_variance in ((rng.standard_normal((4, LATENT)), np.zeros((4, LATENT))),
                               (np.zeros((4, LATENT)), rng.standard_normal((4, LATENT))),
                               (rng.standard_normal((4, LATENT)), rng.standard_normal((4, LATENT)))):
        kl = losses.kl_divergence(tf.constant(mean, tf.float32),
                              tf.constant(log_variance, tf.float32)).numpy()
        terms = 0.5 * (-log_variance + np.exp(log_variance) + mean ** 2 - 1)
        assert (kl > 0).all()
        np.testing.assert_allclose(kl, terms.sum(axis=1), rtol=1e-5)


def test_reconstruction_term_sums_over_the_batch():
    d_real, d_fake = np.array([[1.0], [-2.0], [0.5]]), np.array([[0.0], [1.0], [0.5]])
    recon = float(losses.reconstruction_loss(tf.constant(d_real), tf.constant(d_fake)))
    # the original's variance: exp(0) + 1e-6
    assert recon == pytest.approx(0.5 * (3 * math.log(2 * math.pi) + (1 + 9 + 0) / (1 + 1e-6)),
                                  rel=1e-9)


# --------------------------------------------------------------------------- one iteration

def optimisers_for(nets, loss_scale=None):
    """One Adam of the report's per network, built on its trainable variables, as runs.build_run's."""
    optimizers = {name + "_optimizer": adam.make_optimizer(loss_scale) for name in nets}
    for name, net in nets.items():
        optimizers[name + "_optimizer"].build(net.trainable_variables)
    return optimizers


class SpyGenerator:
    """The generator, recording its calls and how far each latent lies from `expected`."""

    def __init__(self, generator, expected):
        self.generator, self.expected = generator, tf.constant(expected, tf.float32)
        self.calls, self.farthest = tf.Variable(0), tf.Variable(0.0)

    @property
    def trainable_variables(self):
        return self.generator.trainable_variables

    def __call__(self, z):
        self.calls.assign_add(1)
        self.farthest.assign(tf.maximum(self.farthest,
                                        tf.reduce_max(tf.abs(z - self.expected))))
        return self.generator(z)


@pytest.fixture(scope="module")
def iteration():
    """One VAE-GAN iteration on stage 1 with the loss-scale path, on silent audio.

    The encoder's mu head is set to a constant (kernel 0, bias 2..4) and its log sigma^2 to
    -30, so every z it gives is that constant to within 1e-6; an Adam step moves a bias by
    at most ~1e-4. Latents from the prior would lie about 3 away from it.
    """
    nets = tv.build_networks(CONFIG, "float32")
    E = nets["encoder"]
    mu = np.linspace(2.0, 4.0, LATENT, dtype=np.float32)
    E.mean.kernel.assign(tf.zeros_like(E.mean.kernel))
    E.mean.bias.assign(mu)
    E.log_variance.kernel.assign(tf.zeros_like(E.log_variance.kernel))
    E.log_variance.bias.assign(tf.fill([LATENT], -30.0))
    optimizers = optimisers_for(nets, precision.LOSS_SCALE)
    spy = SpyGenerator(nets["generator"], mu)
    step, rng = tf.Variable(0, dtype=tf.int64), tf.random.Generator.from_seed(0)
    gan = iterations.VAEGANIteration({**nets, "generator": spy}, optimizers, step, rng, None,
                                     precision.LOSS_SCALE, graph=GRAPHS[1])
    before = {name: weights(net) for name, net in nets.items()}
    silence = tf.data.Dataset.from_tensors(tf.zeros([2, 64, 1])).repeat()
    out = gan(iter(silence))
    return SimpleNamespace(nets=nets, optimizers=optimizers, spy=spy, step=step, before=before,
                           out=out)


def test_one_iteration_updates_e_d_and_g_each_with_its_own_optimiser(iteration):
    assert bool(iteration.out["finite"]) and int(iteration.step.numpy()) == 1
    counts = {name: int(opt.iterations.numpy()) for name, opt in iteration.optimizers.items()}
    assert counts == {"encoder_optimizer": 1, "discriminator_optimizer": 5,
                      "generator_optimizer": 1}
    for name, net in iteration.nets.items():
        assert iteration.optimizers[name + "_optimizer"].loss_scale_factor == 32.0
        before, after = iteration.before[name], weights(net)
        assert any(not np.array_equal(before[k], after[k]) for k in after), name


def test_the_generator_trains_on_the_encoders_latent(iteration):
    assert int(iteration.spy.calls.numpy()) == 7  # the E step, 5 D steps, the G step
    assert float(iteration.spy.farthest.numpy()) < 1e-3


def numbered_batches():
    """Batch i of silence-like audio, every sample i / 1000: a batch tells its position."""
    return tf.data.Dataset.range(1 << 20).map(
        lambda i: tf.fill([2, 64, 1], tf.cast(i, tf.float32) / 1000.0))


@pytest.mark.slow
def test_one_iteration_consumes_seven_batches():
    """As the original: the encoder update, 5 critic updates and the generator update each
    draw a fresh batch of real audio."""
    nets = tv.build_networks(CONFIG, "float32")
    gan = iterations.VAEGANIteration(nets, optimisers_for(nets), tf.Variable(0, dtype=tf.int64),
                                     tf.random.Generator.from_seed(0), None, None,
                                     graph=GRAPHS[1])
    iterator = iter(numbered_batches())
    out = gan(iterator)
    assert float(out["real"][0, 0, 0]) == pytest.approx(0.006)  # G's batch: the seventh
    assert float(next(iterator)[0, 0, 0]) == pytest.approx(0.007)  # none more was taken


@pytest.mark.slow
def test_a_wgan_gp_iteration_consumes_five_batches():
    """The plain GAN's generator loss reads no real audio: one batch per critic update."""
    import train_progressive
    nets = train_progressive.build_networks(CONFIG | {"model_variant": "standard"}, "float32")
    rng = tf.random.Generator.from_seed(0)
    gan = iterations.Iteration(nets, optimisers_for(nets), tf.Variable(0, dtype=tf.int64),
                               rng, lambda batch: runs.draw_latent(rng, batch, "uniform"),
                               None, graph=GRAPHS[1])
    iterator = iter(numbered_batches())
    gan(iterator)
    assert float(next(iterator)[0, 0, 0]) == pytest.approx(0.005)


def copy_of(name, values):
    """A fresh stage-1 network `name` holding the weights `values` (from weights())."""
    net = tv.build_networks(CONFIG, "float32")[name]
    for layer_name, layer in net.named_layers().items():
        for i, variable in enumerate(layer.weights):
            variable.assign(values[f"{layer_name}/{i}"])
    return net


def recon(d_real, d_fake):
    return 0.5 * np.sum(np.log(2 * np.pi) + (d_real.numpy() - d_fake.numpy()) ** 2 / (1 + 1e-6))


def test_iteration_losses_follow_the_report(iteration):
    nets, before, out = iteration.nets, iteration.before, iteration.out
    G0, D0 = copy_of("generator", before["generator"]), copy_of("discriminator",
                                                                before["discriminator"])
    silence, mu = tf.zeros([2, 64, 1]), np.linspace(2.0, 4.0, LATENT)
    scalars = {tag: float(value) for tag, value in out["scalars"].items()}
    assert set(scalars) == {"Encoder_loss/KL_divergence", "Encoder_loss/Reconstruction_loss"}
    # The E step, first: every network as it started; sigma = e^-15, so z = mu.
    assert scalars["Encoder_loss/KL_divergence"] == pytest.approx((0.5 * (29 + mu ** 2)).sum(),
                                                                  rel=1e-5)
    z = tf.constant(np.tile(mu, (2, 1)), tf.float32)
    assert scalars["Encoder_loss/Reconstruction_loss"] == pytest.approx(
        recon(D0(silence), D0(G0(z))), rel=1e-5)
    # The G step, last: D and E as they end the iteration, G as it started it.
    mean = nets["encoder"](silence)[0]
    d_fake = nets["discriminator"](G0(mean))
    expected = -float(tf.reduce_mean(d_fake)) + 0.001 * recon(nets["discriminator"](silence),
                                                               d_fake)
    assert float(out["g_loss"]) == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_encoder_update_descends_kl_plus_reconstruction():
    """One E step, run eagerly: it trains E alone, on the gradient of KL + recon."""
    nets = tv.build_networks(CONFIG, "float32")
    E, G, D = nets["encoder"], nets["generator"], nets["discriminator"]
    D.prediction.kernel.assign(D.prediction.kernel * 1000.0)  # recon's gradient shows beside KL's
    real = tf.random.uniform([2, 64, 1], -0.5, 0.5, seed=3)
    with tf.GradientTape(persistent=True) as tape:
        mean, log_variance = E(real)
        z = mean + tf.random.Generator.from_seed(0).normal([2, LATENT]) * tf.exp(log_variance / 2)
        kl = tf.reduce_mean(tf.reduce_sum(
            0.5 * (-log_variance + tf.exp(log_variance) + mean ** 2 - 1), axis=1))
        rec = 0.5 * tf.reduce_sum(math.log(2 * math.pi) + (D(real) - D(G(z))) ** 2 / (1 + 1e-6))
        e_loss = kl + rec
    paths = [v.path for v in E.trainable_variables]
    grads = dict(zip(paths, tape.gradient(e_loss, E.trainable_variables)))
    kl_grads = dict(zip(paths, tape.gradient(kl, E.trainable_variables)))
    optimizers = optimisers_for(nets)
    before = {name: weights(net) for name, net in nets.items()}
    gan = iterations.VAEGANIteration(nets, optimizers, tf.Variable(0, dtype=tf.int64),
                                     tf.random.Generator.from_seed(0), None, None)

    scalars, finite = gan.train_encoder(iter([real]))
    assert bool(finite)
    assert float(scalars["Encoder_loss/KL_divergence"]) == pytest.approx(float(kl), rel=1e-5)
    assert float(scalars["Encoder_loss/Reconstruction_loss"]) == pytest.approx(float(rec),
                                                                               rel=1e-5)
    for name in ("generator", "discriminator"):
        assert int(optimizers[name + "_optimizer"].iterations.numpy()) == 0
        after = weights(nets[name])
        assert all(np.array_equal(before[name][k], after[k]) for k in after), name
    # Adam's first moment after one update is (1 - beta1) * gradient = 0.5 * gradient.
    momentum = {v.name: v.numpy() for v in optimizers["encoder_optimizer"].variables}
    for path, grad in grads.items():
        first = momentum[path.replace("/", "_") + "_momentum"]
        scale = np.abs(grad.numpy()).max()
        np.testing.assert_allclose(2 * first, grad.numpy(), rtol=1e-3, atol=1e-4 * scale)
    head, recon_part = grads["mean/kernel"].numpy(), grads["mean/kernel"] - kl_grads["mean/kernel"]
    assert np.abs(recon_part.numpy()).max() > 0.1 * np.abs(head).max()  # tells KL + recon from KL


# --------------------------------------------------------------------------- the trainer

@pytest.fixture(scope="module")
def chain(module_tmp):
    root = str(module_tmp)
    logs = {
        "stage1": run("--num_blocks", "1", "--max_steps", "2", "--checkpoint_dir", root),
        "frozen2": run("--num_blocks", "2", "--freeze_early_layers", "--max_steps", "1",
                       "--checkpoint_dir", root),
        "stable2": run("--num_blocks", "2", "--max_steps", "1", "--checkpoint_dir", root),
    }
    for name, (code, out, err) in logs.items():
        assert code == 0, (name, out, err)
    return root, logs


def folder(root, num_blocks, frozen=False):
    return checkpoints.stage_dir(os.path.join(root, "vaegan"), num_blocks, frozen)


def test_checkpoints_keep_the_variable_paths_of_earlier_versions(chain):
    assert_checkpoint_keys_unchanged(folder(chain[0], 1), "vaegan_stage_00001",
                                     added=("posterior",), divisor=NARROW_DIVISOR)


def restored(path, config):
    """Fresh networks (the encoder too) of config with all weights of checkpoint path."""
    return networks_of(path, config, tv.build_networks)


def test_restore_chain_in_its_own_folders(chain):
    root, logs = chain
    assert "fresh start" in logs["stage1"][1]
    assert "blocks 1..1 grown from stage 1" in logs["frozen2"][1]
    assert "all weights from the frozen stage" in logs["stable2"][1]
    # apart from the progressive GAN's stage folders
    assert sorted(os.listdir(root)) == ["audio_cache", "vaegan"]
    for directory in (folder(root, 1), folder(root, 2, True), folder(root, 2)):
        assert checkpoints.read_config(directory)["model"] == "vaegan"
    assert saved_step(checkpoints.latest_checkpoint(folder(root, 1))) == 2


def test_checkpoint_holds_the_encoder_and_its_optimiser(chain):
    root, _ = chain
    config = checkpoints.read_config(folder(root, 1))
    nets = tv.build_networks(config, "float32")
    optimizers = optimisers_for(nets)
    step, rng = tf.Variable(0, dtype=tf.int64), tf.random.Generator.from_seed(0)
    checkpoints.restore(tf.train.Checkpoint(step=step, rng=rng, **nets, **optimizers),
                   checkpoints.latest_checkpoint(folder(root, 1)))  # every object found
    assert {name: int(opt.iterations.numpy()) for name, opt in optimizers.items()} == \
        {"generator_optimizer": 2, "discriminator_optimizer": 10, "encoder_optimizer": 2}
    average, raw = ema_and_raw(checkpoints.latest_checkpoint(folder(root, 1)), config,
                               tv.build_networks)  # and the generator's moving average
    assert any(not np.array_equal(average[k], raw[k]) for k in average)


def test_frozen_stage_grows_by_name_and_keeps_early_blocks_bit_identical(chain):
    root, _ = chain
    config1, config2 = checkpoints.read_config(folder(root, 1)), checkpoints.read_config(folder(root, 2))
    source = restored(checkpoints.latest_checkpoint(folder(root, 1)), config1)
    grown = restored(checkpoints.latest_checkpoint(folder(root, 2, True)), config2)
    tf.keras.utils.set_random_seed(0)  # the initial weights of the frozen run (--seed 0)
    initial = tv.build_networks(config2, "float32")
    assert set(grown["encoder"].carried_over_layers()) == {block(1), "mean", "log_variance"}
    for name in ("encoder", "generator", "discriminator"):
        early = list(grown[name].early_blocks())
        assert early == [block(1)]
        before, kept = weights(source[name], early), weights(grown[name], early)
        assert all(np.array_equal(before[k], kept[k]) for k in before), name
        # Every other layer trains, the dense layers and the encoder's heads included: it
        # moved from where it started (the source's weights, or the initial ones if new).
        for layer in (n for n in grown[name].named_layers() if n not in early):
            start = weights(source[name] if layer in source[name].named_layers() else
                            initial[name], [layer])
            trained = weights(grown[name], [layer])
            assert any(not np.array_equal(start[k], trained[k]) for k in start), (name, layer)


def test_tensorboard_adds_the_encoder_losses(chain):
    root, logs = chain
    assert {"Encoder_loss/KL_divergence", "Encoder_loss/Reconstruction_loss",
            "Loss/Generator_loss", "Loss/Discriminator_loss",
            "Output/mixed_output"} <= tensorboard_tags(folder(root, 1))
    line = [line for line in logs["stage1"][1].splitlines() if line.startswith("step ")][-1]
    assert re.match(r"step\s+2\s+D_loss \S+\s+G_loss \S+\s+KL_divergence \S+\s+"
                    r"Reconstruction_loss \S+\s+[.\d]+ steps/s", line)


def generator_of(directory):
    """The generator of the latest checkpoint in directory, as preview and generation load it."""
    return checkpoints.load_generator(directory, tv.RECIPE, checkpoints.latest_checkpoint(directory))[0]


def test_preview_writes_normal_prior_slices(chain):
    root, _ = chain
    code, _, err = run("--num_blocks", "1", "--checkpoint_dir", root, "--preview", "--once")
    assert code == 0, err
    audio, rate = sf.read(os.path.join(folder(root, 1), "preview", "00000002.wav"),
                          dtype="int16")
    assert rate == 16000 and audio.shape == (5 * (64 + 16000),)
    latents = longform.draw_latents(0, 5, "normal")  # --seed 0, N(0, 1)
    slices = to_int16(generator_of(folder(root, 1))(latents).numpy()[..., 0])
    for k in range(5):
        part = audio[k * 16064:(k + 1) * 16064]
        assert np.abs(part[:64].astype(int) - slices[k]).max() <= 1 and not part[64:].any()


def test_generate_writes_normal_prior_files(chain, tmp_path):
    root, _ = chain
    code, _, err = run("--num_blocks", "2", "--checkpoint_dir", root, "--generate", "2",
                       "--output_dir", str(tmp_path))
    assert code == 0, err
    names = sorted(os.listdir(tmp_path))
    latents = longform.draw_latents(0, 2, "normal")
    expected = to_int16(generator_of(folder(root, 2))(latents).numpy()[..., 0])
    assert len(names) == 2
    for name, window in zip(names, expected):
        audio, rate = sf.read(str(tmp_path / name), dtype="int16")
        assert rate == 16000 and audio.shape == (256,)
        assert np.abs(audio.astype(int) - window).max() <= 1


def test_each_checkpoint_keeps_the_encoders_aggregate_posterior(chain):
    """Fitted at every save to the encoder's means of seeded training windows: their mean and
    the Cholesky factor of their covariance, shrunk towards its diagonal by 100 / n."""
    import model_vaegan

    root, _ = chain
    directory = folder(root, 1)
    path = checkpoints.latest_checkpoint(directory)
    posterior = model_vaegan.AggregatePosterior()
    checkpoints.restore_entries(path, {"posterior": posterior})
    windows = int(posterior.windows.numpy())
    assert windows == 1024  # stage 1's windows are short: the most it is fitted to
    encoder = tv.build_networks(checkpoints.read_config(directory), "float32")["encoder"]
    checkpoints.restore_entries(path, {"encoder": encoder})
    import dataloader
    from evaluate import full_window_starts, sample_windows
    audio = dataloader.load_audio(DEMO, 16000, log=lambda line: None)
    starts, window = full_window_starts(audio, 1)
    real = sample_windows(audio, starts, window, windows, np.random.default_rng(0 + 3))
    means = np.asarray(encoder(real)[0], np.float64)
    np.testing.assert_allclose(posterior.mean.numpy(), means.mean(axis=0), atol=1e-5)
    scale = posterior.scale.numpy().astype(np.float64)
    covariance = np.cov(means, rowvar=False)
    shrink = 100 / windows
    expected = (1 - shrink) * covariance + shrink * np.diag(np.diag(covariance))
    np.testing.assert_allclose(scale @ scale.T, expected + 1e-6 * np.eye(100), atol=1e-5)


def test_generate_from_the_posterior_maps_normal_draws_through_it(chain, tmp_path):
    import model_vaegan

    root, _ = chain
    code, _, err = run("--num_blocks", "1", "--checkpoint_dir", root, "--generate", "2",
                       "--prior", "posterior", "--output_dir", str(tmp_path))
    assert code == 0, err
    path = checkpoints.latest_checkpoint(folder(root, 1))
    posterior = model_vaegan.AggregatePosterior()
    checkpoints.restore_entries(path, {"posterior": posterior})
    eps = longform.draw_latents(0, 2, "normal")
    z = posterior.mean.numpy() + eps @ posterior.scale.numpy().T
    expected = to_int16(generator_of(folder(root, 1))(z).numpy()[..., 0])
    for name, window in zip(sorted(os.listdir(tmp_path)), expected):
        audio, _ = sf.read(str(tmp_path / name), dtype="int16")
        assert np.abs(audio.astype(int) - window).max() <= 1


def test_the_posterior_is_the_vaegans_alone(tmp_path):
    import train_progressive
    code, _, err = run_main(train_progressive.main, "--generate", "1", "--prior", "posterior",
                            "--checkpoint_dir", str(tmp_path))
    assert code == 2 and "the progressive trainer samples its prior" in err
    assert err.count("\n") == 1
    code, _, err = run_main(train_progressive.main, "--prior", "posterior",
                            "--checkpoint_dir", str(tmp_path))
    assert code == 2 and "--prior go with" in err and err.count("\n") == 1


def test_long_pieces_and_interpolation_use_the_normal_prior(chain, tmp_path):
    root, _ = chain
    code, _, err = run("--num_blocks", "2", "--checkpoint_dir", root, "--generate", "1",
                       "--duration", "0.1", "--output_dir", str(tmp_path / "long"))
    assert code == 0, err
    (path,) = list((tmp_path / "long").iterdir())
    assert sf.info(str(path)).frames == 1600
    code, _, err = run("--num_blocks", "2", "--checkpoint_dir", root, "--interpolate", "0", "5",
                       "--steps", "3", "--output_dir", str(tmp_path / "morph"))
    assert code == 0, err
    (path,) = list((tmp_path / "morph").iterdir())
    morph = sf.read(str(path), dtype="int16")[0].astype(int)
    start = longform.draw_latents(0, 1, "normal")
    first = to_int16(generator_of(folder(root, 2))(start).numpy()[0, :, 0])
    assert len(morph) == 3 * 256 - 2 * 64
    assert np.abs(morph[:192] - first[:192]).max() <= 1  # seed 0's N(0, 1) latent


def test_bad_flag_is_one_line_before_tensorflow_loads(tmp_path):
    command = [sys.executable, os.path.join(ROOT, "train_progressive_vaegan.py"),
               "--num_blocks", "9", "--checkpoint_dir", str(tmp_path / "ck")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=str(tmp_path),
                            check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--num_blocks" in result.stderr
    assert not (tmp_path / "ck").exists()
