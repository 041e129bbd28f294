"""bench/: the FLOP count of an iteration, a run of bench/train_step.py,
bench/summary_pictures.py and bench/pytorch_wavegan.py where PyTorch is missing."""

import argparse
import contextlib
import io
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import DEMO, ROOT, assert_one_line_error
from helpers import run as run_trainer

sys.path.insert(0, os.path.join(ROOT, "bench"))

import profile_step  # bench/ is not a package: found through sys.path
import train_step

import checkpoints
import conv_forms
import train_progressive

CONFIG = {"num_blocks": 2, "channels": 1, "feature_map_smoothing": True,
          "use_sample_norm": False, "model_variant": "standard"}


def test_layer_multiply_adds_of_a_two_block_network_by_hand():
    nets = train_progressive.build_networks(CONFIG, "float32")
    # Per example: dense 100 -> 16 x 1024; transposed 16 -> 64 samples, 1024 -> 512 ch,
    # kernel 25; 64 -> 256 samples, 512 -> 256 ch; 1x1 256 -> 1 ch on 256 samples.
    assert train_step.layer_macs(nets["generator"], 2) == [
        ("projection", 2 * 100 * 16384),
        ("progressive_block_1", 2 * 16 * 25 * 1024 * 512),
        ("progressive_block_2", 2 * 64 * 25 * 512 * 256),
        ("progressive_block_2_output", 2 * 256 * 1 * 256 * 1)]
    # 1x1 1 -> 256 ch on 256 samples; stride 4: 256 -> 64 samples, 256 -> 512 ch; 64 -> 16,
    # 512 -> 1024; dense 16 x 1024 -> 1.
    assert train_step.layer_macs(nets["discriminator"], 2) == [
        ("progressive_block_2_input", 2 * 256 * 1 * 1 * 256),
        ("progressive_block_2", 2 * 64 * 25 * 256 * 512),
        ("progressive_block_1", 2 * 16 * 25 * 512 * 1024),
        ("prediction", 2 * 16384 * 1)]


def test_flops_of_an_iteration_of_a_two_block_network_by_hand():
    nets = train_progressive.build_networks(CONFIG, "float32")
    g = train_step.layer_macs(nets["generator"], 2)
    d = train_step.layer_macs(nets["discriminator"], 2)
    # Forward FLOPs of G and D at batch 2 and of their first layers, summed by hand.
    forward_g = 2 * 2 * (1_638_400 + 209_715_200 + 209_715_200 + 65_536)
    forward_d = 2 * 2 * (65_536 + 209_715_200 + 209_715_200 + 16_384)
    first_g, first_d = 2 * 2 * 1_638_400, 2 * 2 * 65_536
    d_update = (forward_g              # the fakes
                + 3 * forward_d        # D(real), D(fake), D(x_hat)
                + forward_d            # input gradient of D(x_hat)
                + 2 * (2 * forward_d - first_d)  # backward of D(real), D(fake)
                + 2 * forward_d)       # double backward of the penalty
    g_update = forward_g + forward_d + forward_d + 2 * forward_g - first_g
    assert train_step.flops_per_iteration(g, d) == 5 * d_update + g_update == 100_725_686_272


@pytest.mark.slow
def test_benchmark_runs_the_trainers_step_and_reports_json():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = train_step.main(["--stage", "1", "--batch_size", "2", "--iterations", "1",
                                "--warmup", "1", "--repeats", "1", "--against_fixed_rule",
                                "--conv_forms", "framework", "--json"])
    assert code == 0
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert set(result["forms"].values()) == {"framework"}  # forced: not the rule's matmul
    assert not result["fixed_rule_forms_chosen"]
    assert result["fixed_rule_seconds_per_iteration"] > 0
    assert result["fraction_of_convolutions_rate"] == pytest.approx(
        result["gflops_per_second"] / result["convolutions_rate"], rel=0.01)
    assert result["fixed_rule_over_chosen"] == pytest.approx(
        result["fixed_rule_seconds_per_iteration"] / result["seconds_per_iteration"], rel=0.01)
    assert result["traces"] == 1  # the step is not traced again after the first iteration
    assert set(result["forms"]) == {"generator/progressive_block_1",
                                    "discriminator/progressive_block_1"}
    assert result["forms_line"].startswith("convolutions: ")
    assert result["seconds_per_iteration"] > 0 and result["gflops_per_second"] > 0
    nets = train_progressive.build_networks({**CONFIG, "num_blocks": 1}, "float32")
    flops = train_step.flops_per_iteration(train_step.layer_macs(nets["generator"], 2),
                                           train_step.layer_macs(nets["discriminator"], 2))
    assert result["gflop_per_iteration"] == round(flops / 1e9, 2)
    peak = result["peak_convolution"]
    # The peak is a kernel-25 convolution of the stage, timed forward and backward: 3 times
    # its forward multiply-adds, 2 FLOPs each.
    macs = dict(train_step.layer_macs(nets[peak["network"]], 2))
    assert peak["layer"] == "progressive_block_1"
    assert peak["gflop"] == round(6 * macs[peak["layer"]] / 1e9, 3)
    fraction = result["gflops_per_second"] / peak["gflops_per_second"]  # both rounded
    assert abs(result["fraction_of_peak"] - fraction) < 0.002 + 0.1 / peak["gflops_per_second"]


