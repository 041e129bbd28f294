"""The moving-average generator (EMA): a float32 copy of the generator's weights, updated
after every generator update t of a stage (t = 1, 2, ...),

    w_avg <- b w_avg + (1 - b) w.

By default b follows a half-life in windows seen, with a ramp-up tied to the stage's progress
(StyleGAN2-ADA's ema_kimg and ema_rampup, Karras et al. 2020): after t updates of batch B the
stage has seen tB windows, the half-life is h = min(H, r tB) windows and b = 0.5^(B / h), so
the average never reaches further back than a share r of the stage (5 % by default): it
follows a short run, where a fixed decay keeps the quiet early weights. With a fixed
--ema_decay d, b = min(d, (1 + t) / (10 + t)), the warm-up of TensorFlow's
ExponentialMovingAverage. Audio GANs after the original (DrumGAN, Musika, RAVE,
stable-audio-tools) sample from such an average: it sounds cleaner at no training cost.
Where an evaluation of the quality curve scores the raw weights better, the average starts
again from them (train_loop.restart_average: on real music no average of a short run measured
better than the raw weights), but for a conditional model's, which carries the label better.
Preview, generation, evaluation, the quality curve and the generator_output summary use it;
--raw_generator uses the trained weights. The average is another generator network of the
same stage (the checkpoint's `generator_ema`), so it grows, freezes and restores by layer name
like the generator.
"""

from dataclasses import dataclass

import tensorflow as tf


def warm_decay(decay, step):
    """The decay at generator update `step` (1, 2, ...): min(decay, (1 + step) / (10 + step))."""
    step = tf.cast(step, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32), (1.0 + step) / (10.0 + step))


@dataclass(frozen=True)
class FixedDecay:
    """--ema_decay: a fixed decay, with TensorFlow's warm-up."""
    decay: float

    def beta(self, step):
        return warm_decay(self.decay, step)


@dataclass(frozen=True)
class HalfLife:
    """A half-life of `windows` windows seen, at most `rampup` of the windows the stage has
    seen (no ramp-up if 0), for updates of `batch` windows (StyleGAN2-ADA's rule)."""
    windows: float
    rampup: float
    batch: int

    def beta(self, step):
        seen = tf.cast(step, tf.float32) * float(self.batch)
        half = tf.constant(self.windows, tf.float32)
        if self.rampup:
            half = tf.minimum(half, seen * self.rampup)
        return tf.pow(0.5, float(self.batch) / tf.maximum(half, 1e-8))


def rule(decay, half_life, rampup, batch):
    """The average's rule from the flags: None (off) for --ema_decay 0, a FixedDecay for
    another --ema_decay, else the HalfLife."""
    if decay == 0:
        return None
    return FixedDecay(decay) if decay is not None else HalfLife(half_life, rampup, batch)


class MovingAverage:
    """The average of `generator`'s weights in `average` (a generator of the same config),
    moving by `rule` (FixedDecay or HalfLife)."""

    def __init__(self, generator, average, rule):
        self.generator, self.average, self.rule = generator, average, rule

    def pairs(self, layers=None):
        """(average weight, generator weight) of the named layers (all by default)."""
        mine, theirs = self.average.named_layers(), self.generator.named_layers()
        return [pair for name in (layers or theirs)
                for pair in zip(mine[name].weights, theirs[name].weights)]

    def update(self, step):
        """One step of the average, after the generator update that made the step. Weights
        that do not train (a frozen stage's early blocks) keep their average, which is them."""
        b = self.rule.beta(step)
        trainable = {id(v) for v in self.generator.trainable_variables}
        for average, weight in self.pairs():
            if id(weight) in trainable:
                average.assign(b * average + (1.0 - b) * weight)

    def copy(self, layers=None):
        """average = weights, for the named layers (all by default): where a stage starts a
        layer afresh, or freezes it."""
        for average, weight in self.pairs(layers):
            average.assign(weight)
