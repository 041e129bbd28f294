"""Tests of evaluate.py: every metric on real music (the bundled demo pieces), pictures, CLI.

"Near its best" and "clearly worse" are the thresholds below, measured on data/demo at
stage 5 (1 s windows). Two splits of the demo stand for "two disjoint halves of the same
audio": even against odd windows of all four pieces (the same music, so tight bounds), and
pieces 1-2 against pieces 3-4 (other keys and tempi, so looser bounds). The bad cases are
white noise (full scale, and at the real RMS), silence and the real windows at a quarter of
their loudness.
"""

import contextlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import DEMO, ROOT

import dataloader
import evaluate
import metrics
import pictures
from dataloader import Windows, gather
from rules import window_length
from utils import run_cli

RATE = 16000
PIECE = 36 * RATE  # samples in one demo piece

# The keys the trainer and metrics.json rely on (the list plus bookkeeping).
KEYS = {
    "sampling_rate", "window_samples", "channels", "num_real", "num_generated", "num_training",
    "loudness.real_mean_abs", "loudness.generated_mean_abs", "loudness.mean_abs_ratio",
    "loudness.real_rms", "loudness.generated_rms", "loudness.rms_ratio",
    "loudness.real_full_scale_fraction", "loudness.full_scale_fraction",
    "frechet_mel_distance", "mel.n_fft", "mel.bands",
    "spectrum.distance_db", "spectrum.real_centroid_hz", "spectrum.generated_centroid_hz",
    "ndb.bins", "ndb.different_bins", "ndb.ndb_over_k", "ndb.js_divergence",
    "memorisation.min", "memorisation.median", "memorisation.mean", "memorisation.max",
    "memorisation.fraction_below", "memorisation.threshold", "memorisation.max_lag",
    "stereo.real_channel_correlation", "stereo.generated_channel_correlation",
}

# Near its best, per split: (loudness ratio band, Frechet, NDB/K, JS divergence).
NEAR_BEST = {"interleaved": (0.1, 60.0, 0.15, 0.1), "pieces": (0.1, 200.0, 0.2, 0.15)}
# Clearly worse: every bad case is at least this far off.
WORSE_FRECHET = 300.0
WORSE_NDB_NOISE, WORSE_JS_NOISE = 0.5, 0.5      # noise and silence
WORSE_NDB_QUARTER, WORSE_JS_QUARTER = 0.2, 0.2  # a quarter of the loudness


# --------------------------------------------------------------------------- data

def full_windows(buffer, window):
    """Every whole window of an int16 buffer as float32 [n, window, channels]."""
    windows = Windows(len(buffer), window)
    starts = windows.starts(np.arange(len(windows)))
    starts = starts[starts + window <= len(buffer)]
    return gather(buffer, starts, window).astype(np.float32) / 32767


@pytest.fixture(scope="module")
def demo():
    return np.asarray(dataloader.load_audio(DEMO, RATE, log=lambda message: None).buffer)


@pytest.fixture(scope="module")
def splits(demo):
    """{name: (real, generated)} of two disjoint halves of the demo at stage 5."""
    window = window_length(5)
    every = full_windows(demo, window)
    return {"interleaved": (every[0::2], every[1::2]),
            "pieces": (full_windows(demo[:2 * PIECE], window),
                       full_windows(demo[2 * PIECE:], window))}


def bad_cases(real, seed=0):
    rng = np.random.default_rng(seed)
    rms = float(np.sqrt(np.mean(real.astype(np.float64) ** 2)))
    return {
        "noise": rng.uniform(-1, 1, real.shape).astype(np.float32),
        "noise_at_real_rms": np.clip(rng.normal(0, rms, real.shape), -1, 1).astype(np.float32),
        "silence": np.zeros_like(real),
        "quarter": real * 0.25,
    }


