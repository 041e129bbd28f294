"""One training iteration, shared by every trainer: N_CRITIC = 5 critic updates, then one
generator update (report §6.8, §7.4), with the VAE-GAN's encoder update first (§7.3, §7.7).

How an iteration reads (Iteration.iteration, top to bottom):
    the VAE-GAN only: train_encoder: a real batch of its own; E_loss, its gradients, Adam
    5 x train_critic: the next real batch; latents and alpha drawn; on every replica
        critic_update: fake = G(z), D_loss (losses.py) and its gradients, Adam's step
    train_generator: latents drawn; on every replica generator_update: G_loss (losses.py)
        and its gradients, Adam's step; then the step counter and the moving average move on
The losses are the hook `loss` (losses.WGANGP, losses.VAEGAN); Adam is adam.py's.

Under tf.distribute each replica trains on its slice of the global batch. Every random draw
(z, alpha, the VAE-GAN's eps) is made once for the global batch outside the replicas, from
the run's tf.random.Generator, and sliced by replica: the same seed gives the same numbers
whatever the strategy, and whether or not XLA compiles the replicas' forward and backward
passes (XLA ignores op seeds). Each replica's loss is its examples' share of the global
batch mean, so the all-reduced (summed) gradients are those of one device on the whole
batch. With --xla each update's forward pass, penalty and gradients are compiled, Adam's
step stays outside (compiling it under MirroredStrategy fails).
"""

import numpy as np
import tensorflow as tf

import losses
from model_vaegan import reparameterise
from rules import GRAPHS, LATENT_DIM, scores_together

N_CRITIC = 5


def all_finite(tensors):
    """True when no value of the tensors is NaN or infinite, read from their sums: a NaN or
    an infinity makes a sum non-finite (so would a sum beyond float32's range, which only a
    diverged run reaches). One pass over each gradient, where is_finite is two."""
    sums = [tf.reduce_sum(tf.cast(t, tf.float32)) for t in tensors]
    return tf.reduce_all(tf.math.is_finite(tf.stack(sums)))