@pytest.mark.slow
def test_profile_lists_where_the_iterations_time_goes():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = profile_step.main(["--stage", "1", "--batch_size", "2", "--iterations", "1",
                                  "--top", "5"])
    assert code == 0
    lines = out.getvalue().strip().splitlines()
    rows = [line.split() for line in lines[lines.index(next(
        line for line in lines if "operation type" in line)) + 1:]]
    assert len(rows) == 5
    shares = [float(row[2].rstrip("%")) for row in rows]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100.01
    assert any("MatMul" in row[0] or "Conv" in row[0] for row in rows)  # the work itself


def test_convolutions_rate_weighs_critic_convolutions_by_52_and_generators_by_8():
    timed = [{"network": "generator", "layer": "progressive_block_1", "form": "matmul",
              "gflop": 3.0, "seconds": 1.0},
             {"network": "generator", "layer": "progressive_block_1", "form": "framework",
              "gflop": 3.0, "seconds": 9.0},  # not the chosen form: left out
             {"network": "discriminator", "layer": "progressive_block_1", "form": "framework",
              "gflop": 3.0, "seconds": 0.5}]
    forms = {"generator/progressive_block_1": "matmul",
             "discriminator/progressive_block_1": "framework"}
    # (8 x 3 + 52 x 3) GFLOP in (8 x 1 + 52 x 0.5) s
    assert train_step.convolutions_rate(timed, forms) == pytest.approx(180 / 34)


def test_the_fixed_rule_runs_block_1_as_a_matrix_product_and_the_rest_in_the_framework():
    nets = train_progressive.build_networks({**CONFIG, "num_blocks": 2}, "float32")
    labels = dict.fromkeys(conv_forms.convolution_layers(nets.values()), "framework")
    assert train_step.fixed_rule_forms(labels) == {"generator/progressive_block_1": "matmul",
                     "generator/progressive_block_2": "framework",
                     "discriminator/progressive_block_2": "framework",
                     "discriminator/progressive_block_1": "matmul"}


def test_convolution_forms_benchmark_times_both_forms_of_every_convolution():
    import convolutions  # bench/convolutions.py

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = convolutions.main(["--stage", "2", "--batch_size", "1", "--repeats", "1",
                                  "--json"])
    assert code == 0
    rows = json.loads(out.getvalue().strip().splitlines()[-1])["convolutions"]
    # Two kernel-25 convolutions per network at stage 2, each timed in both forms.
    assert [(r["network"], r["layer"]) for r in rows] == [
        ("generator", "progressive_block_1"), ("generator", "progressive_block_2"),
        ("discriminator", "progressive_block_2"), ("discriminator", "progressive_block_1")]
    assert rows[0]["shape"] == [1, 16, 1024] and rows[3]["shape"] == [1, 64, 512]
    for row in rows:
        rates = {form: row[form + "_gflops_per_second"] for form in ("framework", "matmul")}
        assert min(rates.values()) > 0 and row["faster"] == max(rates, key=rates.get)


def test_pytorch_comparison_without_pytorch_says_so_and_exits_0(monkeypatch):
    import pytorch_wavegan

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert pytorch_wavegan.main(["--batch_size", "2"]) == 0
    assert out.getvalue() == ("PyTorch is not installed (pip install torch): nothing to "
                              "compare with\n")