@pytest.fixture(scope="module")
def results(splits):
    """compute_metrics of every split and of every bad case, computed once."""
    out = {}
    for name, (real, generated) in splits.items():
        out[name, "halves"] = metrics.compute_metrics(real, generated, RATE)
        for case, bad in bad_cases(real).items():
            out[name, case] = metrics.compute_metrics(real, bad, RATE)
    return out


# --------------------------------------------------------------------------- the metrics

def test_every_key_is_present_and_json_serialisable(results):
    for measured in results.values():
        assert set(measured) == KEYS
        assert json.loads(json.dumps(measured, allow_nan=False)) == measured


@pytest.mark.parametrize("split", ["interleaved", "pieces"])
def test_disjoint_halves_of_the_demo_are_near_best(results, split):
    m = results[split, "halves"]
    loudness, frechet, ndb_k, js = NEAR_BEST[split]
    assert m["num_real"] >= 68 and m["num_generated"] >= 68 and m["window_samples"] == 16384
    assert abs(m["loudness.rms_ratio"] - 1) < loudness
    assert abs(m["loudness.mean_abs_ratio"] - 1) < loudness
    assert m["frechet_mel_distance"] < frechet
    assert m["ndb.bins"] >= 10 and m["ndb.ndb_over_k"] <= ndb_k
    assert m["ndb.js_divergence"] < js
    assert m["spectrum.distance_db"] < 3.0  # measured: 0.87 and 2.15 dB
    assert m["spectrum.generated_centroid_hz"] == pytest.approx(
        m["spectrum.real_centroid_hz"], rel=0.15)
    # Different music is not a copy: nothing near the real windows.
    assert m["memorisation.fraction_below"] == 0 and m["memorisation.min"] > 0.15
    assert m["stereo.real_channel_correlation"] is None
    assert m["stereo.generated_channel_correlation"] is None


@pytest.mark.parametrize("split", ["interleaved", "pieces"])
@pytest.mark.parametrize("case", ["noise", "noise_at_real_rms", "silence"])
def test_noise_and_silence_are_clearly_worse(results, split, case):
    halves, m = results[split, "halves"], results[split, case]
    assert m["frechet_mel_distance"] > max(WORSE_FRECHET, 20 * halves["frechet_mel_distance"])
    assert m["ndb.ndb_over_k"] >= WORSE_NDB_NOISE
    assert m["ndb.js_divergence"] >= max(WORSE_JS_NOISE, 4 * halves["ndb.js_divergence"])
    # The linear-frequency distance ranks silence worst of all (a score that silence could
    # fool would be a bug): measured 23 dB for noise at the real loudness, 40 for loud
    # noise, 56 for silence.
    assert m["spectrum.distance_db"] > 20.0
    assert results[split, "silence"]["spectrum.distance_db"] >= m["spectrum.distance_db"]
    if case == "noise":
        assert m["loudness.rms_ratio"] > 3 and m["loudness.mean_abs_ratio"] > 3
    elif case == "silence":
        assert m["loudness.rms_ratio"] == 0 and m["loudness.mean_abs_ratio"] == 0
        assert m["memorisation.min"] == 1  # silence correlates with nothing
    else:  # same loudness: only the spectral metrics can tell
        assert abs(m["loudness.rms_ratio"] - 1) < 0.05
    # Noise and silence copy nothing.
    assert m["memorisation.fraction_below"] == 0 and m["memorisation.min"] > 0.9


@pytest.mark.parametrize("split", ["interleaved", "pieces"])
def test_a_quarter_of_the_loudness_is_clearly_worse(results, split):
    halves, m = results[split, "halves"], results[split, "quarter"]
    assert m["loudness.rms_ratio"] == pytest.approx(0.25, abs=1e-4)
    assert m["loudness.mean_abs_ratio"] == pytest.approx(0.25, abs=1e-4)
    assert m["spectrum.distance_db"] == pytest.approx(20 * np.log10(4), abs=0.01)
    assert m["spectrum.generated_centroid_hz"] == pytest.approx(m["spectrum.real_centroid_hz"])
    assert m["frechet_mel_distance"] > max(WORSE_FRECHET, 1.5 * halves["frechet_mel_distance"])
    assert m["ndb.ndb_over_k"] >= WORSE_NDB_QUARTER
    assert m["ndb.ndb_over_k"] > halves["ndb.ndb_over_k"]
    assert m["ndb.js_divergence"] >= max(WORSE_JS_QUARTER, 2 * halves["ndb.js_divergence"])
    # The real windows made quieter are copies: the check is blind to loudness.
    assert m["memorisation.fraction_below"] == 1 and m["memorisation.max"] < 1e-4


