"""Tests of model_progressive.py and the weight moves of checkpoints.py (report §7.6, §7.7).

The expected architecture is written here as literals from the report's tables 7.1 and 7.2
(feature maps per block, layer sizes, layer names), never derived from `feature_maps`.
Networks build their variables in the constructor, so the big stages are only built, not run.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

import checkpoints
import model_progressive as mp
import train_progressive
from utils import UserError

# nf(b) for b = 0..8 (report §7.6, "feature map smoothing").
NF_SMOOTH = (1024, 512, 256, 128, 64, 48, 32, 24, 16)
NF_PLAIN = (1024, 512, 256, 128, 64, 32, 16, 8, 4)
# ... with --feature_map_divisor 8 (smoothed), and 64 (at least one map a block)
NF_EIGHTH = (128, 64, 32, 16, 8, 6, 4, 3, 2)
NF_SIXTY_FOURTH = (16, 8, 4, 2, 1, 1, 1, 1, 1)
LATENT, BASE, KERNEL = 100, 16, 25


def nf_table(smoothing, divisor=1):
    return {1: NF_SMOOTH if smoothing else NF_PLAIN, 8: NF_EIGHTH}[divisor]


def block(b):
    return f"progressive_block_{b}"


def expected_generator_params(stage, channels, smoothing, divisor=1):
    """Table 7.1, layer by layer, in the order named_layers() lists them."""
    nf = nf_table(smoothing, divisor)
    params = {"projection": LATENT * BASE * nf[0] + BASE * nf[0]}
    for b in range(1, stage + 1):
        params[block(b)] = KERNEL * nf[b - 1] * nf[b] + nf[b]
    params[block(stage) + "_output"] = nf[stage] * channels + channels
    return params


def expected_discriminator_params(stage, channels, smoothing, divisor=1):
    """Table 7.2, layer by layer, in the order named_layers() lists them."""
    nf = nf_table(smoothing, divisor)
    params = {block(stage) + "_input": channels * nf[stage] + nf[stage]}
    for b in range(stage, 0, -1):
        params[block(b)] = KERNEL * nf[b] * nf[b - 1] + nf[b - 1]
    params["prediction"] = BASE * nf[0] + 1
    return params


def values(network):
    """{(layer name, variable name): numpy copy} of every variable of a staged network."""
    return {(name, v.name): v.numpy().copy()
            for name, layer in network.named_layers().items() for v in layer.weights}


def randomise(network, seed):
    """Give every variable (biases too) distinct random values, so equality means restored."""
    rng = np.random.default_rng(seed)
    for layer in network.named_layers().values():
        for v in layer.weights:
            v.assign(rng.standard_normal(v.shape, dtype=np.float32) * np.float32(0.05))


def save(tmp_path, name, **objects):
    return tf.train.Checkpoint(**objects).save(os.path.join(str(tmp_path), name))


def object_graph(path):
    reader = tf.train.load_checkpoint(path)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    return graph


def children(graph, node_id):
    return {child.local_name: child.node_id for child in graph.nodes[node_id].children}


# --------------------------------------------------------------------------- feature maps

def test_feature_maps_match_the_report():
    assert tuple(mp.feature_maps(b) for b in range(9)) == NF_SMOOTH
    assert tuple(mp.feature_maps(b, smoothing=False) for b in range(9)) == NF_PLAIN


def test_the_feature_map_divisor_divides_every_block_down_to_one_map():
    assert tuple(mp.feature_maps(b, divisor=8) for b in range(9)) == NF_EIGHTH
    assert tuple(mp.feature_maps(b, divisor=64) for b in range(9)) == NF_SIXTY_FOURTH


# --------------------------------------------------------------------------- parameter counts

@pytest.mark.parametrize("smoothing", [True, False], ids=["smoothed", "plain"])
@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("stage", range(1, 9))
@pytest.mark.parametrize("network", ["generator", "discriminator"])
def test_parameter_counts(network, stage, channels, smoothing):
    if network == "generator":
        net = mp.Generator(stage, channels, smoothing)
        expected = expected_generator_params(stage, channels, smoothing)
    else:
        net = mp.Discriminator(stage, channels, smoothing)
        expected = expected_discriminator_params(stage, channels, smoothing)
    layers = net.named_layers()
    assert list(layers) == list(expected)  # names and order
    assert {name: layer.count_params() for name, layer in layers.items()} == expected
    assert net.count_params() == sum(expected.values())
    for name, layer in layers.items():
        assert getattr(net, name) is layer
        assert {v.name for v in layer.weights} == {"kernel", "bias"}


@pytest.mark.parametrize("stage", range(1, 9))
def test_narrow_networks_have_the_same_layers_with_an_eighth_of_the_maps(stage):
    """--feature_map_divisor 8: every layer of the report's networks, at an eighth of the
    feature maps, the critic's features and its label projection included."""
    for net, expected in ((mp.Generator(stage, 2, divisor=8),
                           expected_generator_params(stage, 2, True, divisor=8)),
                          (mp.Discriminator(stage, 2, divisor=8, labels=3),
                           {**expected_discriminator_params(stage, 2, True, divisor=8),
                            "label_projection": 3 * BASE * 128})):
        assert {name: layer.count_params() for name, layer in net.named_layers().items()} \
            == expected


