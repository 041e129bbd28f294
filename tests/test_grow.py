"""Growing by itself (grow.py, --grow_to): the plateau rule on synthetic curves, the plan of
sub-stages, and tiny grown runs on the demo data: every sub-stage's folder and schedule
entry, a SIGTERM in the middle and the same command again, bad flags."""

import functools
import json
import os
import signal
import subprocess
import sys

import pytest
from helpers import DEMO, NARROW, ROOT, SHORT, assert_one_line_error, saved_step
from helpers import run as run_main

import checkpoints
import grow
import train
import train_progressive

run = functools.partial(run_main, train_progressive.main)


# --------------------------------------------------------------------------- the plateau rule

def plateaued(scores):
    return grow.plateaued(scores, patience=4, margin=0.02, minimum=6)


def test_a_falling_curve_has_not_plateaued():
    assert not plateaued([100.0 * 0.9 ** i for i in range(30)])


def test_a_flat_curve_has_plateaued_once_there_are_enough_evaluations():
    flat = [100, 60, 40, 31, 30, 30.2, 29.9, 30.1, 30.0]
    assert not plateaued(flat[:5])  # fewer than the minimum
    assert plateaued(flat)  # 29.9 is not 2 % below 30


def test_a_noisy_plateau_has_plateaued():
    noisy = [100, 50, 32, 31, 35, 29, 33, 30.5, 29.5, 34, 29.3, 31]
    assert plateaued(noisy)  # the last four's best, 29.3, is within 2 % of 29


def test_a_curve_that_improves_late_has_not_plateaued():
    late = [100, 50, 32, 31, 35, 29, 33, 30.5, 29.5, 34, 29.3, 31, 25.0]
    assert not plateaued(late)  # 25 is far below 29
    assert not plateaued([100, 60, 40, 31, 30, 30.2, 29.9, 30.1, 29.0])


def test_the_plan_is_the_reports_workflow():
    assert grow.sub_stages(1, 3) == [(1, False), (2, True), (2, False), (3, True), (3, False)]
    assert grow.sub_stages(5, 5) == [(5, False)]


# --------------------------------------------------------------------------- grown runs

GROWN = ["--data_dir", DEMO, "--batch_size", "2", "--seed", "0", "--log_every_secs", "1e9",
         *NARROW, *SHORT, "--eval_every_secs", "1e-9", "--num_eval_samples", "8"]


def entries(root):
    with open(os.path.join(root, "schedule.json")) as f:
        return json.load(f)["stages"]


@pytest.mark.slow
def test_grow_to_2_stopped_by_sigterm_goes_on_and_records_three_sub_stages(tmp_path):
    """SIGTERM in the first sub-stage saves; the same command again (with a budget this
    time) goes on at the saved step and grows through stage 2; once more, nothing is left."""
    root = str(tmp_path / "ck")
    command = [sys.executable, os.path.join(ROOT, "train_progressive.py"), *GROWN,
               "--checkpoint_dir", root, "--grow_to", "2", "--stage_steps", "1000",
               "--log_every_secs", "0.001", "--plateau_min_evaluations", "1000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=ROOT)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("step"):
            process.send_signal(signal.SIGTERM)
            break
    output = "".join(lines) + process.communicate(timeout=300)[0]
    assert process.returncode == 0, output
    [stopped] = entries(root)
    assert (stopped["folder"], stopped["reason"]) == ("stage_00001", "user")
    saved = saved_step(checkpoints.latest_checkpoint(os.path.join(root, "stage_00001")))
    assert stopped["end_step"] == saved >= 1 and len(stopped["evaluations"]) == saved
    # The same sub-stage goes on at its saved step, with its start and evaluations, ends at
    # its budget, and the schedule goes on to stage 2.
    budget = saved + 1
    grown = [*GROWN, "--checkpoint_dir", root, "--grow_to", "2", "--stage_steps", str(budget)]
    code, out, err = run_main(train_progressive.main, *grown, "--output_dir",
                              str(tmp_path / "gen"), tiny=False)
    assert code == 0, out + err
    assert f"resumed at step {saved} from" in out
    assert "blocks 1..1 grown from stage 1" in out and "all weights from the frozen stage" in out
    made = entries(root)
    assert [e["folder"] for e in made] == ["stage_00001", "stage_00002_frozen", "stage_00002"]
    assert made[0]["seconds"] > stopped["seconds"]
    assert [step for step, _ in made[0]["evaluations"]] == list(range(1, budget + 1))
    # the frozen transition gets half the budget
    for entry, start, end in zip(made, (0, 0, 0), (budget, round(budget / 2), budget)):
        assert (entry["reason"], entry["start_step"], entry["end_step"]) == ("budget", start, end)
        assert entry["seconds"] > 0 and len(entry["evaluations"]) == end
        assert entry["best_step"] is not None
        directory = os.path.join(root, entry["folder"])
        assert saved_step(checkpoints.latest_checkpoint(directory)) == end
        assert checkpoints.read_config(directory)["frozen"] == entry["frozen"]
        assert os.path.isdir(os.path.join(directory, "best"))
    # a preview after each stable stage, one folder each
    assert sorted(os.listdir(tmp_path / "gen")) == ["stage_00001", "stage_00002"]
    assert len(os.listdir(tmp_path / "gen" / "stage_00002")) == grow.PREVIEW_FILES
    # the same command again: nothing left to grow
    code, out, err = run_main(train_progressive.main, *grown, tiny=False)
    assert code == 0 and "are grown" in out and len(entries(root)) == 3


@pytest.mark.parametrize("argv, message", [
    (["--grow_to", "2", "--num_blocks", "3"], "below the first stage"),
    (["--grow_to", "9"], "9 is out of range"),
    (["--grow_to", "2", "--stage_steps", "0"], "0 is out of range: use 1 or more"),
    (["--grow_to", "2", "--stage_minutes", "-1"], "must be greater than 0"),
    (["--grow_to", "2", "--max_steps", "3"], "drop --max_steps"),
    (["--grow_to", "2", "--generate", "3"], "drop --generate"),
    (["--stage_steps", "3"], "go with --grow_to"),
    (["--grow_to", "2", "--eval_every_secs", "0"], "keep --eval_every_secs above 0"),
])
def test_bad_growing_flags_are_one_line_and_write_nothing(argv, message, tmp_path):
    code, _, err = run_main(train_progressive.main, "--checkpoint_dir", str(tmp_path / "ck"),
                            *argv, tiny=False)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "ck").exists()


def test_the_wavegan_trainer_does_not_grow(tmp_path):
    code, _, err = run_main(train.main, "--checkpoint_dir", str(tmp_path / "ck"),
                            "--grow_to", "3", tiny=False)
    assert_one_line_error(code, err, "unrecognized arguments: --grow_to 3")
    assert not (tmp_path / "ck").exists()