def test_the_same_windows_score_best(splits):
    real = splits["pieces"][0]
    m = metrics.compute_metrics(real, real, RATE)
    assert m["loudness.rms_ratio"] == pytest.approx(1) and m["ndb.different_bins"] == 0
    assert m["frechet_mel_distance"] < 1e-6 and m["ndb.js_divergence"] < 1e-9
    assert m["spectrum.distance_db"] == 0.0


def test_spectral_centroid_of_a_tone_is_its_frequency():
    t = np.arange(4096) / RATE
    tone = np.tile(0.5 * np.sin(2 * np.pi * 1000.0 * t)[None, :, None], (8, 1, 1))
    m = metrics.compute_metrics(tone, tone * 0.5, RATE)
    assert m["spectrum.real_centroid_hz"] == pytest.approx(1000.0, rel=0.02)
    assert m["spectrum.distance_db"] == pytest.approx(20 * np.log10(2), abs=0.01)


def test_a_metric_is_one_registered_function(splits):
    """Registering a function is all a new metric takes: compute_metrics returns its keys,
    the table shows its rows, the quality curve logs its tagged rows and --evaluate keeps
    its references."""
    row = metrics.Row("peak.generated", "peak |amplitude|", "generated near real",
                      real_key="peak.real", reference=True, tag="Eval/peak")

    @metrics.register_metric(row)
    def peak(c):
        return {"peak.real": float(np.abs(c.real).max()),
                "peak.generated": float(np.abs(c.generated).max())}
    try:
        real, generated = splits["pieces"]
        m = metrics.compute_metrics(real, generated[:4] * 0.5, RATE)
        assert m["peak.generated"] == pytest.approx(0.5 * float(np.abs(generated[:4]).max()))
        assert "peak |amplitude|" in metrics.format_table(m)
        assert metrics.tags()["peak.generated"] == "Eval/peak"
        assert "peak.generated" in metrics.reference_keys()
    finally:
        del metrics.METRICS["peak"]
    assert "peak.generated" not in metrics.compute_metrics(real, real[:2], RATE)


def test_memorisation_finds_copies_of_training_windows(splits, demo):
    real, generated = splits["pieces"]
    training = full_windows(demo, window_length(5))  # all 140 windows: a larger real set
    generated = generated[:20].copy()
    window = generated.shape[1]
    generated[3] = training[100]                          # a copy
    generated[7] = 0.3 * training[5]                      # a quieter copy
    generated[11, :-5] = training[60, 5:]                 # a copy 5 samples off
    generated[11, -5:] = 0
    m = metrics.compute_metrics(real, generated, RATE, training_windows=training)
    assert m["num_training"] == len(training) and m["memorisation.max_lag"] == 8
    assert m["memorisation.min"] < 1e-4
    assert m["memorisation.fraction_below"] == pytest.approx(3 / 20)
    distances, _ = metrics.nearest_distances(generated, training)
    assert np.flatnonzero(distances < 0.05).tolist() == [3, 7, 11]
    assert distances[[3, 7, 11]].max() < 1e-4
    # int16 training windows (what the CLI passes) give the same distances.
    as_int16 = np.rint(training * 32767).astype(np.int16)
    assert np.allclose(metrics.nearest_distances(generated, as_int16)[0], distances, atol=1e-4)
    assert window == 16384


