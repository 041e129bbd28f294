"""Training that watches itself: the moving-average generator, the quality curve, the best
checkpoint and the collapse watchdog (moving_average.py, watch.py, train_loop.py)."""

import functools
import json
import os
import re
import types

import numpy as np
import pytest
import tensorflow as tf
from helpers import DEMO, run, tensorboard_scalars, warm_decay, weights

import checkpoints
import dataloader
import evaluate
import metrics
import moving_average
import rules
import runs
import train_loop
import train_progressive
import watch

CONFIG = {"num_blocks": 1, "channels": 1, "feature_map_smoothing": True,
          "use_sample_norm": False, "model_variant": "standard"}
train = functools.partial(run, train_progressive.main)


# --------------------------------------------------------------------------- moving average

@pytest.mark.slow
def test_moving_average_is_the_formula_of_the_recorded_weights():
    """After K generator updates: avg_k = b_k avg_(k-1) + (1 - b_k) w_k, avg_0 = w_0."""
    run_ = runs.build_run(train_progressive.RECIPE, CONFIG, "float32", None, seed=3,
                          average_rule=moving_average.FixedDecay(0.9), graph="update")
    generator, average = run_.networks["generator"], run_.average.average
    expected = weights(generator)
    assert all(np.array_equal(expected[k], v) for k, v in weights(average).items())
    batches = tf.data.Dataset.from_tensors(tf.random.uniform([2, 64, 1], -0.5, 0.5,
                                                             seed=1)).repeat()
    iterator = iter(batches)
    for k in range(1, 4):
        run_.iteration(iterator)
        b = warm_decay(k, decay=0.9)
        expected = {key: b * expected[key] + (1 - b) * w
                    for key, w in weights(generator).items()}
        for key, value in weights(average).items():
            np.testing.assert_allclose(value, expected[key], rtol=1e-5, atol=1e-7,
                                       err_msg=f"{key} after {k} updates")
    assert warm_decay(10_000, 0.999) == 0.999


def test_half_life_follows_the_stage_as_stylegan2_ada():
    """b = 0.5^(B / h), h = min(H, r t B): a twentieth of the stage's windows early on, then
    the half-life of H windows; the rule the flags choose."""
    rule = moving_average.HalfLife(windows=10_000, rampup=0.05, batch=16)
    for step in (1, 10, 300, 12_500, 10**6):
        h = min(10_000, 0.05 * step * 16)
        assert float(rule.beta(step)) == pytest.approx(0.5 ** (16 / h), rel=1e-6)
    assert float(rule.beta(300)) == pytest.approx(0.5 ** (1 / 15), rel=1e-6)  # 15 steps
    assert float(moving_average.HalfLife(100.0, 0.0, 4).beta(1)) == pytest.approx(0.5 ** 0.04)
    assert moving_average.rule(0.0, 10_000, 0.05, 16) is None
    assert moving_average.rule(0.99, 10_000, 0.05, 16) == moving_average.FixedDecay(0.99)
    assert moving_average.rule(None, 500, 0.1, 8) == moving_average.HalfLife(500, 0.1, 8)


def test_no_moving_average_with_decay_zero():
    run_ = runs.build_run(train_progressive.RECIPE, CONFIG, "float32", None, seed=0,
                          average_rule=None)
    assert run_.average is None and run_.sound_generator is run_.networks["generator"]
    assert "generator_ema" not in run_.optional


# --------------------------------------------------------------------------- references

@pytest.fixture(scope="module")
def demo():
    return dataloader.load_audio(DEMO, 16000, log=lambda line: None)


