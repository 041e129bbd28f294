"""Progressive generator and discriminator (report §7.6, tables 7.1 and 7.2) and the report's
experimental variants of them (§7.7).

One network definition loops over the blocks of a stage; everything else (window length,
feature maps) is derived from the stage number. Every layer is a named attribute
(`progressive_block_b`, `progressive_block_N_output`, ...) so that tf.train.Checkpoint keys it
by name and weights move between stages by block name, never by position.

A variant (rules.VARIANTS) changes how the loop builds a block and a layer, never the loop:
    standard    the main model: a block is one strided convolution
    asymmetric  every discriminator block is two convolutions: stride 1, then stride 4
    extended    every generator and discriminator block is two convolutions
    pggan       the main model with PGGAN's equalised learning rate (every layer), sample
                normalisation (always) and the minibatch standard deviation before block 1 of D
A two-convolution block is a container layer `progressive_block_b` holding `conv` (stride 1)
and `strided_conv` (stride 4) as named attributes: checkpointed as progressive_block_b/conv/...
Pure: layers and shapes, no file IO.
"""

import math

import keras
import tensorflow as tf

from rules import (
    BASE_LENGTH,
    KERNEL_SIZE,
    LATENT_DIM,
    STRIDE,
    VARIANTS,
    feature_maps,
    window_length,
)

LRELU_ALPHA = 0.2
LABEL_EMBEDDING = 32  # values of a label's embedding in the generator's input
HE_GAIN, OUTPUT_GAIN = math.sqrt(2.0), 1.0  # equalised learning rate's gains (pggan)


def block_name(block):
    return f"progressive_block_{block}"


def sample_norm(x, epsilon=1e-8):
    """Sample normalisation (§7.7, PGGAN's pixel norm over channels at every time step)."""
    x32 = tf.cast(x, tf.float32)
    scale = tf.math.rsqrt(tf.reduce_mean(tf.square(x32), axis=-1, keepdims=True) + epsilon)
    return tf.cast(x32 * scale, x.dtype)


def minibatch_stddev(x, epsilon=1e-8):
    """PGGAN's minibatch standard deviation, appended to x [batch, time, channels] as one more
    channel: the standard deviation across the batch of every feature (time step and channel),
    averaged over the features. One number, the same for every example and time step.
    Computed in float32 (epsilon keeps the gradient finite where the batch agrees)."""
    x32 = tf.cast(x, tf.float32)
    variance = tf.reduce_mean(tf.square(x32 - tf.reduce_mean(x32, axis=0)), axis=0)
    stddev = tf.reduce_mean(tf.sqrt(variance + epsilon))
    channel = tf.broadcast_to(stddev, tf.concat([tf.shape(x)[:-1], [1]], axis=0))
    return tf.concat([x, tf.cast(channel, x.dtype)], axis=-1)


@tf.custom_gradient
def lrelu(x):
    """Leaky ReLU whose gradient is dy times a mask the outer tape sees as a constant.

    Its slope is piecewise constant, so the gradient penalty's double backward needs no path
    back through the critic's forward pass; TensorFlow's own LeakyReluGrad gradient sends
    zeros along it and pays a full critic backward pass per critic update for them (about
    12 % of a stage-3 iteration, bench/train_step.py)."""
    def gradient(dy):
        # TensorFlow's one-pass kernel, where(x > 0, dy, alpha dy); x held constant.
        return tf.raw_ops.LeakyReluGrad(gradients=dy, features=tf.stop_gradient(x),
                                        alpha=LRELU_ALPHA)
    return tf.nn.leaky_relu(x, alpha=LRELU_ALPHA), gradient


def same_padding(length_in, length_out, kernel, stride):
    """(left, total) zero padding of TensorFlow's "same" convolution from length_in to
    length_out samples (the transposed convolution pads as the convolution it reverses)."""
    total = max((length_out - 1) * stride + kernel - length_in, 0)
    return total // 2, total


