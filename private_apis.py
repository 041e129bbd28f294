"""Every use of another library's private or undocumented behaviour, in one place.

Each works around something the public API lacks, and each has a test in
tests/test_private_apis.py that fails loudly, naming the function, when an upgrade of
TensorFlow, TensorBoard or Python changes what it relies on. TensorFlow is imported inside
the functions, never at the top: the flag parsers import this module before it loads.
"""

import argparse
import contextlib
import os
import shutil
import sys


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each default shown once: not for switches, nor where the help text already
    says it. Overrides argparse's private _get_help_string (the public formatter appends
    "(default: ...)" to every flag, False and None included)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False \
                or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def parser_actions(parser):
    """Every argument of an argparse parser, in order: its private _actions list (argparse
    has no public way to list them). docs/flags.py writes the flag tables from it."""
    return list(parser._actions)


@contextlib.contextmanager
def native_stderr_hidden():
    """Hide what native libraries (TensorFlow's and LiteRT's C++ logging) write to file
    descriptor 2 meanwhile: they bypass sys.stderr, so the descriptor itself is pointed at
    /dev/null for the while. TF_CPP_MIN_LOG_LEVEL=0 or 1 shows them, for diagnosing a set-up."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("0", "1"):
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow():
    """Import TensorFlow and find its devices with their C++ start-up lines (oneDNN and absl
    notices; "failed call to cuInit" from the GPU build on a machine without a GPU) hidden, so
    that the tools' own lines and one-line errors stay readable."""
    if "tensorflow" in sys.modules:
        import tensorflow as tf
        return tf
    with native_stderr_hidden():
        import tensorflow as tf
        tf.config.list_physical_devices("GPU")  # the GPU build logs its probe here
    return tf


def custom_gradient_names():
    """The names in TensorFlow's global gradient registry (ops._gradient_registry, private:
    there is no public way to list or unregister gradients), or None if it moved."""
    from tensorflow.python.framework import ops
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


@contextlib.contextmanager
def custom_gradients_released():
    """Unregister, on leaving, the gradient functions that tracing registered meanwhile.

    Every @tf.custom_gradient traced inside a tf.function registers its gradient function in
    TensorFlow's global gradient registry, which never removes it (custom_gradient.py,
    _graph_mode_decorator). The function holds the traced graph and, through the graph's
    captured handles, every variable of the run. model_progressive.lrelu and the identity
    all-reduce in Keras's optimizer.apply are such gradients, so each training run in one
    process (the tests, a notebook) kept its weights and Adam moments, 335-441 MB. Use it
    around code after which nothing differentiates the traced graphs again.
    """
    registry = custom_gradient_names()
    before = set(registry) if registry is not None else None
    try:
        yield
    finally:
        if before is not None:
            for name in set(registry) - before:
                if name.startswith("CustomGradient-"):
                    del registry[name]


def error_reason(error):
    """The cause in a TensorFlow or OS error: "No space left on device", not its op trace.
    TensorFlow's messages end in "; <cause> [Op:<name>]" (undocumented, stable since 2.x)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    message = getattr(error, "message", str(error))
    return message.split(" [Op:")[0].rsplit("; ", 1)[-1].strip()


def remove_partial_checkpoint(directory, number):
    """Remove what a failed save of checkpoint `number` left: tf.train.Checkpoint writes into
    the folder ckpt-<number>_temp (an undocumented name) and renames it when complete."""
    for name in os.listdir(directory):
        if name.startswith(f"ckpt-{number}_temp"):
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def remove_partial_checkpoints(directory):
    """Remove every ckpt-<number>_temp* folder in directory, what saves killed part-way left
    behind; returns their names."""
    import re

    try:
        names = [n for n in os.listdir(directory) if re.match(r"ckpt-\d+_temp", n)]
    except OSError:
        return []
    for name in names:
        path = os.path.join(directory, name)
        (shutil.rmtree if os.path.isdir(path) else os.remove)(path)
    return names


def freeze_variables(concrete_function):
    """The concrete function with its variables made constants, for the LiteRT converter
    (tensorflow.python.framework.convert_to_constants, not part of TensorFlow's API): the
    converter's own paths leave Keras 3's variables out of the model, which then outputs NaN."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )
    return convert_variables_to_constants_v2(concrete_function)


def write_audio_summary(name, clips, sampling_rate, step):
    """A TensorBoard audio summary of clips [k, samples, channels] (float32 in [-1, 1]) under
    the default writer, as tf.summary.audio writes it: WAV-encoded clips with empty labels,
    with the audio plugin's metadata (tensorboard.plugins.audio.metadata, not part of
    TensorFlow's API). tf.summary.audio transposes a string tensor, which oneDNN logs as
    "oneDNN supports DT_STRING only on platforms with AVX-512" at every first summary."""
    import numpy as np
    import tensorflow as tf
    from tensorboard.plugins.audio import metadata

    encoded = [tf.audio.encode_wav(clip, sampling_rate).numpy() for clip in clips]
    tensor = np.array([[wav, b""] for wav in encoded], dtype=object).reshape(-1, 2)
    summary_metadata = metadata.create_summary_metadata(
        display_name=None, description=None, encoding=metadata.Encoding.Value("WAV"))
    return tf.summary.write(name, tf.constant(tensor, tf.string), step=step,
                            metadata=summary_metadata)