def test_stereo_channel_correlation():
    rng = np.random.default_rng(1)
    music = rng.normal(0, 0.1, (16, 4096, 1)).astype(np.float32)
    identical = np.concatenate([music, music], axis=2)
    independent = rng.normal(0, 0.1, (16, 4096, 2)).astype(np.float32)
    m = metrics.compute_metrics(identical, independent, RATE)
    assert m["stereo.real_channel_correlation"] == pytest.approx(1.0)
    assert abs(m["stereo.generated_channel_correlation"]) < 0.02
    assert m["channels"] == 2
    assert metrics.channel_correlation(-identical[:, :, :1].repeat(2, axis=2)) == \
        pytest.approx(1.0)
    assert metrics.channel_correlation(np.concatenate([music, -music], axis=2)) == \
        pytest.approx(-1.0)
    assert metrics.channel_correlation(np.zeros((2, 64, 2))) is None
    # Channels are analysed one by one: an anti-phase pair has the same spectra, not silence.
    anti_phase = np.concatenate([music, -music], axis=2)
    m = metrics.compute_metrics(identical, anti_phase, RATE)
    assert m["stereo.generated_channel_correlation"] == pytest.approx(-1.0)
    assert m["frechet_mel_distance"] < 1e-6 and m["loudness.rms_ratio"] == pytest.approx(1.0)
    assert metrics.channel_correlation(music) is None


@pytest.mark.parametrize("num_blocks", [1, 2, 3, 4])
def test_short_windows_degrade_gracefully(demo, num_blocks):
    window = window_length(num_blocks)
    every = full_windows(demo, window)
    rng = np.random.default_rng(num_blocks)
    picked = every[np.sort(rng.choice(len(every), 512, replace=False))]
    real, generated = picked[0::2], picked[1::2]
    noise = rng.uniform(-1, 1, real.shape).astype(np.float32)
    good = metrics.compute_metrics(real, generated, RATE)
    bad = metrics.compute_metrics(real, noise, RATE)
    for m in (good, bad):
        assert set(m) == KEYS and m["window_samples"] == window
        assert all(m[key] is not None for key in KEYS if not key.startswith("stereo."))
        assert m["mel.n_fft"] <= window // 4 and 1 <= m["mel.bands"] <= 64
    assert good["ndb.bins"] == 20
    assert abs(good["loudness.rms_ratio"] - 1) < 0.1
    assert bad["frechet_mel_distance"] > 3 * good["frechet_mel_distance"]
    assert bad["ndb.ndb_over_k"] > good["ndb.ndb_over_k"] + 0.3
    assert bad["ndb.js_divergence"] > good["ndb.js_divergence"] + 0.3


def test_few_windows_and_mono_2d_input():
    rng = np.random.default_rng(2)
    real = rng.normal(0, 0.1, (1, 64)).astype(np.float32)  # [windows, samples]: mono
    generated = rng.normal(0, 0.1, (3, 64, 1)).astype(np.float32)
    m = metrics.compute_metrics(real, generated, RATE)
    assert m["ndb.bins"] == 1 and m["ndb.ndb_over_k"] == 0 and m["channels"] == 1
    assert m["num_real"] == 1 and m["num_generated"] == 3
    json.dumps(m, allow_nan=False)


