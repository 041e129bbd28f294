"""Tests of dataloader.py: formats, resampling, channels, errors, windows, shuffling, CLI.

All audio is made in tmp_path with numpy + soundfile; stages 1-3 keep the files tiny.
Expected values are computed here independently of the loader (window count formula,
window contents, int16 quantisation of each format).
"""

import json
import math
import os
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import ROOT, as_a_user_who_cannot_write

import audio_cache
import dataloader
from utils import UserError, run_cli

RATE = 16000


# --------------------------------------------------------------------------- helpers

def write(path, data, rate=RATE, subtype="PCM_16", fmt=None):
    sf.write(str(path), data, rate, subtype=subtype, format=fmt)
    return str(path)


def load(folder, rate=RATE):
    """load_audio with the notes collected instead of printed."""
    notes = []
    audio = dataloader.load_audio(str(folder), rate, log=notes.append)
    return audio, notes


def samples(audio):
    """All loaded samples as one int16 array [samples, channels]."""
    return np.asarray(audio.buffer)


def sine(freq, seconds, rate, amplitude=0.5):
    t = np.arange(round(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def peak_hz(x, rate):
    x = np.asarray(x, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)]


def zero_crossings(x):
    x = np.asarray(x, dtype=np.float64)
    return int(np.count_nonzero(np.signbit(x[1:]) != np.signbit(x[:-1])))


def ramp(n):
    """int16 1..n: every sample unique and nonzero, so a window's first sample names its start."""
    assert n < 32767
    return np.arange(1, n + 1, dtype=np.int16)


def expected_count(num_samples, window, level):
    """The documented formula, written out: offset k*(window//10) has ceil(rest/window) windows."""
    return sum(math.ceil((num_samples - k * (window // 10)) / window) for k in range(level + 1))


def expected_starts(num_samples, window, level):
    return sorted(k * (window // 10) + j * window
                  for k in range(level + 1)
                  for j in range(math.ceil((num_samples - k * (window // 10)) / window)))


def padded(source, start, window):
    """source[start:start+window] with zeros past the end, as [window, channels]."""
    piece = source[start:start + window]
    tail = np.zeros((window - len(piece),) + source.shape[1:], source.dtype)
    return np.concatenate([piece, tail])


def truncate(path):
    """Keep the first half of a file: header intact, data cut off."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:len(data) // 2])


def one_line_cli_error(capsys, argv):
    """Run dataloader.main through run_cli; return its single stderr line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(dataloader.main, argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert captured.err.endswith("\n")
    return lines[0]


# --------------------------------------------------------------------------- formats

RNG = np.random.default_rng(20240601)
INT16 = RNG.integers(-32768, 32768, 3000).astype(np.int16)
INT32 = RNG.integers(-2**31, 2**31, 3000, dtype=np.int64).astype(np.int32)
U8_AS_INT16 = (RNG.integers(-128, 128, 3000) * 256).astype(np.int16)
FLOATS = RNG.uniform(-1.5, 1.5, 3000)  # about a third beyond [-1, 1]: must be clipped


def float_to_int16(x):
    return np.rint(np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


# (file name, written data, subtype, format, expected int16)
# PCM_U8: libsndfile stores int16 as its top 8 bits (+128) and reads back (u - 128) * 256,
#   so multiples of 256 round-trip exactly.
# PCM_24 / PCM_32 (WAV and FLAC) from int32: the file holds the top 24/32 bits and the
#   loader keeps the top 16 bits, i.e. v >> 16 (floor), exactly.
# FLOAT: clipped to [-1, 1] then round(x * 32767), exactly.
LOSSLESS = [
    ("u8.wav", U8_AS_INT16, "PCM_U8", "WAV", U8_AS_INT16),
    ("s16.wav", INT16, "PCM_16", "WAV", INT16),
    ("s24.wav", INT32, "PCM_24", "WAV", (INT32 >> 16).astype(np.int16)),
    ("s32.wav", INT32, "PCM_32", "WAV", (INT32 >> 16).astype(np.int16)),
    ("f32.wav", FLOATS.astype(np.float32), "FLOAT", "WAV",
     float_to_int16(FLOATS.astype(np.float32))),
    ("s16.flac", INT16, "PCM_16", "FLAC", INT16),
    ("s24.flac", INT32, "PCM_24", "FLAC", (INT32 >> 16).astype(np.int16)),
]


@pytest.mark.parametrize("name,data,subtype,fmt,expected", LOSSLESS,
                         ids=[case[0] for case in LOSSLESS])
def test_lossless_formats_exact(tmp_path, name, data, subtype, fmt, expected):
    path = write(tmp_path / name, data, subtype=subtype, fmt=fmt)
    assert sf.info(path).subtype == subtype
    audio, notes = load(tmp_path)
    assert audio.buffer.dtype == np.int16
    assert audio.buffer.shape == (len(data), 1)
    assert audio.sampling_rate == RATE
    np.testing.assert_array_equal(samples(audio)[:, 0], expected)
    assert audio.files == [path]
    assert notes == []


def test_double_wav_within_one_step_and_clipped(tmp_path):
    # The loader decodes float formats as float32 (24-bit mantissa): that moves a value by
    # < 0.002 of an int16 step, so rounding can differ from the float64 result by at most 1.
    write(tmp_path / "f64.wav", FLOATS, subtype="DOUBLE", fmt="WAV")
    audio, _ = load(tmp_path)
    expected = float_to_int16(FLOATS).astype(int)
    diff = np.abs(samples(audio)[:, 0].astype(int) - expected)
    assert diff.max() <= 1
    assert np.mean(diff == 0) > 0.99
    beyond = np.abs(FLOATS) > 1
    assert beyond.sum() > 500
    np.testing.assert_array_equal(samples(audio)[beyond, 0],
                                  np.where(FLOATS[beyond] > 0, 32767, -32767))


def test_float_beyond_one_is_clipped_not_wrapped(tmp_path):
    x = np.array([0.0, 0.5, 1.0, 1.0001, 2.0, 100.0, -1.0, -1.5, -100.0, 0.25], np.float32)
    write(tmp_path / "loud.wav", x, subtype="FLOAT")
    audio, _ = load(tmp_path)
    np.testing.assert_array_equal(
        samples(audio)[:, 0], [0, 16384, 32767, 32767, 32767, 32767, -32767, -32767, -32767, 8192])


def test_ogg_vorbis_length_and_correlation(tmp_path):
    x = sine(440, 1.0, RATE) + 0.2 * sine(1234, 1.0, RATE)
    write(tmp_path / "tone.ogg", x, subtype="VORBIS", fmt="OGG")
    audio, _ = load(tmp_path)
    assert audio.buffer.shape == (len(x), 1)
    got = samples(audio)[:, 0].astype(np.float64) / 32767
    assert np.corrcoef(got, x)[0, 1] > 0.95
    assert np.sqrt(np.mean(got ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=0.1)


# --------------------------------------------------------------------------- resampling

@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampled_to_16k_keeps_the_tone(tmp_path, rate):
    freq, seconds = 440.0, 0.77
    x = sine(freq, seconds, rate)
    write(tmp_path / f"tone_{rate}.wav", x, rate=rate)
    audio, notes = load(tmp_path)
    expected_length = len(x) * RATE / rate
    assert abs(audio.num_samples - expected_length) <= 1
    assert audio.sampling_rate == RATE
    got = samples(audio)[:, 0].astype(np.float64) / 32767
    assert peak_hz(got, RATE) == pytest.approx(freq, abs=3)
    # 2 crossings per period, minus the edges
    assert abs(zero_crossings(got[50:-50]) - 2 * freq * (len(got) - 100) / RATE) <= 3
    assert np.max(np.abs(got[100:-100])) == pytest.approx(0.5, rel=0.05)
    resample_notes = [line for line in notes if "resampled" in line]
    assert len(resample_notes) == 1
    assert f"tone_{rate}.wav" in resample_notes[0] and str(rate) in resample_notes[0]


def test_resample_note_names_only_the_resampled_files(tmp_path):
    write(tmp_path / "a_native.wav", sine(440, 0.1, RATE))
    write(tmp_path / "b_cd.flac", sine(440, 0.1, 44100), rate=44100)
    write(tmp_path / "c_low.wav", sine(440, 0.1, 8000), rate=8000)
    audio, notes = load(tmp_path)
    assert audio.num_samples == 1600 * 3
    (line,) = [line for line in notes if "resampled" in line]
    assert "b_cd.flac" in line and "44100" in line
    assert "c_low.wav" in line and "8000" in line
    assert "a_native.wav" not in line


def test_native_rate_logs_no_resample_note(tmp_path):
    write(tmp_path / "a.wav", sine(440, 0.1, RATE))
    _, notes = load(tmp_path)
    assert not any("resampled" in line for line in notes)


# --------------------------------------------------------------------------- channels

def test_stereo_kept_with_channels_in_place(tmp_path):
    left = INT16[:2000]
    right = (np.arange(2000) % 200 - 100).astype(np.int16)  # unlike left
    write(tmp_path / "st.wav", np.stack([left, right], axis=1))
    audio, _ = load(tmp_path)
    assert audio.channels == 2
    assert audio.buffer.shape == (2000, 2)
    np.testing.assert_array_equal(samples(audio)[:, 0], left)
    np.testing.assert_array_equal(samples(audio)[:, 1], right)


def test_stereo_resampled_channels_not_swapped_or_mixed(tmp_path):
    rate = 44100
    left, right = sine(440, 0.5, rate), sine(2000, 0.5, rate, amplitude=0.3)
    write(tmp_path / "st.flac", np.stack([left, right], axis=1), rate=rate)
    audio, _ = load(tmp_path)
    assert audio.channels == 2
    got = samples(audio).astype(np.float64) / 32767
    assert peak_hz(got[:, 0], RATE) == pytest.approx(440, abs=5)
    assert peak_hz(got[:, 1], RATE) == pytest.approx(2000, abs=5)
    # no leak of one channel into the other
    for channel, other in ((0, 2000), (1, 440)):
        spectrum = np.abs(np.fft.rfft(got[:, channel] * np.hanning(len(got))))
        freqs = np.fft.rfftfreq(len(got), 1 / RATE)
        assert spectrum[np.argmin(np.abs(freqs - other))] < 0.01 * spectrum.max()


# --------------------------------------------------------------------------- bad input

def test_missing_folder(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(UserError, match="does not exist") as error:
        load(missing)
    assert str(missing) in str(error.value)


def test_a_file_given_as_the_folder_is_named_as_a_file(tmp_path):
    """Was "does not exist", of a file that does."""
    path = write(tmp_path / "a.wav", INT16[:1000])
    with pytest.raises(UserError, match="is a file: give the folder that holds it"):
        load(path)


def test_empty_folder(tmp_path):
    with pytest.raises(UserError, match="no audio files") as error:
        load(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_only_non_audio_files(tmp_path):
    (tmp_path / "README.md").write_text("hello\n")
    (tmp_path / "cover.jpg").write_bytes(os.urandom(100))
    (tmp_path / ".sub").mkdir()
    write(tmp_path / ".sub" / "inside.wav", INT16[:1000])  # hidden folders are not read
    write(tmp_path / ".hidden.wav", INT16[:1000])
    with pytest.raises(UserError, match="no audio files") as error:
        load(tmp_path)
    assert str(tmp_path) in str(error.value) and "\n" not in str(error.value)
    for name in ("README.md", "cover.jpg", ".sub/", ".hidden.wav"):
        assert name in str(error.value)


def test_mixed_mono_and_stereo(tmp_path):
    mono = write(tmp_path / "a_mono.wav", INT16[:1000])
    stereo = write(tmp_path / "b_stereo.wav", np.stack([INT16[:1000]] * 2, axis=1))
    with pytest.raises(UserError) as error:
        load(tmp_path)
    message = str(error.value)
    assert mono in message and stereo in message
    assert "mono" in message and "stereo" in message


@pytest.mark.parametrize("channels", [3, 6])
def test_more_than_two_channels(tmp_path, channels):
    write(tmp_path / "a.wav", INT16[:1000])
    many = write(tmp_path / "b_many.wav", np.stack([INT16[:1000]] * channels, axis=1))
    with pytest.raises(UserError, match=f"{channels} channels") as error:
        load(tmp_path)
    assert many in str(error.value)


def test_random_bytes_wav_is_skipped_with_a_note(tmp_path):
    write(tmp_path / "a.wav", INT16[:1000])
    bad = tmp_path / "x.wav"
    bad.write_bytes(np.random.default_rng(5).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    audio, notes = load(tmp_path)
    assert audio.files == [str(tmp_path / "a.wav")] and audio.num_samples == 1000
    assert audio.skipped == [(str(bad), audio.skipped[0][1])]
    (line,) = [n for n in notes if str(bad) in n]
    assert "cannot read" in line and line.endswith("skipped")
    with pytest.raises(UserError, match="--strict") as error:
        dataloader.load_audio(str(tmp_path), log=notes.append, strict=True)
    assert str(bad) in str(error.value) and "\n" not in str(error.value)


def test_a_folder_of_undecodable_files_is_one_error(tmp_path):
    bad = tmp_path / "x.flac"
    bad.write_bytes(b"")
    with pytest.raises(UserError, match="none of the 1 audio files") as error:
        load(tmp_path)
    assert str(bad) in str(error.value)
    assert "\n" not in str(error.value)


def test_a_float_file_with_samples_that_are_not_numbers_is_skipped_with_a_note(tmp_path):
    """Was used after a raw NumPy warning ("invalid value encountered in cast"), naming no
    file: its NaN turned into full-scale int16 samples."""
    write(tmp_path / "a.wav", INT16[:1000])
    samples = sine(440, 0.1, RATE).astype(np.float32)
    samples[100] = np.nan
    path = str(tmp_path / "nan.wav")
    sf.write(path, samples, RATE, subtype="FLOAT")
    audio, notes = load(tmp_path)
    assert audio.num_samples == 1000 and [p for p, _ in audio.skipped] == [path]
    (line,) = [n for n in notes if path in n]
    assert "not numbers (NaN or infinity)" in line and line.endswith("skipped")


def test_truncated_flac_is_skipped(tmp_path):
    # The header is intact, so sf.info succeeds; the damage shows only while decoding, and
    # libsndfile gives none of it back.
    write(tmp_path / "a.wav", INT16[:1000])
    path = write(tmp_path / "cut.flac", sine(440, 1.0, RATE), fmt="FLAC")
    truncate(path)
    audio, notes = load(tmp_path)
    assert audio.num_samples == 1000 and [p for p, _ in audio.skipped] == [path]
    assert any(path in n and "skipped" in n for n in notes)


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MP3")
def test_truncated_mp3_is_used_as_decoded(tmp_path):
    # Resampled (float) path: what decodes is used, with a note naming the shortfall.
    path = write(tmp_path / "cut.mp3", sine(440, 1.0, 44100), rate=44100,
                 subtype="MPEG_LAYER_III", fmt="MP3")
    truncate(path)
    audio, notes = load(tmp_path)
    ((short, decoded, stated),) = audio.short
    assert short == path and stated == 44100 and 0 < decoded < stated
    assert audio.num_samples == math.ceil(decoded * RATE / 44100)
    (line,) = [n for n in notes if "header states" in n]
    assert path in line and f"{decoded} of the 44100 frames" in line
    assert line.endswith("used as decoded")
    with pytest.raises(UserError, match="header states"):
        dataloader.load_audio(str(tmp_path), log=notes.append, strict=True)


def test_less_audio_than_one_window(tmp_path):
    write(tmp_path / "short.wav", INT16[:1000])
    audio, _ = load(tmp_path)
    dataloader.stage_windows(audio, 2)  # 256 samples: fine
    with pytest.raises(UserError, match="1024 samples") as error:
        dataloader.stage_windows(audio, 3)
    assert str(tmp_path) in str(error.value)
    with pytest.raises(UserError):
        dataloader.make_dataset(audio, 3, batch_size=1)


def test_fewer_windows_than_batch_size(tmp_path):
    write(tmp_path / "a.wav", INT16[:1000])  # stage 1: ceil(1000 / 64) = 16 windows at L = 0
    audio, _ = load(tmp_path)
    windows = dataloader.stage_windows(audio, 1)
    assert len(windows) == 16
    next(dataloader.batches(audio, windows, 16, seed=0))  # exactly enough
    with pytest.raises(UserError, match="16 windows") as error:
        dataloader.batches(audio, windows, 17, seed=0)
    assert str(tmp_path) in str(error.value) and "17" in str(error.value)
    with pytest.raises(UserError, match="16 windows"):
        dataloader.make_dataset(audio, 1, batch_size=17)


def test_cli_errors_are_one_line(tmp_path, capsys):
    missing = tmp_path / "missing"
    assert str(missing) in one_line_cli_error(capsys, [str(missing)])

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "x.flac").write_bytes(b"")
    line = one_line_cli_error(capsys, [str(corrupt), "--no_audio_cache"])
    assert line.startswith("error: none of the 1") and str(corrupt / "x.flac") in line
    write(corrupt / "a.wav", INT16[:1000])
    line = one_line_cli_error(capsys, [str(corrupt), "--num_blocks", "1", "--strict",
                                       "--no_audio_cache"])
    assert line.startswith("error: cannot read") and "--strict" in line

    short = tmp_path / "short"
    short.mkdir()
    write(short / "a.wav", INT16[:1000])
    line = one_line_cli_error(capsys, [str(short), "--num_blocks", "3", "--no_audio_cache"])
    assert line.startswith("error: ") and "1024 samples" in line

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write(mixed / "a.wav", INT16[:1000])
    write(mixed / "b.wav", np.stack([INT16[:1000]] * 2, axis=1))
    line = one_line_cli_error(capsys, [str(mixed), "--no_audio_cache"])
    assert "a.wav" in line and "b.wav" in line

    line = one_line_cli_error(capsys, [str(short), "--num_blocks", "9"])
    assert "error:" in line and "out of range" in line


def test_cli_script_error_in_subprocess(tmp_path):
    missing = tmp_path / "missing"
    result = subprocess.run([sys.executable, "dataloader.py", str(missing), "--json"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert str(missing) in result.stderr


# --------------------------------------------------------------------------- folder listing

def test_reads_subfolders_in_path_order_and_skips_hidden_and_non_audio(tmp_path):
    parts = {"b.wav": INT16[:300], "10.wav": INT16[300:350], "a.flac": INT16[350:700],
             "album/2.wav": INT16[700:900], "album/1.wav": INT16[900:1000],
             "album/disc 2/1.wav": INT16[1000:1100], "c.wav": INT16[1100:1300]}
    for name, data in parts.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        write(tmp_path / name, data, fmt="FLAC" if name.endswith(".flac") else None)
    write(tmp_path / ".hidden.wav", INT16[1100:1500])
    (tmp_path / ".git").mkdir()
    write(tmp_path / ".git" / "x.wav", INT16[:10])
    (tmp_path / "README.md").write_text("notes\n")
    (tmp_path / "album" / "cover.jpg").write_bytes(os.urandom(64))
    os.symlink(tmp_path / "album", tmp_path / "album" / "loop")  # a loop: read once
    audio, notes = load(tmp_path)
    order = ["10.wav", "a.flac", "album/1.wav", "album/2.wav", "album/disc 2/1.wav", "b.wav",
             "c.wav"]
    assert audio.files == [str(tmp_path / name) for name in order]
    assert audio.folders == 3
    np.testing.assert_array_equal(samples(audio)[:, 0],
                                  np.concatenate([parts[name] for name in order]))
    (skip,) = [line for line in notes if "skipping" in line]
    for name in (".hidden.wav", "README.md", "album/cover.jpg", ".git/"):
        assert name in skip
    for name in order:
        assert name not in skip


# --------------------------------------------------------------------------- windows

@pytest.mark.parametrize("window,num_samples", [
    (64, 64), (64, 640), (64, 641), (64, 1000), (64, 127), (256, 256 * 7), (256, 3001),
    (1024, 1024), (16384, 16384 * 20 + 5),
])
def test_window_count_formula(window, num_samples):
    for level in range(10):
        windows = dataloader.Windows(num_samples, window, level)
        assert len(windows) == expected_count(num_samples, window, level), level
        starts = windows.starts(np.arange(len(windows)))
        assert sorted(starts.tolist()) == expected_starts(num_samples, window, level)


def test_exact_multiple_has_no_padding_at_level_zero():
    windows = dataloader.Windows(640, 64, 0)
    assert len(windows) == 10
    assert windows.starts(np.arange(10)).tolist() == list(range(0, 640, 64))


def test_stage_windows_match_formula(tmp_path):
    write(tmp_path / "a.wav", INT16[:2500])
    audio, _ = load(tmp_path)
    for num_blocks in (1, 2, 3):
        window = 2 ** (4 + 2 * num_blocks)
        for level in range(10):
            windows = dataloader.stage_windows(audio, num_blocks, level)
            assert windows.window == window
            assert len(windows) == expected_count(2500, window, level)


def test_every_window_equals_source_at_its_offset(tmp_path):
    source = np.stack([INT16[:1000], ramp(1000)], axis=1)  # stereo, 1000 % 64 != 0
    write(tmp_path / "a.wav", source)
    audio, _ = load(tmp_path)
    for level in (0, 1, 5, 9):
        windows = dataloader.stage_windows(audio, 1, level)
        starts = windows.starts(np.arange(len(windows)))
        got = dataloader.gather(audio.buffer, starts, 64)
        assert got.shape == (len(windows), 64, 2) and got.dtype == np.int16
        tails = 0
        for row, start in zip(got, starts):
            np.testing.assert_array_equal(row, padded(source, int(start), 64))
            if start + 64 > 1000:
                tails += 1
                assert not row[1000 - start:].any()
        assert tails == level + 1  # every offset's last window runs past the end here


def test_make_dataset_batch_is_all_windows_scaled(tmp_path):
    source = INT16[:1000]
    write(tmp_path / "a.wav", source)
    audio, _ = load(tmp_path)
    level = 2
    starts = expected_starts(1000, 64, level)  # 3 * 16 = 48
    dataset = dataloader.make_dataset(audio, 1, batch_size=len(starts),
                                      augmentation_level=level, seed=1)
    (batch,) = [b.numpy() for b in dataset.take(1)]
    assert batch.dtype == np.float32 and batch.shape == (48, 64, 1)
    expected = {padded(source[:, None], s, 64).tobytes(): s for s in starts}
    seen = []
    for row in batch:
        as_int = np.rint(row * 32767).astype(np.int16)
        np.testing.assert_allclose(row, as_int.astype(np.float32) / np.float32(32767),
                                   rtol=0, atol=1e-7)
        seen.append(expected[as_int.tobytes()])
    assert sorted(seen) == starts  # the one batch is the whole epoch: each window once


def test_buffer_untouched_by_augmentation_level(tmp_path):
    write(tmp_path / "a.wav", np.stack([INT16[:2000], INT16[1000:3000]], axis=1))
    audio, _ = load(tmp_path)
    buffer, nbytes, copy = audio.buffer, audio.buffer.nbytes, samples(audio)
    assert nbytes == 2000 * 2 * 2
    for level in range(10):
        windows = dataloader.stage_windows(audio, 2, level)
        next(dataloader.batches(audio, windows, 4, seed=level))
        assert audio.buffer is buffer and audio.buffer.nbytes == nbytes
    dataset = dataloader.make_dataset(audio, 2, batch_size=4, augmentation_level=9, seed=0)
    for _ in dataset.take(2):
        pass
    assert audio.buffer is buffer and audio.buffer.nbytes == nbytes
    np.testing.assert_array_equal(audio.buffer, copy)


def test_windows_cost_no_memory_per_window():
    num_samples = 15 * 3600 * RATE  # 15 hours: ~3.2 million windows at stage 1 and level 9
    tracemalloc.start()
    windows = dataloader.Windows(num_samples, 64, 9)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(windows) == expected_count(num_samples, 64, 9)
    assert peak < 100_000
    last = len(windows) - 1
    assert windows.starts([0, last]).tolist() == [0, 9 * 6 + (num_samples - 9 * 6 - 1) // 64 * 64]


# --------------------------------------------------------------------------- shuffling

def epoch_starts(generator, batches_per_epoch, epochs=1):
    """Start sample of every row of the next epochs' batches (ramp source: start = x[0] - 1)."""
    return [[int(row[0, 0]) - 1 for _ in range(batches_per_epoch) for row in next(generator)]
            for _ in range(epochs)]


@pytest.fixture
def ramp_audio(tmp_path):
    write(tmp_path / "ramp.wav", ramp(1000))
    audio, _ = load(tmp_path)
    return audio


@pytest.mark.parametrize("batch_size", [8, 48, 10, 7, 1])
def test_epoch_covers_windows_once(ramp_audio, batch_size):
    windows = dataloader.stage_windows(ramp_audio, 1, 2)
    assert len(windows) == 48
    valid = expected_starts(1000, 64, 2)
    per_epoch = 48 // batch_size
    generator = dataloader.batches(ramp_audio, windows, batch_size, seed=3)
    first = next(generator)
    assert first.shape == (batch_size, 64, 1) and first.dtype == np.int16
    generator = dataloader.batches(ramp_audio, windows, batch_size, seed=3)
    for epoch in epoch_starts(generator, per_epoch, epochs=4):
        assert len(epoch) == per_epoch * batch_size
        assert len(set(epoch)) == len(epoch)  # at most once
        assert set(epoch) <= set(valid)
        if 48 % batch_size == 0:
            assert sorted(epoch) == valid  # exactly once: a permutation


def test_remainder_dropped_windows_change_between_epochs(ramp_audio):
    windows = dataloader.stage_windows(ramp_audio, 1, 2)
    generator = dataloader.batches(ramp_audio, windows, 10, seed=11)
    epochs = epoch_starts(generator, 4, epochs=10)
    assert set().union(*map(set, epochs)) == set(expected_starts(1000, 64, 2))


def test_seed_reproducible_and_epochs_differ(ramp_audio):
    windows = dataloader.stage_windows(ramp_audio, 1, 2)

    def run(seed):
        return epoch_starts(dataloader.batches(ramp_audio, windows, 8, seed=seed), 6, epochs=3)

    a, b, c = run(42), run(42), run(43)
    assert a == b
    assert a != c
    assert a[0] != a[1] and a[1] != a[2] and a[0] != a[2]
    assert a[0] != sorted(a[0])  # shuffled, not in buffer order


def test_make_dataset_seed(ramp_audio):
    def first_batches(seed):
        dataset = dataloader.make_dataset(ramp_audio, 1, 8, augmentation_level=2, seed=seed)
        return [batch.numpy() for batch in dataset.take(7)]

    a, b, c = first_batches(5), first_batches(5), first_batches(6)
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert not np.array_equal(np.stack(a), np.stack(c))
    # batches 0-5 are one epoch: all 48 windows once
    starts = sorted(round(row[0, 0] * 32767) - 1 for batch in a[:6] for row in batch)
    assert starts == expected_starts(1000, 64, 2)


# --------------------------------------------------------------------------- make_dataset

def test_make_dataset_stereo_float32(tmp_path):
    source = np.stack([INT16[:1500], INT16[1500:3000]], axis=1)
    write(tmp_path / "st.wav", source)
    audio, _ = load(tmp_path)
    dataset = dataloader.make_dataset(audio, 2, batch_size=3, augmentation_level=1, seed=0)
    import tensorflow as tf

    assert dataset.element_spec.shape.as_list() == [3, 256, 2]
    assert dataset.element_spec.dtype == tf.float32
    valid = {padded(source, s, 256).tobytes() for s in expected_starts(1500, 256, 1)}
    for batch in dataset.take(3):
        assert batch.dtype == tf.float32 and batch.shape == (3, 256, 2)
        values = batch.numpy()
        assert np.abs(values).max() <= 32768 / 32767
        as_int = np.rint(values * 32767).astype(np.int16)
        np.testing.assert_allclose(values, as_int / np.float32(32767), rtol=0, atol=1e-7)
        for row in as_int:
            assert row.tobytes() in valid


# --------------------------------------------------------------------------- CLI --json

@pytest.mark.parametrize("num_blocks,level", [(1, 0), (2, 3), (3, 9)])
def test_cli_json(tmp_path, capsys, num_blocks, level):
    write(tmp_path / "a.wav", np.stack([INT16[:2000], INT16[:2000]], axis=1))
    write(tmp_path / "b.flac", np.stack([INT16[:1234], INT16[:1234]], axis=1), fmt="FLAC")
    (tmp_path / "README.md").write_text("a note goes to stderr, not stdout\n")
    capsys.readouterr()
    assert dataloader.main([str(tmp_path), "--num_blocks", str(num_blocks),
                            "--augmentation_level", str(level), "--json",
                            "--audio_cache", str(tmp_path / "cache")]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1
    facts = json.loads(lines[0])
    assert set(facts) == {"files", "folders", "skipped", "short", "seconds", "sampling_rate",
                          "channels", "windows", "audio_bytes", "from_cache", "cache_hits",
                          "cache_misses", "load_seconds"}
    assert (facts["folders"], facts["skipped"], facts["short"]) == (1, 0, 0)
    assert (facts["cache_hits"], facts["cache_misses"], facts["from_cache"]) == (0, 2, True)
    total = 2000 + 1234
    assert facts["files"] == 2
    assert facts["seconds"] == pytest.approx(total / RATE, abs=1e-3)
    assert facts["sampling_rate"] == RATE
    assert facts["channels"] == 2
    assert facts["windows"] == expected_count(total, 2 ** (4 + 2 * num_blocks), level)
    assert facts["audio_bytes"] == total * 2 * 2
    assert isinstance(facts["load_seconds"], float) and 0 <= facts["load_seconds"] < 10
    assert "README.md" in captured.err


def test_cli_text_output(tmp_path, capsys):
    write(tmp_path / "a.wav", INT16[:2000])
    capsys.readouterr()
    assert dataloader.main([str(tmp_path), "--num_blocks", "1", "--no_audio_cache"]) == 0
    out = capsys.readouterr().out
    assert "windows: 32" in out and "channels: 1" in out


# --------------------------------------------------------------------------- real libraries

def _ogg_crc_table():
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return table


OGG_CRC = _ogg_crc_table()


def overstate_ogg_length(path, extra):
    """Raise the granule position of an Ogg file's last page by `extra` frames (CRC fixed), so
    that its header states more frames than it decodes to, as real Vorbis files do."""
    data = bytearray(Path(path).read_bytes())
    last = data.rfind(b"OggS")
    (granule,) = struct.unpack_from("<q", data, last + 6)
    segments = data[last + 26]
    size = 27 + segments + sum(data[last + 27:last + 27 + segments])
    struct.pack_into("<q", data, last + 6, granule + extra)
    struct.pack_into("<I", data, last + 22, 0)
    crc = 0
    for byte in data[last:last + size]:
        crc = ((crc << 8) ^ OGG_CRC[((crc >> 24) ^ byte) & 0xFF]) & 0xFFFFFFFF
    struct.pack_into("<I", data, last + 22, crc)
    Path(path).write_bytes(bytes(data))


def music(seconds, seed):
    """Stereo tones with a beat, 16 kHz."""
    t = np.arange(round(seconds * RATE)) / RATE
    f = 220 * 2 ** (seed / 12)
    left = 0.4 * np.sin(2 * np.pi * f * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
    return np.stack([left, 0.3 * np.sin(2 * np.pi * 1.5 * f * t)], axis=1)


def decoded_frames(path):
    return len(sf.read(path)[0])


@pytest.fixture
def library(tmp_path):
    """A nested folder as real libraries are: an Ogg Vorbis file whose header overstates its
    frames, a good one, random bytes named .ogg, an MP3, a README and a hidden file."""
    root = tmp_path / "library"
    album = root / "artist" / "album"
    album.mkdir(parents=True)
    (root / "other").mkdir()
    long_ogg = write(album / "01 long.ogg", music(10, 0), subtype="VORBIS", fmt="OGG")
    overstate_ogg_length(long_ogg, 9000)
    write(album / "02 good.ogg", music(3, 4), subtype="VORBIS", fmt="OGG")
    (root / "artist" / "bad.ogg").write_bytes(
        np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    files = [long_ogg, str(album / "02 good.ogg")]
    if "MP3" in sf.available_formats():
        files.append(write(root / "other" / "track.mp3", music(2, 7), subtype="MPEG_LAYER_III",
                           fmt="MP3"))
    (root / "README.md").write_text("the library\n")
    write(root / ".hidden.wav", INT16[:1000])
    return root, files, long_ogg, str(root / "artist" / "bad.ogg")


def test_a_real_library_loads_what_decodes_and_notes_the_rest(library):
    root, files, long_ogg, bad = library
    stated = sf.info(long_ogg).frames
    audio, notes = load(root)
    assert audio.files == files and audio.folders == 1 + (len(files) > 2)
    assert audio.num_samples == sum(decoded_frames(f) for f in files)
    assert audio.seconds == pytest.approx(sum(decoded_frames(f) for f in files) / RATE)
    ((short, decoded, header),) = audio.short
    assert (short, decoded, header) == (long_ogg, decoded_frames(long_ogg), stated)
    assert 0 < stated - decoded <= 9000
    assert [path for path, _ in audio.skipped] == [bad]
    (short_note,) = [n for n in notes if "header states" in n]
    assert long_ogg in short_note and f"{decoded} of the {stated} frames" in short_note
    (skip_note,) = [n for n in notes if bad in n]
    assert skip_note.startswith(f"note: cannot read {bad} (") and skip_note.endswith("skipped")
    (listing,) = [n for n in notes if n.startswith("skipping")]
    assert "README.md" in listing and ".hidden.wav" in listing
    line = dataloader.summary(audio)
    assert f"{len(files)} files from {audio.folders} folders" in line
    assert "1 skipped, 1 short" in line


def test_strict_refuses_the_library_in_one_line(library, capsys):
    root, _, long_ogg, bad = library
    line = one_line_cli_error(capsys, [str(root), "--num_blocks", "1", "--strict",
                                       "--no_audio_cache"])
    assert "--strict" in line and (bad in line or long_ogg in line)


def cache_load(folder, cache):
    notes = []
    audio = dataloader.load_audio(str(folder), RATE, notes.append, str(cache))
    return audio, notes


def all_windows(audio, num_blocks=2, level=3):
    windows = dataloader.stage_windows(audio, num_blocks, level)
    return dataloader.gather(audio.buffer, windows.starts(np.arange(len(windows))),
                             windows.window)


def test_second_load_reads_no_audio_file_and_gives_the_same_windows(library, tmp_path):
    root, files, _, bad = library
    cache = tmp_path / "cache"
    first, _ = cache_load(root, cache)
    assert (first.cache_hits, first.cache_misses) == (0, len(files) + 1)
    second, notes = cache_load(root, cache)
    assert (second.cache_hits, second.cache_misses) == (len(files) + 1, 0)
    assert second.buffer.from_cache and second.short == first.short
    assert [p for p, _ in second.skipped] == [bad]  # noted again, from the cache
    assert any("header states" in n for n in notes)
    np.testing.assert_array_equal(all_windows(second), all_windows(first))
    # Overwrite every audio file with zeros of the same size and modification time: a load
    # that read any of them would change.
    for path in files + [bad]:
        stat = os.stat(path)
        Path(path).write_bytes(bytes(stat.st_size))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    third, _ = cache_load(root, cache)
    assert third.cache_misses == 0
    np.testing.assert_array_equal(all_windows(third), all_windows(first))


def test_touching_one_file_decodes_that_file_only(library, tmp_path):
    root, files, _, _ = library
    cache = tmp_path / "cache"
    first, _ = cache_load(root, cache)
    expected = np.asarray(first.buffer)
    entries = sorted(os.listdir(cache))
    stat = os.stat(files[1])
    os.utime(files[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    again, _ = cache_load(root, cache)
    assert (again.cache_hits, again.cache_misses) == (len(files), 1)
    np.testing.assert_array_equal(np.asarray(again.buffer), expected)
    after = sorted(os.listdir(cache))
    assert len(after) == len(entries) and len(set(after) - set(entries)) == 1  # stale removed


def test_an_entry_cut_short_by_a_crash_is_decoded_again(library, tmp_path):
    root, files, _, _ = library
    cache = tmp_path / "cache"
    first, _ = cache_load(root, cache)
    expected = all_windows(first)
    del first
    biggest = max((cache / name for name in os.listdir(cache)), key=os.path.getsize)
    data = biggest.read_bytes()
    biggest.write_bytes(data[:len(data) // 2])  # a crash while writing it in place
    (cache / "0123.pcm.tmp").write_bytes(data[:100])  # a crash before the rename
    again, _ = cache_load(root, cache)
    assert (again.cache_hits, again.cache_misses) == (len(files), 1)
    np.testing.assert_array_equal(all_windows(again), expected)
    assert biggest.read_bytes() == data  # rebuilt whole
    third, _ = cache_load(root, cache)
    assert third.cache_misses == 0


def test_cli_reports_cache_hits_and_folders(library, tmp_path, capsys):
    root, files, _, _ = library
    argv = [str(root), "--num_blocks", "1", "--json", "--audio_cache", str(tmp_path / "c")]
    for hits in (0, len(files) + 1):
        capsys.readouterr()
        assert dataloader.main(argv) == 0
        facts = json.loads(capsys.readouterr().out)
        assert (facts["cache_hits"], facts["skipped"], facts["short"]) == (hits, 1, 1)
        assert facts["folders"] == 1 + (len(files) > 2)


def test_flipped_bytes_in_a_cached_entry_are_one_line_and_decoded_again(library, tmp_path):
    """Each entry keeps a CRC-32 of its samples, checked at its first read in a process:
    flipped bytes stop the read with one line naming the file, and the next start decodes
    the file again."""
    root, files, _, _ = library
    cache = tmp_path / "cache"
    first, _ = cache_load(root, cache)
    expected = all_windows(first)
    biggest = max((cache / name for name in os.listdir(cache)), key=os.path.getsize)
    data = bytearray(biggest.read_bytes())
    data[-1001] ^= 0xFF  # a flipped byte among the samples, the size unchanged
    damaged_copy = tmp_path / "damaged"
    damaged_copy.write_bytes(bytes(data))
    os.replace(damaged_copy, biggest)  # another file (a process checks each file once)
    damaged, _ = cache_load(root, cache)
    assert damaged.cache_misses == 0
    with pytest.raises(UserError, match="long.ogg is damaged .* decoded again"):
        all_windows(damaged)
    assert not biggest.exists()
    again, _ = cache_load(root, cache)
    assert (again.cache_hits, again.cache_misses) == (len(files), 1)
    np.testing.assert_array_equal(all_windows(again), expected)


def test_an_entry_another_run_writes_meanwhile_keeps_the_first(library, tmp_path):
    """Two runs starting on the same library decode the same files into one cache at once:
    the second writer keeps the entry the first wrote, which the first run reads by its
    inode (it used to be renamed over, and the first run stopped: "written again")."""
    root, _, _, _ = library
    cache = tmp_path / "cache"
    first, _ = cache_load(root, cache)
    expected = all_windows(first)
    for path in cache.glob("*.pcm"):
        meta, offset = audio_cache.read_header(str(path))
        samples = np.fromfile(path, dtype="<i2", offset=offset).reshape(-1, meta["channels"])
        inode = path.stat().st_ino
        audio_cache.write_entry(str(cache), meta["key"], samples, {})  # the other run's
        assert path.stat().st_ino == inode
    np.testing.assert_array_equal(all_windows(first), expected)


LIBRARY_UNDER_A_DESCRIPTOR_LIMIT = r"""
import resource, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import dataloader
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[4]), int(sys.argv[4])))
for start in (1, 2):  # decoding into the cache, then reading from it
    audio = dataloader.load_audio(sys.argv[2], 16000, log=lambda line: None,
                                  cache_dir=sys.argv[3])
    windows = dataloader.stage_windows(audio, 1)
    batch = dataloader.gather(audio.buffer, windows.starts(np.arange(len(windows))), 64)
print(audio.cache_hits, len(audio.files), int(np.abs(batch.astype(np.int64)).sum()))
"""


def test_a_library_of_more_files_than_open_descriptors_loads_and_reads(tmp_path):
    """Each cached file used to keep a descriptor open while training: a library of more
    files than the open-file limit (1024 by default) crashed. Here 400 files under a limit
    of 128."""
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    total = 0
    for i in range(400):
        samples = rng.integers(-3000, 3000, 160, dtype=np.int16)
        total += int(np.abs(samples.astype(np.int64)).sum())
        sf.write(folder / f"{i:04d}.wav", samples, RATE, subtype="PCM_16")
    result = subprocess.run(
        [sys.executable, "-c", LIBRARY_UNDER_A_DESCRIPTOR_LIMIT, ROOT, str(folder),
         str(tmp_path / "cache"), "128"], capture_output=True, text=True, timeout=300,
        check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    hits, files, read = map(int, result.stdout.split())
    assert (hits, files) == (400, 400)
    assert read == total  # every sample of every file read back (the last window padded)


def test_a_damaged_entry_in_a_read_only_cache_is_decoded_in_memory(library, tmp_path):
    """It used to end in an OSError traceback from removing the entry."""
    root, _, _, _ = library
    cache = tmp_path / "cache"
    first, _ = cache_load(root, cache)
    biggest = max((cache / name for name in os.listdir(cache)), key=os.path.getsize)
    biggest.write_bytes(biggest.read_bytes()[:100])  # cut short
    result = as_a_user_who_cannot_write(
        [sys.executable, "dataloader.py", str(root), "--num_blocks", "2", "--audio_cache",
         str(cache), "--json"], [str(cache)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "the decode cache is off for this run" in result.stderr
    facts = json.loads(result.stdout)
    assert facts["cache_misses"] == 1 and facts["seconds"] == round(first.seconds, 3)


def test_a_wav_whose_name_is_not_utf8_is_read(tmp_path):
    folder = os.fsencode(str(tmp_path))
    name = os.path.join(folder, b"caf\xe9 - take 1.wav")  # Latin-1, as old archives are
    samples = np.arange(-500, 500, dtype=np.int16)
    with open(name, "wb") as f:
        sf.write(f, samples, RATE, format="WAV", subtype="PCM_16")
    audio, notes = load(tmp_path)
    assert notes == [] and len(audio.files) == 1
    np.testing.assert_array_equal(np.asarray(audio.buffer)[:, 0], samples)


def test_many_files_skipped_for_one_reason_are_one_note(tmp_path):
    write(tmp_path / "good.wav", ramp(1000))
    for i in range(40):
        (tmp_path / f"empty_{i:02d}.wav").write_bytes(b"")
    audio, notes = load(tmp_path)
    assert len(audio.skipped) == 40 and len(notes) == 1, notes
    assert notes[0].startswith("note: cannot read 40 files (") and "and 35 more" in notes[0]