def test_references_put_real_music_below_noise(demo):
    starts, window = evaluate.full_window_starts(demo, 3)
    real, other = evaluate.sample_windows(demo, starts, window, 64,
                                          np.random.default_rng(0), sets=2)
    assert not set(map(bytes, real)) & set(map(bytes, other))  # disjoint windows
    refs = metrics.reference_metrics(real, other, 16000)
    floor, ceiling = (refs[name]["frechet_mel_distance"] for name in ("real", "noise"))
    assert 0 <= floor < ceiling / 10
    assert refs["noise"]["loudness.rms_ratio"] == pytest.approx(1.0, abs=0.05)
    assert metrics.progress(floor, refs) == pytest.approx(1.0)
    assert metrics.progress(ceiling, refs) == pytest.approx(0.0)
    assert metrics.progress((floor + ceiling) / 2, refs) == pytest.approx(0.5)
    table = metrics.format_table(metrics.compute_metrics(real, other, 16000), refs)
    assert "real vs real" in table and "% of the way from noise" in table


def test_the_average_restarts_from_raw_weights_that_score_better_unless_conditional(demo):
    config = dict(CONFIG, channels=demo.channels)
    run_ = runs.build_run(train_progressive.RECIPE, config, "float32", None, seed=3,
                          average_rule=moving_average.FixedDecay(0.9), graph="update")
    generator, average = run_.networks["generator"], run_.average.average
    curve = watch.QualityCurve(demo, 1, 16, 0, "uniform")
    stage = types.SimpleNamespace(run=run_, curve=curve, config_json=config)
    same = curve.measure(average)[0]
    assert train_loop.restart_average(stage, same) is None  # the same weights: not better
    for weight in list(average.named_layers().values())[-1].weights:
        weight.assign(tf.zeros_like(weight))  # a silent average
    silent = curve.measure(average)[0]
    conditional = types.SimpleNamespace(run=run_, curve=curve,
                                        config_json=dict(config, labels=["a", "b"]))
    assert train_loop.restart_average(conditional, silent) is None  # the score can't hear labels
    raw, windows, silent_score = train_loop.restart_average(stage, curve.measure(average)[0])
    assert silent_score == float("inf") and rules.quality_score(raw) < float("inf")
    assert len(windows) == len(curve.real)
    assert all(np.array_equal(weights(generator)[key], value)
               for key, value in weights(average).items())  # it starts again from them


# --------------------------------------------------------------------------- watchdog

def test_watchdog_needs_patience_and_names_the_symptom():
    dog = watch.Watchdog(rms_ratio=0.05, full_scale=0.5, frechet_factor=3.0, patience=2)
    assert dog.symptom(0.1, 0.004, 0.0) is None  # quiet from the start: not a collapse
    assert dog.symptom(0.1, 0.08, 0.0, 10.0, 5.0) is None  # audible (twice the threshold)
    silent = dog.symptom(0.1, 0.004, 0.0)
    assert "fell silent" in silent and "0.004" in silent
    assert dog.symptom(0.1, None, 0.0) is None  # loudness not judged
    assert "full scale" in dog.symptom(0.1, 0.9, 0.8)
    assert "over 3 times the best" in dog.symptom(0.1, 0.1, 0.0, 16.0, 5.0)
    assert dog.observe("evaluation", silent) is None
    assert dog.observe("evaluation", None) is None  # a healthy one in between: count again
    assert dog.observe("evaluation", silent) is None
    assert dog.observe("evaluation", silent) == silent
    assert dog.observe("summary", silent) is None  # the counts start again after a collapse


def test_the_quality_score_is_the_distance_times_how_far_off_the_loudness_is():
    assert rules.quality_score({"frechet_mel_distance": 40.0,
                                  "loudness.rms_ratio": 1.0}) == 40.0
    half, double = ({"frechet_mel_distance": 40.0, "loudness.rms_ratio": r} for r in (0.5, 2.0))
    assert rules.quality_score(half) == rules.quality_score(double) == 160.0
    assert rules.quality_score({"frechet_mel_distance": 1.0,
                                  "loudness.rms_ratio": 0.0}) == float("inf")  # silence
    assert rules.quality_score({"frechet_mel_distance": None,
                                  "loudness.rms_ratio": 1.0}) is None  # diverged


