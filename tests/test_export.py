"""--export (export.py) and the player without TensorFlow (play.py)."""

import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from helpers import (
    NARROW_DIVISOR,
    ROOT,
    assert_one_line_error,
    assert_stops_cleanly,
    play_with_ctrl_c_ignored,
    run,
)
from helpers import untrained_checkpoint as make_checkpoint

import checkpoints
import conv_forms
import export
import longform
import play
import train_progressive
import train_progressive_vaegan
from utils import to_int16

BASE = {"frozen": False, "feature_map_smoothing": True, "use_sample_norm": False,
        "sampling_rate": 16000, "model_variant": "standard",
        "feature_map_divisor": NARROW_DIVISOR}
# (trainer, config, its folder under the checkpoint root): the standard model, a variant and
# the VAE-GAN; mono and stereo.
CASES = {
    "standard_stereo": (train_progressive, dict(BASE, model="progressive", num_blocks=2,
                                               channels=2), ""),
    "pggan_stereo": (train_progressive, dict(BASE, model="progressive", num_blocks=1,
                                            channels=2, model_variant="pggan",
                                            use_sample_norm=True), "pggan"),
    "vaegan_mono": (train_progressive_vaegan, dict(BASE, model="vaegan", num_blocks=1,
                                                  channels=1), "vaegan"),
}


def test_the_converter_does_not_warn_a_user_of_its_deprecated_path():
    """The frozen-graph path is the one a frozen function needs: its deprecation warning
    (absl, at every export) is not shown; other warnings are."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("absl").addHandler(handler)
    try:
        double = tf.function(lambda x: 2 * x, input_signature=[tf.TensorSpec([None, 3])])
        assert export.tflite_model(double.get_concrete_function())
        logging.getLogger("absl").warning("another warning")
    finally:
        logging.getLogger("absl").removeHandler(handler)
    assert [r.getMessage() for r in records] == ["another warning"]


@pytest.fixture(scope="module")
def exports(module_tmp):
    """make(case): the case's checkpoint (in <case>/ck) and its export (<case>/export), made
    once in the module: (trainer, config, stage folder, export folder, console, flags)."""
    made = {}

    def make(case):
        if case not in made:
            trainer, config, subfolder = CASES[case]
            root = module_tmp / case
            directory = make_checkpoint(str(root / "ck"), trainer, config, subfolder)
            flags = ["--checkpoint_dir", str(root / "ck"), "--num_blocks",
                     str(config["num_blocks"])]
            if config["model_variant"] != "standard":
                flags += ["--model_variant", config["model_variant"]]
            code, out, err = run(trainer.main, *flags, "--export", str(root / "export"))
            assert code == 0, out + err
            assert "pass --seed" not in out  # an export draws nothing: no seed to repeat
            made[case] = trainer, config, directory, str(root / "export"), out, flags
        return made[case]

    return make


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, exports):
    return exports(request.param)


@pytest.mark.slow
def test_export_matches_the_moving_average_generator(exported):
    trainer, config, directory, folder, out, _ = exported
    path = checkpoints.latest_checkpoint(directory)
    generator, *_, which = checkpoints.load_generator(directory, trainer.RECIPE, path)
    assert which == "generator_ema"
    with open(os.path.join(folder, "model.json")) as f:
        info = json.load(f)
    assert {k: info[k] for k in ("sampling_rate", "channels", "window", "latent_dim", "prior",
                                 "stage", "step", "variant", "weights", "file_stem")} == {
        "sampling_rate": 16000, "channels": config["channels"],
        "window": 16 * 4 ** config["num_blocks"], "latent_dim": 100,
        "prior": trainer.RECIPE.prior, "stage": config["num_blocks"], "step": 7,
        "variant": config["model_variant"], "weights": "moving average",
        "file_stem": f"stage_{config['num_blocks']:05d}_step00000007"}
    latents = longform.draw_latents(11, 5, info["prior"])
    keras = generator(latents).numpy()
    serving = tf.saved_model.load(os.path.join(folder, "saved_model"))
    saved = serving.signatures["serving_default"](latents=tf.constant(latents))["audio"]
    np.testing.assert_allclose(saved.numpy(), keras, rtol=0, atol=1e-4)
    lite = play.LiteGenerator(os.path.join(folder, "generator.tflite"))(latents)
    assert lite.shape == keras.shape == (5, info["window"], config["channels"])
    np.testing.assert_allclose(lite, keras, rtol=0, atol=1e-4)
    # the smaller model: within the error model.json states, measured on seed 0's latents
    stated = info["max_error"]["generator.float16.tflite"]
    assert 0 < stated < 1e-2
    check = longform.draw_latents(0, export.CHECK_LATENTS, info["prior"])
    half = play.LiteGenerator(os.path.join(folder, "generator.float16.tflite"))(check)
    assert np.abs(half - generator(check).numpy()).max() <= stated * (1 + 1e-6)
    assert os.path.getsize(os.path.join(folder, "generator.float16.tflite")) < \
        0.55 * os.path.getsize(os.path.join(folder, "generator.tflite"))
    assert "largest difference" in out


@pytest.mark.slow
def test_litert_models_compute_the_convolutions_as_matrix_products(tmp_path):
    """LiteRT's TRANSPOSE_CONV with a batch known only at run time misses its fast kernels:
    the LiteRT models hold matrix products instead, and the generator keeps its own forms."""
    config = dict(BASE, model="progressive", num_blocks=2, channels=1)
    generator = train_progressive.build_networks(config, "float32", True)["generator"]
    layers = conv_forms.convolution_layers([generator])
    layers["generator/progressive_block_1"].form = "matmul"  # one of each form before the export
    before = {label: layer.form for label, layer in layers.items()}
    assert sorted(before.values()) == ["framework", "matmul"]
    info = export.export_info(config, train_progressive.RECIPE, 0, "generator", str(tmp_path),
                              "stem")
    errors = export.write_export(str(tmp_path), generator, info)
    assert {label: layer.form for label, layer in layers.items()} == before
    assert errors["generator.tflite"] < 1e-5
    for name in ("generator.tflite", "generator.float16.tflite"):
        lite = play.LiteGenerator(os.path.join(tmp_path, name))
        ops = {op["op_name"] for op in lite.interpreter._get_ops_details()}
        assert "TRANSPOSE_CONV" not in ops and "FULLY_CONNECTED" in ops, (name, ops)


PLAY_WITHOUT_TENSORFLOW = """
import runpy, sys
sys.modules["tensorflow"] = None  # an import of TensorFlow fails
sys.argv = ["play.py"] + sys.argv[1:]
try:
    runpy.run_path("play.py", run_name="__main__")
