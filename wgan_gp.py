"""The training iterations: WGAN-GP's, shared by every trainer (report §6.8, §7.4; Gulrajani
et al. 2017), and the VAE-GAN's, which adds an encoder update (§7.3, §7.7).

D_loss = mean(D(fake)) - mean(D(real)) + 10 * GP, GP = mean((||grad D(x_hat)||_2 - 1)^2) with the
norm over (time, channels) and x_hat = real + alpha * (fake - real); G_loss = -mean(D(fake)).
Adam(1e-4, 0.5, 0.9) everywhere; an iteration is 5 critic updates and one generator update;
the step counts iterations (generator updates). Mixed precision (§7.6): float16 compute, float32 variables and a fixed
loss scale of 32, also inside the gradient penalty (bfloat16 without scaling on a CPU).

Under tf.distribute each replica trains on its slice of the global batch. Every random draw
(z, alpha, the VAE-GAN's eps) is made once for the global batch outside the replicas, from
one tf.random.Generator, and sliced by replica: the same seed gives the same numbers whatever
the strategy, and whether or not XLA compiles the replicas' forward and backward passes
(XLA ignores op seeds). Each replica's loss is its examples' share of the global batch mean,
so the all-reduced (summed) gradients are those of one device on the whole batch.
"""

import math

import keras
import tensorflow as tf

from model_vaegan import reparameterise
from rules import GRAPHS, LATENT_DIM, scores_together

GP_WEIGHT = 10.0
N_CRITIC = 5
LOSS_SCALE = 32.0
RECON_WEIGHT = 0.001  # of the VAE-GAN's reconstruction term in G_loss
LOG_2PI = math.log(2.0 * math.pi)
DENSITY_VARIANCE = 1.0 + 1e-6  # the original's exp(log variance 0) + its EPSILON_FOR_DENSITY


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


class Adam(keras.optimizers.Adam):
    """Keras's Adam whose update of each variable is TensorFlow's one fused kernel,
    ResourceApplyAdam, the kernel TF1's tf.train.AdamOptimizer ran in the original: the same
    arithmetic (m, v, then var -= lr_t m / (sqrt(v) + epsilon)) in one pass over the
    variable and its two moments, where Keras's update is eleven element-wise operations,
    each a pass over them (a fifth of the busy time of a bfloat16 stage-3 iteration on a
    CPU, bench/profile_step.py). Its variables, slots and checkpoint keys are Keras's."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=resource(variable), m=resource(self._momentums[index]),
            v=resource(self._velocities[index]), beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype), beta1=beta_1,
            beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


def resource(variable):
    """The resource handle of a Keras or TensorFlow variable (under tf.distribute, that of
    the copy on the device being updated)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


def make_optimizer(loss_scale=None):
    """Adam with the report's settings; TF1's epsilon. A fixed loss scale is Keras's
    loss_scale_factor: scale_loss() multiplies, apply_gradients() divides."""
    return Adam(learning_rate=1e-4, beta_1=0.5, beta_2=0.9, epsilon=1e-8,
                loss_scale_factor=loss_scale)


def all_finite(tensors):
    """True when no value of the tensors is NaN or infinite, read from their sums: a NaN or
    an infinity makes a sum non-finite (so would a sum beyond float32's range, which only a
    diverged run reaches). One pass over each gradient, where is_finite is two."""
    sums = [tf.reduce_sum(tf.cast(t, tf.float32)) for t in tensors]
    return tf.reduce_all(tf.math.is_finite(tf.stack(sums)))


def gradient_penalty(discriminator, real, fake, alpha, loss_scale=None):
    """(||grad D(x_hat)||_2 - 1)^2 of every example, x_hat = real + alpha * (fake - real);
    returns (penalties [batch], D(x_hat))."""
    x_hat = real + alpha * (fake - real)
    scale = loss_scale or 1.0
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        d_hat = discriminator(x_hat)
        scaled = tf.reduce_sum(d_hat) * scale  # keeps float16 gradients from underflowing
    grad = tf.cast(tape.gradient(scaled, x_hat), tf.float32) / scale
    norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2]))
    return tf.square(norm - 1.0), d_hat


