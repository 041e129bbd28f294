"""The report's experimental variants of the progressive model (§7.7): --model_variant asymmetric,
extended and pggan of train_progressive.py.

Expected sizes are written from the architectures (layer by layer, nf literals), never from
model_progressive. Training runs are tiny (stage 1 -> frozen 2, batch 2, demo data) and shared
by the tests through one module-scoped chain per variant; the standard model's chain is in
test_train_progressive.py.
"""

import contextlib
import io
import json
import os
import shutil

import keras
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from helpers import DEMO, networks_of, tensorboard_tags, weights
from helpers import run as run_main

import checkpoints
import cli
import evaluate
import model_progressive as mp
import train_progressive
import train_progressive_vaegan
from utils import UserError

NF = (1024, 512, 256, 128, 64, 48, 32, 24, 16)  # nf(0..8), smoothed
LATENT, BASE, KERNEL = 100, 16, 25
VARIANTS = ("standard", "asymmetric", "extended", "pggan")
NEW_VARIANTS = VARIANTS[1:]
TWO_CONV_G = {"extended"}
TWO_CONV_D = {"asymmetric", "extended"}


def block(b):
    return f"progressive_block_{b}"


def conv_params(kernel, n_in, n_out):
    return kernel * n_in * n_out + n_out


def expected_generator(variant, stage, channels=1):
    """{layer: parameters}: dense 100 -> 16x1024; block b: ConvT nf(b-1) -> nf(b) (stride 4), or
    ConvT nf(b-1) -> nf(b) (stride 1) and ConvT nf(b) -> nf(b) (stride 4); 1x1 to C."""
    params = {"projection": LATENT * BASE * 1024 + BASE * 1024}
    for b in range(1, stage + 1):
        params[block(b)] = conv_params(KERNEL, NF[b - 1], NF[b])
        if variant in TWO_CONV_G:
            params[block(b)] += conv_params(KERNEL, NF[b], NF[b])
    params[block(stage) + "_output"] = conv_params(1, NF[stage], channels)
    return params


def expected_discriminator(variant, stage, channels=1):
    """{layer: parameters}: 1x1 C -> nf(N); block b: Conv nf(b) -> nf(b-1) (stride 4), or
    Conv nf(b) -> nf(b-1) (stride 1) and Conv nf(b-1) -> nf(b-1) (stride 4); the minibatch
    standard deviation adds one input channel to block 1 (pggan); dense 16x1024 -> 1."""
    params = {block(stage) + "_input": conv_params(1, channels, NF[stage])}
    for b in range(stage, 0, -1):
        n_in = NF[b] + (1 if variant == "pggan" and b == 1 else 0)
        params[block(b)] = conv_params(KERNEL, n_in, NF[b - 1])
        if variant in TWO_CONV_D:
            params[block(b)] += conv_params(KERNEL, NF[b - 1], NF[b - 1])
    params["prediction"] = BASE * 1024 + 1
    return params


# --------------------------------------------------------------------------- parameter counts

@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_counts_at_stages_1_2_and_8(variant):
    # Every stage of the standard model: test_model_progressive.py; a variant changes how a
    # block is built, the same at every stage: block 1, a middle one, the last.
    for stage in (1, 2, 8):
        for net, expected in ((mp.Generator(stage, variant=variant),
                               expected_generator(variant, stage)),
                              (mp.Discriminator(stage, variant=variant),
                               expected_discriminator(variant, stage))):
            layers = net.named_layers()
            assert list(layers) == list(expected), (variant, stage)
            counts = {name: layer.count_params() for name, layer in layers.items()}
            assert counts == expected, (variant, stage, net.name)
            assert net.count_params() == sum(expected.values())


def test_stage_5_totals_by_hand():
    """Worked out on paper from the layer sizes, in case the formulas above share a slip."""
    G = {"standard": 19_140_641, "asymmetric": 19_140_641, "extended": 27_903_249,
         "pggan": 19_140_641}
    D = {"standard": 17_503_265, "asymmetric": 52_423_649, "extended": 52_423_649,
         "pggan": 17_528_865}
    for variant in VARIANTS:
        assert mp.Generator(5, variant=variant).count_params() == G[variant]
        assert mp.Discriminator(5, variant=variant).count_params() == D[variant]