def test_with_labels_the_score_is_the_mean_of_each_labels_own():
    def labelled(a, b, pooled_ratio=0.8):
        return {"frechet_mel_distance": 40.0, "loudness.rms_ratio": pooled_ratio,
                "label.a.frechet_mel_distance": a[0], "label.a.rms_ratio": a[1],
                "label.vol.1.frechet_mel_distance": b[0], "label.vol.1.rms_ratio": b[1]}
    assert rules.label_readings(labelled((40.0, 1.0), (60.0, 0.5))) == {
        "a": (40.0, 1.0), "vol.1": (60.0, 0.5)}
    assert rules.quality_score(labelled((40.0, 1.0), (60.0, 0.5))) == (40.0 + 240.0) / 2
    # one label silent: infinity, however fine the pooled windows look
    assert rules.quality_score(labelled((40.0, 1.0), (60.0, 0.0), 1.0)) == float("inf")
    assert rules.quality_score(labelled((40.0, 1.0), (None, 1.0))) is None
    assert rules.label_readings({"frechet_mel_distance": 40.0}) == {}


def test_best_of_a_conditional_run_scores_its_labels_and_replaces_a_pooled_record(tmp_path):
    variable = tf.Variable(1.0)
    best = checkpoints.Best(tf.train.Checkpoint(v=variable), str(tmp_path))
    pooled = {"frechet_mel_distance": 40.0, "loudness.rms_ratio": 1.0}
    assert best.offer(1, pooled, 4) and best.score == 40.0  # a best.json before labels counted
    worse = dict(pooled, **{"label.a.frechet_mel_distance": 50.0, "label.a.rms_ratio": 1.0,
                            "label.b.frechet_mel_distance": 70.0, "label.b.rms_ratio": 1.0})
    assert best.offer(2, worse, 4) and best.score == 60.0  # not comparable: replaced
    assert checkpoints.read_best(str(tmp_path))["labels"] == {
        "a": {"frechet_mel_distance": 50.0, "rms_ratio": 1.0},
        "b": {"frechet_mel_distance": 70.0, "rms_ratio": 1.0}}
    quiet_b = dict(worse, **{"label.b.frechet_mel_distance": 30.0, "label.b.rms_ratio": 0.5})
    assert not best.offer(3, quiet_b, 4)  # b nearer but half as loud: (50 + 120) / 2 = 85
    again = checkpoints.Best(tf.train.Checkpoint(v=variable), str(tmp_path))
    assert again.score == 60.0 and not again.offer(4, worse, 4)


def test_best_keeps_the_lowest_score(tmp_path):
    variable = tf.Variable(1.0)
    best = checkpoints.Best(tf.train.Checkpoint(v=variable), str(tmp_path))
    kept = []
    for step, distance, ratio in ((1, 50.0, 1.0), (2, 40.0, 1.0), (3, 45.0, 1.0),
                                  (4, None, 1.0), (5, 39.0, 1.0), (6, 30.0, 0.5)):
        variable.assign(float(step))
        if best.offer(step, {"frechet_mel_distance": distance, "loudness.rms_ratio": ratio}, 4):
            kept.append(step)
    # each a new lowest; step 6 is closer but half as loud: 30 x 2^2 = 120
    assert kept == [1, 2, 5] and best.score == 39.0
    assert checkpoints.read_best(str(tmp_path))["step"] == 5
    assert sorted(os.listdir(tmp_path / "best")) == \
        ["best.json", "checkpoint", "ckpt-5.data-00000-of-00001", "ckpt-5.index"]
    # best.json naming a checkpoint that is not there (a save cut short between the two):
    # the record is not trusted, the next evaluation is kept
    with open(tmp_path / "best" / "best.json", "w") as f:
        json.dump(dict(best.record, checkpoint="ckpt-4"), f)
    again = checkpoints.Best(tf.train.Checkpoint(v=variable), str(tmp_path))
    assert again.record is None and again.score is None


# --------------------------------------------------------------------------- in training