class Iteration:
    """WGAN-GP's iteration (§6.8) of networks {"generator", "discriminator"} with their
    optimizers {"generator_optimizer", "discriminator_optimizer"}.

    step counts generator updates; rng is the run's tf.random.Generator; sample_latent(batch)
    draws the generator's input from the prior; loss_scale is float16's fixed scale (None
    otherwise); moving_average (moving_average.MovingAverage) follows each generator update.
    strategy: the tf.distribute strategy whose scope built the networks and optimizers (None:
    one device); the iterator then gives global batches, split across replicas. graph:
    rules.GRAPHS, --graph.
    """

    loss = losses.WGANGP()

    def __init__(self, networks, optimizers, step, rng, sample_latent, loss_scale=None,
                 strategy=None, xla=False, moving_average=None, graph=GRAPHS[0], augment=None,
                 label_shares=None, label_weight=1.0):
        self.generator, self.discriminator = networks["generator"], networks["discriminator"]
        self.augment = augment  # augment.Augment (--critic_augment ada), or None
        # --condition folders: the labels, and the share of each the generator is asked for
        self.labels = getattr(self.discriminator, "labels", 0)
        # --label_critic matching, normalised, auxiliary: the critic also names the labels
        # (losses.label_loss)
        self.classifier = getattr(self.discriminator, "classifier", False)
        self.label_weight = label_weight  # --label_weight: of the critic's naming term
        # where each label's share (uniform unless given) ends in [0, 1]: a uniform draw
        # falls in one label's span
        self.label_edges = None if not self.labels else tf.constant(np.cumsum(
            np.full(self.labels, 1 / self.labels) if label_shares is None else label_shares),
            tf.float32)
        self.g_optimizer = optimizers["generator_optimizer"]
        self.d_optimizer = optimizers["discriminator_optimizer"]
        self.step, self.rng, self.sample_latent = step, rng, sample_latent
        self.loss_scale, self.moving_average = loss_scale, moving_average
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        self.compile = (tf.function(jit_compile=True, autograph=False) if xla
                        else (lambda function: function))
        self.critic_gradients = self.compile(self.critic_gradients)
        self.generator_gradients = self.compile(self.generator_gradients)
        # Traced at the first call, after freezing: tf.function reads trainable_variables
        # when it traces, and a layer frozen after tracing would keep training.
        # graph "iteration": the whole iteration, unrolled, is one function (the fastest:
        # updates overlap); "update": each update is one, traced once and called for each
        # (the first iteration traces and optimises a sixth as much).
        if graph == GRAPHS[0]:
            self._functions = [self.iteration_graph()]
            self._call = self._functions[0]
        else:
            self._functions = [tf.function(update, autograph=False) for update in self.updates()]
            self._call = lambda iterator: self.iteration(iterator, *self._functions)

    def __call__(self, iterator):
        """One iteration on the batches of iterator; returns its losses and outputs."""
        return self._call(iterator)

    def updates(self):
        return self.train_encoder, self.train_critic, self.train_generator

    def traces(self):
        """How many times functions were traced: once each (1 or 3, with --graph update),
        unless their inputs changed."""
        return sum(f.experimental_get_tracing_count() for f in self._functions)

    def iteration_graph(self):
        """A new tf.function of the whole iteration (--graph iteration), traced at its first
        call: with the networks' trainable variables and convolution forms of that moment."""
        updates = self.updates()
        return tf.function(lambda iterator: self.iteration(iterator, *updates), autograph=False)

    def iteration(self, iterator, train_encoder, train_critic, train_generator):
        """The encoder's update (the VAE-GAN's), N_CRITIC critic updates, the generator's, with
        these functions (the methods below, each traced or all in one graph)."""
        scalars, finite = train_encoder(iterator)
        for _ in range(N_CRITIC):
            out, real, batch = train_critic(iterator)
            finite = finite & out.pop("finite")
        g_out, g_real = train_generator(iterator, batch)
        # --label_critic auxiliary: how often the critic names the labels, beside the losses
        scalars = {**scalars, **{tag: o.pop(tag) for o in (out, g_out) for tag in list(o)
                                 if tag.startswith("Labels/")}}
        return {**out, "g_loss": g_out["g_loss"], "finite": finite & g_out["finite"],
                "real": real if g_real is None else g_real, "scalars": scalars}

    # -- the three updates, for the global batch: draws, then every replica's update

    def train_encoder(self, iterator):
        """No encoder here; returns ({TensorBoard tag: scalar}, finite)."""
        return {}, tf.constant(True)

    def train_critic(self, iterator):
        """One critic update on the next batch; returns its scalars, the batch (the first
        replica's part) and the global batch size. A conditional model's fakes take the real
        batch's labels."""
        real = next(iterator)  # (audio, labels) for a conditional model
        audio = self.split(real)[0]
        batch = self.batch_size(audio)
        noise = self.noise(batch)  # drawn before alpha: the run's random stream, as ever
        alpha = self.rng.uniform(tf.stack([batch, 1, 1]))
        drawn = (noise, alpha)
        if self.augment is not None:  # for the real, generated and mixed windows
            drawn += (self.augment.draw(self.rng, batch, sets=3),)
        out = self.replicated(self.critic_update, real, *drawn)
        return out, self.first_replica(audio), batch

    def train_generator(self, iterator, batch):
        """The generator's update, then the step and the moving average; returns its scalars
        and its real batch (None where the loss reads none)."""
        real = next(iterator) if self.loss.generator_reads_real else None
        noise = self.noise(batch)
        if self.labels:  # the labels asked for, in --label_balance's shares
            picked = tf.searchsorted(self.label_edges,
                                     self.rng.uniform(tf.stack([batch])), side="right")
            noise = tf.concat([noise, tf.one_hot(tf.minimum(picked, self.labels - 1),
                                                 self.labels)], axis=1)
        out = self.replicated(self.generator_update, real, noise)
        self.step.assign_add(1)
        if self.moving_average is not None:
            self.moving_average.update(self.step)
        return out, None if real is None else self.first_replica(real)

    # -- one replica's updates: the losses, their gradients and Adam's steps

    def critic_gradients(self, real, noise, alpha, augments=None):
        """D_loss of this replica's batch and its gradients (compiled with --xla). With
        --critic_augment, every window the critic sees is augmented (augments: the draws of
        the real, generated and mixed windows)."""
        real, noise = self.labelled(real, noise)
        G, condition = self.generator, self.condition(noise)
        fake = G(self.latent(real, noise))  # outside the tape: G does not train here
        real_seen, fake_seen = real, fake

        def critic(x):
            return self.critic(x, condition)
        if augments is not None:
            on_real, on_fake, on_mixed = tf.split(augments, 3, axis=1)
            real_seen, fake_seen = self.augment(real, on_real), self.augment(fake, on_fake)

            def critic(x):
                return self.critic(self.augment(x, on_mixed), condition)
        with tf.GradientTape() as tape:
            d_real, d_fake, real_logits = self.score(real_seen, fake_seen, condition)
            penalty, d_mixed = losses.gradient_penalty(critic, real, fake, alpha,
                                                       self.loss_scale)
            loss = self.loss.critic(self.mean, d_real, d_fake, penalty)
            if self.classifier:  # it learns to name the labels of real windows only
                loss += losses.label_loss(self.mean, real_logits, condition, "critic",
                                          self.label_weight)
            scaled = self.d_optimizer.scale_loss(loss)  # inside the tape: float16's scale
        gradients = tape.gradient(scaled, self.discriminator.trainable_variables)
        out = {"d_loss": loss, "real_output": self.mean(d_real),
               "fake_output": self.mean(d_fake), "mixed_output": self.mean(d_mixed)}
        if self.classifier:
            out["Labels/real_recognised"] = self.recognised(real_logits, condition)
        return gradients, out

    def critic_update(self, real, noise, alpha, augments=None):
        gradients, out = self.critic_gradients(real, noise, alpha, augments)
        out["finite"] = self.apply(self.d_optimizer, gradients, self.discriminator,
                                   out["d_loss"])
        return out

    def generator_gradients(self, real, noise):
        """The gradients of G_loss of this replica's latents, and {"g_loss": G_loss} (with
        the share of the fakes whose asked-for label the critic names, where it names any);
        compiled with --xla."""
        G, D, condition = self.generator, self.discriminator, self.condition(noise)
        with tf.GradientTape() as tape:
            d_fake, logits = self.classified(G(self.latent(real, noise)), condition)
            d_real = D(real) if self.loss.generator_reads_real else None
            loss = self.loss.generator(self.mean, d_fake, d_real)
            if self.classifier:  # and the labels asked for are to be heard in the fakes
                loss += losses.label_loss(self.mean, logits, condition, "generator")
            scaled = self.g_optimizer.scale_loss(loss)
        out = {"g_loss": loss}
        if self.classifier:
            out["Labels/fake_recognised"] = self.recognised(logits, condition)
        return tape.gradient(scaled, G.trainable_variables), out

    def generator_update(self, real, noise):
        gradients, out = self.generator_gradients(real, noise)
        out["finite"] = self.apply(self.g_optimizer, gradients, self.generator, out["g_loss"])
        return out

    def validation_score(self, real):
        """The critic's mean score of a batch of held-out windows, seen as the training
        windows are (augmented with --critic_augment): the ADA heuristic's E[D(validation)]."""
        real, labels = self.split(real)
        seen = real if self.augment is None else self.augment(
            real, self.augment.draw(self.rng, tf.shape(real)[0]))
        condition = tf.one_hot(labels, self.labels) if self.labels else None
        return tf.reduce_mean(self.critic(seen, condition))

    # -- what the VAE-GAN changes

    def noise(self, batch):
        """The random input of the generator's latents for `batch` examples, drawn once for
        the global batch: here the latents themselves, from the prior."""
        return self.sample_latent(batch)

    def latent(self, real, noise):
        """The generator's input for a batch of real audio: here, the noise itself."""
        return noise

    # -- helpers

    def score(self, real, fake, condition=None):
        """D(real), D(fake) (of the batch's labels, for a conditional critic) and, from a
        critic with a classifier, its logits of the real windows' labels (else None). Where
        the critic scores each example alone (scores_together), in one call on both batches:
        twice the rows in each matrix product (faster on the wide blocks) and one cast of the
        weights to the compute dtype where there were two. Otherwise two calls, as the
        original."""
        if not scores_together(self.discriminator):
            d_real, logits = self.classified(real, condition)
            return d_real, self.critic(fake, condition), logits
        both = None if condition is None else tf.concat([condition, condition], axis=0)
        scores, logits = self.classified(tf.concat([real, fake], axis=0), both)
        d_real, d_fake = tf.split(scores, 2)
        return d_real, d_fake, None if logits is None else logits[:tf.shape(real)[0]]

    def recognised(self, logits, one_hot):
        """This replica's share of how often the classifier names the label."""
        return self.mean(tf.cast(tf.equal(tf.argmax(logits, axis=1),
                                          tf.argmax(one_hot, axis=1)), tf.float32))

    def classified(self, x, condition=None):
        """(D(x), the critic's logits of x's labels), the logits None where it names none."""
        if self.classifier:
            return self.discriminator(x, condition, classify=True)
        return self.critic(x, condition), None

    def critic(self, x, condition=None):
        """D(x), or D(x, one-hot labels) for a conditional critic."""
        return self.discriminator(x) if condition is None else self.discriminator(x, condition)

    def condition(self, noise):
        """The one-hot labels a conditional generator's input ends with, or None."""
        return noise[:, LATENT_DIM:] if self.labels else None

    def split(self, batch):
        """(audio, labels) of a batch of the loader: a conditional model's batches are
        pairs (labels None otherwise)."""
        return batch if self.labels else (batch, None)

    def labelled(self, real, noise):
        """(audio, the generator's input) of this replica's batch: a conditional model's
        fakes are made for the real batch's labels, their one-hot after the latents."""
        real, labels = self.split(real)
        if labels is not None:
            noise = tf.concat([noise, tf.one_hot(labels, self.labels)], axis=1)
        return real, noise

    def apply(self, optimizer, gradients, network, loss):
        """One Adam step of the network (all-reduced across replicas by Keras); says whether
        loss and gradients were finite on this replica."""
        optimizer.apply_gradients(zip(gradients, network.trainable_variables))
        return all_finite([loss] + list(gradients))

    def mean(self, values):
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

        out = self.first_replica(self.strategy.run(on_replica, args))
        out["finite"] = tf.equal(out.pop("failed"), 0.0)
        return out

    def first_replica(self, values):
        return self.strategy.experimental_local_results(values)[0]

    def batch_size(self, real):
        """The global batch of a (distributed) batch of real audio: replicas x its
        per-replica batch (the loader's batches are all full)."""
        return tf.shape(self.first_replica(real))[0] * self.replicas