def test_two_convolution_blocks_are_named_stride_1_then_4():
    G, D = mp.Generator(2, variant="extended"), mp.Discriminator(2, variant="extended")
    for net, transpose, filters in ((G, True, {1: (512, 512), 2: (256, 256)}),
                                    (D, False, {1: (1024, 1024), 2: (512, 512)})):
        for b in (1, 2):
            container = getattr(net, block(b))
            assert isinstance(container, mp.ConvBlock)
            convs = (container.conv, container.strided_conv)
            assert mp.convolutions(container) == list(convs)
            assert [c.strides for c in convs] == [(1,), (4,)]
            assert [c.kernel_size for c in convs] == [(25,), (25,)]
            assert tuple(c.filters for c in convs) == filters[b]
            kind = keras.layers.Conv1DTranspose if transpose else keras.layers.Conv1D
            assert all(isinstance(c, kind) for c in convs)
    asymmetric = mp.Generator(2, variant="asymmetric")
    assert type(getattr(asymmetric, block(2))) is mp.Conv1DTranspose  # one convolution


@pytest.mark.parametrize("dtype", ["float32", "mixed_float16"])
@pytest.mark.parametrize("variant", NEW_VARIANTS)
def test_forward_shapes_and_dtypes(variant, dtype):
    G = mp.Generator(1, 2, variant=variant, dtype=dtype)
    D = mp.Discriminator(1, 2, variant=variant, dtype=dtype)
    assert {v.dtype for v in G.variables + D.variables} == {"float32"}
    audio = G(tf.random.uniform([2, LATENT], -1, 1, seed=1))
    assert audio.shape == (2, 64, 2) and audio.dtype == tf.float32
    score = D(audio)
    assert score.shape == (2, 1) and score.dtype == tf.float32
    assert np.all(np.isfinite(score.numpy())) and np.all(np.abs(audio.numpy()) <= 1)


def test_sample_norm_is_always_on_in_pggan_and_not_offered_in_asymmetric_and_extended():
    assert mp.Generator(1, variant="pggan", use_sample_norm=False).use_sample_norm
    assert not mp.Generator(1, variant="standard").use_sample_norm
    for variant in ("asymmetric", "extended"):
        assert not mp.Generator(1, variant=variant).use_sample_norm
        with pytest.raises(ValueError):
            mp.Generator(1, variant=variant, use_sample_norm=True)


# --------------------------------------------------------------------------- minibatch stddev

def test_minibatch_stddev_by_hand():
    # Batch of 2, 2 time steps, 1 channel: the features' standard deviations across the batch
    # are |1 - 3| / 2 = 1 and |3 - 7| / 2 = 2, their mean 1.5.
    x = tf.constant([[[1.0], [3.0]], [[3.0], [7.0]]])
    y = mp.minibatch_stddev(x).numpy()
    assert y.shape == (2, 2, 2)
    np.testing.assert_array_equal(y[..., :1], x.numpy())
    np.testing.assert_allclose(y[..., 1], 1.5, rtol=1e-6)


def test_minibatch_stddev_is_constant_and_matches_numpy():
    x = np.random.default_rng(0).standard_normal((3, 5, 4)).astype(np.float32)
    expected = np.mean(np.std(x.astype(np.float64), axis=0))  # population std, per feature
    for dtype, rtol in ((tf.float32, 1e-6), (tf.float16, 2e-3)):
        y = mp.minibatch_stddev(tf.constant(x, dtype=dtype))
        assert y.dtype == dtype and y.shape == (3, 5, 5)
        extra = y.numpy()[..., 4].astype(np.float64)
        assert np.all(extra == extra[0, 0])  # the same for every example and time step
        np.testing.assert_allclose(extra[0, 0], expected, rtol=rtol)
    # A batch that agrees has no spread, and the gradient stays finite.
    same = tf.ones([2, 3, 2])
    with tf.GradientTape() as tape:
        tape.watch(same)
        out = mp.minibatch_stddev(same)
        total = tf.reduce_sum(out)
    # sqrt(0 + 1e-8): the epsilon the original did not have (its gradient there is NaN)
    np.testing.assert_allclose(out.numpy()[..., 2], 1e-4, rtol=1e-3)
    assert np.all(np.isfinite(tape.gradient(total, same).numpy()))