class WGANGP:
    """One training iteration: N_CRITIC discriminator updates, then one generator update.

    sample_latent(batch) draws the generator's input; `step` counts generator updates;
    moving_average (moving_average.MovingAverage) is updated after each of them.
    strategy: a tf.distribute strategy whose scope built the networks and optimisers (None:
    one device); the iterator then gives global batches, split across replicas
    (distribute.distribute). xla: compile each replica's forward pass, gradient penalty and
    gradients (jit_compile); optimiser updates stay outside. graph: rules.GRAPHS, --graph.
    A variant (the VAE-GAN) overrides noise(), latent(), before_critic(), generator_loss()
    and generator_batch().
    """

    def __init__(self, generator, discriminator, g_optimizer, d_optimizer, step, rng,
                 sample_latent, loss_scale=None, strategy=None, xla=False, moving_average=None,
                 graph=GRAPHS[0]):
        self.generator, self.discriminator = generator, discriminator
        self.moving_average = moving_average  # updated after each generator update
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.step, self.rng, self.sample_latent = step, rng, sample_latent
        self.loss_scale = loss_scale
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        self.compile = (tf.function(jit_compile=True, autograph=False) if xla
                        else (lambda function: function))
        self.d_gradients = self.compile(self._d_gradients)
        self.g_gradients = self.compile(self._g_gradients)
        # Traced at the first call, after freezing: tf.function reads trainable_variables
        # when it traces, and a layer frozen after tracing would keep training.
        # graph "iteration": the whole iteration, unrolled, is one function (the fastest
        # step: updates overlap); "update": each update is one, traced once and called for
        # each update (the first iteration traces and optimises a sixth as much).
        if graph == GRAPHS[0]:
            self._functions = [self.iteration_graph()]
            self._call = self._functions[0]
        else:
            self._functions = [tf.function(update, autograph=False) for update in
                               (self.before_critic, self.critic_update, self.generator_update)]
            self._call = lambda iterator: self.iteration(iterator, *self._functions)

    def __call__(self, iterator):
        """One iteration on the batches of iterator; returns its losses and outputs."""
        return self._call(iterator)

    def traces(self):
        """How many times functions were traced: once each (1 or 3, with --graph update),
        unless their inputs changed."""
        return sum(f.experimental_get_tracing_count() for f in self._functions)

    def iteration_graph(self):
        """A new tf.function of the whole iteration (--graph iteration), traced at its first
        call: with the networks' trainable variables and convolution forms of that moment."""
        updates = (self.before_critic, self.critic_update, self.generator_update)
        return tf.function(lambda iterator: self.iteration(iterator, *updates), autograph=False)

    def iteration(self, iterator, before_critic, critic_update, generator_update):
        """N_CRITIC critic updates, then the generator's, with these update functions."""
        scalars, finite = before_critic(iterator)
        for _ in range(N_CRITIC):
            out, real, batch = critic_update(iterator)
            finite = finite & out.pop("finite")
        g_out, g_real = generator_update(iterator, batch)
        return {**out, "g_loss": g_out["g_loss"], "finite": finite & g_out["finite"],
                "real": real if g_real is None else g_real, "scalars": scalars}

    # -- what a variant changes

    def noise(self, batch):
        """The random input of the generator's latents for `batch` examples, drawn once for
        the global batch: here the latents themselves, from the prior."""
        return self.sample_latent(batch)

    def latent(self, real, noise):
        """The generator's input for a batch of real audio: here, the noise itself."""
        return noise

    def before_critic(self, iterator):
        """Run before the critic updates; returns ({TensorBoard tag: scalar}, finite)."""
        return {}, tf.constant(True)

    def generator_loss(self, real, d_fake):
        """G_loss from the critic's scores of the fakes made for real."""
        return -self.share_of_mean(d_fake)

    def generator_batch(self, iterator):
        """The real batch of the generator's update. WGAN-GP's G_loss reads no real audio,
        so none is drawn (nor did the original's generator update pull one): None."""

    # -- replicas

    def share_of_mean(self, values):
        """This replica's share of the mean over the global batch: summed over the replicas,
        it is the mean (with one device, simply the mean)."""
        count = tf.cast(tf.shape(values)[0] * self.replicas, tf.float32)
        return tf.reduce_sum(tf.cast(values, tf.float32)) / count

    def local(self, values):
        """This replica's rows of values drawn for the global batch."""
        if self.replicas == 1:
            return values
        rows = tf.shape(values)[0] // self.replicas
        first = tf.distribute.get_replica_context().replica_id_in_sync_group * rows
        return values[first:first + rows]

    def replicated(self, update, *args):
        """update(*args) on every replica, drawn arguments sliced; returns its dict of
        scalars summed over the replicas (the global batch's means), with "finite" true
        only where it was true on every replica."""
        def on_replica(real, *drawn):
            out = update(real, *[self.local(values) for values in drawn])
            out["failed"] = tf.cast(tf.logical_not(out.pop("finite")), tf.float32)
            # Summed here, in one all-reduce per update: every replica creates the same
            # collectives in the same order.
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM,
                                                                  out)

        out = self.strategy.experimental_local_results(self.strategy.run(on_replica, args))[0]
        out["finite"] = tf.equal(out.pop("failed"), 0.0)
        return out

    def apply(self, optimizer, gradients, variables, loss):
        """One optimiser update (all-reduced across replicas by Keras); says whether loss and
        gradients were finite on this replica."""
        optimizer.apply_gradients(zip(gradients, variables))
        return all_finite([loss] + list(gradients))

    # -- the updates

    def score(self, real, fake):
        """D(real), D(fake). Where the critic scores each example alone (scores_together),
        in one call on both batches: twice the rows in each matrix product (faster on the
        wide blocks) and one cast of the weights to the compute dtype where there were two.
        Otherwise two calls, as the original."""
        D = self.discriminator
        if scores_together(D):
            return tf.split(D(tf.concat([real, fake], axis=0)), 2)
        return D(real), D(fake)

    def _d_gradients(self, real, noise, alpha):
        G, D = self.generator, self.discriminator
        fake = G(self.latent(real, noise))  # outside the tape: G is not trained here
        with tf.GradientTape() as tape:
            d_real, d_fake = self.score(real, fake)
            gp, d_hat = gradient_penalty(D, real, fake, alpha, self.loss_scale)
            loss = self.share_of_mean(d_fake) - self.share_of_mean(d_real) + GP_WEIGHT * self.share_of_mean(gp)
            scaled = self.d_optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, D.trainable_variables)
        return gradients, {"d_loss": loss, "real_output": self.share_of_mean(d_real),
                           "fake_output": self.share_of_mean(d_fake), "mixed_output": self.share_of_mean(d_hat)}

    def d_update(self, real, noise, alpha):
        gradients, out = self.d_gradients(real, noise, alpha)
        out["finite"] = self.apply(self.d_optimizer, gradients,
                                   self.discriminator.trainable_variables, out["d_loss"])
        return out

    def _g_gradients(self, real, noise):
        G, D = self.generator, self.discriminator
        with tf.GradientTape() as tape:
            loss = self.generator_loss(real, D(G(self.latent(real, noise))))
            scaled = self.g_optimizer.scale_loss(loss)
        return tape.gradient(scaled, G.trainable_variables), loss

    def g_update(self, real, noise):
        gradients, loss = self.g_gradients(real, noise)
        finite = self.apply(self.g_optimizer, gradients, self.generator.trainable_variables,
                            loss)
        return {"g_loss": loss, "finite": finite}

    def critic_update(self, iterator):
        """One critic update on the next batch; returns its scalars, the batch (the first
        replica's part) and the global batch size."""
        real = next(iterator)
        batch = self.batch_size(real)
        noise = self.noise(batch)  # drawn before alpha: the run's random stream, as ever
        alpha = self.rng.uniform(tf.stack([batch, 1, 1]))
        out = self.replicated(self.d_update, real, noise, alpha)
        return out, self.strategy.experimental_local_results(real)[0], batch

    def generator_update(self, iterator, batch):
        """The generator's update, then the step and the moving average; returns its scalars
        and its real batch (None where it reads none)."""
        real = self.generator_batch(iterator)
        out = self.replicated(self.g_update, real, self.noise(batch))
        self.step.assign_add(1)
        if self.moving_average is not None:
            self.moving_average.update(self.step)
        return out, None if real is None else self.strategy.experimental_local_results(real)[0]

    def batch_size(self, real):
        """The global batch of a (distributed) batch of real audio: replicas x its
        per-replica batch (make_dataset's batches are all full)."""
        return tf.shape(self.strategy.experimental_local_results(real)[0])[0] * self.replicas