class VAEGANIteration(Iteration):
    """WGAN-GP's iteration with an encoder update first, and the generator fed the encoder's
    z = mu + eps exp(log sigma^2 / 2) of the update's own batch throughout (§7.7): 1 E update,
    5 D updates, 1 G update, each on a batch of its own (seven batches an iteration)."""

    loss = losses.VAEGAN()

    def __init__(self, networks, optimizers, *args, **kwargs):
        self.encoder, self.e_optimizer = networks["encoder"], optimizers["encoder_optimizer"]
        super().__init__(networks, optimizers, *args, **kwargs)
        self.encoder_gradients = self.compile(self.encoder_gradients)

    def noise(self, batch):
        """eps ~ N(0, 1) of the reparameterisation, for the global batch."""
        return self.rng.normal([batch, LATENT_DIM])

    def latent(self, real, noise):
        return reparameterise(*self.encoder(real), noise)

    def train_encoder(self, iterator):
        """The encoder's update, on a batch of its own: E_loss = KL + recon."""
        real = next(iterator)
        out = self.replicated(self.encoder_update, real, self.noise(self.batch_size(real)))
        finite = out.pop("finite")
        return out, finite

    def encoder_gradients(self, real, noise):
        """E_loss of this replica's batch and its gradients (compiled with --xla)."""
        E, G, D = self.encoder, self.generator, self.discriminator
        with tf.GradientTape() as tape:
            mu, log_variance = E(real)
            d_fake = D(G(reparameterise(mu, log_variance, noise)))
            loss, kl, recon = self.loss.encoder(self.mean, mu, log_variance, D(real), d_fake)
            scaled = self.e_optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, E.trainable_variables)
        return gradients, loss, kl, recon

    def encoder_update(self, real, noise):
        gradients, loss, kl, recon = self.encoder_gradients(real, noise)
        return {"Encoder_loss/KL_divergence": kl, "Encoder_loss/Reconstruction_loss": recon,
                "finite": self.apply(self.e_optimizer, gradients, self.encoder, loss)}