def test_pggan_critic_concatenates_it_before_block_1():
    D = mp.Discriminator(2, variant="pggan")
    assert getattr(D, block(1)).kernel.shape == (25, 512 + 1, 1024)
    assert getattr(D, block(2)).kernel.shape == (25, 256, 512)
    audio = tf.random.uniform([3, 256, 1], -1, 1, seed=2)

    def lrelu(x):
        x = np.asarray(x)
        return np.where(x > 0, x, 0.2 * x).astype(np.float32)

    # The critic by hand: its layers for the linear maps, NumPy for the rest.
    x = lrelu(getattr(D, block(2) + "_input")(audio))
    x = lrelu(getattr(D, block(2))(x))
    spread = np.mean(np.std(x.astype(np.float64), axis=0))
    x = np.concatenate([x, np.full(x.shape[:-1] + (1,), spread, np.float32)], axis=-1)
    x = lrelu(getattr(D, block(1))(x))
    expected = D.prediction(x.reshape(3, -1)).numpy()
    np.testing.assert_allclose(D(audio).numpy(), expected, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- equalised LR

def test_pggan_kernels_have_unit_variance_and_zero_biases():
    for net in (mp.Generator(2, variant="pggan"), mp.Discriminator(2, variant="pggan")):
        layers = [c for layer in net.named_layers().values() for c in mp.convolutions(layer)]
        assert all(isinstance(layer, mp.EqualisedLearningRate) for layer in layers)
        for layer in layers:
            kernel = layer.kernel.numpy().astype(np.float64)
            tolerance = 6 * np.sqrt(2 / kernel.size)  # six standard errors of the variance
            assert abs(kernel.var() - 1) < tolerance, layer.name
            assert abs(kernel.mean()) < 6 / np.sqrt(kernel.size), layer.name
            assert not layer.bias.numpy().any()
    for variant in ("standard", "asymmetric", "extended"):
        G = mp.Generator(1, variant=variant)
        assert not any(isinstance(x, mp.EqualisedLearningRate) for x in G.named_layers().values())


@pytest.mark.parametrize("kind, fan_in, input_shape, ordinary", [
    ("dense", 100, (3, 100), lambda: keras.layers.Dense(64)),
    ("conv", 25 * 6, (2, 32, 6), lambda: keras.layers.Conv1D(5, 25, 4, padding="same")),
    ("transpose", 25 * 6, (2, 8, 6),
     lambda: keras.layers.Conv1DTranspose(5, 25, 4, padding="same")),
    ("one_by_one", 3, (2, 16, 3), lambda: keras.layers.Conv1D(7, 1, 1, padding="same")),
    ("conv_as_matmul", 25 * 6, (2, 32, 6),
     lambda: keras.layers.Conv1D(5, 25, 4, padding="same")),
    ("transpose_as_matmul", 25 * 6, (2, 8, 6),
     lambda: keras.layers.Conv1DTranspose(5, 25, 4, padding="same")),
])
def test_equalised_layer_is_an_ordinary_layer_with_the_scaled_kernel(kind, fan_in, input_shape,
                                                                      ordinary):
    reference = ordinary()
    config = reference.get_config()
    if kind == "dense":
        layer = mp.dense(config["units"], "float32", "eq", equalised=True)
    else:
        matmul = kind.endswith("as_matmul")
        layer = mp.conv(config["filters"], config["kernel_size"][0], config["strides"][0],
                        "float32", "eq", transpose=kind.startswith("transpose"), equalised=True)
        layer.form = "matmul" if matmul else "framework"
    layer.build(input_shape)
    reference.build(input_shape)
    layer.bias.assign(np.random.default_rng(1).standard_normal(layer.bias.shape))
    scale = np.sqrt(2.0 / fan_in)  # He's constant
    assert layer.runtime_scale == pytest.approx(scale)
    reference.kernel.assign(layer.kernel * scale)
    reference.bias.assign(layer.bias)
    x = tf.random.normal(input_shape, seed=3)
    np.testing.assert_allclose(layer(x).numpy(), reference(x).numpy(), rtol=1e-5, atol=1e-5)
    # and not the unscaled kernel's output
    reference.kernel.assign(layer.kernel)
    assert np.abs(layer(x).numpy() - reference(x).numpy()).max() > 1e-2


def fan_in(layer):
    """Input channels x kernel size, from the kernel's shape: Conv1D [K, C_in, F], Conv1DTranspose
    [K, F, C_in], Dense [C_in, F]."""
    kernel = layer.kernel.shape
    if isinstance(layer, keras.layers.Dense):
        return kernel[0]
    channels_in = kernel[2] if isinstance(layer, keras.layers.Conv1DTranspose) else kernel[1]
    return kernel[0] * channels_in


@pytest.mark.parametrize("num_blocks", [1, 3])
def test_pggan_runtime_scale_is_gain_over_root_fan_in(num_blocks):
    # As the original: gain sqrt(2) for every convolution, 1 for G's input dense layer, G's
    # 1x1 output convolution and D's output dense layer.
    G, D = mp.Generator(num_blocks, variant="pggan"), mp.Discriminator(num_blocks,
                                                                       variant="pggan")
    output = {("generator", "projection"), ("generator", block(num_blocks) + "_output"),
              ("discriminator", "prediction")}
    seen = set()
    for net in (G, D):
        for name, layer in net.named_layers().items():
            for conv in mp.convolutions(layer):
                g = 1.0 if (net.name, name) in output else 2.0
                assert conv.runtime_scale == pytest.approx(np.sqrt(g / fan_in(conv)),
                                                           rel=1e-12), (net.name, name)
                seen.add((net.name, name, g))
    assert {(net, name) for net, name, g in seen if g == 1.0} == output
    # the 1x1 input convolution of D is a convolution like the others: gain sqrt(2)
    assert ("discriminator", block(num_blocks) + "_input", 2.0) in seen


# --------------------------------------------------------------------------- checkpoints

def test_block_sub_layers_are_keyed_by_name_and_grow(tmp_path):
    G1, D1 = mp.Generator(1, variant="extended"), mp.Discriminator(1, variant="extended")
    path = tf.train.Checkpoint(generator=G1, discriminator=D1).save(str(tmp_path / "s1"))
    keys = {key for key, _ in tf.train.list_variables(path)}
    for key in ("generator/progressive_block_1/conv/kernel",
                "generator/progressive_block_1/strided_conv/kernel",
                "generator/progressive_block_1/strided_conv/bias",
                "discriminator/progressive_block_1/conv/_kernel",
                "discriminator/progressive_block_1/strided_conv/_kernel"):
        assert key + "/.ATTRIBUTES/VARIABLE_VALUE" in keys
    G2, D2 = mp.Generator(2, variant="extended"), mp.Discriminator(2, variant="extended")
    fresh = {id(v): v.numpy() for v in G2.weights + D2.weights}
    checkpoints.restore_layers(path, {"generator": G2.carried_over_layers(),
                                 "discriminator": D2.carried_over_layers()})
    for old, new in ((G1, G2), (D1, D2)):
        grown = new.carried_over_layers()
        assert set(grown) >= {block(1)}
        for name, layer in new.named_layers().items():
            for v, w in zip(layer.weights, getattr(old, name).weights if name in grown else []):
                np.testing.assert_array_equal(v.numpy(), w.numpy())
            if name not in grown:
                assert all(np.array_equal(v.numpy(), fresh[id(v)]) for v in layer.weights)
    with pytest.raises(UserError):  # a standard stage 2 cannot grow from extended stage 1
        checkpoints.restore_layers(path, {"generator": mp.Generator(2).carried_over_layers()})


def test_freezing_a_two_convolution_stage():
    G, D = mp.Generator(2, variant="extended"), mp.Discriminator(2, variant="asymmetric")
    G.freeze_early_layers()
    D.freeze_early_layers()
    # block 2 (two convolutions), the 1x1 layer and the dense layer train
    assert sum(int(np.prod(v.shape)) for v in G.trainable_variables) == \
        conv_params(25, 512, 256) + conv_params(25, 256, 256) + conv_params(1, 256, 1) \
        + conv_params(1, LATENT, BASE * 1024)
    assert sum(int(np.prod(v.shape)) for v in D.trainable_variables) == \
        conv_params(1, 1, 256) + conv_params(25, 256, 512) + conv_params(25, 512, 512) \
        + conv_params(1, BASE * 1024, 1)


def test_config_without_a_variant_is_standard(tmp_path):
    config = {"model": "progressive", "num_blocks": 1, "channels": 1,
              "feature_map_smoothing": True, "use_sample_norm": False, "sampling_rate": 16000}
    checkpoints.write_config(str(tmp_path), config)  # as written before variants existed
    checkpoints.check_config(str(tmp_path), dict(config, model_variant="standard"))
    with pytest.raises(UserError, match="model_variant=standard .*model_variant=pggan"):
        checkpoints.check_config(str(tmp_path), dict(config, model_variant="pggan"))
    built = train_progressive.build_networks(config, "float32", True)["generator"]
    standard, pggan = mp.Generator(1), mp.Generator(1, variant="pggan")
    assert [w.shape for w in built.weights] == [w.shape for w in standard.weights]
    assert built.use_sample_norm is False and pggan.use_sample_norm is True
    assert not any(isinstance(layer, mp.EqualisedLearningRate)
                   for layer in built.named_layers().values())


# --------------------------------------------------------------------------- the command line

def run(*argv, main=train_progressive.main):
    return run_main(main, *argv)


@pytest.mark.parametrize("argv, message", [
    (["--model_variant", "asymmetric", "--use_sample_norm"], "--use_sample_norm"),
    (["--model_variant", "extended", "--use_sample_norm"], "--use_sample_norm"),
    (["--model_variant", "wide"], "--model_variant"),
])
def test_bad_variant_flags_give_one_line(argv, message, tmp_path):
    code, _, err = run(*argv, "--checkpoint_dir", str(tmp_path / "ck"))
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "ck").exists()


