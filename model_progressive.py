"""Progressive generator and discriminator (report §7.6, tables 7.1 and 7.2).

One network definition loops over the blocks of a stage; everything else (window length,
feature maps) is derived from the stage number. Every layer is a named attribute
(`progressive_block_b`, `progressive_block_N_output`, ...) so that tf.train.Checkpoint keys it
by name and weights move between stages by block name, never by position.
Pure: layers and shapes, no file IO.
"""

import math

import keras
import tensorflow as tf

from utils import window_length

LATENT_DIM = 100
BASE_LENGTH = 16  # samples out of the projection, into block 1 (table 7.1)
KERNEL_SIZE = 25
STRIDE = 4
LRELU_ALPHA = 0.2
FEATURES = BASE_LENGTH * 1024  # the flattened 16 x nf(0) features of the critic (table 7.2)


def feature_maps(block, smoothing=True):
    """nf(b), the channels of block b (§7.6 "feature map smoothing").

    WaveGAN's 1024 // 2^b for b <= 4 (and for every b without smoothing); smoothed b >= 5 is
    25 % or 50 % below the next power of two: 48, 32, 24, 16 for blocks 5..8.
    """
    if block <= 4 or not smoothing:
        return 1024 // 2 ** block
    exponent = math.ceil((block - 4) / 2)
    next_power = 64 // 2 ** (exponent - 1)
    return int(0.75 * next_power) if block % 2 else int(0.5 * next_power)


def block_name(block):
    return f"progressive_block_{block}"


def sample_norm(x, epsilon=1e-8):
    """Sample normalisation (§7.7, PGGAN's pixel norm over channels at every time step)."""
    x32 = tf.cast(x, tf.float32)
    scale = tf.math.rsqrt(tf.reduce_mean(tf.square(x32), axis=-1, keepdims=True) + epsilon)
    return tf.cast(x32 * scale, x.dtype)


def lrelu(x):
    return tf.nn.leaky_relu(x, alpha=LRELU_ALPHA)


class StagedNetwork(keras.Model):
    """A network of one stage whose layers are named attributes, built at construction."""

    def __init__(self, num_blocks, **kwargs):
        super().__init__(**kwargs)
        self.num_blocks = num_blocks
        self.layer_names = ()

    def add_layer(self, name, layer, input_shape):
        setattr(self, name, layer)  # a named attribute: checkpointed under this name
        layer.build(input_shape)
        self.layer_names += (name,)
        return layer

    def named_layers(self):
        return {name: getattr(self, name) for name in self.layer_names}

    def carried_over_layers(self):
        """Layers that stage N shares with stage N-1: all but block N and the 1x1 layers (§7.6).

        They are the ones grown from stage N-1 and the ones a frozen stage does not train.
        """
        new = {block_name(self.num_blocks), block_name(self.num_blocks) + "_input",
               block_name(self.num_blocks) + "_output"}
        return {name: layer for name, layer in self.named_layers().items() if name not in new}

    def freeze_early_layers(self):
        """Stop training blocks 1..N-1 (and the dense layers); block N and 1x1 layers train."""
        for layer in self.carried_over_layers().values():
            layer.trainable = False


def conv(filters, kernel, stride, dtype, name, transpose=False):
    layer = keras.layers.Conv1DTranspose if transpose else keras.layers.Conv1D
    return layer(filters, kernel, strides=stride, padding="same", dtype=dtype, name=name)


class Generator(StagedNetwork):
    """Table 7.1: dense 100 -> 16x1024, blocks 1..N of Conv1DTranspose (stride 4), 1x1 + tanh."""

    def __init__(self, num_blocks, channels=1, smoothing=True, use_sample_norm=False,
                 dtype="float32", **kwargs):
        super().__init__(num_blocks, name="generator", dtype=dtype, **kwargs)
        self.use_sample_norm = use_sample_norm
        nf = [feature_maps(b, smoothing) for b in range(num_blocks + 1)]
        self.add_layer("projection", keras.layers.Dense(BASE_LENGTH * nf[0], dtype=dtype,
                                                        name="projection"), (None, LATENT_DIM))
        length = BASE_LENGTH
        for b in range(1, num_blocks + 1):
            self.add_layer(block_name(b), conv(nf[b], KERNEL_SIZE, STRIDE, dtype, block_name(b),
                                               transpose=True), (None, length, nf[b - 1]))
            length *= STRIDE
        name = block_name(num_blocks) + "_output"
        self.add_layer(name, conv(channels, 1, 1, dtype, name), (None, length, nf[num_blocks]))
        self.built = True

    def activate(self, x):
        x = lrelu(x)
        return sample_norm(x) if self.use_sample_norm else x

    def call(self, z):
        x = self.projection(z)
        x = self.activate(tf.reshape(x, [-1, BASE_LENGTH, feature_maps(0)]))
        for b in range(1, self.num_blocks + 1):
            x = self.activate(getattr(self, block_name(b))(x))
        x = getattr(self, block_name(self.num_blocks) + "_output")(x)
        return tf.cast(tf.tanh(x), tf.float32)


class CriticBody(StagedNetwork):
    """Table 7.2 up to the features: 1x1 C -> nf(N), blocks N..1 of Conv1D (stride 4), flattened
    to 16x1024. The discriminator scores them; the VAE-GAN's encoder reads a latent from them."""

    def __init__(self, num_blocks, channels=1, smoothing=True, dtype="float32",
                 name="discriminator", **kwargs):
        super().__init__(num_blocks, name=name, dtype=dtype, **kwargs)
        nf = [feature_maps(b, smoothing) for b in range(num_blocks + 1)]
        length = window_length(num_blocks)
        layer_name = block_name(num_blocks) + "_input"
        self.add_layer(layer_name, conv(nf[num_blocks], 1, 1, dtype, layer_name),
                       (None, length, channels))
        for b in range(num_blocks, 0, -1):
            self.add_layer(block_name(b), conv(nf[b - 1], KERNEL_SIZE, STRIDE, dtype,
                                               block_name(b)), (None, length, nf[b]))
            length //= STRIDE
        self.built = True

    def features(self, x):
        x = lrelu(getattr(self, block_name(self.num_blocks) + "_input")(x))
        for b in range(self.num_blocks, 0, -1):
            x = lrelu(getattr(self, block_name(b))(x))
        return tf.reshape(x, [-1, FEATURES])


class Discriminator(CriticBody):
    """Table 7.2: the critic body, then dense 16x1024 -> 1 with no activation."""

    def __init__(self, num_blocks, channels=1, smoothing=True, dtype="float32", **kwargs):
        super().__init__(num_blocks, channels, smoothing, dtype, **kwargs)
        # The critic's output feeds the losses: keep it in float32 under mixed precision.
        self.add_layer("prediction", keras.layers.Dense(1, dtype="float32", name="prediction"),
                       (None, FEATURES))

    def call(self, x):
        return self.prediction(self.features(x))