def test_bad_arrays_are_refused():
    real = np.zeros((4, 256, 1), np.float32)
    with pytest.raises(ValueError, match="generated has windows of shape"):
        metrics.compute_metrics(real, np.zeros((4, 128, 1), np.float32), RATE)
    with pytest.raises(ValueError, match="training_windows has windows"):
        metrics.compute_metrics(real, real, RATE, np.zeros((4, 256, 2), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        metrics.compute_metrics(real, np.full((4, 256, 1), np.nan, np.float32), RATE)
    with pytest.raises(ValueError, match="non-empty"):
        metrics.compute_metrics(real, np.zeros((0, 256, 1), np.float32), RATE)


# --------------------------------------------------------------------------- pictures, report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("channels", [1, 2])
def test_save_plots_writes_pngs_that_open(splits, tmp_path, channels):
    import matplotlib.image

    real, generated = (x[:8].repeat(channels, axis=2) for x in splits["pieces"])
    paths = pictures.save_plots(real, generated, RATE, str(tmp_path / "plots"))
    names = [os.path.basename(p) for p in paths]
    assert names == ["waveforms.png", "zoom.png", "spectrograms.png", "loudness.png"]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE
        assert os.path.getsize(path) > 5000
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 600
    assert sorted(os.listdir(tmp_path / "plots")) == sorted(names)  # no temporary files left


def test_save_plots_on_short_windows_and_silence(tmp_path):
    silence = np.zeros((2, 64, 1), np.float32)
    paths = pictures.save_plots(silence, silence, RATE, str(tmp_path))
    assert len(paths) == 4 and all(os.path.getsize(p) > 1000 for p in paths)


def test_the_pictures_show_a_window_of_median_loudness_not_a_silent_one():
    """A random real window is often a silent gap between pieces: the waveform and
    spectrogram pictures show the window of median loudness of each set instead."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, (5, 256, 1)).astype(np.float32)
    real = noise * np.array([0.0, 0.9, 0.1, 0.5, 0.3], np.float32)[:, None, None]
    generated = noise[::-1] * np.array([0.2, 0.0, 0.0, 0.4, 0.8], np.float32)[:, None, None]
    np.testing.assert_array_equal(pictures.typical(real), real[4])  # 0.3 of 0, .1, .3, .5, .9
    np.testing.assert_array_equal(pictures.typical(generated), generated[0])  # 0.2
    (_, fig), = pictures._figures(real, generated, RATE, ["waveforms.png"])
    try:
        shown = [ax.lines[0].get_ydata() for ax in fig.axes]
    finally:
        plt.close(fig)
    np.testing.assert_array_equal(shown[0], real[4, :, 0])
    np.testing.assert_array_equal(shown[1], generated[0, :, 0])


def test_waveform_envelope_keeps_every_span_extreme_in_few_points():
    """A 65 s window is drawn from 4096 points: each span's minimum and maximum, so a click
    of one sample still shows; a short window is drawn whole."""
    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal(1 << 20)).astype(np.float32)
    x[123_457], x[999_999] = 0.95, -0.9
    at, values = pictures.envelope(x)
    assert len(at) == len(values) == pictures.PLOT_POINTS
    assert np.all(np.diff(at) >= 0) and at[0] == 0 and at[-1] < len(x)
    assert values.max() == np.float32(0.95) and values.min() == np.float32(-0.9)
    starts = at[::2]
    spans = np.split(x, starts[1:])
    np.testing.assert_array_equal(values[0::2], [s.min() for s in spans])
    np.testing.assert_array_equal(values[1::2], [s.max() for s in spans])
    short = x[:4000]
    at, values = pictures.envelope(short)
    np.testing.assert_array_equal(at, np.arange(4000))
    np.testing.assert_array_equal(values, short)


def test_write_report_and_format_table(results, tmp_path):
    measured = results["pieces", "halves"]
    path = metrics.write_report(str(tmp_path / "out"), measured)
    assert path == str(tmp_path / "out" / "metrics.json")
    with open(path) as f:
        assert json.load(f) == measured
    table = metrics.format_table(measured)
    for row in ("mean |amplitude|", "RMS", "Frechet log-mel distance", "NDB/K (K = 14)",
                "JS divergence", "nearest real: min", "share below 0.05",
                "channel correlation"):
        assert row in table
    assert "better" in table.splitlines()[1]


# --------------------------------------------------------------------------- command line

@pytest.fixture(scope="module")
def folders(module_tmp):
    """REAL (pieces 1-2) and GENERATED (pieces 3-4) folders, as symbolic links to the demo."""
    root = module_tmp
    for name, pieces in (("real", (1, 2)), ("generated", (3, 4))):
        os.makedirs(root / name)
        for piece in pieces:
            os.symlink(os.path.join(DEMO, f"piece_0{piece}.wav"),
                       root / name / f"piece_0{piece}.wav")
    return str(root / "real"), str(root / "generated")


def run_main(argv, capsys):
    code = run_cli(evaluate.main, argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_prints_the_table(folders, capsys):
    code, out, err = run_main([*folders, "--num_eval_samples", "32"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("32 real and 32 generated windows of 16384 samples")
    assert "nearest real among 70 windows" in lines[0]
    assert lines[1].split() == ["metric", "real", "generated", "better"]
    assert len(lines) == 2 + len(metrics.table_rows()) and err == ""


def test_cli_json_has_every_key_and_is_seeded(folders, capsys, tmp_path):
    argv = [*folders, "--num_blocks", "4", "--num_eval_samples", "64", "--json", "--seed", "3"]
    code, out, err = run_main(argv + ["--plots", str(tmp_path / "p")], capsys)
    assert code == 0 and len(out.splitlines()) == 1
    measured = json.loads(out)
    assert set(measured) == KEYS
    assert measured["window_samples"] == 4096 and measured["num_real"] == 64
    assert measured["num_training"] == 281  # every whole stage-4 window of pieces 1-2
    assert sorted(os.listdir(tmp_path / "p")) == ["loudness.png", "metrics.json", "spectrograms.png",
                                                  "waveforms.png", "zoom.png"]
    with open(tmp_path / "p" / "metrics.json") as f:
        assert json.load(f) == measured
    assert err.startswith("wrote ")
    assert json.loads(run_main(argv, capsys)[1]) == measured  # same seed, same numbers
    assert json.loads(run_main(argv[:-1] + ["4"], capsys)[1]) != metrics


def test_cli_uses_all_windows_when_there_are_fewer(folders, capsys):
    code, out, err = run_main([*folders, "--json"], capsys)  # 256 asked, 70 there
    assert code == 0 and json.loads(out)["num_real"] == 70
    assert "has 70 windows of 16384 samples, fewer than 256 to compare" in err


def test_cli_runs_as_a_script_without_tensorflow(folders):
    script = ("import runpy, sys; sys.argv = ['evaluate.py'] + sys.argv[1:]\n"
              "try:\n    runpy.run_path('evaluate.py', run_name='__main__')\n"
              "except SystemExit as e:\n    assert e.code == 0\n"
              "assert 'tensorflow' not in sys.modules, 'evaluate imported TensorFlow'\n")
    result = subprocess.run([sys.executable, "-c", script, *folders, "--num_blocks", "3",
                             "--num_eval_samples", "16", "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) == KEYS


def mono_stereo_short(tmp_path):
    import soundfile as sf

    stereo, short = tmp_path / "stereo", tmp_path / "short"
    os.makedirs(stereo)
    os.makedirs(short)
    sf.write(str(stereo / "a.wav"), np.zeros((20000, 2), np.int16), RATE, subtype="PCM_16")
    sf.write(str(short / "a.wav"), np.zeros((1000, 1), np.int16), RATE, subtype="PCM_16")
    return str(stereo), str(short)


def test_bad_input_is_one_line_and_exit_2(folders, tmp_path):
    stereo, short = mono_stereo_short(tmp_path)
    real, generated = folders
    cases = [
        ([str(tmp_path / "missing"), generated], "does not exist"),
        ([real, stereo], "channel"),
        ([real, short], "--num_blocks"),
        ([real, generated, "--num_blocks", "9"], "out of range"),
        ([real, generated, "--num_eval_samples", "0"], "out of range"),
        ([real], "generated_dir"),
        ([real, generated, "--plots", os.path.join(real, "piece_01.wav")], "is a file"),
    ]
    for argv, words in cases:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                pytest.raises(SystemExit) as exit_:
            run_cli(evaluate.main, argv)
        assert exit_.value.code == 2, (argv, err.getvalue())
        assert out.getvalue() == "" and len(err.getvalue().splitlines()) == 1, err.getvalue()
        assert words in err.getvalue() and "Traceback" not in err.getvalue()