def test_parameter_count_spot_values():
    """Totals worked out by hand, in case the formula above and the code share a slip."""
    # 100*16384 + 16384 + 25*1024*512 + 512 + 512*1 + 1
    assert mp.Generator(1, 1).count_params() == 14_763_009
    # 1*512 + 512 + 25*512*1024 + 1024 + 16384 + 1
    assert mp.Discriminator(1, 1).count_params() == 13_125_633
    # an eighth of the maps: 100*2048 + 2048 + 25*128*64 + 64 + 64*1 + 1
    assert mp.Generator(1, 1, divisor=8).count_params() == 411_777
    # 1*64 + 64 + 25*64*128 + 128 + 2048 + 1
    assert mp.Discriminator(1, 1, divisor=8).count_params() == 207_105


# --------------------------------------------------------------------------- forward passes

@pytest.mark.parametrize("dtype", ["float32", "mixed_float16"])
@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_forward_shapes_and_dtypes(stage, channels, dtype):
    batch = 3
    G = mp.Generator(stage, channels, dtype=dtype)
    D = mp.Discriminator(stage, channels, dtype=dtype)
    for v in G.variables + D.variables:
        assert v.dtype == "float32", v.path
    if dtype == "mixed_float16":
        assert G.projection.compute_dtype == "float16"
        assert getattr(D, block(1)).compute_dtype == "float16"
        assert D.prediction.compute_dtype == "float32"
    # Saturate tanh, so that "within [-1, 1]" is actually exercised.
    output = getattr(G, block(stage) + "_output")
    output.kernel.assign(output.kernel * 1000.0)

    z = tf.random.normal([batch, LATENT], seed=stage)
    audio = G(z)
    assert audio.shape == (batch, 2 ** (4 + 2 * stage), channels)
    assert audio.dtype == tf.float32
    audio = audio.numpy()
    assert np.all(np.isfinite(audio))
    assert np.all(np.abs(audio) <= 1.0)
    assert np.abs(audio).max() > 0.99

    score = D(audio)
    assert score.shape == (batch, 1)
    assert score.dtype == tf.float32
    assert np.all(np.isfinite(score.numpy()))


# --------------------------------------------------------------------------- matrix-product convolutions

def keras_and_matmul(transpose, filters, stride, input_shape):
    """A keras convolution and the project's in its matrix-product form, holding the same
    random weights."""
    layers = []
    for cls in ((keras.layers.Conv1DTranspose, mp.Conv1DTranspose) if transpose
                else (keras.layers.Conv1D, mp.Conv1D)):
        layer = cls(filters, KERNEL, strides=stride, padding="same")
        layer.build(input_shape)
        layers.append(layer)
    layers[1].form = "matmul"
    rng = np.random.default_rng(1)
    for variables in zip(*(layer.weights for layer in layers)):
        value = rng.standard_normal(variables[0].shape).astype(np.float32) * np.float32(0.1)
        for variable in variables:
            variable.assign(value)
    return layers