def test_pictures_benchmark_times_the_summary_pictures_of_each_stage():
    import summary_pictures

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert summary_pictures.main(["--stages", "1", "5", "--channels", "1", "--repeats", "1",
                              "--json"]) == 0
    result = json.loads(out.getvalue())
    assert result["channels"] == 1 and list(result["seconds_by_stage"]) == ["1", "5"]
    assert all(0 < s < 60 for s in result["seconds_by_stage"].values())


def test_a_small_collection_is_whole_files_seeded_at_least_as_long_as_asked(tmp_path):
    import small_collections
    import soundfile as sf

    from utils import UserError

    demo = os.path.join(ROOT, "data", "demo")
    seconds = {name: sf.info(os.path.join(demo, name)).duration for name in os.listdir(demo)}
    chosen = small_collections.make_collection(demo, 0.5, 3, str(tmp_path / "a"))
    links = sorted(os.listdir(tmp_path / "a"))
    assert [os.path.realpath(tmp_path / "a" / n) for n in links if n.endswith(".wav")] == \
        [os.path.realpath(f) for f in chosen["files"]]
    assert len(chosen["files"]) >= 2  # one to hold out
    assert chosen["seconds"] == pytest.approx(sum(seconds[os.path.basename(f)]
                                                  for f in chosen["files"]))
    assert chosen["seconds"] >= 30
    # The same seed draws the same files; the folder is reused, another collection refused.
    again = small_collections.make_collection(demo, 0.5, 3, str(tmp_path / "b"))
    assert again["files"] == chosen["files"]
    assert small_collections.make_collection(demo, 0.5, 3, str(tmp_path / "a")) == chosen
    with pytest.raises(UserError, match="another collection"):
        small_collections.make_collection(demo, 0.5, 4, str(tmp_path / "a"))
    with pytest.raises(UserError, match="less than --minutes 60"):
        small_collections.make_collection(demo, 60, 3, str(tmp_path / "c"))


def test_the_conditioning_classifier_tells_labels_apart_and_its_separation_ignores_a_level():
    """bench/conditioning.py: fitted to windows of a quiet low tone and a loud high one, the
    classifier names both; turned down 20 dB, both are called the quiet label, yet their
    separation (area under the ROC curve of its score) stays; --spectral_shape reads no level."""
    import conditioning

    rng, rate, t = np.random.default_rng(0), 16000, np.arange(1024) / 16000

    def windows(frequency, level, count=64):
        phase = rng.uniform(0, 2 * np.pi, (count, 1))
        tone = np.sin(2 * np.pi * frequency * t + phase) + 0.3 * rng.normal(size=(count, 1024))
        return (level * tone)[..., None].astype(np.float32)
    low, high = windows(300, 0.05), windows(3000, 0.5)
    fitted = [conditioning.features(w, rate) for w in (low, high)]
    classifier = conditioning.Classifier(np.concatenate(fitted), np.repeat([0, 1], 64), 2)
    test_low, test_high = windows(300, 0.05), windows(3000, 0.5)
    assert conditioning.accuracy(classifier, [conditioning.features(w, rate)
                                              for w in (test_low, test_high)]) == [1.0, 1.0]
    quieter = [0.1 * test_low, 0.1 * test_high]
    turned_down = [conditioning.features(w, rate) for w in quieter]
    assert conditioning.accuracy(classifier, turned_down)[1] < 0.5
    assert conditioning.separation(classifier, *turned_down) > 0.95
    # 20 dB less is log-mel values 4.6 lower, but for the bands near the log's floor
    level = [conditioning.features(w, rate) for w in (quieter[1], test_high)]
    means = level[0].shape[1] // 2  # the per-band means, then the standard deviations
    assert np.median(level[1][:, :means] - level[0][:, :means]) == pytest.approx(np.log(100),
                                                                                 abs=0.1)
    shape = [conditioning.features(w, rate, shape_only=True) for w in (quieter[1], test_high)]
    np.testing.assert_allclose(shape[0], shape[1], atol=0.2)


