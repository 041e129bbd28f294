"""Growing by itself (--grow_to N): the report's stage-by-stage workflow as one command,
each step decided by measurement (report §7.6: "ideally, training is done from block 1").

From the first stage M (--num_blocks, or the lowest stage not yet grown), it trains stage M,
then for each next stage K up to N the frozen transition (stage_0000K_frozen) and the stable
stage (stage_0000K). Each sub-stage is an ordinary training run of train_loop.py, with the
same folders, checkpoints, config.json, best/ and summaries as a hand-started one, so the
restore chain carries the weights from one to the next and a user can stop the automation
and go on by hand, or start it on top of hand-made stages. A sub-stage ends when its quality
curve has plateaued (plateaued(): its best score has not improved by more than
--plateau_margin over its last --plateau_patience evaluations, and never before
--plateau_min_evaluations), or when its budget ends (--stage_steps, --stage_minutes; a frozen
transition gets --frozen_share of them), whichever is first. A stable stage ends with a
preview: <output_dir>/stage_0000K/, files as --generate writes them.

<root>/schedule.json (the root of the stage folders: --checkpoint_dir, or its variant's or
the VAE-GAN's folder) records every sub-stage: its folder, start and end step, training
time, why it ended (plateau, budget, user, collapse), its evaluations' scores and best/'s
step and score. Ctrl+C or SIGTERM saves and stops as always; the same command again goes on
with the same sub-stage at its saved step, its evaluations and budget as they were.
"""

import dataclasses
import os
import time

import checkpoints
import rules
from rules import default_batch_size
from utils import read_json, write_json

SCHEDULE_FILE = "schedule.json"
EVAL_EVERY_SECS = 120.0  # the quality curve's interval when growing (--eval_every_secs given wins)
PREVIEW_FILES = 5


def sub_stages(first, last):
    """[(num_blocks, frozen)]: stage `first`, then the frozen and the stable stage of each
    next one up to `last`."""
    return [(first, False)] + [(k, frozen) for k in range(first + 1, last + 1)
                               for frozen in (True, False)]


def folder_name(num_blocks, frozen):
    return os.path.basename(checkpoints.stage_dir("", num_blocks, frozen))


def plateaued(scores, patience, margin, minimum):
    """Whether a curve of scores (lower is better) has plateaued: at least `minimum` of them,
    and the best of the last `patience` not below (1 - margin) x the best before them."""
    if len(scores) < max(minimum, patience + 1):
        return False
    return min(scores[-patience:]) > (1.0 - margin) * min(scores[:-patience])


class Schedule:
    """schedule.json: a record for every sub-stage the automation has trained, in order."""

    def __init__(self, root):
        self.path = os.path.join(root, SCHEDULE_FILE)
        self.entries = (read_json(self.path) or {}).get("stages", [])

    def entry(self, num_blocks, frozen):
        name = folder_name(num_blocks, frozen)
        return next((e for e in self.entries if e["folder"] == name), None)

    def start(self, num_blocks, frozen, step):
        """The record of a sub-stage, new (starting at `step`) or as it was left."""
        entry = self.entry(num_blocks, frozen)
        if entry is None:
            entry = {"folder": folder_name(num_blocks, frozen), "num_blocks": num_blocks,
                     "frozen": frozen, "start_step": step, "end_step": None, "seconds": 0.0,
                     "reason": None, "evaluations": [], "best_step": None, "best_score": None}
            self.entries.append(entry)
        # evaluations after the step it resumed at were not saved with the weights
        entry["evaluations"] = [e for e in entry["evaluations"] if e[0] <= step]
        return entry

    def save(self):
        write_json(self.path, {"stages": self.entries})


class End:
    """When a grown sub-stage is over: its plateau or its budget (train_loop.why_stop asks
    reason(); evaluate_now reports each evaluation to evaluated())."""

    def __init__(self, schedule, entry, grow, share):
        self.schedule, self.entry, self.grow = schedule, entry, grow
        self.steps = None if grow.stage_steps is None else max(1, round(grow.stage_steps *
                                                                       share))
        self.seconds = None if grow.stage_minutes is None else grow.stage_minutes * 60 * share
        self.since, self.before = time.monotonic(), entry["seconds"]

    def elapsed(self):
        return self.before + time.monotonic() - self.since

    def reason(self, stage):
        if self.steps is not None and stage.step - self.entry["start_step"] >= self.steps:
            return "budget"
        if self.seconds is not None and self.elapsed() >= self.seconds:
            return "budget"
        scores = [score for _, score in self.entry["evaluations"]]
        grow = self.grow
        if plateaued(scores, grow.plateau_patience, grow.plateau_margin,
                     grow.plateau_min_evaluations):
            return "plateau"
        return None

    def evaluated(self, stage, measured):
        """Record an evaluation; best/'s step and score as the stage keeps them."""
        self.entry["evaluations"].append([stage.step, rules.quality_score(measured)])
        if stage.best is not None and stage.best.record:
            self.entry["best_step"] = stage.best.record["step"]
            self.entry["best_score"] = stage.best.score
        self.record(stage)

    def record(self, stage, reason=None):
        self.entry.update(seconds=round(self.elapsed(), 1), end_step=stage.step,
                          reason=reason)
        if stage.chief:
            self.schedule.save()