def gradient_penalty_terms(layer, x):
    """The layer's output, input gradient, and the kernel and bias gradients of the squared
    input gradient: the two orders of differentiation the WGAN-GP critic update takes."""
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = layer(x)
            score = tf.reduce_sum(tf.sin(y))
        grad_x = inner.gradient(score, x)
        penalty = tf.reduce_sum(tf.square(grad_x))
    grad_kernel, grad_bias = outer.gradient(penalty, [layer.kernel, layer.bias])
    return y, grad_x, grad_kernel, grad_bias


@pytest.mark.parametrize("transpose", [False, True], ids=["conv", "transpose"])
@pytest.mark.parametrize("stride,length", [(4, 16), (4, 13), (4, 2), (1, 9)])
def test_matmul_convolution_equals_keras(transpose, stride, length):
    """Same outputs and same first- and second-order gradients as keras's layer, for the
    strided and stride-1 blocks and for a length the stride does not divide."""
    reference, matmul = keras_and_matmul(transpose, 6, stride, (3, length, 5))
    x = tf.constant(np.random.default_rng(2).standard_normal((3, length, 5)), tf.float32)
    expected = gradient_penalty_terms(reference, x)
    got = gradient_penalty_terms(matmul, x)
    assert got[0].shape == expected[0].shape
    for name, e, g in zip(("output", "input gradient", "kernel", "bias"), expected, got):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("transpose", [False, True], ids=["conv", "transpose"])
def test_matmul_convolution_has_no_scatter_add_in_either_order_of_gradient(transpose):
    """The matrix-product form's graph, up to the gradient penalty's second order, holds no
    UnsortedSegmentSum (a gather's gradient, nondeterministic on a GPU): its overlap-adds are
    shifted pads and one AddN."""
    _, matmul = keras_and_matmul(transpose, 6, 4, (3, 16, 5))
    x = tf.constant(np.random.default_rng(2).standard_normal((3, 16, 5)), tf.float32)
    graph = tf.function(gradient_penalty_terms).get_concrete_function(matmul, x).graph
    graph = graph.as_graph_def()  # with its library: custom gradients are called functions
    ops = {node.op for node in graph.node}
    ops |= {node.op for function in graph.library.function for node in function.node_def}
    assert "MatMul" in ops and "AddN" in ops
    assert not ops & {"UnsortedSegmentSum", "ScatterNd", "TensorScatterAdd"}


def test_matmul_convolution_in_bfloat16_is_close_to_float32():
    _, matmul = keras_and_matmul(False, 8, 4, (2, 16, 8))
    x = tf.random.normal([2, 16, 8], seed=4)
    low = mp.Conv1D.from_config({**matmul.get_config(), "dtype": "mixed_bfloat16"})
    low.build(x.shape)
    low.form = "matmul"
    low.set_weights(matmul.get_weights())
    y = low(x)
    assert y.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), matmul(x).numpy(), atol=0.05)


@pytest.mark.parametrize("variant", ["standard", "asymmetric", "extended", "pggan"])
def test_every_kernel_25_convolution_can_run_in_either_form(variant):
    """Every convolution of a block is the project's (both forms; the framework's by
    default), the 1x1 layers too; the form changes the output only by float rounding."""
    z = tf.random.uniform([2, 100], -1, 1, seed=5)
    for network in (mp.Generator(2, variant=variant), mp.Discriminator(2, variant=variant)):
        layers = [c for layer in network.named_layers().values() for c in mp.convolutions(layer)
                  if hasattr(c, "kernel_size")]
        assert layers and all(isinstance(c, mp.Convolution) and c.form == "framework"
                              for c in layers)
        x = z if network.name == "generator" else tf.random.uniform([2, 256, 1], seed=6)
        framework = network(x).numpy()
        for c in layers:
            c.form = "matmul"
        np.testing.assert_allclose(network(x).numpy(), framework, rtol=1e-4, atol=1e-5)