WATCHED = ["--num_blocks", "1", "--eval_every_secs", "1e-9", "--summary_every_secs", "1e-9",
           "--num_eval_samples", "8", "--collapse_patience", "1",
           "--induce_collapse_at_step", "3"]


def evaluations(out):
    """(step, quality score) of every evaluation line, from its distance and RMS ratio."""
    return [(int(step), rules.quality_score({"frechet_mel_distance": float(distance),
                                               "loudness.rms_ratio": float(ratio)}))
            for step, distance, ratio in re.findall(
                r"evaluation at step (\d+): Frechet mel distance ([-+.\deE]+) .*?, "
                r"RMS ratio ([-+.\deE]+)", out)]


@pytest.mark.slow
def test_stop_on_collapse_exits_3_and_keeps_best(tmp_path):
    # Before the rolled-back run is made, which the module keeps: the two would hold 2 GB.
    root = str(tmp_path / "stop")
    code, out, err = train(*WATCHED, "--max_steps", "5", "--on_collapse", "stop",
                           "--checkpoint_dir", root)
    assert code == 3, out + err
    assert err.startswith("error: training collapsed at step 3") and err.count("\n") == 1
    best = checkpoints.read_best(checkpoints.stage_dir(root, 1))
    assert f"the best checkpoint is {checkpoints.stage_dir(root, 1)}" in err
    assert os.path.exists(os.path.join(checkpoints.stage_dir(root, 1), "best",
                                       best["checkpoint"] + ".index"))
    with open(os.path.join(checkpoints.stage_dir(root, 1), "best", "best.json")) as f:
        assert json.load(f)["step"] < 3


@pytest.fixture(scope="module")
def rolled_back(module_tmp):
    root = str(module_tmp / "rollback")
    code, out, err = train(*WATCHED, "--max_steps", "5", "--save_every_secs", "1e-9",
                           "--checkpoint_dir", root)
    assert code == 0, out + err
    return root, out


@pytest.mark.slow
def test_a_collapse_rolls_back_to_best_and_training_goes_on(rolled_back):
    root, out = rolled_back
    collapse = re.search(r"collapse at step 3: generated RMS 0 is below 0.05 of the real", out)
    assert collapse, out
    rolled = re.search(r"rolled back to (\S+) \(step (\d+)\), new seed (\d+)", out)
    before = evaluations(out[:collapse.start()])  # the best of them is where it went back
    step, _ = min(before, key=lambda pair: pair[1])
    assert rolled and int(rolled.group(2)) == step < 3
    assert rolled.group(1).endswith(os.path.join("best", f"ckpt-{step}"))
    assert int(rolled.group(3)) == 0 + 7919  # --seed 0, first rollback
    assert out.rstrip().endswith("stopped at step 5")
    scalars = tensorboard_scalars(checkpoints.stage_dir(root, 1))
    assert [value for _, value in scalars["Watchdog/rollback"]] == [1.0]
    assert {"Eval/frechet_mel_distance", "Eval/rms_ratio", "Eval/ndb_over_k",
            "Eval/memorisation_fraction"} <= set(scalars)


@pytest.mark.slow
def test_best_holds_the_lowest_distance_and_survives_rotation(rolled_back):
    root, out = rolled_back
    directory = checkpoints.stage_dir(root, 1)
    healthy = evaluations(out)  # the collapsed step was not evaluated: its summary stopped it
    step, score = min(healthy, key=lambda pair: pair[1])
    best = checkpoints.read_best(directory)
    assert (best["step"], best["score"]) == (step, pytest.approx(score, rel=1e-2))
    path = checkpoints.latest_checkpoint(os.path.join(directory, "best"))
    assert path.endswith(f"ckpt-{step}")
    assert sorted(n for n in os.listdir(directory) if n.endswith(".index")) == \
        ["ckpt-3.index", "ckpt-4.index", "ckpt-5.index"]  # the rotation of the last three
    config = checkpoints.read_config(directory)
    nets = train_progressive.build_networks(config, "float32")
    checkpoints.restore(tf.train.Checkpoint(**nets), path, partial=True)  # whole
