"""private_apis.py: every use of another library's private or undocumented behaviour. Each test
fails, naming the function, when an upgrade changes what the function relies on."""

import argparse
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from helpers import ROOT
from tensorboard.plugins.audio import metadata

import private_apis


def test_defaults_help_formatter_shows_each_default_once():
    """argparse must still call the private _get_help_string for every flag's help."""
    parser = argparse.ArgumentParser(formatter_class=private_apis.DefaultsHelpFormatter)
    parser.add_argument("--level", type=int, default=0, help="a level")
    parser.add_argument("--rate", type=int, default=16000, help="a rate")
    parser.add_argument("--fast", action="store_true", help="a switch")
    parser.add_argument("--seed", default=None, help="a seed")
    parser.add_argument("--size", default=3, help="a size (default: the stage's)")
    text = " ".join(parser.format_help().split())
    assert "a level (default: 0)" in text and "a rate (default: 16000)" in text, \
        "DefaultsHelpFormatter: argparse no longer shows defaults through _get_help_string"
    assert "a switch (default" not in text and "a seed (default" not in text
    assert text.count("default") == 3
    assert [action.dest for action in private_apis.parser_actions(parser)] == \
        ["help", "level", "rate", "fast", "seed", "size"], \
        "parser_actions: argparse's private _actions list changed"


def test_import_tensorflow_hides_its_start_up_lines():
    script = f"import sys; sys.path.insert(0, {ROOT!r}); import private_apis; " \
             "tf = private_apis.import_tensorflow(); print(tf.__version__)"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, env=env, check=True)
    assert result.stdout.strip() == tf.__version__
    assert result.stderr == "", "import_tensorflow: TensorFlow's start-up lines got through"


def test_custom_gradient_registry_is_where_it_was_and_is_cleaned():
    import model_progressive

    registry = private_apis.custom_gradient_names()
    assert registry is not None, \
        "custom_gradient_names: tensorflow.python.framework.ops._gradient_registry moved"
    before = set(registry)
    with private_apis.custom_gradients_released():
        @tf.function
        def slope(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = model_progressive.lrelu(x)
            return tape.gradient(y, x)
        assert slope(tf.constant([-1.0, 2.0])).numpy().tolist() == pytest.approx([0.2, 1.0])
        added = set(registry) - before
        assert any(name.startswith("CustomGradient-") for name in added), \
            "custom_gradients_released: tracing no longer registers CustomGradient-<uid>"
    assert set(registry) == before


def test_a_failed_save_leaves_a_temp_folder_and_a_readable_reason(tmp_path):
    """A save whose last step (merging into ckpt-1.index) fails, as on a full disk."""
    (tmp_path / "ckpt-1.index").mkdir()
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)),
                                         str(tmp_path), max_to_keep=3)
    with pytest.raises(tf.errors.OpError) as error:
        manager.save(checkpoint_number=1)
    assert private_apis.error_reason(error.value) == "Is a directory", \
        "error_reason: TensorFlow's message no longer ends in '; <cause> [Op:<name>]'"
    assert "ckpt-1_temp" in os.listdir(tmp_path), \
        "remove_partial_checkpoint: TensorFlow no longer writes into ckpt-<N>_temp"
    private_apis.remove_partial_checkpoint(str(tmp_path), 1)
    assert "ckpt-1_temp" not in os.listdir(tmp_path)
    assert private_apis.error_reason(OSError(28, "No space left on device")) == \
        "No space left on device"


def test_audio_summary_is_what_tensorboard_reads(tmp_path):
    clips = np.random.default_rng(0).uniform(-0.9, 0.9, (2, 300, 2)).astype(np.float32)
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=4):
        assert private_apis.write_audio_summary("generator_output", tf.constant(clips), 8000, 4)
    writer.flush()
    (name,) = os.listdir(tmp_path)
    values = [(event.step, value) for event in tf.compat.v1.train.summary_iterator(
        str(tmp_path / name)) for value in event.summary.value]
    ((step, value),) = values
    assert step == 4 and value.tag == "generator_output"
    assert value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME
    assert metadata.parse_plugin_metadata(value.metadata.plugin_data.content).encoding == \
        metadata.Encoding.Value("WAV"), "write_audio_summary: the audio plugin's metadata changed"
    tensor = tf.make_ndarray(value.tensor)
    assert tensor.shape == (2, 2) and tensor[0, 1] == b""
    for wav, clip in zip(tensor[:, 0], clips):
        audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
        assert rate == 8000 and audio.shape == clip.shape
        np.testing.assert_allclose(audio, clip, atol=1.5 / 32767)