def test_a_keras_convolution_checkpoint_restores_into_its_matmul_twin(tmp_path):
    """Same variables under the same keys: checkpoints from before the change still load."""
    reference, matmul = keras_and_matmul(False, 6, 4, (2, 16, 5))
    for variable in matmul.weights:
        variable.assign(tf.zeros_like(variable))
    path = save(tmp_path, "keras", layer=reference)
    tf.train.Checkpoint(layer=matmul).restore(path).assert_existing_objects_matched()
    for restored, saved in zip(matmul.weights, reference.weights):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())


# --------------------------------------------------------------------------- leaky ReLU

@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_lrelu_and_both_orders_of_its_gradient_equal_tensorflows(dtype):
    """The gradient penalty differentiates the critic twice: lrelu's value, its gradient and
    the gradient of its gradient (with respect to the upstream gradient) are TensorFlow's
    leaky ReLU's, and the second order reaches nothing through x, whose slope is constant."""
    x = tf.cast(tf.constant([[-2.0, -0.5, 0.0, 0.25, 3.0]]), dtype)
    dy = tf.cast(tf.constant([[1.5, -2.0, 4.0, 0.5, -1.0]]), dtype)

    def orders(function):
        with tf.GradientTape(persistent=True) as outer:
            outer.watch([x, dy])
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = function(x)
            grad = inner.gradient(y, x, output_gradients=dy)
            score = tf.reduce_sum(tf.square(grad))
        return y, grad, outer.gradient(score, dy), outer.gradient(score, x)

    ours = orders(mp.lrelu)
    theirs = orders(lambda v: tf.nn.leaky_relu(v, alpha=0.2))
    for name, got, expected in zip(("value", "gradient", "second order"), ours, theirs):
        assert got.dtype == dtype, name
        np.testing.assert_array_equal(tf.cast(got, tf.float32).numpy(),
                                      tf.cast(expected, tf.float32).numpy(), err_msg=name)
    assert ours[3] is None  # TensorFlow's sends zeros back through x
    np.testing.assert_array_equal(tf.cast(theirs[3], tf.float32).numpy(), 0.0)


# --------------------------------------------------------------------------- sample norm

def numpy_sample_norm(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True) + 1e-8)