finally:
    assert "tensorflow" not in [m.split(".")[0] for m in sys.modules if sys.modules[m]]
"""


def play_command(*argv):
    return subprocess.run([sys.executable, "-c", PLAY_WITHOUT_TENSORFLOW, *argv], cwd=ROOT,
                          capture_output=True, timeout=300, check=False)


@pytest.mark.slow
def test_player_writes_the_files_of_generate_without_tensorflow(exported, tmp_path):
    trainer, _, _, folder, _, flags = exported
    result = play_command(folder, "--generate", "3", "--seed", "5", "--output_dir",
                          str(tmp_path / "play"))
    assert result.returncode == 0, result.stderr.decode()
    code, _, err = run(trainer.main, *flags, "--generate", "3", "--seed", "5",
                       "--output_dir", str(tmp_path / "trainer"))
    assert code == 0, err
    names = sorted(os.listdir(tmp_path / "trainer"))
    assert sorted(os.listdir(tmp_path / "play")) == names and len(names) == 3
    for name in names:
        ours = sf.read(str(tmp_path / "play" / name), dtype="int16", always_2d=True)[0]
        theirs = sf.read(str(tmp_path / "trainer" / name), dtype="int16", always_2d=True)[0]
        assert ours.shape == theirs.shape
        assert np.abs(ours.astype(int) - theirs).max() <= 1, name


@pytest.mark.slow
def test_live_stdout_streams_exactly_the_chunks_asked_for_without_gaps(exported):
    _, config, _, folder, _, _ = exported
    chunks, per_chunk = 3, 2
    result = play_command(folder, "--live", "--stdout", "--chunks", str(chunks),
                          "--chunk_windows", str(per_chunk), "--seed", "4")
    assert result.returncode == 0, result.stderr.decode()
    channels, window = config["channels"], 16 * 4 ** config["num_blocks"]
    overlap = longform.default_crossfade(window, 16000)
    stream = np.frombuffer(result.stdout, "<i2").reshape(-1, channels)
    assert len(stream) == chunks * per_chunk * (window - overlap)
    # the same walk joined at once: the stream is its start, sample for sample
    with open(os.path.join(folder, "model.json")) as f:
        prior = json.load(f)["prior"]
    latents = longform.latent_walk(np.random.default_rng(4), chunks * per_chunk, prior)
    windows = longform.generate_windows(play.LiteGenerator(os.path.join(
        folder, "generator.tflite")), latents, per_chunk)
    whole = to_int16(longform.join_windows(windows, overlap))
    np.testing.assert_array_equal(stream, whole[:len(stream)])


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_live_stops_on_a_signal_even_started_with_ctrl_c_ignored(exports, signum):
    """An endless stream ends cleanly on Ctrl+C or SIGTERM, also as a background job of a
    script, which inherits SIGINT ignored (one export: the player is the same for all)."""
    process = play_with_ctrl_c_ignored(exports("vaegan_mono")[3], "--live", "--stdout",
                                       "--seed", "2")
    assert len(process.stdout.read(4096)) == 4096  # streaming
    assert_stops_cleanly(process, signum)


@pytest.mark.slow
@pytest.mark.parametrize("damage, message", [
    ("cut", "is not a whole LiteRT model"),
    ("empty", "is not a whole LiteRT model"),
    ("no_window", "model.json lacks window"),
    ("rate_text", "model.json states sampling_rate wrongly"),  # was a wave.Error traceback
    ("other_stage", "from different exports"),
])
def test_player_names_a_damaged_or_mismatched_export_in_one_line(exported, tmp_path, capsys,
                                                                   damage, message):
    import shutil

    from utils import run_cli

    folder = tmp_path / "copy"
    shutil.copytree(exported[3], folder)
    model, info = folder / "generator.tflite", json.loads((folder / "model.json").read_text())
    if damage == "cut":
        model.write_bytes(model.read_bytes()[:len(model.read_bytes()) // 2])
    elif damage == "empty":
        model.write_bytes(b"")
    else:
        if damage == "no_window":
            del info["window"]
        elif damage == "rate_text":
            info["sampling_rate"] = "16 kHz"
        else:  # model.json of a stage one higher beside this stage's model
            info.update(window=info["window"] * 4, stage=info["stage"] + 1)
        (folder / "model.json").write_text(json.dumps(info))
    with pytest.raises(SystemExit) as exit_:
        run_cli(play.main, [str(folder), "--generate", "1", "--output_dir",
                            str(tmp_path / "out")])
    assert_one_line_error(exit_.value.code, capsys.readouterr().err, message)
    assert not (tmp_path / "out").exists()


def test_player_refuses_a_folder_that_is_no_export(tmp_path, capsys):
    from utils import run_cli
    with pytest.raises(SystemExit) as exit_:
        run_cli(play.main, [str(tmp_path), "--generate", "1"])
    err = capsys.readouterr().err
    assert_one_line_error(exit_.value.code, err, "is not an export folder", str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        run_cli(play.main, [str(tmp_path), "--stdout"])
    assert_one_line_error(exit_.value.code, capsys.readouterr().err, "--generate N")
    with pytest.raises(SystemExit) as exit_:  # was "say what to play", of two
        run_cli(play.main, [str(tmp_path), "--generate", "1", "--live"])
    assert_one_line_error(exit_.value.code, capsys.readouterr().err, "one thing at a time")


def test_export_refuses_a_folder_that_holds_something_else(tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine\n")
    code, _, err = run(train_progressive.main, "--checkpoint_dir", str(tmp_path / "ck"),
                       "--num_blocks", "1", "--export", str(other))
    assert_one_line_error(code, err, "is not an export folder")
    assert os.listdir(other) == ["keep.txt"]


@pytest.fixture(scope="module")
def vaegan_export(exports):
    """The VAE-GAN case's folder (its ck/ and export/): each test works on a copy."""
    return pathlib.Path(exports("vaegan_mono")[3]).parent


