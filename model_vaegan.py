"""The progressive VAE-GAN's encoder (report §7.3, §7.7).

The encoder E has the discriminator's topology for the stage: its 1x1 input layer and blocks
N..1 are model_progressive's CriticBody, under D's layer names, so E grows, freezes and is
restored stage to stage exactly like D. Where D scores the flattened 16x1024 features with one
dense unit, E reads them with two dense heads of LATENT_DIM values, mu and log sigma^2, which
like D's dense layer do not depend on the stage. The generator's input during training is
z = mu + eps * exp(log sigma^2 / 2), eps ~ N(0, 1), from the encoder of a real batch. To
sample where the encoder puts the data rather than from N(0, 1), AggregatePosterior maps
N(0, 1) draws onto a Gaussian fitted to the encoder's means (--prior posterior). Its
losses are losses.VAEGAN's, its training iteration iteration.VAEGANIteration's. Pure: layers and shapes, no file IO.
"""

import keras
import tensorflow as tf

from model_progressive import CriticBody
from rules import LATENT_DIM

HEADS = ("mean", "log_variance")


class Encoder(CriticBody):
    """D's 1x1 input layer and blocks N..1, then heads mu and log sigma^2 (LATENT_DIM each)."""

    def __init__(self, num_blocks, channels=1, smoothing=True, dtype="float32", divisor=1):
        super().__init__(num_blocks, channels, smoothing, dtype, name="encoder",
                         divisor=divisor)
        for head in HEADS:  # float32: they feed the losses under mixed precision
            self.add_layer(head, keras.layers.Dense(LATENT_DIM, dtype="float32", name=head),
                           (None, self.feature_count))

    def call(self, x):
        """(mu, log sigma^2) of audio x [batch, window, channels]."""
        features = self.features(x)
        return self.mean(features), self.log_variance(features)


class AggregatePosterior(keras.layers.Layer):
    """z = m + L eps: draws eps ~ N(0, 1) mapped onto a Gaussian fitted to the encoder's
    means over training windows (mean m, Cholesky factor L of its covariance), where the
    encoder puts the data. `windows` counts the windows it was fitted to (0: never)."""

    def __init__(self, **kwargs):
        super().__init__(name="posterior", dtype="float32", **kwargs)
        self.mean = self.add_weight(shape=(LATENT_DIM,), initializer="zeros", name="mean",
                                    trainable=False)
        self.scale = self.add_weight(shape=(LATENT_DIM, LATENT_DIM), initializer="identity",
                                     name="scale", trainable=False)
        self.windows = self.add_weight(shape=(), initializer="zeros", name="windows",
                                       trainable=False)

    def call(self, eps):
        return self.mean + tf.matmul(tf.cast(eps, tf.float32), self.scale, transpose_b=True)


class WithPosterior(keras.Model):
    """The generator fed from the aggregate posterior: eps ~ N(0, 1) -> G(m + L eps)."""

    def __init__(self, generator, posterior, **kwargs):
        super().__init__(name="generator_with_posterior", **kwargs)
        self.generator, self.posterior = generator, posterior

    def call(self, eps):
        return self.generator(self.posterior(eps))


def reparameterise(mean, log_variance, noise):
    """z = mu + eps * exp(log sigma^2 / 2): a sample of N(mu, sigma^2), differentiable."""
    return mean + noise * tf.exp(0.5 * log_variance)