def test_vaegan_does_not_offer_variants(tmp_path):
    code, _, err = run("--model_variant", "pggan", "--checkpoint_dir", str(tmp_path),
                       main=train_progressive_vaegan.main)
    assert code == 2 and err.count("\n") == 1 and "--model_variant" in err
    model = cli.parse(train_progressive_vaegan.RECIPE, ["--num_blocks", "2", "--seed", "0"]).model
    assert train_progressive_vaegan.make_config(model, 16000, 1)["model_variant"] == "standard"


def test_pggan_records_sample_norm():
    model = cli.parse(train_progressive.RECIPE, ["--model_variant", "pggan", "--seed", "0"]).model
    assert train_progressive.make_config(model, 16000, 1)["use_sample_norm"] is True


@pytest.fixture(scope="module")
def root(module_tmp):
    return str(module_tmp)


@pytest.fixture(scope="module", params=NEW_VARIANTS)
def chain(request, root):
    """Stage 1 for one step, then frozen stage 2 grown from it for one step."""
    variant = request.param
    logs = {"stage1": run("--num_blocks", "1", "--max_steps", "1", "--checkpoint_dir", root,
                          "--model_variant", variant),
            "frozen2": run("--num_blocks", "2", "--freeze_early_layers", "--max_steps", "1",
                           "--checkpoint_dir", root, "--model_variant", variant)}
    for name, (code, out, err) in logs.items():
        assert code == 0, (variant, name, out, err)
    yield variant, os.path.join(root, variant), logs
    shutil.rmtree(os.path.join(root, variant), ignore_errors=True)  # 1 GB a variant


