"""The progressive VAE-GAN's encoder, its losses and its training iteration (report §7.3, §7.7).

The encoder E has the discriminator's topology for the stage: its 1x1 input layer and blocks
N..1 are model_progressive's CriticBody, under D's layer names, so E grows, freezes and is
restored stage to stage exactly like D. Where D scores the flattened 16x1024 features with one
dense unit, E reads them with two dense heads of LATENT_DIM values, mu and log sigma^2, which
like D's dense layer do not depend on the stage. The generator's input during training is
z = mu + eps * exp(log sigma^2 / 2), eps ~ N(0, 1), from the encoder of a real batch.

Each iteration is 1 E update, 5 D updates, 1 G update (§7.7), each on a batch of its own:
    KL      = mean over the batch of sum 0.5 (-log sigma^2 + sigma^2 + mu^2 - 1)
    recon   = 0.5 sum over the batch of [log 2 pi + (D(real) - D(G(z)))^2 / (1 + 1e-6)]
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
from wgan_gp import WGANGP

HEADS = ("mean", "log_variance")
RECON_WEIGHT = 0.001  # of the reconstruction term in G_loss
LOG_2PI = math.log(2.0 * math.pi)
DENSITY_VARIANCE = 1.0 + 1e-6  # the original's exp(log variance 0) + its EPSILON_FOR_DENSITY


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


def reparameterise(mean, log_variance, noise):
    """z = mu + eps * exp(log sigma^2 / 2): a sample of N(mu, sigma^2), differentiable."""
    return mean + noise * tf.exp(0.5 * log_variance)


def kl_divergence(mean, log_variance):
    """KL(N(mu, sigma^2) || N(0, 1)) of every example, summed over the latent: [batch]."""
    terms = 0.5 * (-log_variance + tf.exp(log_variance) + tf.square(mean) - 1.0)
    return tf.reduce_sum(terms, axis=-1)


def reconstruction_loss(d_real, d_fake):
    """The report's Gaussian log-likelihood term on the critic's outputs, summed over the batch
    (under tf.distribute, over the replica's examples: the replicas' terms add up to it). The
    variance is 1 + 1e-6, as the original's gaussian_log_density (log 1 taken as 0)."""
    return 0.5 * tf.reduce_sum(LOG_2PI + tf.square(d_real - d_fake) / DENSITY_VARIANCE)


class VAEGAN(WGANGP):
    """WGAN-GP's iteration with an encoder update first and G fed the encoder's z throughout."""

    def __init__(self, encoder, e_optimizer, generator, discriminator, g_optimizer, d_optimizer,
                 step, rng, loss_scale=None, strategy=None, xla=False):
        self.encoder, self.e_optimizer = encoder, e_optimizer
        super().__init__(generator, discriminator, g_optimizer, d_optimizer, step, rng,
                         sample_latent=None, loss_scale=loss_scale, strategy=strategy,
                         xla=xla)  # latents come from E
        self.e_gradients = self.compile(self._e_gradients)

    def noise(self, batch):
        """eps ~ N(0, 1) of the reparameterisation, for the global batch."""
        return self.rng.normal([batch, LATENT_DIM])

    def latent(self, real, noise):
        return reparameterise(*self.encoder(real), noise)

    def _e_gradients(self, real, noise):
        E, G, D = self.encoder, self.generator, self.discriminator
        with tf.GradientTape() as tape:
            mean, log_variance = E(real)
            kl = self.mean(kl_divergence(mean, log_variance))
            recon = reconstruction_loss(D(real), D(G(reparameterise(mean, log_variance, noise))))
            loss = kl + recon
            scaled = self.e_optimizer.scale_loss(loss)
        return tape.gradient(scaled, E.trainable_variables), loss, kl, recon

    def e_update(self, real, noise):
        gradients, loss, kl, recon = self.e_gradients(real, noise)
        return {"Encoder_loss/KL_divergence": kl, "Encoder_loss/Reconstruction_loss": recon,
                "finite": self.apply(self.e_optimizer, gradients, self.encoder.trainable_variables,
                                     loss)}

    def before_critic(self, iterator):
        """The encoder's update, on a batch of its own: E_loss = KL + recon."""
        real = next(iterator)
        out = self.replicated(self.e_update, real, self.noise(self.batch_size(real)))
        finite = out.pop("finite")
        return out, finite

    def generator_batch(self, iterator, last_critic_batch):
        """A fresh batch for the generator's update, as the original draws one: seven
        batches an iteration (encoder, 5 critic updates, generator)."""
        return next(iterator)

    def generator_loss(self, real, d_fake):
        recon = reconstruction_loss(self.discriminator(real), d_fake)
        return super().generator_loss(real, d_fake) + RECON_WEIGHT * recon
