"""Adaptive critic augmentation for audio (--critic_augment ada), after StyleGAN2-ADA's for
images (Karras et al. 2020, "Training generative adversarial networks with limited data").

Every window the critic sees, real, generated and the gradient penalty's mixes, passes
through the same random, differentiable augmentations, each applied to an example with
probability p (drawn anew for each example and each augmentation):

    gain      x 10^(g / 20), g ~ N(0, 6 dB)
    polarity  -x
    shift     a circular shift by up to an eighth of the window either way
    tilt      y[t] = x[t] - b x[t - 1], b ~ U(-0.3, 0.3): a gentle EQ tilt, up or down
    speed     read 2^(s / 12) times as fast, s ~ U(-1, 1) semitones (linear interpolation,
              circular at the window's end)
    noise     white noise at 20-40 dB under the window's RMS
    swap      left and right exchanged (stereo only)

Why the generator cannot learn to make augmented audio ("non-leaking"): each augmentation
is drawn from a group of invertible maps (gains, sign, shifts, invertible first-order
filters, time scalings, the two channel orders) or is a convolution of the distribution with
Gaussian noise, and is applied with probability p < 1: the identity stays the most likely
outcome, so the distribution of augmented windows determines the distribution it was made
from, and the critic still pulls the generator towards the data itself (the paper's
argument, §2.2 and its appendix C; p is capped at 0.8, under the paper's leaking point).

p adapts every ADJUST_EVERY iterations towards --ada_target of the overfitting heuristic
r_v = (E[D(train)] - E[D(validation)]) / (E[D(train)] - E[D(generated)]) (the paper's
validation heuristic, scale-free, so it holds for a WGAN critic whose scores have no fixed
scale; the paper's r_t reads the sign of a logistic critic's scores). 0: the critic scores
held-out music as it scores training music; 1: as it scores generated audio. p moves by
ADJUST_EVERY x batch / ADA_WINDOWS per adjustment (from 0 to 1 over ADA_WINDOWS windows
seen). Its value is kept in the checkpoint and restored exactly on resume.
"""

import math

import tensorflow as tf

P_MAX = 0.8
ADJUST_EVERY = 4  # iterations between adjustments of p
ADA_WINDOWS = 20_000  # windows seen over which p may move from 0 to 1
GAIN_DB, TILT, SEMITONES, NOISE_DB = 6.0, 0.3, 1.0, (20.0, 40.0)
KINDS = ("gain", "polarity", "shift", "tilt", "speed", "noise", "swap")
COLUMNS = 2 * len(KINDS)  # per example: whether each is applied, and its amount


class Augment(tf.Module):
    """The augmentations and their probability p (a variable, in the checkpoint)."""

    def __init__(self, channels, p=0.0):
        super().__init__(name="critic_augment")
        self.channels = channels
        self.p = tf.Variable(float(p), trainable=False, dtype=tf.float32, name="p")

    def draw(self, rng, batch, sets=1):
        """The random parameters of `batch` examples [batch, sets x COLUMNS] float32, from the
        run's random stream: for each augmentation, whether it applies (probability p) and a
        uniform draw in [0, 1) that sets its amount; `sets` of them side by side."""
        draws = []
        for _ in range(sets):
            applies = rng.uniform(tf.stack([batch, len(KINDS)])) < self.p
            draws += [tf.cast(applies, tf.float32), rng.uniform(tf.stack([batch, len(KINDS)]))]
        return tf.concat(draws, axis=1)

    def __call__(self, x, params):
        """Augmented x [batch, window, channels]; differentiable with respect to x."""
        dtype = x.dtype
        x = tf.cast(x, tf.float32)
        window = x.shape[1]
        on = {kind: params[:, i][:, None, None] for i, kind in enumerate(KINDS)}
        u = {kind: params[:, len(KINDS) + i] for i, kind in enumerate(KINDS)}
        gain = tf.pow(10.0, GAIN_DB * normal_from_uniform(u["gain"]) / 20.0)[:, None, None]
        x = blend(x, x * gain, on["gain"])
        x = blend(x, -x, on["polarity"])
        x = blend(x, circular_shift(x, u["shift"], window // 8), on["shift"])
        b = (2.0 * u["tilt"] - 1.0)[:, None, None] * TILT
        x = blend(x, x - b * tf.pad(x, [[0, 0], [1, 0], [0, 0]])[:, :-1], on["tilt"])
        x = blend(x, resample(x, tf.pow(2.0, SEMITONES * (2.0 * u["speed"] - 1.0) / 12.0)),
                  on["speed"])
        rms = tf.sqrt(tf.reduce_mean(tf.square(tf.stop_gradient(x)), axis=[1, 2],
                                     keepdims=True) + 1e-12)
        level = tf.pow(10.0, -(NOISE_DB[0] + (NOISE_DB[1] - NOISE_DB[0]) * u["noise"]) / 20.0)
        seed = tf.cast(tf.stack([tf.reduce_sum(u["noise"]) * 1e6, 7.0]), tf.int32)
        noise = tf.random.stateless_normal(tf.shape(x), seed=seed)
        x = blend(x, x + noise * rms * level[:, None, None], on["noise"])
        if self.channels == 2:
            x = blend(x, tf.reverse(x, axis=[2]), on["swap"])
        return tf.cast(x, dtype)


def blend(x, augmented, on):
    """augmented where on (1) is set, x elsewhere (0): per example."""
    return x + on * (augmented - x)


def normal_from_uniform(u):
    """A standard normal draw from a uniform one (the inverse error function)."""
    return math.sqrt(2.0) * tf.math.erfinv(tf.clip_by_value(2.0 * u - 1.0, -0.999999, 0.999999))


def circular_shift(x, u, most):
    """x shifted circularly by an integer in [-most, most] set by u, per example."""
    window = x.shape[1]
    shifts = tf.cast(tf.floor(u * (2 * most + 1)), tf.int32) - most
    index = (tf.range(window)[None, :] - shifts[:, None]) % window
    return tf.gather(x, index, axis=1, batch_dims=1)


def resample(x, rate):
    """x read `rate` times as fast, by linear interpolation, circular at the end; per
    example."""
    window = x.shape[1]
    position = tf.range(window, dtype=tf.float32)[None, :] * rate[:, None]
    low = tf.floor(position)
    frac = (position - low)[:, :, None]
    low = tf.cast(low, tf.int32) % window
    high = (low + 1) % window
    return (1.0 - frac) * tf.gather(x, low, axis=1, batch_dims=1) + \
        frac * tf.gather(x, high, axis=1, batch_dims=1)


def heuristic(train, validation, generated):
    """r_v from the critic's mean scores of training, held-out and generated windows: 0 when
    held-out music is scored as training music, 1 when as generated audio."""
    return (train - validation) / max(train - generated, 1e-6)


def adjusted(p, heuristic, target, batch):
    """p after one adjustment: up when the heuristic is over its target, down otherwise,
    within [0, P_MAX]."""
    step = ADJUST_EVERY * batch / ADA_WINDOWS
    return min(P_MAX, max(0.0, p + (step if heuristic > target else -step)))