def copy_of_export(vaegan_export, tmp_path):
    """(the export folder, the flags that export into it again) in tmp_path."""
    for name in ("ck", "export"):
        shutil.copytree(vaegan_export / name, tmp_path / name)
    return tmp_path / "export", ["--checkpoint_dir", str(tmp_path / "ck"), "--num_blocks", "1",
                                 "--export", str(tmp_path / "export")]


@pytest.mark.slow
def test_exporting_again_replaces_only_the_exports_files(vaegan_export, tmp_path):
    """A re-export used to delete the whole folder, the user's notes and WAVs in it too."""
    folder, argv = copy_of_export(vaegan_export, tmp_path)
    (folder / "notes.txt").write_text("the good seeds: 3, 7\n")
    (folder / "take1.wav").write_bytes(b"RIFF mine")
    stale = tmp_path / ".export-killed"  # what a killed export leaves beside the folder
    stale.mkdir()
    os.utime(stale, (0, 0))
    before = os.stat(folder / "generator.tflite").st_mtime_ns
    code, out, err = run(train_progressive_vaegan.main, *argv, "--raw_generator")
    assert code == 0, out + err
    assert (folder / "notes.txt").read_text() == "the good seeds: 3, 7\n"
    assert (folder / "take1.wav").read_bytes() == b"RIFF mine"
    assert os.stat(folder / "generator.tflite").st_mtime_ns != before
    with open(folder / "model.json") as f:
        assert json.load(f)["weights"] == "raw"
    assert sorted(os.listdir(folder)) == sorted(export.OWN + ("notes.txt", "take1.wav"))
    assert not stale.exists() and "removed" in out
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".export-")]


EXPORT_UNDER_A_FILE_SIZE_LIMIT = r"""
import resource, sys
sys.path.insert(0, sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
import train_progressive_vaegan
from utils import run_cli
sys.exit(run_cli(train_progressive_vaegan.main, sys.argv[3:]))
"""


@pytest.mark.slow
def test_an_export_past_a_file_size_limit_is_one_line_and_the_old_export_stays(vaegan_export,
                                                                              tmp_path):
    folder, argv = copy_of_export(vaegan_export, tmp_path)
    kept = {name: (folder / name).stat().st_mtime_ns for name in ("generator.tflite",
                                                                  "model.json")}
    result = subprocess.run([sys.executable, "-c", EXPORT_UNDER_A_FILE_SIZE_LIMIT, ROOT,
                             str(1 << 20), *argv], capture_output=True, text=True, cwd=ROOT,
                            check=False)
    assert_one_line_error(result.returncode, result.stderr, "cannot write the export",
                          "File too large", "is as it was")
    assert {name: (folder / name).stat().st_mtime_ns for name in kept} == kept
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".export-")]
