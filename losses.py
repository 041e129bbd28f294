"""Every loss of the training, in one place (report §6.8, §7.3, §7.7).

WGAN-GP (Gulrajani et al. 2017), the loss of every trainer:
    D_loss = mean(D(fake)) - mean(D(real)) + 10 mean(GP)
    GP     = (||grad D(x_hat)||_2 - 1)^2, the norm over (time, channels),
             x_hat = real + alpha (fake - real), alpha ~ U(0, 1) per example
    G_loss = -mean(D(fake))
The VAE-GAN's encoder loss, and the reconstruction term it adds to G_loss:
    KL     = mean over the batch of sum 0.5 (-log sigma^2 + sigma^2 + mu^2 - 1)
    recon  = 0.5 sum over the batch of [log 2 pi + (D(real) - D(G(z)))^2 / (1 + 1e-6)]
    E_loss = KL + recon
    G_loss = -mean(D(G(z))) + 0.001 recon

A conditional critic with an auxiliary classifier (--label_critic auxiliary) adds AC-GAN's
terms, with the weights of WGAN-GP's own conditional model (Gulrajani et al. 2017, its
CIFAR-10 code: ACGAN_SCALE 1, ACGAN_SCALE_G 0.1):
    D_loss += 1.0 W CE(C(real), the real windows' labels)
    G_loss += 0.1 CE(C(fake), the labels asked for)
C being the critic's classifier logits, CE the softmax cross-entropy, W --label_weight (ours;
1 by default, the weights above). The critic learns to name the label of real music only, so
the generator cannot earn it with artefacts the classifier learned from fakes. The matching
critics (--label_critic matching, normalised) take the same terms, their logits the
projection's own.

A loss object is the training iteration's hook (iteration.py): its `critic` and `generator`
(and the VAE-GAN's `encoder`) are called inside each update's gradient tape, so another loss
is another class here. `mean` is the iteration's mean over the global batch: under
tf.distribute each replica computes its share of it, and the shares sum to the mean.
"""

import math

import tensorflow as tf

GP_WEIGHT = 10.0
CLASSIFIER_WEIGHTS = {"critic": 1.0, "generator": 0.1}  # of the auxiliary classifier's terms
RECON_WEIGHT = 0.001  # of the VAE-GAN's reconstruction term in G_loss
LOG_2PI = math.log(2.0 * math.pi)
DENSITY_VARIANCE = 1.0 + 1e-6  # the original's exp(log variance 0) + its EPSILON_FOR_DENSITY


def gradient_penalty(critic, real, fake, alpha, loss_scale=None):
    """(||grad D(x_hat)||_2 - 1)^2 of every example, x_hat = real + alpha (fake - real);
    returns (penalties [batch], D(x_hat)). A float16 critic's input gradient is taken of the
    scaled scores and unscaled in float32, so that it does not underflow."""
    x_hat = real + alpha * (fake - real)
    scale = loss_scale or 1.0
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        d_hat = critic(x_hat)
        scaled = tf.reduce_sum(d_hat) * scale
    grad = tf.cast(tape.gradient(scaled, x_hat), tf.float32) / scale
    norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2]))
    return tf.square(norm - 1.0), d_hat


class WGANGP:
    """The report's losses (§6.8): Wasserstein critic and generator, gradient penalty 10."""

    generator_reads_real = False  # G_loss needs no real batch (the original drew none)

    def critic(self, mean, d_real, d_fake, penalty):
        return mean(d_fake) - mean(d_real) + GP_WEIGHT * mean(penalty)

    def generator(self, mean, d_fake, d_real=None):
        return -mean(d_fake)


def label_loss(mean, logits, one_hot, network, scale=1.0):
    """The auxiliary classifier's term of `network`'s loss: its weight (times `scale`, the
    critic's --label_weight) times the mean softmax cross-entropy of the logits against the
    labels (one-hot, or blends of them)."""
    return CLASSIFIER_WEIGHTS[network] * scale * mean(tf.nn.softmax_cross_entropy_with_logits(
        tf.cast(one_hot, tf.float32), logits))


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
    """The VAE-GAN's losses (§7.3, §7.7): WGAN-GP's critic loss; the encoder's KL and
    reconstruction terms; the reconstruction term added to G_loss."""

    generator_reads_real = True

    def encoder(self, mean, mu, log_variance, d_real, d_fake):
        """(E_loss, KL, recon)."""
        kl = mean(kl_divergence(mu, log_variance))
        recon = reconstruction_loss(d_real, d_fake)
        return kl + recon, kl, recon

    def generator(self, mean, d_fake, d_real=None):
        return super().generator(mean, d_fake) + RECON_WEIGHT * reconstruction_loss(d_real,
                                                                                    d_fake)
