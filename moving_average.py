"""The moving-average generator (EMA): a float32 copy of the generator's weights, updated
after every generator update,

    w_avg <- b w_avg + (1 - b) w,   b = min(decay, (1 + t) / (10 + t)) at step t,

the warm-up of TensorFlow's ExponentialMovingAverage, so that the first steps of a stage are
not dominated by the initial weights. Audio GANs after the original (DrumGAN, Musika, RAVE,
stable-audio-tools) sample from such an average: it sounds cleaner at no training cost.
Preview, generation, evaluation, the quality curve and the generator_output summary use it;
--raw_generator uses the trained weights. The average is another generator network of the
same stage (the checkpoint's `generator_ema`), so it grows, freezes and restores by layer name
like the generator.
"""

import tensorflow as tf


def warm_decay(decay, step):
    """The decay at generator update `step` (1, 2, ...): min(decay, (1 + step) / (10 + step))."""
    step = tf.cast(step, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32), (1.0 + step) / (10.0 + step))


class MovingAverage:
    """The average of `generator`'s weights in `average` (a generator of the same config)."""

    def __init__(self, generator, average, decay):
        self.generator, self.average, self.decay = generator, average, decay

    def pairs(self, layers=None):
        """(average weight, generator weight) of the named layers (all by default)."""
        mine, theirs = self.average.named_layers(), self.generator.named_layers()
        return [pair for name in (layers or theirs)
                for pair in zip(mine[name].weights, theirs[name].weights)]

    def update(self, step):
        """One step of the average, after the generator update that made the step. Weights
        that do not train (a frozen stage's early blocks) keep their average, which is them."""
        b = warm_decay(self.decay, step)
        trainable = {id(v) for v in self.generator.trainable_variables}
        for average, weight in self.pairs():
            if id(weight) in trainable:
                average.assign(b * average + (1.0 - b) * weight)

    def copy(self, layers=None):
        """average = weights, for the named layers (all by default): where a stage starts a
        layer afresh, or freezes it."""
        for average, weight in self.pairs(layers):
            average.assign(weight)