def test_variant_has_its_own_stage_folders(chain, root):
    variant, variant_root, logs = chain
    assert "fresh start" in logs["stage1"][1]
    assert "blocks 1..1 grown from stage 1" in logs["frozen2"][1]
    for directory in (checkpoints.stage_dir(variant_root, 1), checkpoints.stage_dir(variant_root, 2, True)):
        assert checkpoints.latest_checkpoint(directory)
        assert checkpoints.read_config(directory)["model_variant"] == variant
        assert "generator_ema" in checkpoints.saved_entries(checkpoints.latest_checkpoint(directory))
    assert not os.path.exists(checkpoints.stage_dir(root, 1))  # the standard model's folder


def test_growing_into_frozen_stage_keeps_early_blocks_bit_identical(chain):
    variant, variant_root, _ = chain
    stage1, frozen2 = checkpoints.stage_dir(variant_root, 1), checkpoints.stage_dir(variant_root, 2, True)
    config1, config2 = checkpoints.read_config(stage1), checkpoints.read_config(frozen2)
    source = networks_of(checkpoints.latest_checkpoint(stage1), config1)
    grown = networks_of(checkpoints.latest_checkpoint(frozen2), config2)
    keras.utils.set_random_seed(0)  # the initial weights of the frozen run (--seed 0)
    initial = train_progressive.build_networks(config2, "float32")
    for name in ("generator", "discriminator"):
        early = list(grown[name].early_blocks())
        assert early == [block(1)]
        before, after = weights(source[name], early), weights(grown[name], early)
        assert before.keys() == after.keys()
        assert all(np.array_equal(before[k], after[k]) for k in before), (variant, name)
        # every other layer trains: block 2, the 1x1 layer and the dense layer
        for layer in (n for n in grown[name].named_layers() if n not in early):
            start = weights(source[name] if layer in source[name].named_layers() else
                            initial[name], [layer])
            trained = weights(grown[name], [layer])
            assert any(not np.array_equal(start[k], trained[k]) for k in start), \
                (variant, name, layer)


