"""The progressive VAE-GAN's encoder, its losses and its training iteration (report §7.3, §7.7).

The encoder E has the discriminator's topology for the stage: its 1x1 input layer and blocks
N..1 are model_progressive's CriticBody, under D's layer names, so E grows, freezes and is
restored stage to stage exactly like D. Where D scores the flattened 16x1024 features with one
dense unit, E reads them with two dense heads of LATENT_DIM values, mu and log sigma^2, which
like D's dense layer do not depend on the stage. The generator's input during training is
z = mu + eps * exp(log sigma^2 / 2), eps ~ N(0, 1), from the encoder of a real batch.

Each iteration is 1 E update, 5 D updates, 1 G update (§7.7):
    KL      = mean over the batch of sum 0.5 (-log sigma^2 + sigma^2 + mu^2 - 1)
    recon   = 0.5 sum over the batch of [log 2 pi + (D(real) - D(G(z)))^2]
    E_loss  = KL + recon
    G_loss  = -mean(D(G(z))) + 0.001 recon
    D_loss  = WGAN-GP's, on fakes G(z)
The iteration lives here, not in train_progressive_vaegan.py: like train_progressive.py, the
trainer loads TensorFlow (which writes to stderr as it loads) only after its flags are checked,
so a bad flag stays one line. Pure: no file IO.
"""

import math

import keras
import tensorflow as tf

from model_progressive import FEATURES, LATENT_DIM, CriticBody
from wgan_gp import WGANGP, apply

HEADS = ("mean", "log_variance")
RECON_WEIGHT = 0.001  # of the reconstruction term in G_loss
LOG_2PI = math.log(2.0 * math.pi)


class Encoder(CriticBody):
    """D's 1x1 input layer and blocks N..1, then heads mu and log sigma^2 (LATENT_DIM each)."""

    def __init__(self, num_blocks, channels=1, smoothing=True, dtype="float32"):
        super().__init__(num_blocks, channels, smoothing, dtype, name="encoder")
        for head in HEADS:  # float32: they feed the losses under mixed precision
            self.add_layer(head, keras.layers.Dense(LATENT_DIM, dtype="float32", name=head),
                           (None, FEATURES))

    def call(self, x):
        """(mu, log sigma^2) of audio x [batch, window, channels]."""
        features = self.features(x)
        return self.mean(features), self.log_variance(features)

    def latent(self, x, rng):
        """(z, mu, log sigma^2) of audio x, with eps drawn from the tf.random.Generator rng."""
        mean, log_variance = self(x)
        return reparameterise(mean, log_variance, rng.normal(tf.shape(mean))), mean, log_variance


def reparameterise(mean, log_variance, noise):
    """z = mu + eps * exp(log sigma^2 / 2): a sample of N(mu, sigma^2), differentiable."""
    return mean + noise * tf.exp(0.5 * log_variance)


def kl_divergence(mean, log_variance):
    """KL(N(mu, sigma^2) || N(0, 1)), summed over the latent, averaged over the batch."""
    terms = 0.5 * (-log_variance + tf.exp(log_variance) + tf.square(mean) - 1.0)
    return tf.reduce_mean(tf.reduce_sum(terms, axis=-1))


def reconstruction_loss(d_real, d_fake):
    """The report's Gaussian log-likelihood term on the critic's outputs, summed over the batch."""
    return 0.5 * tf.reduce_sum(LOG_2PI + tf.square(d_real - d_fake))


class VAEGAN(WGANGP):
    """WGAN-GP's iteration with an encoder update first and G fed the encoder's z throughout."""

    def __init__(self, encoder, e_optimizer, generator, discriminator, g_optimizer, d_optimizer,
                 step, rng, loss_scale=None):
        self.encoder, self.e_optimizer = encoder, e_optimizer
        super().__init__(generator, discriminator, g_optimizer, d_optimizer, step, rng,
                         sample_latent=None, loss_scale=loss_scale)  # latents come from E

    def latent(self, real):
        return self.encoder.latent(real, self.rng)[0]

    def before_critic(self, iterator):
        """The encoder's update, on a batch of its own: E_loss = KL + recon."""
        E, G, D = self.encoder, self.generator, self.discriminator
        real = next(iterator)
        with tf.GradientTape() as tape:
            z, mean, log_variance = E.latent(real, self.rng)
            kl = kl_divergence(mean, log_variance)
            recon = reconstruction_loss(D(real), D(G(z)))
            loss = kl + recon
            scaled = self.e_optimizer.scale_loss(loss)
        finite = apply(self.e_optimizer, tape, loss, scaled, E.trainable_variables)
        return {"Encoder_loss/KL_divergence": kl,
                "Encoder_loss/Reconstruction_loss": recon}, finite

    def generator_loss(self, real, d_fake):
        recon = reconstruction_loss(self.discriminator(real), d_fake)
        return super().generator_loss(real, d_fake) + RECON_WEIGHT * recon