def overlap_add(taps, kernel, stride):
    """Sum the taps [batch, length, kernel x F] of `length` steps, tap k of step i landing on
    sample stride i + k: [batch, (length + groups - 1) stride, F], groups = ceil(kernel /
    stride). Taps grouped by `stride` land on whole blocks of `stride` samples (group q of
    step i on block i + q), so the sum is `groups` shifted adds: no scatter-add
    (unsorted_segment_sum), which is nondeterministic on a GPU."""
    length, filters = taps.shape[1], taps.shape[2] // kernel
    groups = -(-kernel // stride)
    last = (kernel - stride * (groups - 1)) * filters
    pieces = tf.split(taps, [stride * filters] * (groups - 1) + [last], axis=-1)
    pieces[-1] = tf.pad(pieces[-1], [[0, 0], [0, 0], [0, stride * filters - last]])
    y = tf.add_n([tf.pad(p, [[0, 0], [q, groups - 1 - q], [0, 0]]) for q, p in enumerate(pieces)])
    return tf.reshape(y, [-1, (length + groups - 1) * stride, filters])


def windows(x, kernel, stride, length_out):
    """The length_out windows of `kernel` samples of x [batch, length, C], `stride` apart, as
    [batch, length_out, kernel x C]. Their gradient is overlap_add, not the gather's
    scatter-add; it is linear, so the gradient penalty's second order differentiates it."""
    length, channels = x.shape[1], x.shape[2]

    @tf.custom_gradient
    def frame(x):
        taps = tf.range(length_out)[:, None] * stride + tf.range(kernel)[None, :]
        y = tf.reshape(tf.gather(x, taps, axis=1), [-1, length_out, kernel * channels])
        return y, lambda dy: overlap_add(dy, kernel, stride)[:, :length]
    return frame(x)


def conv1d_matmul(x, kernel, stride):
    """A "same" Conv1D as one matrix product: the kernel-sized windows of x [batch, length, C]
    as rows, times the kernel [K, C, F] read as [K C, F]. The time axis must have a static
    length."""
    k, channels, filters = kernel.shape
    length = x.shape[1]
    length_out = -(-length // stride)
    left, total = same_padding(length, length_out, k, stride)
    x = tf.pad(x, [[0, 0], [left, total - left], [0, 0]])
    patches = tf.reshape(windows(x, k, stride, length_out), [-1, k * channels])
    y = tf.matmul(patches, tf.reshape(kernel, [k * channels, filters]))
    return tf.reshape(y, [-1, length_out, filters])


def conv1d_transpose_matmul(x, kernel, stride):
    """A "same" Conv1DTranspose as one matrix product: x [batch, length, C] times the kernel
    [K, F, C] read as [K F, C] transposed gives every input step's K output taps, which are
    then overlap-added (tap k of step i lands on padded output sample stride i + k)."""
    k, filters, channels = kernel.shape
    length = x.shape[1]
    length_out = length * stride
    left, _ = same_padding(length_out, length, k, stride)
    taps = tf.matmul(tf.reshape(x, [-1, channels]), tf.reshape(kernel, [k * filters, channels]),
                     transpose_b=True)
    y = overlap_add(tf.reshape(taps, [-1, length, k * filters]), k, stride)
    return y[:, left:left + length_out]


class Convolution:
    """A keras convolution computed in one of two forms, chosen per layer before tracing:
    "framework" (keras's own: oneDNN on a CPU, cuDNN on a GPU) or "matmul" (one matrix
    product, conv1d_matmul / conv1d_transpose_matmul). The weights, their checkpoint keys and
    what is computed (up to float rounding) are the same in both. built_shape remembers the
    input shape the layer was built for (conv_forms.py times the layer at it)."""

    form = "framework"
    built_shape = None

    def build(self, input_shape):
        super().build(input_shape)
        self.built_shape = tuple(input_shape)

    def call(self, inputs):
        if self.form != "matmul":
            return super().call(inputs)
        y = self.as_matmul(inputs, self.kernel, self.strides[0])
        return y + self.bias if self.use_bias else y


class Conv1D(Convolution, keras.layers.Conv1D):
    as_matmul = staticmethod(conv1d_matmul)


class Conv1DTranspose(Convolution, keras.layers.Conv1DTranspose):
    as_matmul = staticmethod(conv1d_transpose_matmul)


class EqualisedLearningRate:
    """PGGAN's equalised learning rate, mixed into Dense, Conv1D and Conv1DTranspose: kernels
    are drawn from N(0, 1) and scaled at run time by gain / sqrt(fan_in), with fan_in = input
    channels x kernel size. Scaling the input is scaling the kernel (W (c x) + b = (c W) x + b),
    so the stored kernel keeps unit variance. The gain is sqrt(2) (He's) for the layers an
    activation follows and 1 for the output layers, as in the original and in PGGAN."""

    def __init__(self, *args, gain=HE_GAIN, **kwargs):
        # from_config hands the initialisers back; they are always these.
        kwargs.pop("kernel_initializer", None)
        kwargs.pop("bias_initializer", None)
        super().__init__(*args, kernel_initializer=keras.initializers.RandomNormal(0.0, 1.0),
                         bias_initializer="zeros", **kwargs)
        self.gain = gain

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}

    def build(self, input_shape):
        super().build(input_shape)
        fan_in = input_shape[-1] * math.prod(getattr(self, "kernel_size", (1,)))
        self.runtime_scale = self.gain / math.sqrt(fan_in)

    def call(self, inputs):
        return super().call(inputs * self.runtime_scale)


EQUALISED = {layer: type("Equalised" + layer.__name__, (EqualisedLearningRate, layer), {})
             for layer in (keras.layers.Dense, Conv1D, Conv1DTranspose)}


def conv(filters, kernel, stride, dtype, name, transpose=False, equalised=False, gain=HE_GAIN):
    """A "same" Conv1D or Conv1DTranspose layer (of either form), with PGGAN's run-time weight
    scaling by gain / sqrt(fan_in) if `equalised`."""
    layer = Conv1DTranspose if transpose else Conv1D
    extra = {"gain": gain} if equalised else {}
    layer = EQUALISED[layer] if equalised else layer
    return layer(filters, kernel, strides=stride, padding="same", dtype=dtype, name=name, **extra)


def dense(units, dtype, name, equalised=False, gain=HE_GAIN):
    if equalised:
        return EQUALISED[keras.layers.Dense](units, dtype=dtype, name=name, gain=gain)
    return keras.layers.Dense(units, dtype=dtype, name=name)


class ConvBlock(keras.layers.Layer):
    """A block of several convolutions, each a named attribute (checkpointed by its name).
    The network runs them in order with its activation after each (StagedNetwork.run_block)."""

    def __init__(self, convolutions, **kwargs):
        super().__init__(**kwargs)
        self.conv_names = tuple(convolutions)
        for name, layer in convolutions.items():
            setattr(self, name, layer)

    def convolutions(self):
        return [getattr(self, name) for name in self.conv_names]

    def build(self, input_shape):
        for layer in self.convolutions():
            layer.build(input_shape)
            input_shape = layer.compute_output_shape(input_shape)


def convolutions(block):
    """The convolutions of a block in order: itself, or those of a ConvBlock."""
    return block.convolutions() if isinstance(block, ConvBlock) else [block]


class StagedNetwork(keras.Model):
    """A network of one stage whose layers are named attributes, built at construction."""

    def __init__(self, num_blocks, variant="standard", dtype="float32", **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        if variant not in VARIANTS:
            raise ValueError(f"unknown model variant {variant!r}: one of {', '.join(VARIANTS)}")
        self.num_blocks, self.variant = num_blocks, VARIANTS[variant]
        self.layer_dtype = dtype
        self.layer_names = ()

    def add_layer(self, name, layer, input_shape):
        setattr(self, name, layer)  # a named attribute: checkpointed under this name
        layer.build(input_shape)
        self.layer_names += (name,)
        return layer

    def named_layers(self):
        return {name: getattr(self, name) for name in self.layer_names}

    def make_conv(self, filters, kernel, stride, name, transpose=False, gain=HE_GAIN):
        return conv(filters, kernel, stride, self.layer_dtype, name, transpose,
                    self.variant.equalised_lr, gain)

    def make_block(self, b, filters, count, transpose=False):
        """Block b: one stride-4 convolution to `filters` channels, or (count 2) a stride-1
        convolution to `filters` channels and then the stride-4 one; run_block follows each
        with the network's activation."""
        if count == 1:
            return self.make_conv(filters, KERNEL_SIZE, STRIDE, block_name(b), transpose)
        convs = {name: self.make_conv(filters, KERNEL_SIZE, stride, name, transpose)
                 for name, stride in (("conv", 1), ("strided_conv", STRIDE))}
        return ConvBlock(convs, name=block_name(b), dtype=self.layer_dtype)

    def activate(self, x):
        return lrelu(x)

    def run_block(self, b, x, shift=None, gain=None):
        """Block b's convolutions, each followed by the activation; before the last
        activation the channels are scaled by 1 + `gain` and then `shift` is added (each
        [batch, channels], a label's, Generator)."""
        layers = convolutions(getattr(self, block_name(b)))
        for layer in layers[:-1]:
            x = self.activate(layer(x))
        x = layers[-1](x)
        if gain is not None:
            x *= 1 + tf.cast(gain[:, None, :], x.dtype)
        return self.activate(x if shift is None else x + tf.cast(shift[:, None, :], x.dtype))

    def carried_over_layers(self):
        """Layers that stage N shares with stage N-1, grown from it: all but block N (and its
        label layer) and the 1x1 layers (§7.6), so blocks 1..N-1 and the dense layers."""
        new = {block_name(self.num_blocks) + suffix
               for suffix in ("", "_input", "_output", "_label")}
        return {name: layer for name, layer in self.named_layers().items() if name not in new}

    def early_blocks(self):
        """Blocks 1..N-1 (with their label layers, if any): what a frozen stage does not
        train (§7.6)."""
        names = [block_name(b) + suffix for b in range(1, self.num_blocks)
                 for suffix in ("", "_label")]
        return {name: getattr(self, name) for name in names if name in self.layer_names}

    def freeze_early_layers(self):
        """Stop training blocks 1..N-1. Block N, the 1x1 layers and the dense layers (G's
        projection, D's prediction, the encoder's heads) keep training, as in the original
        code, which set trainable=False on the early blocks only; the report's prose says
        only the new layers train."""
        for layer in self.early_blocks().values():
            layer.trainable = False


class Generator(StagedNetwork):
    """Table 7.1: dense 100 -> 16x1024, blocks 1..N of Conv1DTranspose (stride 4), 1x1 + tanh.
    The extended variant's blocks are a stride-1 and a stride-4 Conv1DTranspose. With
    `divisor` K (--feature_map_divisor) every block has nf(b)/K maps: 16x1024/K, and so on.

    Conditioned on `labels` labels (--condition folders), its input is the latent followed by
    a one-hot label [batch, 100 + labels]; the label's learned embedding (label_embedding,
    LABEL_EMBEDDING values), normalised to unit second moment as StyleGAN2-ADA's mapping does,
    joins the latent into the projection. With `label_blocks` (--label_generator
    every_block) each block b also shifts its channels by a learned projection of that
    embedding (progressive_block_b_label, before the activation): a class-conditional bias
    at every scale, as BigGAN's conditional normalisation shifts them; with `label_gain` as
    well (--label_generator every_block_gain) that layer also scales them by 1 + another
    projection, BigGAN's class-conditional gain, so that a label sets its own loudness at
    every scale. A blend of one-hot labels blends their embeddings: a morph from one label
    to another."""

    def __init__(self, num_blocks, channels=1, smoothing=True, use_sample_norm=False,
                 dtype="float32", variant="standard", labels=0, label_blocks=False,
                 label_gain=False, divisor=1, **kwargs):
        super().__init__(num_blocks, variant, name="generator", dtype=dtype, **kwargs)
        if use_sample_norm and self.variant.sample_norm is False:
            raise ValueError(f"the {variant} variant has no sample normalisation")
        self.use_sample_norm = (use_sample_norm if self.variant.sample_norm is None
                                else self.variant.sample_norm)
        nf = [feature_maps(b, smoothing, divisor) for b in range(num_blocks + 1)]
        self.base_feature_maps = nf[0]
        self.labels = labels
        if labels:
            self.add_layer("label_embedding", keras.layers.Dense(
                LABEL_EMBEDDING, use_bias=False, dtype=dtype, name="label_embedding"),
                (None, labels))
        self.add_layer("projection", dense(BASE_LENGTH * nf[0], dtype, "projection",
                                           self.variant.equalised_lr, OUTPUT_GAIN),
                       (None, LATENT_DIM + (LABEL_EMBEDDING if labels else 0)))
        length = BASE_LENGTH
        for b in range(1, num_blocks + 1):
            layer = self.make_block(b, nf[b], self.variant.generator_convs, transpose=True)
            self.add_layer(block_name(b), layer, (None, length, nf[b - 1]))
            if labels and (label_blocks or label_gain):
                # gain (if any) and shift, zero at first: the model starts as the one with
                # the label at the input only
                self.add_layer(block_name(b) + "_label", keras.layers.Dense(
                    nf[b] * (2 if label_gain else 1), use_bias=False,
                    kernel_initializer="zeros", dtype=dtype, name=block_name(b) + "_label"),
                    (None, LABEL_EMBEDDING))
            length *= STRIDE
        self.label_blocks = bool(labels and (label_blocks or label_gain))
        self.label_gain = bool(labels and label_gain)
        name = block_name(num_blocks) + "_output"
        self.add_layer(name, self.make_conv(channels, 1, 1, name, gain=OUTPUT_GAIN),
                       (None, length, nf[num_blocks]))
        self.built = True

    def activate(self, x):
        x = lrelu(x)
        return sample_norm(x) if self.use_sample_norm else x

    def call(self, z):
        if self.labels:
            # At unit second moment the embedding's 32 values carry as much of the input as the
            # 100 uniform latents (second moment 1/3), whatever its weights' scale: left at its
            # initial scale (a few per cent of the input) a label barely moved the output in
            # 300 steps, as Adam moves each weight by about 1e-4 a step (BENCHMARKS.md).
            label = sample_norm(self.label_embedding(z[:, LATENT_DIM:]))
            z = tf.concat([z[:, :LATENT_DIM], tf.cast(label, z.dtype)], axis=1)
        x = self.projection(z)
        x = self.activate(tf.reshape(x, [-1, BASE_LENGTH, self.base_feature_maps]))
        for b in range(1, self.num_blocks + 1):
            shift = gain = None
            if self.label_blocks:
                shift = getattr(self, block_name(b) + "_label")(label)
                if self.label_gain:
                    gain, shift = tf.split(shift, 2, axis=1)
            x = self.run_block(b, x, shift, gain)
        x = getattr(self, block_name(self.num_blocks) + "_output")(x)
        return tf.cast(tf.tanh(x), tf.float32)


class CriticBody(StagedNetwork):
    """Table 7.2 up to the features: 1x1 C -> nf(N), blocks N..1 of Conv1D (stride 4), flattened
    to 16x1024. The discriminator scores them; the VAE-GAN's encoder reads a latent from them.
    The asymmetric and extended variants' blocks are a stride-1 and a stride-4 Conv1D; pggan's
    block 1 reads one more channel, the minibatch standard deviation. With `divisor` K
    (--feature_map_divisor) every block has nf(b)/K maps and the features are 16x1024/K."""

    def __init__(self, num_blocks, channels=1, smoothing=True, dtype="float32",
                 name="discriminator", variant="standard", divisor=1, **kwargs):
        super().__init__(num_blocks, variant, name=name, dtype=dtype, **kwargs)
        nf = [feature_maps(b, smoothing, divisor) for b in range(num_blocks + 1)]
        self.feature_count = BASE_LENGTH * nf[0]  # flattened features (table 7.2): 16 x nf(0)
        length = window_length(num_blocks)
        layer_name = block_name(num_blocks) + "_input"
        self.add_layer(layer_name, self.make_conv(nf[num_blocks], 1, 1, layer_name),
                       (None, length, channels))
        for b in range(num_blocks, 0, -1):
            extra = 1 if b == 1 and self.variant.minibatch_stddev else 0
            layer = self.make_block(b, nf[b - 1], self.variant.critic_convs)
            self.add_layer(block_name(b), layer, (None, length, nf[b] + extra))
            length //= STRIDE
        self.built = True

    def features(self, x):
        x = self.activate(getattr(self, block_name(self.num_blocks) + "_input")(x))
        for b in range(self.num_blocks, 0, -1):
            if b == 1 and self.variant.minibatch_stddev:
                x = minibatch_stddev(x)
            x = self.run_block(b, x)
        return tf.reshape(x, [-1, self.feature_count])


class Discriminator(CriticBody):
    """Table 7.2: the critic body, then dense 16x1024 -> 1 with no activation.

    Conditioned on `labels` labels, a projection critic (Miyato & Koyama 2018): the score
    adds the inner product of the features with the label's learned projection
    (label_projection), D(x, y) = w . f(x) + b + e_y . f(x); call(x, condition) with the
    one-hot labels [batch, labels]. With `centred` (--label_critic centred) the projection is
    less its mean over the labels, e_y - mean_k e_k: as expressive (w can absorb the mean),
    but with balanced labels e_y then learns how label y's real windows differ from all real
    windows less how its fakes differ from all fakes, not the realism every label shares.
    With `pooled` (--label_critic pooled) the projection is of the features summed over
    their 16 positions, D(x, y) = w . f(x) + b + e_y . sum_t f_t(x), as Miyato & Koyama's
    global sum pooling: one e_y for every position, so a label is heard alike wherever in
    the window it shows, and each of its weights learns from 16 positions' features.
    With `classifier` (--label_critic auxiliary) it also names the label of what it hears
    (label_classifier, the features' logits of the labels, AC-GAN's auxiliary classifier):
    call(x, condition, classify=True) returns both. With `matching` (--label_critic matching)
    the projection itself is that classifier: its logits of the labels are the projection's
    terms e_k . f(x), so that learning to name real windows' labels (against each other
    label's term: Reed et al. 2016's matching-aware critic, real music with a wrong label
    scored below it with its own) shapes the very term of the score the generator climbs.
    With `normalised` as well (--label_critic normalised) that term hears the features
    scaled to unit root mean square, e_y . f(x) / rms(f(x)): the label's term is then the
    same for a window at any loudness, where the plain term grows with f(x) and a generator
    can move it by loudness alone.

    With `emphasis` A (--critic_emphasis, ours) it hears x[t] - A x[t-1] (x[-1] = 0), the
    pre-emphasis of speech coders and of SEGAN: a fixed filter, no weights, that lifts the
    highs (by up to 1 + A) and quietens the lows (to 1 - A at 0 Hz), so that the quiet highs
    of music weigh in its score and in the gradient the generator learns from."""

    def __init__(self, num_blocks, channels=1, smoothing=True, dtype="float32",
                 variant="standard", labels=0, classifier=False, centred=False, pooled=False,
                 matching=False, normalised=False, divisor=1, emphasis=0.0, **kwargs):
        super().__init__(num_blocks, channels, smoothing, dtype, variant=variant,
                         divisor=divisor, **kwargs)
        # The critic's output feeds the losses: keep it in float32 under mixed precision.
        self.add_layer("prediction", dense(1, "float32", "prediction",
                                           self.variant.equalised_lr, OUTPUT_GAIN),
                       (None, self.feature_count))
        self.emphasis = float(emphasis)
        self.labels = labels
        self.pooled = bool(labels and pooled)
        if labels:
            self.add_layer("label_projection", keras.layers.Dense(
                self.feature_count // BASE_LENGTH if self.pooled else self.feature_count,
                use_bias=False, dtype="float32", name="label_projection"), (None, labels))
        self.normalised = bool(labels and normalised)
        self.matching = bool(labels and matching) or self.normalised
        self.classifier = bool(labels and classifier) or self.matching
        self.centred = bool(labels and centred)
        if self.classifier and not self.matching:
            self.add_layer("label_classifier", keras.layers.Dense(
                labels, dtype="float32", name="label_classifier"), (None, self.feature_count))

    @property
    def scores_examples_alone(self):
        """Whether an example's score depends on that example alone: no minibatch standard
        deviation, no batch statistics. Then batches can be scored together in one call."""
        return not self.variant.minibatch_stddev

    def call(self, x, condition=None, classify=False):
        if self.emphasis:  # [batch, time, channels]: each sample less A times the one before
            x = x - self.emphasis * tf.pad(x, [[0, 0], [1, 0], [0, 0]])[:, :-1]
        features = self.features(x)
        score = self.prediction(features)
        if self.labels:
            condition = tf.cast(condition, tf.float32)
            if self.centred:  # one-hot (or a blend) less 1/labels: e_y less the mean e_k
                condition -= 1.0 / self.labels
            projected = self.label_projection(condition)
            heard = tf.cast(features, tf.float32)
            if self.normalised:  # [batch, features] at unit root mean square per window
                heard *= tf.math.rsqrt(tf.reduce_mean(tf.square(heard), axis=1,
                                                      keepdims=True) + 1e-8)
            if self.pooled:  # [batch, 16 positions, maps] summed over the positions
                heard = tf.reduce_sum(tf.reshape(heard, [-1, BASE_LENGTH, projected.shape[-1]]),
                                      axis=1)
            score += tf.reduce_sum(heard * projected, axis=1, keepdims=True)
        if classify and self.matching:  # e_k . f(x) of every label k: [batch, labels]
            # (the kernel read inside a mixed-precision call comes cast to the compute dtype)
            kernel = tf.cast(self.label_projection.kernel, tf.float32)
            return score, tf.einsum("bf,kf->bk", heard, kernel)
        if classify:
            return score, self.label_classifier(features)
        return score