def first_sub_stage(schedule, root, plan):
    """Where the automation starts or goes on: the first sub-stage of the plan not recorded
    as ended, after the last one with a checkpoint (hand-made stages count)."""
    started = [i for i, (k, frozen) in enumerate(plan)
               if checkpoints.latest_checkpoint(checkpoints.stage_dir(root, k, frozen))]
    first = started[-1] if started else 0
    while first < len(plan) and (schedule.entry(*plan[first]) or {}).get("reason") in (
            "plateau", "budget"):
        first += 1
    return first


def sub_config(config, num_blocks, frozen):
    """The flags of one sub-stage, an ordinary training run: its stage, the report's batch
    (unless --batch_size) and the growing evaluation interval (unless --eval_every_secs)."""
    from config import GrowConfig, leaves

    given = config.given
    model = dataclasses.replace(config.model, num_blocks=num_blocks,
                                freeze_early_layers=frozen)
    train = dataclasses.replace(config.train, batch_size=config.train.batch_size
                                if "batch_size" in given else default_batch_size(num_blocks))
    watch = config.watch if "eval_every_secs" in given else dataclasses.replace(
        config.watch, eval_every_secs=EVAL_EVERY_SECS)
    return dataclasses.replace(config, model=model, train=train, watch=watch,
                               grow=GrowConfig(), given=given - {f.name for f in
                                                                 leaves(GrowConfig)})


def grow(config, recipe):
    """--grow_to: train the sub-stages from the first not yet grown up to stage N; returns
    the exit code (0, or a sub-stage's: 1 non-finite, 3 a collapse the watchdog could not
    recover)."""
    from private_apis import custom_gradients_released
    from train_loop import loop, set_up

    root = recipe.checkpoint_root(config.checkpoint_dir, config.model)
    schedule = Schedule(root)
    start = config.model.num_blocks if "num_blocks" in config.given else 1
    plan = sub_stages(start, config.grow.grow_to)
    first = first_sub_stage(schedule, root, plan)
    if first == len(plan):
        print(f"grow: stages {start}..{config.grow.grow_to} are grown ({schedule.path}): "
              f"raise --grow_to to go on")
    for num_blocks, frozen in plan[first:]:
        with custom_gradients_released():
            stage = set_up(sub_config(config, num_blocks, frozen), recipe)
            entry = schedule.start(num_blocks, frozen, stage.step)
            stage.end = End(schedule, entry, config.grow, config.grow.frozen_share
                            if frozen else 1.0)
            stage.say(f"grow: {what(num_blocks, frozen)} from step {stage.step} (schedule "
                      f"{schedule.path})")
            if stage.chief:
                stage.scalar("Grow/stage", num_blocks - 0.5 * frozen)
            try:
                code = loop(stage)
            finally:
                stage.close()
            stage.end.record(stage, stage.stopped)
            stage.say(f"grow: {what(num_blocks, frozen)} ended at step {stage.step} after "
                      f"{entry['seconds'] / 60:.1f} min: {stage.stopped}")
            if code:
                return stopped_growing(code, stage, config)
            if stage.stopped not in ("plateau", "budget"):
                return 0
            if not frozen:
                write_preview(stage, config, recipe)
    return 0


def what(num_blocks, frozen):
    return f"stage {num_blocks}{' (frozen transition)' if frozen else ''}"


def stopped_growing(code, stage, config):
    """A sub-stage's failure stops the schedule; says how to go on."""
    import sys
    print(f"error: growing stopped in {stage.directory} ({stage.stopped}): look at its best/ "
          f"and TensorBoard, then run the same command to go on with this stage, or with "
          f"--on_collapse warn to train through", file=sys.stderr, flush=True)
    return code


def write_preview(stage, config, recipe):
    """A stable stage's preview: PREVIEW_FILES files of the moving average, one window each,
    in <output_dir>/stage_0000K/ (a conditional model's for each label, as --generate)."""
    import longform
    from generation import file_stem
    from rules import window_length

    num_blocks = stage.config_json["num_blocks"]
    walk = dataclasses.replace(config.walk, duration=None, output_dir=os.path.join(
        config.walk.output_dir, os.path.basename(stage.directory)))
    for playing, stem in longform.label_sets(stage.run.sound_generator,
                                             stage.config_json.get("labels", []), None,
                                             file_stem(stage.directory, stage.step),
                                             stage.directory):
        longform.write_files(playing, walk, PREVIEW_FILES, config.seed, recipe.prior,
                             window_length(num_blocks), stage.batch_size,
                             stage.audio.sampling_rate, stage.config_json["channels"], stem)
    stage.say(f"grow: preview of stage {num_blocks} in {walk.output_dir}")