# --------------------------------------------------------------------------- the VAE-GAN

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
    """WGAN-GP's iteration with an encoder update first and G fed the encoder's z throughout.

    Each iteration is 1 E update, 5 D updates, 1 G update (§7.7), each on a batch of its own:
        KL      = mean over the batch of sum 0.5 (-log sigma^2 + sigma^2 + mu^2 - 1)
        recon   = 0.5 sum over the batch of [log 2 pi + (D(real) - D(G(z)))^2 / (1 + 1e-6)]
        E_loss  = KL + recon
        G_loss  = -mean(D(G(z))) + 0.001 recon
        D_loss  = WGAN-GP's, on fakes G(z)
    with z = mu + eps * exp(log sigma^2 / 2) from the encoder of the update's batch.
    """

    def __init__(self, encoder, e_optimizer, generator, discriminator, g_optimizer, d_optimizer,
                 step, rng, loss_scale=None, strategy=None, xla=False, moving_average=None,
                 graph=GRAPHS[0]):
        self.encoder, self.e_optimizer = encoder, e_optimizer
        super().__init__(generator, discriminator, g_optimizer, d_optimizer, step, rng,
                         sample_latent=None, loss_scale=loss_scale, strategy=strategy,
                         xla=xla, moving_average=moving_average, graph=graph)  # z from E
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
            kl = self.share_of_mean(kl_divergence(mean, log_variance))
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

    def generator_batch(self, iterator):
        """A fresh batch for the generator's update, as the original draws one: seven
        batches an iteration (encoder, 5 critic updates, generator)."""
        return next(iterator)

    def generator_loss(self, real, d_fake):
        recon = reconstruction_loss(self.discriminator(real), d_fake)
        return super().generator_loss(real, d_fake) + RECON_WEIGHT * recon
