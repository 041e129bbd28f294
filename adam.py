"""The optimiser of every network: Adam with the report's settings (§7.4: learning rate 1e-4,
beta1 0.5, beta2 0.9; TensorFlow 1's epsilon 1e-8), run as TensorFlow's fused kernel.
"""

import keras
import tensorflow as tf

from rules import LEARNING_RATE

BETA_1, BETA_2, EPSILON = 0.5, 0.9, 1e-8


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


def make_optimizer(loss_scale=None, learning_rate=LEARNING_RATE):
    """Adam with the report's settings (another learning rate if given). A fixed loss scale
    is Keras's loss_scale_factor: scale_loss() multiplies, apply_gradients() divides."""
    return Adam(learning_rate=learning_rate, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON,
                loss_scale_factor=loss_scale)