def test_the_conditioning_bench_tells_an_even_label_from_an_uneven_one_as_loud():
    """bench/conditioning.py loudness_spread: windows all at one level, and windows of which
    half are 20 dB quieter and half louder so that the whole is as loud, have the same RMS;
    the uneven label's quietest tenth lies far below the even one's."""
    import conditioning

    signs = np.where(np.arange(1024) % 2, 1.0, -1.0)[None, :, None]
    even = np.repeat(0.1 * signs, 20, axis=0)
    quiet, loud = 0.01, np.sqrt(2 * 0.1 ** 2 - 0.01 ** 2)
    uneven = np.concatenate([np.repeat(quiet * signs, 10, axis=0),
                             np.repeat(loud * signs, 10, axis=0)])
    (even_rms, even_quiet), (uneven_rms, uneven_quiet) = map(conditioning.loudness_spread,
                                                              (even, uneven))
    assert even_rms == pytest.approx(0.1) and uneven_rms == pytest.approx(0.1)
    assert even_quiet == pytest.approx(0.1) and uneven_quiet == pytest.approx(0.01)


def test_the_conditioning_bench_reads_how_often_the_critic_named_the_labels(tmp_path):
    """bench/conditioning.py critic_naming: the mean of a run's Labels/ summaries after step
    1 (step 1's, before any learning, left out), and nothing for a critic that names none."""
    import conditioning
    import tensorflow as tf

    run = str(tmp_path / "seed0")
    writer = tf.summary.create_file_writer(checkpoints.stage_dir(run, 3))
    with writer.as_default():
        for step, real, fake in ((1, 0.0, 0.0), (40, 0.5, 0.25), (80, 0.75, 0.5)):
            tf.summary.scalar("Labels/real_recognised", real, step=step)
            tf.summary.scalar("Labels/fake_recognised", fake, step=step)
            tf.summary.scalar("Loss/Generator_loss", 1.0, step=step)
    writer.close()
    assert conditioning.critic_naming(run, 3) == {"critic_named_real": 0.625,
                                                  "critic_named_fake": 0.375,
                                                  "critic_summaries": 2}
    assert conditioning.critic_naming(run, 2) == {}


def test_the_conditioning_bench_reports_power_in_bands_of_a_kilohertz():
    """bench/conditioning.py band_levels: white noise is level across the bands, a 3.5 kHz
    tone puts its power in the 3-4 kHz band, and half the amplitude is 6 dB less."""
    import conditioning

    rng, rate = np.random.default_rng(0), 16000
    noise = rng.normal(size=(64, 1024, 1)).astype(np.float32)
    levels = conditioning.band_levels(noise, rate)
    assert len(levels) == 8 and np.ptp(levels) < 1.0
    tone = np.sin(2 * np.pi * 3500 * np.arange(1024) / rate)[None, :, None].repeat(4, axis=0)
    levels = conditioning.band_levels(tone, rate)
    assert int(np.argmax(levels)) == 3 and levels[3] - max(levels[:3] + levels[4:]) > 20
    quieter = conditioning.band_levels(0.5 * tone, rate)
    assert quieter[3] - levels[3] == pytest.approx(-6.02, abs=0.01)


@pytest.mark.slow
def test_a_stopped_conditioning_bench_has_its_trainer_save_first(tmp_path):
    """bench/conditioning.py sent SIGTERM while a seed trains: the trainer (a child in its own
    session, which the signal alone would not reach) saves its step and stops, then the
    bench says where and exits 130, leaving no trainer behind."""
    import conditioning

    for label, piece in (("a", 1), ("b", 3)):
        os.makedirs(tmp_path / "music" / label)
        shutil.copy(os.path.join(DEMO, f"piece_0{piece}.wav"), tmp_path / "music" / label)
    root = str(tmp_path / "runs")
    run = conditioning.run_folder(root, 0)
    bench = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "bench", "conditioning.py"), tmp_path / "music" / "a",
         tmp_path / "music" / "b", "--stage", "1", "--steps", "100000", "--keep", root],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = pathlib.Path(run, "train.log")
    deadline = time.monotonic() + 120
    while not (log.exists() and "step        1 " in log.read_text()):
        assert bench.poll() is None and time.monotonic() < deadline, bench.communicate()
        time.sleep(0.5)
    bench.send_signal(signal.SIGTERM)
    _, err = bench.communicate(timeout=120)
    assert bench.returncode == 130 and "Traceback" not in err, err
    assert f"stopped: seed 0 saved its last step in {run}" in err
    stopped = re.search(r"stopped at step (\d+)", log.read_text())
    assert stopped, log.read_text()
    assert checkpoints.checkpoint_exists(checkpoints.checkpoint_path(
        checkpoints.stage_dir(run, 1), int(stopped.group(1))))