def test_tensorboard_summaries_in_the_variant_folder(chain):
    _, variant_root, _ = chain
    directory = checkpoints.stage_dir(variant_root, 1)
    assert {"generator_output", "Loss/Generator_loss", "G_output_rms"} <= \
        tensorboard_tags(directory)


def test_preview_generate_and_evaluate(chain, root, tmp_path):
    """The jobs that build the generator from config.json, for a variant."""
    variant, variant_root, _ = chain
    stage = ["--num_blocks", "2", "--freeze_early_layers", "--checkpoint_dir", root,
             "--model_variant", variant]
    code, _, err = run(*stage, "--preview", "--once")
    assert code == 0, err
    preview = os.path.join(checkpoints.stage_dir(variant_root, 2, True), "preview", "00000001.wav")
    assert sf.info(preview).frames == 5 * (256 + 16000)
    code, _, err = run(*stage, "--generate", "3", "--output_dir", str(tmp_path / "gen"))
    assert code == 0, err
    names = sorted(os.listdir(tmp_path / "gen"))
    assert len(names) == 3 and all(sf.info(str(tmp_path / "gen" / n)).frames == 256
                                   for n in names)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert evaluate.main([DEMO, str(tmp_path / "gen"), "--num_blocks", "2",
                              "--num_eval_samples", "3", "--json"]) == 0
    assert json.loads(out.getvalue())["num_generated"] == 3
    code, _, err = run(*stage, "--evaluate", "--num_eval_samples", "3")  # from the checkpoint
    assert code == 0, err
    report = os.path.join(checkpoints.stage_dir(variant_root, 2, True), "evaluation", "00000001",
                          "metrics.json")
    with open(report) as f:
        assert json.load(f)["num_generated"] == 3


def test_another_variant_than_the_checkpoint_holds_is_refused(chain):
    variant, variant_root, _ = chain
    other = "extended" if variant != "extended" else "pggan"
    directory = checkpoints.stage_dir(variant_root, 1)
    before = {n: os.stat(os.path.join(directory, n)).st_mtime_ns for n in os.listdir(directory)}
    for argv in ([], ["--generate", "1"], ["--preview", "--once"]):
        # the variant's own folder given as --checkpoint_dir, asking for the standard model
        code, _, err = run("--num_blocks", "1", "--checkpoint_dir", variant_root, *argv)
        assert code == 2 and err.count("\n") == 1 and variant in err and "Traceback" not in err
    # a stage folder restored from by another variant's run: check_config names the key
    with pytest.raises(UserError, match="model_variant"):
        checkpoints.check_config(directory, dict(checkpoints.read_config(directory), model_variant=other))
    after = {n: os.stat(os.path.join(directory, n)).st_mtime_ns for n in os.listdir(directory)}
    assert before == after
