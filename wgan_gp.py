"""The WGAN-GP training step shared by every trainer (report §6.8, §7.4; Gulrajani et al. 2017).

D_loss = mean(D(fake)) - mean(D(real)) + 10 * GP, GP = mean((||grad D(x_hat)||_2 - 1)^2) with the
norm over (time, channels) and x_hat = real + alpha * (fake - real); G_loss = -mean(D(fake)).
Adam(1e-4, 0.5, 0.9) everywhere, 5 critic updates per generator update; the step counts
generator updates. Mixed precision (§7.6): float16 compute, float32 variables and a fixed
loss scale of 32, also inside the gradient penalty (bfloat16 without scaling on a CPU).
"""

import keras
import tensorflow as tf

GP_WEIGHT = 10.0
N_CRITIC = 5
LOSS_SCALE = 32.0


def cpu_has_bfloat16():
    """True where the CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision(use_mixed_precision, on_gpu=None):
    """(Keras dtype policy, fixed loss scale or None) of a run.

    On a GPU: the report's float16 compute with a fixed loss scale of 32 (§7.6). On a CPU,
    float16 convolutions fall back from oneDNN to Eigen and run 10x slower than float32,
    so mixed precision there is bfloat16, which has float32's range and needs no scaling.
    """
    if not use_mixed_precision:
        return "float32", None
    if on_gpu is None:
        on_gpu = bool(tf.config.list_physical_devices("GPU"))
    if on_gpu:
        return "mixed_float16", LOSS_SCALE
    return ("mixed_bfloat16", None) if cpu_has_bfloat16() else ("float32", None)


def make_optimizer(loss_scale=None):
    """Adam with the report's settings; TF1's epsilon. A fixed loss scale is Keras's
    loss_scale_factor: scale_loss() multiplies, apply_gradients() divides."""
    return keras.optimizers.Adam(learning_rate=1e-4, beta_1=0.5, beta_2=0.9, epsilon=1e-8,
                                 loss_scale_factor=loss_scale)


def all_finite(tensors):
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


def gradient_penalty(discriminator, real, fake, alpha, loss_scale=None):
    """GP on x_hat = real + alpha * (fake - real); returns (GP, D(x_hat))."""
    x_hat = real + alpha * (fake - real)
    scale = loss_scale or 1.0
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        d_hat = discriminator(x_hat)
        scaled = tf.reduce_sum(d_hat) * scale  # keeps float16 gradients from underflowing
    grad = tf.cast(tape.gradient(scaled, x_hat), tf.float32) / scale
    norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2]))
    return tf.reduce_mean(tf.square(norm - 1.0)), d_hat


def apply(optimizer, tape, loss, scaled_loss, variables):
    """One optimiser update; says whether loss and gradients were finite.

    scaled_loss = optimizer.scale_loss(loss), computed inside the tape (outside it, the
    multiplication is not recorded and every gradient is None).
    """
    grads = tape.gradient(scaled_loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return all_finite([loss] + grads)


class WGANGP:
    """One training iteration: N_CRITIC discriminator updates, then one generator update.

    sample_latent(batch) draws the generator's input; `step` counts generator updates.
    A variant (the VAE-GAN) overrides latent(), before_critic() and generator_loss().
    """

    def __init__(self, generator, discriminator, g_optimizer, d_optimizer, step, rng,
                 sample_latent, loss_scale=None):
        self.generator, self.discriminator = generator, discriminator
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.step, self.rng, self.sample_latent = step, rng, sample_latent
        self.loss_scale = loss_scale
        self.iteration = tf.function(self._iteration)  # built after freezing: see TF2_NOTES

    def latent(self, real):
        """The generator's input for a batch of real audio: here, only its size counts."""
        return self.sample_latent(tf.shape(real)[0])

    def before_critic(self, iterator):
        """Run before the critic updates; returns ({TensorBoard tag: scalar}, finite)."""
        return {}, tf.constant(True)

    def generator_loss(self, real, d_fake):
        """G_loss from the critic's scores of the fakes made for real."""
        return -tf.reduce_mean(d_fake)

    def d_update(self, real):
        G, D = self.generator, self.discriminator
        batch = tf.shape(real)[0]
        fake = G(self.latent(real))  # outside the tape: G is not trained here
        alpha = self.rng.uniform([batch, 1, 1], dtype=tf.float32)
        with tf.GradientTape() as tape:
            d_real, d_fake = D(real), D(fake)
            gp, d_hat = gradient_penalty(D, real, fake, alpha, self.loss_scale)
            loss = tf.reduce_mean(d_fake) - tf.reduce_mean(d_real) + GP_WEIGHT * gp
            scaled = self.d_optimizer.scale_loss(loss)
        finite = apply(self.d_optimizer, tape, loss, scaled, D.trainable_variables)
        return loss, finite, tf.reduce_mean(d_real), tf.reduce_mean(d_fake), tf.reduce_mean(d_hat)

    def g_update(self, real):
        G, D = self.generator, self.discriminator
        with tf.GradientTape() as tape:
            loss = self.generator_loss(real, D(G(self.latent(real))))
            scaled = self.g_optimizer.scale_loss(loss)
        finite = apply(self.g_optimizer, tape, loss, scaled, G.trainable_variables)
        self.step.assign_add(1)
        return loss, finite

    def _iteration(self, iterator):
        scalars, finite = self.before_critic(iterator)
        for _ in range(N_CRITIC):  # unrolled at trace time
            real = next(iterator)
            d_loss, d_finite, real_out, fake_out, mixed_out = self.d_update(real)
            finite = finite & d_finite
        g_loss, g_finite = self.g_update(real)  # the last critic batch
        return {"d_loss": d_loss, "g_loss": g_loss, "real_output": real_out,
                "fake_output": fake_out, "mixed_output": mixed_out,
                "finite": finite & g_finite, "real": real, "scalars": scalars}