SAVES_ON_SIGTERM = """
import signal, sys, time
def save(*_):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM would kill it unsaved
    time.sleep(float(sys.argv[2]))  # a checkpoint being written
    open(sys.argv[1], "w").write("saved")
    sys.exit(0)
signal.signal(signal.SIGTERM, save)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("second_stop", [False, True])
def test_a_stop_while_waiting_for_a_trainer_is_passed_on_and_its_save_kept(tmp_path, capsys,
                                                                            second_stop):
    """utils.wait_saving_on_stop, what the benches wait for their trainers with: a Ctrl+C
    (KeyboardInterrupt) reaches the child as one SIGTERM, and the wait goes on until it has
    saved, through a second Ctrl+C too; then one line and SystemExit(130), no traceback."""
    from utils import wait_saving_on_stop

    saved = tmp_path / "saved"
    child = subprocess.Popen([sys.executable, "-c", SAVES_ON_SIGTERM, saved, "1.5"],
                             stdout=subprocess.PIPE, text=True)

    def ctrl_c():
        if second_stop:  # another Ctrl+C half a second into the wait for the save
            signal.signal(signal.SIGALRM, signal.default_int_handler)
            signal.setitimer(signal.ITIMER_REAL, 0.5)
        raise KeyboardInterrupt

    try:
        assert child.stdout.readline() == "ready\n"
        with pytest.raises(SystemExit) as stopped:
            wait_saving_on_stop(child, "seed 0", str(tmp_path), True, wait=ctrl_c)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        child.kill()
    assert stopped.value.code == 130
    assert child.returncode == 0 and saved.read_text() == "saved"  # the save, not the kill
    assert capsys.readouterr().err == (
        ("seed 0 is saving its last step: it stops in a moment\n" if second_stop else "")
        + f"stopped: seed 0 saved its last step in {tmp_path}; the same command trains on "
          f"from there\n")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="--core_each needs two cores")
@pytest.mark.slow
def test_a_stopped_side_by_side_has_every_trainer_save_first(tmp_path):
    """bench/learning.py --minutes --core_each sent SIGTERM while both arms train (each a
    thread's trainer, in a session of its own): each trainer saves its step and stops, then
    the bench exits 130, and the runs are not marked done, so the same command goes on."""
    import learning

    os.makedirs(tmp_path / "music")
    for piece in (1, 2):
        shutil.copy(os.path.join(DEMO, f"piece_0{piece}.wav"), tmp_path / "music")
    root = str(tmp_path / "runs")
    arms = [learning.parse_arm(f"{label}=. --num_blocks 1") for label in ("a", "b")]
    bench = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "bench", "learning.py"), tmp_path / "music",
         "--stage", "1", "--minutes", "1000", "--core_each", "--seeds", "0", "--keep", root,
         "--arm", "a=. --num_blocks 1", "--arm", "b=. --num_blocks 1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    logs = [pathlib.Path(learning.arm_run(root, arm, 0), "train.log") for arm in arms]
    deadline = time.monotonic() + 180
    while not all(log.exists() and "step        1 " in log.read_text() for log in logs):
        assert bench.poll() is None and time.monotonic() < deadline, bench.communicate()
        time.sleep(0.5)
    bench.send_signal(signal.SIGTERM)
    _, err = bench.communicate(timeout=120)
    assert bench.returncode == 130 and "Traceback" not in err, err
    for arm, log in zip(arms, logs):
        run = learning.arm_run(root, arm, 0)
        assert f"stopped: {arm.label} seed 0 saved its last step in {run}" in err
        stopped = re.search(r"stopped at step (\d+)", log.read_text())
        assert stopped, log.read_text()
        assert checkpoints.checkpoint_exists(checkpoints.checkpoint_path(
            checkpoints.stage_dir(run, 1), int(stopped.group(1))))
        assert not os.path.exists(os.path.join(run, "done.json"))


@pytest.mark.slow
def test_the_conditioning_bench_refuses_a_file_for_its_runs_in_one_line(tmp_path):
    """--keep FILE was a NotADirectoryError traceback once the library was linked."""
    kept = tmp_path / "runs"
    kept.write_text("notes")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "conditioning.py"),
                             DEMO, DEMO, "--keep", str(kept)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert_one_line_error(result.returncode, result.stderr, f"--keep {kept} is a file")
    assert kept.read_text() == "notes"


@pytest.mark.slow
def test_a_bench_training_in_process_stops_on_sigterm_after_its_trainer_saves(tmp_path):
    """bench/learning.py (no --arm) trains in its own process: SIGTERM reached the trainer's
    loop, which saved and stopped, and the bench went on to train the next run (here to step
    1000), ignoring the signal. Now it stops too, in one line, exit code 130."""
    root = tmp_path / "run"
    bench = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "bench", "learning.py"), DEMO, "--stage", "1",
         "--steps", "1000", "--batch_size", "2", "--keep", str(root)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in bench.stderr:  # the first run (to step 1, the bench's "step 1" generator)
        lines.append(line)
        if line.startswith("training stage 1:"):
            break
    bench.send_signal(signal.SIGTERM)
    _, rest = bench.communicate(timeout=120)
    err = "".join(lines) + rest
    assert bench.returncode == 130 and "Traceback" not in err, err
    assert "stopped (Ctrl+C or SIGTERM) before the end: what was saved before is kept" in err
    assert "resumed" not in err  # the second run never began


@pytest.mark.slow
def test_the_conditioning_bench_averages_checkpoints_and_judges_every_seed_alike(tmp_path):
    """bench/conditioning.py --average_with: the generator it scores holds the mean of the
    --steps checkpoint's weights and the earlier ones'. --classifiers: every training seed is
    judged by the same classifiers, and the least-recovered label is their mean."""
    import conditioning

    for label, pieces in (("a", (1, 2)), ("b", (3, 4))):  # two files a label, to split
        os.makedirs(tmp_path / "music" / label)
        for piece in pieces:
            shutil.copy(os.path.join(DEMO, f"piece_0{piece}.wav"), tmp_path / "music" / label)
    root = str(tmp_path / "runs")
    for steps in (1, 2):  # the second run trains on from the first one's checkpoint
        code, _, err = run_trainer(train_progressive.main, "--data_dir", tmp_path / "music",
                                   "--checkpoint_dir", os.path.join(root, "seed0"),
                                   "--condition", "folders", "--num_blocks", "1",
                                   "--max_steps", steps)
        assert code == 0, err
    args = argparse.Namespace(steps=2, average_with=[1], stage=1, raw_generator=False,
                              windows=32, spectral_shape=False, truncation=1.0,
                              label_strength=1.0, classifiers=2)
    directory = conditioning.stage_folder(root, 0, args)
    generator, step, which = conditioning.averaged_generator(directory, args)
    assert step == 2 and which == "generator_ema averaged with steps 1"
    each = [checkpoints.load_generator(directory, train_progressive.RECIPE,
                                       os.path.join(directory, f"ckpt-{s}"))[0].weights
            for s in (1, 2)]
    assert not all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(*each))
    for mine, one, two in zip(generator.weights, *each):
        np.testing.assert_allclose(mine.numpy(), (one.numpy() + two.numpy()) / 2, rtol=1e-6,
                                   atol=1e-7)
    music = conditioning.labelled_music(str(tmp_path / "music"), root)
    runs = [conditioning.score(directory, music, seed, args) for seed in (0, 1)]
    # the same two classifiers (windows drawn with seeds 0 and 1) for both seeds' generators
    judged = [run["classifiers"] for run in runs]
    assert [[j["draw"] for j in by] for by in judged] == [[0, 1], [0, 1]]
    assert judged[0][0]["real_accuracy"] == judged[1][0]["real_accuracy"]
    assert judged[0][0]["real_accuracy"] != judged[0][1]["real_accuracy"]
    for run in runs:
        least = [min(np.divide(j["generated_accuracy"], j["real_accuracy"]))
                 for j in run["classifiers"]]
        assert run["least_recovered"] == pytest.approx(np.mean(least))