def test_sample_norm_matches_numpy():
    x = np.random.default_rng(0).standard_normal((2, 5, 7)).astype(np.float32) * 3.0
    y = mp.sample_norm(tf.constant(x))
    assert y.dtype == tf.float32
    np.testing.assert_allclose(y.numpy(), numpy_sample_norm(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.mean(y.numpy() ** 2, axis=-1), 1.0, rtol=1e-5)

    y16 = mp.sample_norm(tf.constant(x, dtype=tf.float16))
    assert y16.dtype == tf.float16
    np.testing.assert_allclose(y16.numpy(), numpy_sample_norm(x.astype(np.float16)), rtol=3e-3,
                               atol=3e-3)

    zeros = mp.sample_norm(tf.zeros([1, 3, 4]))  # epsilon: no division by zero
    np.testing.assert_array_equal(zeros.numpy(), 0.0)


def reference_generator(G, z, use_sample_norm, mean_squares):
    """The generator's forward pass by hand: its layers for the linear maps, NumPy for the rest."""
    def activate(x):
        x = np.where(x > 0, x, 0.2 * x)
        if use_sample_norm:
            x = numpy_sample_norm(x)
            mean_squares.append(np.mean(x ** 2, axis=-1))
        return x.astype(np.float32)

    x = activate(G.projection(z).numpy().reshape(-1, BASE, 1024))
    for b in range(1, G.num_blocks + 1):
        x = activate(getattr(G, block(b))(x).numpy())
    return np.tanh(getattr(G, block(G.num_blocks) + "_output")(x).numpy())


def test_generator_sample_norm_is_applied_after_every_activation():
    stage = 2
    G_norm = mp.Generator(stage, 2, use_sample_norm=True)
    G_plain = mp.Generator(stage, 2, use_sample_norm=False)
    randomise(G_norm, seed=1)
    for name, layer in G_norm.named_layers().items():
        for source, target in zip(layer.weights, getattr(G_plain, name).weights):
            target.assign(source)
    z = tf.random.normal([2, LATENT], seed=7)

    mean_squares = []
    expected = reference_generator(G_norm, z, True, mean_squares)
    assert len(mean_squares) == stage + 1  # after the projection and after every block
    for ms in mean_squares:
        np.testing.assert_allclose(ms, 1.0, rtol=1e-4)
    np.testing.assert_allclose(G_norm(z).numpy(), expected, atol=1e-5)

    expected_plain = reference_generator(G_plain, z, False, [])
    np.testing.assert_allclose(G_plain(z).numpy(), expected_plain, atol=1e-5)
    # Same weights, so the only difference is the normalisation: it must change the output.
    assert np.abs(G_norm(z).numpy() - G_plain(z).numpy()).max() > 1e-2


# --------------------------------------------------------------------------- checkpoint keys

G3_LAYERS = {"projection", block(1), block(2), block(3), block(3) + "_output"}
D3_LAYERS = {block(3) + "_input", block(3), block(2), block(1), "prediction"}
# Keras 3 keeps the kernel of Dense and Conv1D as `_kernel` (behind a `kernel` property, for
# LoRA / quantisation) but of Conv1DTranspose as `kernel`: that is what the checkpoint keys.
KERNEL_CHILD = {"projection": "_kernel", block(1): "kernel", block(2): "kernel",
                block(3): "kernel", block(3) + "_output": "_kernel",
                "discriminator/" + block(3) + "_input": "_kernel",
                "discriminator/" + block(3): "_kernel", "discriminator/" + block(2): "_kernel",
                "discriminator/" + block(1): "_kernel", "discriminator/prediction": "_kernel"}


def test_checkpoint_keys_layers_by_name(tmp_path):
    G, D = mp.Generator(3, 2), mp.Discriminator(3, 2)
    path = save(tmp_path, "stage3", generator=G, discriminator=D)
    graph = object_graph(path)
    shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    root = children(graph, 0)
    for network, net, expected in (("generator", G, G3_LAYERS), ("discriminator", D, D3_LAYERS)):
        layers = children(graph, root[network])
        assert set(layers) == expected
        for name, node in layers.items():
            kernel = KERNEL_CHILD[name if network == "generator" else f"{network}/{name}"]
            variables = children(graph, node)
            assert set(variables) == {kernel, "bias"}, (network, name)
            layer = getattr(net, name)
            for child, variable in ((kernel, layer.kernel), ("bias", layer.bias)):
                key = f"{network}/{name}/{child}/.ATTRIBUTES/VARIABLE_VALUE"
                attributes = graph.nodes[variables[child]].attributes
                assert [a.checkpoint_key for a in attributes] == [key]
                assert shapes[key] == list(variable.shape)


# --------------------------------------------------------------------------- weights-only restore

def one_adam_step(G, D):
    opt_g, opt_d = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
    opt_g.build(G.trainable_variables)
    opt_d.build(D.trainable_variables)
    z = tf.random.normal([2, LATENT], seed=3)
    with tf.GradientTape(persistent=True) as tape:
        fake = G(z)
        g_loss = -tf.reduce_mean(D(fake))
        d_loss = tf.reduce_mean(D(fake))
    opt_g.apply_gradients(zip(tape.gradient(g_loss, G.trainable_variables),
                              G.trainable_variables))
    opt_d.apply_gradients(zip(tape.gradient(d_loss, D.trainable_variables),
                              D.trainable_variables))
    return opt_g, opt_d


# The project's optimiser names sort after the networks' (keys stay under generator/...);
# "adam_*" sort first, so the checkpoint keys the network variables under the optimiser path.
@pytest.mark.parametrize("optimisers", [
    None,
    pytest.param(("generator_optimizer", "discriminator_optimizer"), marks=pytest.mark.slow),
    pytest.param(("adam_g", "adam_d"), marks=pytest.mark.slow)],  # one Adam step: trains
    ids=["networks_only", "project_names", "keyed_under_optimiser"])
def test_weights_only_restore_brings_back_every_parameter(tmp_path, optimisers):
    G, D = mp.Generator(3, 2), mp.Discriminator(3, 2)
    randomise(G, 10)
    randomise(D, 11)
    objects = {"generator": G, "discriminator": D}
    if optimisers:
        opt_g, opt_d = one_adam_step(G, D)
        objects.update({optimisers[0]: opt_g, optimisers[1]: opt_d})
    path = save(tmp_path, "stage3", **objects)
    keys = [key for key, _ in tf.train.list_variables(path)]
    if optimisers == ("adam_g", "adam_d"):
        assert not any(key.startswith(("generator/", "discriminator/")) for key in keys)
        assert any(key.startswith("adam_g/_trainable_variables/") for key in keys)

    G2, D2 = mp.Generator(3, 2), mp.Discriminator(3, 2)
    randomise(G2, 20)
    randomise(D2, 21)
    checkpoints.restore_layers(path, {"generator": G2.named_layers(),
                                 "discriminator": D2.named_layers()})
    for saved, restored in ((G, G2), (D, D2)):
        before, after = values(saved), values(restored)
        assert after.keys() == before.keys()
        restored_params = 0
        for key, value in before.items():
            np.testing.assert_array_equal(after[key], value, err_msg=str(key))
            restored_params += value.size
        assert restored_params == restored.count_params() == saved.count_params()


# --------------------------------------------------------------------------- growing

def test_carried_over_layers_by_stage():
    G, D = mp.Generator(3), mp.Discriminator(3)
    assert set(G.carried_over_layers()) == {"projection", block(1), block(2)}
    assert set(D.carried_over_layers()) == {block(2), block(1), "prediction"}
    assert set(mp.Generator(1).carried_over_layers()) == {"projection"}
    assert set(mp.Discriminator(1).carried_over_layers()) == {"prediction"}


def test_grow_stage_2_into_stage_3(tmp_path):
    G2, D2 = mp.Generator(2, 2), mp.Discriminator(2, 2)
    randomise(G2, 30)
    randomise(D2, 31)
    path = save(tmp_path, "stage2", generator=G2, discriminator=D2)
    G3, D3 = mp.Generator(3, 2), mp.Discriminator(3, 2)
    randomise(G3, 40)
    randomise(D3, 41)
    fresh = {"generator": values(G3), "discriminator": values(D3)}
    checkpoints.restore_layers(path, {"generator": G3.carried_over_layers(),
                                 "discriminator": D3.carried_over_layers()})

    for network, old, new, grown in (
            ("generator", G2, G3, {"projection", block(1), block(2)}),
            ("discriminator", D2, D3, {"prediction", block(1), block(2)})):
        old_values, new_values = values(old), values(new)
        for (layer, variable), value in new_values.items():
            if layer in grown:
                np.testing.assert_array_equal(value, old_values[layer, variable],
                                              err_msg=f"{network}/{layer}")
            else:  # block 3 and the 1x1 layer keep their fresh values
                np.testing.assert_array_equal(value, fresh[network][layer, variable],
                                              err_msg=f"{network}/{layer}")
                assert layer.startswith(block(3))


def assert_one_line_user_error(path, layers_by_network):
    with pytest.raises(UserError) as error:
        checkpoints.restore_layers(path, layers_by_network)
    assert "\n" not in str(error.value)
    assert path in str(error.value)


def test_stage_3_checkpoint_into_stage_2_networks_fails(tmp_path):
    path = save(tmp_path, "stage3", generator=mp.Generator(3), discriminator=mp.Discriminator(3))
    G2, D2 = mp.Generator(2), mp.Discriminator(2)
    # progressive_block_2_output / _input are not in a stage-3 checkpoint.
    assert_one_line_user_error(path, {"generator": G2.named_layers()})
    assert_one_line_user_error(path, {"discriminator": D2.named_layers()})


def test_feature_map_mismatch_is_a_user_error(tmp_path):
    # Blocks 1..4 agree; block 5 has 32 channels plain and 48 smoothed.
    path = save(tmp_path, "plain5", generator=mp.Generator(5, smoothing=False),
                discriminator=mp.Discriminator(5, smoothing=False))
    G5, D5 = mp.Generator(5), mp.Discriminator(5)
    assert_one_line_user_error(path, {"generator": G5.named_layers()})
    assert_one_line_user_error(path, {"discriminator": D5.named_layers()})
    # Growing a smoothed stage 6 from the plain stage 5 carries block 5 over: also refused.
    G6 = mp.Generator(6)
    assert_one_line_user_error(path, {"generator": G6.carried_over_layers()})


# --------------------------------------------------------------------------- freezing

def variable_names(variables, network):
    owner = {id(v): (name, v.name) for name, layer in network.named_layers().items()
             for v in layer.weights}
    return sorted(owner[id(v)] for v in variables)


def test_freeze_early_layers_trains_block_n_the_1x1_and_the_dense_layers():
    # As the original code: only blocks 1..N-1 are marked untrainable.
    G, D = mp.Generator(3), mp.Discriminator(3)
    G.freeze_early_layers()
    D.freeze_early_layers()
    assert variable_names(G.trainable_variables, G) == sorted([
        ("projection", "kernel"), ("projection", "bias"),
        (block(3), "kernel"), (block(3), "bias"),
        (block(3) + "_output", "kernel"), (block(3) + "_output", "bias")])
    assert variable_names(D.trainable_variables, D) == sorted([
        (block(3) + "_input", "kernel"), (block(3) + "_input", "bias"),
        (block(3), "kernel"), (block(3), "bias"),
        ("prediction", "kernel"), ("prediction", "bias")])
    # 100*16384 + 16384 + 25*256*128 + 128 + 128*1 + 1 and
    # 1*128 + 128 + 25*128*256 + 256 + 16384*1 + 1
    assert sum(int(np.prod(v.shape)) for v in G.trainable_variables) == 2_474_241
    assert sum(int(np.prod(v.shape)) for v in D.trainable_variables) == 836_097
    assert len(G.non_trainable_variables) == 4  # blocks 1 and 2
    assert len(D.non_trainable_variables) == 4


def test_layers_start_from_the_frameworks_default_initialisers():
    """Glorot-uniform kernels and zero biases, the original's (TF1's) defaults: every kernel
    within its Glorot limit sqrt(6 / (fan_in + fan_out)) with the uniform distribution's
    spread, every bias zero."""
    for network in (mp.Generator(2), mp.Discriminator(2)):
        for name, layer in network.named_layers().items():
            kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
            receptive = int(np.prod(kernel.shape[:-2])) if kernel.ndim > 2 else 1
            fan_in, fan_out = (kernel.shape[-2] * receptive, kernel.shape[-1] * receptive)
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            assert np.abs(kernel).max() <= limit * (1 + 1e-6), name  # float32 rounding
            if kernel.size >= 1000:
                assert kernel.std() == pytest.approx(limit / np.sqrt(3), rel=0.05), name
            assert not bias.any(), name


def test_the_emphasised_critic_scores_the_pre_emphasised_window():
    """--critic_emphasis A: the critic scores x as the plain critic (same weights) scores
    x[t] - A x[t-1], x[-1] = 0; build_networks gives it the config's A."""
    tf.keras.utils.set_random_seed(0)
    plain, emphasised = mp.Discriminator(1, divisor=8), mp.Discriminator(1, divisor=8,
                                                                         emphasis=0.95)
    emphasised.set_weights(plain.get_weights())
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 64, 1)).astype(np.float32)
    heard = audio - 0.95 * np.concatenate([np.zeros((3, 1, 1), np.float32), audio[:, :-1]], 1)
    np.testing.assert_allclose(emphasised(audio), plain(heard), rtol=1e-5, atol=1e-5)
    assert np.abs(emphasised(audio).numpy() - plain(audio).numpy()).max() > 1e-3
    config = {"num_blocks": 1, "channels": 1, "feature_map_smoothing": True,
              "use_sample_norm": False, "feature_map_divisor": 8}
    assert train_progressive.build_networks(config, "float32")["discriminator"].emphasis == 0
    built = train_progressive.build_networks(dict(config, critic_emphasis=0.5), "float32")
    assert built["discriminator"].emphasis == 0.5
