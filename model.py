"""WaveGAN baseline generator and critic (report §7.4, §7.5; Donahue et al. 2019, WaveGAN v1).

The tailored WaveGAN the progressive model grew out of: one fixed window of 16384 samples
(stage 5 of the progressive model), five stride-4 layers each way, and phase shuffle in the
critic. Layers are named attributes (`upconv_0`, `downconv_3`, ... as in the original's
variable scopes) because Keras 3 does not checkpoint layers kept in Python lists.
Pure: layers and shapes, no file IO.
"""

import keras
import tensorflow as tf

from model_progressive import conv, lrelu
from rules import (
    BASE_LENGTH,
    KERNEL_SIZE,
    LATENT_DIM,
    MAX_PHASESHUFFLE_RAD,
    STRIDE,
    WAVEGAN_BLOCKS,
    WAVEGAN_D_FEATURE_MAPS,
    WAVEGAN_G_FEATURE_MAPS,
    window_length,
)

G_FEATURE_MAPS, D_FEATURE_MAPS = WAVEGAN_G_FEATURE_MAPS, WAVEGAN_D_FEATURE_MAPS
WINDOW = window_length(WAVEGAN_BLOCKS)  # 16384 samples, about 1 s at 16 kHz


def phase_shuffle(x, rad, seed=None):
    """WaveGAN §3.3: shift the whole batch x [batch, time, channels] by one random integer s in
    [-rad, rad] (out[t] = x[t - s]), reflect-padded back to its length. One shift per call, as
    the original (and chrisdonahue/wavegan) draws it: tf.random_uniform([]) per layer.

    seed is a keras.random.SeedGenerator (a new shift at every call, also inside tf.function).
    The shift is not differentiated; the slice is, twice over, as the gradient penalty needs.
    The time axis must have a static length above rad.
    """
    if rad == 0:
        return x
    length = x.shape[1]
    shift = keras.random.randint([], -rad, rad + 1, seed=seed)
    padded = tf.pad(x, [[0, 0], [rad, rad], [0, 0]], mode="REFLECT")
    # Output sample t is padded sample rad - s + t, i.e. x[t - s] reflected.
    return tf.slice(padded, tf.stack([0, rad - shift, 0]), [-1, length, -1])


class Network(keras.Model):
    """A network whose layers are named attributes, as model_progressive's."""

    layer_names = ()

    def named(self, name, layer, input_shape):
        """Set layer as a named attribute (checkpointed under that name) and build it now, so
        that parameters exist before the first call (optimisers are built on them, §7.6)."""
        setattr(self, name, layer)
        layer.build(input_shape)
        self.layer_names += (name,)
        return layer

    def named_layers(self):
        return {name: getattr(self, name) for name in self.layer_names}


class Generator(Network):
    """z [batch, 100] -> dense 16x1024, ReLU -> five Conv1DTranspose (kernel 25, stride 4),
    ReLU between, tanh last -> [batch, 16384, C] in float32 (§7.4)."""

    def __init__(self, channels=1, dtype="float32", **kwargs):
        super().__init__(name="generator", dtype=dtype, **kwargs)
        self.named("z_project", keras.layers.Dense(BASE_LENGTH * G_FEATURE_MAPS[0], dtype=dtype,
                                                   name="z_project"), (None, LATENT_DIM))
        length, outputs = BASE_LENGTH, G_FEATURE_MAPS[1:] + (channels,)
        for i, (n_in, n_out) in enumerate(zip(G_FEATURE_MAPS, outputs)):
            self.named(f"upconv_{i}", conv(n_out, KERNEL_SIZE, STRIDE, dtype, f"upconv_{i}",
                                           transpose=True), (None, length, n_in))
            length *= STRIDE
        self.built = True

    def call(self, z):
        x = self.z_project(z)
        x = tf.nn.relu(tf.reshape(x, [-1, BASE_LENGTH, G_FEATURE_MAPS[0]]))
        for i in range(len(G_FEATURE_MAPS)):
            x = getattr(self, f"upconv_{i}")(x)
            x = tf.nn.relu(x) if i < len(G_FEATURE_MAPS) - 1 else tf.tanh(x)
        return tf.cast(x, tf.float32)  # summaries and WAV writing want float32


class Discriminator(Network):
    """x [batch, 16384, C] -> five Conv1D (kernel 25, stride 4), each LReLU(0.2) and, but the
    last, phase shuffle -> flatten 16x1024 -> dense -> 1 (§7.4, WaveGAN §3.3)."""

    def __init__(self, channels=1, phaseshuffle_rad=2, dtype="float32", seed=None, **kwargs):
        super().__init__(name="discriminator", dtype=dtype, **kwargs)
        if not 0 <= phaseshuffle_rad <= MAX_PHASESHUFFLE_RAD:
            raise ValueError(f"phaseshuffle_rad {phaseshuffle_rad} is not in "
                             f"[0, {MAX_PHASESHUFFLE_RAD}]")
        self.phaseshuffle_rad = phaseshuffle_rad
        # Made whatever the radius, so that a run may resume with another --phaseshuffle_rad.
        # Its state goes into the checkpoint (random_state): a resumed run continues the
        # shift sequence.
        self.phase_shuffle_seed = keras.random.SeedGenerator(seed, name="phase_shuffle_seed")
        length, inputs = WINDOW, (channels,) + D_FEATURE_MAPS[:-1]
        for i, (n_in, n_out) in enumerate(zip(inputs, D_FEATURE_MAPS)):
            self.named(f"downconv_{i}", conv(n_out, KERNEL_SIZE, STRIDE, dtype,
                                             f"downconv_{i}"), (None, length, n_in))
            length //= STRIDE
        # The critic's output feeds the losses: keep it in float32 under mixed precision.
        self.named("prediction", keras.layers.Dense(1, dtype="float32", name="prediction"),
                   (None, BASE_LENGTH * D_FEATURE_MAPS[-1]))
        self.built = True

    def random_state(self):
        """The phase-shuffle stream's position, checkpointed beside the networks."""
        return {"phase_shuffle": self.phase_shuffle_seed.state}

    def call(self, x):
        for i in range(len(D_FEATURE_MAPS)):
            x = lrelu(getattr(self, f"downconv_{i}")(x))
            if i < len(D_FEATURE_MAPS) - 1:
                x = phase_shuffle(x, self.phaseshuffle_rad, self.phase_shuffle_seed)
        return self.prediction(tf.reshape(x, [-1, BASE_LENGTH * D_FEATURE_MAPS[-1]]))
