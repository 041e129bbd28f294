"""--evaluate of the trainers and the pictures in TensorBoard during training (session.py).

Two tiny training runs on the bundled demo data are shared by the tests: progressive stage 1
(windows of 64 samples, batch 2, 2 steps) and WaveGAN (windows of 16384, batch 2, 1 step).
"""

import contextlib
import io
import json
import os

import matplotlib.image
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

import evaluate
import session
import stages
import train
import train_progressive
from utils import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "data", "demo")
PICTURES = ("waveforms.png", "zoom.png", "spectrograms.png", "loudness.png")
TINY = ["--data_dir", DEMO, "--batch_size", "2", "--seed", "0"]


def run(main, *argv):
    """A trainer's main in-process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run_cli(main, list(argv))
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def progressive(module_tmp):
    root = str(module_tmp / "progressive")
    code, out, err = run(train_progressive.main, *TINY, "--num_blocks", "1", "--max_steps", "2",
                         "--checkpoint_dir", root)
    assert code == 0, (out, err)
    return root


@pytest.fixture(scope="module")
def wavegan(module_tmp):
    root = str(module_tmp / "wavegan")
    code, out, err = run(train.main, *TINY, "--max_steps", "1", "--checkpoint_dir", root)
    assert code == 0, (out, err)
    return root


def read(path):
    with open(path) as f:
        return f.read()


def metric_keys():
    windows = np.random.default_rng(0).uniform(-0.5, 0.5, (10, 64, 1))
    return set(evaluate.compute_metrics(windows, windows, 16000))


def check_report(folder, count, window):
    """metrics.json with every key, and the PNGs, which open as pictures."""
    assert sorted(os.listdir(folder)) == sorted(PICTURES + ("metrics.json",))
    with open(os.path.join(folder, "metrics.json")) as f:
        metrics = json.load(f)
    assert set(metrics) == metric_keys()
    assert (metrics["num_generated"], metrics["num_real"], metrics["window_samples"],
            metrics["channels"], metrics["sampling_rate"]) == (count, count, window, 1, 16000)
    for name in PICTURES:
        image = matplotlib.image.imread(os.path.join(folder, name))
        assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 600
    return metrics


def test_progressive_evaluate_writes_metrics_pictures_and_the_table(progressive):
    code, out, err = run(train_progressive.main, "--data_dir", DEMO, "--num_blocks", "1",
                         "--checkpoint_dir", progressive, "--evaluate", "--num_eval_samples",
                         "16", "--seed", "3")
    assert code == 0, err
    folder = os.path.join(stages.stage_dir(progressive, 1), "evaluation", "00000002")
    metrics = check_report(folder, 16, 64)
    # the demo has 36000 whole windows of 64 samples: the memorisation check takes a subset
    assert metrics["num_training"] == session.EVAL_TRAINING_WINDOWS
    assert f"a random {session.EVAL_TRAINING_WINDOWS} of the 36000 whole windows" in out
    assert evaluate.format_table(metrics) in out
    path = os.path.join(folder, "metrics.json")
    first = read(path)
    assert run(train_progressive.main, "--data_dir", DEMO, "--num_blocks", "1",
               "--checkpoint_dir", progressive, "--evaluate", "--num_eval_samples", "16",
               "--seed", "3")[0] == 0
    assert read(path) == first  # the seed repeats it


def test_wavegan_evaluate_searches_every_whole_window(wavegan):
    code, out, err = run(train.main, "--data_dir", DEMO, "--checkpoint_dir", wavegan,
                         "--evaluate", "--num_eval_samples", "6", "--seed", "0")
    assert code == 0, err
    metrics = check_report(os.path.join(wavegan, "evaluation", "00000001"), 6, 16384)
    whole = sum(sf.info(os.path.join(DEMO, n)).frames for n in os.listdir(DEMO)) // 16384
    assert metrics["num_training"] == whole and f"over all {whole} whole windows" in out


def test_training_logs_the_pictures_as_image_summaries(progressive):
    directory = stages.stage_dir(progressive, 1)
    images = {}
    for name in os.listdir(directory):
        if name.startswith("events.out.tfevents"):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
                for value in event.summary.value:
                    if value.metadata.plugin_data.plugin_name == "images":
                        images[value.tag] = value.tensor.string_val
    assert set(images) == {"evaluation/" + name[:-4] for name in PICTURES}
    for encoded in images.values():  # width, height, then the PNG
        picture = tf.io.decode_png(encoded[2]).numpy()
        assert picture.shape[:2] == (int(encoded[1]), int(encoded[0])) and picture.std() > 0


@pytest.fixture(scope="module")
def stereo_dir(module_tmp):
    folder = module_tmp / "stereo"
    folder.mkdir()
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, (4000, 2))
    sf.write(str(folder / "noise.wav"), noise, 16000)
    return str(folder)


@pytest.mark.parametrize("extra, expected", [
    (["--preview"], "--preview and --evaluate are separate jobs"),
    (["--generate", "2"], "--generate and --evaluate are separate jobs"),
    (["--interpolate", "1", "2"], "--interpolate and --evaluate are separate jobs"),
    (["--checkpoint_dir", "{empty}"], "no checkpoint in"),
    (["--data_dir", "{stereo}"], "makes 1-channel audio but"),
])
def test_bad_combinations_are_one_line_and_exit_2(progressive, stereo_dir, tmp_path, extra,
                                                  expected):
    extra = [a.format(empty=str(tmp_path), stereo=stereo_dir) for a in extra]
    argv = ["--data_dir", DEMO, "--num_blocks", "1", "--checkpoint_dir", progressive,
            "--evaluate", "--seed", "0", *extra]
    code, _, err = run(train_progressive.main, *argv)
    assert code == 2 and err.count("\n") == 1 and expected in err and "Traceback" not in err


def test_num_eval_samples_needs_evaluate(progressive):
    code, _, err = run(train_progressive.main, "--data_dir", DEMO, "--num_blocks", "1",
                       "--checkpoint_dir", progressive, "--generate", "1",
                       "--num_eval_samples", "4")
    assert code == 2 and err.count("\n") == 1 and "--num_eval_samples goes with --evaluate" in err
