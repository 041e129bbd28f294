"""Does training learn real music, and what does watching it cost?

    python bench/learning.py FOLDER [--stage 3] [--steps 1000] [--batch_size 16]
        Trains train_progressive.py (the trainer itself, in this process) on FOLDER for one
        step, then on to --steps, with bfloat16 where the CPU has it, and prints evaluate.py's
        metrics of the step-1 generator, the trained generator (raw weights) and its moving
        average against the same seeded real windows, beside the references (other real
        windows; white noise at the real loudness).
        Target: the moving average's Frechet mel distance at most half the step-1
        generator's, and its RMS within 20 % of the real RMS.

    python bench/learning.py FOLDER --cost [--stage 5]
        Times one evaluation of the quality curve (watch.QualityCurve.measure of the
        moving-average generator and of the raw weights: windows, metrics, memorisation
        check) at the stage's default count,
        and states its share of training time at the default interval (--eval_every_secs
        600). Target: at most 5 %.

    python bench/learning.py FOLDER --arm LABEL=REF[ FLAGS] --arm ... [--seeds 0 1 2]
            [--stage 3] [--steps 300] [--keep DIR]
        Recipes side by side over seeds: each arm is a git commit (REF; "." is the work tree
        as it is) and extra trainer flags, e.g. --arm "old=f6a0510" --arm "today=HEAD" or
        --arm "ema=. --ema_decay 0.99". Every arm trains train_progressive.py of its own
        commit, in a subprocess, with the same command (data, stage, batch, seed, mixed
        precision as the CPU allows) to step 1 and then to --steps, once per seed; then
        today's evaluation code scores the raw weights (and the moving average, where the
        commit has one) at step 1 and at --steps against the same seeded real windows.
        Prints each metric's mean and range over the seeds per arm: a change that slows
        learning shows the day it lands. A commit before nested folders were read needs a
        flat FOLDER (e.g. one package of bench/fetch_music.py's, ~/music/freedroidrpg).
        With --keep, runs already there are not trained again. Also prints, for each run,
        the evaluation of its quality curve that each candidate score would keep as best.

    python bench/learning.py FOLDER --minutes M --stage 3 --arm "grow=. --grow_to 3 ..."
            --arm "direct=. --num_blocks 3 ..." [--core_each] [--plot curves.png]
        The same with a CPU budget: each run trains once (its flags say what: a stage, or
        growing) until its trainer has used M minutes of CPU time (user + system, all its
        threads: two cores for 30 minutes are 60 CPU minutes), then it is stopped (SIGTERM:
        it saves) and scored at its end at --stage; --plot draws the quality curves at
        --stage against CPU minutes. An arm's flags may hold "then" and the flags of a next
        command, run when the one before ends within the budget, e.g. "grow=REF --grow_to 3
        --stage_steps 200 then --num_blocks 3": growing, then stage 3 by hand. The budget is
        kept in the run's budget.json: a run paused (SIGSTOP) loses nothing, and a
        comparison stopped (below) goes on with the same command, with what is left of each
        run's budget; a larger --minutes extends the runs their budget stopped.
        With --core_each a seed's arms train at the same time, each pinned to a CPU core of
        its own, in one run's time.

FOLDER is real music, e.g. what bench/fetch_music.py fetches. Checkpoints go to a temporary
folder, removed afterwards unless --keep DIR. With --arm, Ctrl+C or SIGTERM while runs
train: each trainer saves the step it is at and stops, then the bench does (exit code 130);
with --keep DIR the same command trains on from there.
"""

import argparse
import functools
import io
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import rules
from config import SEEDS
from utils import ArgumentParser, UserError, int_in_range, run_cli, stop_on_signals

SEED = 0
ROWS = (("Frechet mel distance", "frechet_mel_distance"), ("RMS ratio", "loudness.rms_ratio"),
        ("spectral distance (dB)", "spectrum.distance_db"), ("NDB/K", "ndb.ndb_over_k"),
        ("JS divergence", "ndb.js_divergence"), ("copies", "memorisation.fraction_below"))
# The columns of bench/moving_average.py's and bench/vaegan_prior.py's tables.
SEED_ROWS = (("Frechet", "frechet_mel_distance"), ("RMS ratio", "loudness.rms_ratio"),
             ("spectral dB", "spectrum.distance_db"), ("NDB/K", "ndb.ndb_over_k"))
DEFAULT_INTERVAL = 600.0  # --eval_every_secs by default
TARGET_SHARE = 0.05


def train_in_process(main, argv, steps, who):
    """A trainer's main(argv) in this process, its console on stderr, to step `steps`. Ctrl+C
    or SIGTERM reach its loop, which saves and stops; the bench then stops too
    (KeyboardInterrupt: one line, exit code 130), where it went on to score the short run
    or to train the next one."""
    import contextlib

    from train_loop import StopSignal

    StopSignal.received = None
    with contextlib.redirect_stdout(sys.stderr):
        if run_cli(main, argv) != 0:
            raise UserError(f"{who}: training stopped before step {steps}")
    if StopSignal.received:
        raise KeyboardInterrupt


def train_to(folder, root, stage, steps, batch_size):
    """train_progressive.py on folder until step `steps` (a resume when a checkpoint is
    there); its console goes to stderr."""
    import train_progressive

    argv = ["--data_dir", folder, "--checkpoint_dir", root, "--num_blocks", str(stage),
            "--batch_size", str(batch_size), "--max_steps", str(steps), "--seed", str(SEED),
            "--use_mixed_precision_training", "--save_every_secs", "1e9",
            "--log_every_secs", "60"]
    train_in_process(train_progressive.main, argv, steps, "the run")


def scores(folder, root, stage, steps):
    """Metrics of the step-1 generator and of step `steps`' raw weights and average."""

    import checkpoints
    import evaluate
    import train_progressive
    import watch
    from dataloader import load_audio

    directory = checkpoints.stage_dir(root, stage)
    audio = load_audio(folder, rules.SAMPLING_RATE, log=lambda line: None,
                       cache_dir=os.path.join(root, "audio_cache"))
    window = rules.window_length(stage)
    curve = watch.QualityCurve(audio, stage, evaluate.default_eval_count(window), SEED,
                               "uniform")
    results = {"real vs real": curve.references["real"], "noise": curve.references["noise"]}
    for name, step, raw in (("step 1", 1, True), (f"step {steps} raw", steps, True),
                            (f"step {steps} average", steps, False)):
        generator, *_ = checkpoints.load_generator(
            directory, train_progressive.RECIPE, checkpoints.checkpoint_path(directory, step), raw)
        results[name], _ = curve.measure(generator)
    return results, len(curve.real), audio


def seed_parser(description, steps, more=lambda parser: None):
    """The command line of a benchmark of one run per seed (bench/moving_average.py,
    bench/vaegan_prior.py): FOLDER, --stage, --steps (default `steps`), --batch_size,
    --seeds, --keep, --json, and what more(parser) adds. Parses argv into args, checks the
    folder and loads TensorFlow: a function of argv."""
    def parse(argv):
        parser = ArgumentParser(description=description)
        parser.add_argument("folder", help="a folder of real music")
        parser.add_argument("--stage", type=int_in_range(1, 8), default=3, help="stage trained")
        parser.add_argument("--steps", type=int_in_range(2, 10**7), default=steps,
                            help="training steps of each run")
        parser.add_argument("--batch_size", type=int_in_range(1, 4096), default=16)
        parser.add_argument("--seeds", type=SEEDS, nargs="+", default=[0, 1, 2],
                            help="one run per seed")
        more(parser)
        parser.add_argument("--keep", metavar="DIR", default=None,
                            help="train in DIR and keep it (default: a temporary folder)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        args = parser.parse_args(argv)
        if not os.path.isdir(args.folder):
            raise UserError(f"{args.folder} is not a folder: fetch music with "
                            f"bench/fetch_music.py")
        from private_apis import import_tensorflow
        import_tensorflow()
        return args
    return parse


def seed_report(args, prior, train_and_score, prefix, print_report, with_curve=False):
    """Train and score every seed (seed_runs), then print the report as JSON (--json) or
    with print_report; the exit code."""
    report = {"folder": args.folder, "stage": args.stage, "steps": args.steps,
              "batch_size": args.batch_size, "seeds": args.seeds,
              "runs": seed_runs(args, prior, train_and_score, prefix, with_curve)}
    if args.json:
        print(json.dumps(report, default=float))
    else:
        print_report(report)
    return 0


def seed_runs(args, prior, train_and_score, prefix, with_curve=False):
    """One run per seed of args.seeds on args.folder at args.stage (in args.keep, kept, or a
    temporary folder, set as args.keep_root), each scored by train_and_score(args, seed,
    root, curve) against one seeded watch.QualityCurve of latents from `prior`; a seed whose
    scores.json is there is not trained again, a run cut short starts again. Returns
    {seed: {"scores": ..., "curve": its quality curve (with_curve)}}."""
    import evaluate
    import watch
    from dataloader import load_audio

    args.keep_root = args.keep or tempfile.mkdtemp(prefix=prefix)
    runs = {}
    try:
        audio = load_audio(args.folder, rules.SAMPLING_RATE, log=lambda line: None,
                           cache_dir=os.path.join(args.keep_root, "audio_cache"))
        count = evaluate.default_eval_count(rules.window_length(args.stage))
        curve = watch.QualityCurve(audio, args.stage, count, SEED, prior)
        for seed in args.seeds:
            root = os.path.join(args.keep_root, f"seed{seed}")
            saved = os.path.join(root, "scores.json")
            if os.path.exists(saved):
                with open(saved) as f:
                    scores = json.load(f)
            else:
                shutil.rmtree(root, ignore_errors=True)
                scores = train_and_score(args, seed, root, curve)
                with open(saved, "w") as f:
                    json.dump(scores, f, default=float)
            runs[seed] = {"scores": scores}
            if with_curve:
                runs[seed]["curve"] = evaluations(root, args.stage)
    finally:
        if args.keep is None:
            shutil.rmtree(args.keep_root, ignore_errors=True)
    return runs


def learn(args):
    root = args.keep or tempfile.mkdtemp(prefix="bench_learning_")
    try:
        start = time.perf_counter()
        train_to(args.folder, root, args.stage, 1, args.batch_size)
        first = time.perf_counter()
        train_to(args.folder, root, args.stage, args.steps, args.batch_size)
        trained = time.perf_counter()
        results, count, audio = scores(args.folder, root, args.stage, args.steps)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    step1, average = results["step 1"], results[f"step {args.steps} average"]
    met = (average["frechet_mel_distance"] <= step1["frechet_mel_distance"] / 2
           and abs(average["loudness.rms_ratio"] - 1) <= 0.2)
    return {"folder": args.folder, "hours": audio.seconds / 3600, "channels": audio.channels,
            "stage": args.stage, "steps": args.steps, "batch_size": args.batch_size,
            "windows": count, "train_seconds": trained - start,
            "seconds_per_step": (trained - first) / max(1, args.steps - 1),
            "results": results, "met": met}


def cost(args):
    import evaluate
    import train_progressive
    import watch
    from dataloader import load_audio

    window = rules.window_length(args.stage)
    audio = load_audio(args.folder, rules.SAMPLING_RATE, log=lambda line: None)
    count = evaluate.default_eval_count(window)
    start = time.perf_counter()
    curve = watch.QualityCurve(audio, args.stage, count, SEED, "uniform")
    set_up = time.perf_counter() - start
    config = {"num_blocks": args.stage, "channels": audio.channels,
              "feature_map_smoothing": True, "use_sample_norm": False}
    generator = train_progressive.build_networks(config, "float32", True)["generator"]
    seconds = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for _ in ("average", "raw weights"):  # an evaluation measures both (restart_average)
            curve.measure(generator)
        seconds.append(time.perf_counter() - start)
    each = statistics.median(seconds)
    share = each / (DEFAULT_INTERVAL + each)
    return {"folder": args.folder, "stage": args.stage, "windows": count,
            "set_up_seconds": set_up, "evaluation_seconds": seconds,
            "share_at_default_interval": share, "met": share <= TARGET_SHARE}


@dataclass(frozen=True)
class Arm:
    """One recipe of a side-by-side comparison: a commit of the trainer and extra flags."""
    label: str
    ref: str          # a git commit, or "." for the work tree as it is
    flags: tuple = ()  # with --minutes, THEN starts the flags of a next command

    def commands(self):
        """The flags of each command a budgeted run trains with, in order."""
        parts = [[]]
        for word in self.flags:
            parts.append([]) if word == THEN else parts[-1].append(word)
        return parts


THEN = "then"  # --arm "grow=REF --grow_to 3 then --num_blocks 3": go on by hand at stage 3


def parse_arm(text):
    """--arm "LABEL=REF [FLAGS]"."""
    words = shlex.split(text)
    label, sep, ref = words[0].partition("=") if words else ("", "", "")
    if not (label and sep and ref):
        raise argparse.ArgumentTypeError(f"{text!r} is not LABEL=REF [FLAGS], e.g. "
                                         f"\"today=HEAD\" or \"ema=. --ema_decay 0.99\"")
    return Arm(label, ref, tuple(words[1:]))


def source_tree(ref, root):
    """The trainer's code at ref: the work tree for ".", else the commit unpacked (git
    archive) under root/src/<commit>."""
    if ref == ".":
        return REPO
    found = subprocess.run(["git", "-C", REPO, "rev-parse", "--verify", ref + "^{commit}"],
                           capture_output=True, text=True, check=False)
    if found.returncode:
        raise UserError(f"--arm {ref}: not a commit of this repository")
    tree = os.path.join(root, "src", found.stdout.strip()[:12])
    if not os.path.isdir(tree):
        archive = subprocess.run(["git", "-C", REPO, "archive", found.stdout.strip()],
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree + ".tmp", filter="data")
        os.replace(tree + ".tmp", tree)
    return tree


def arm_run(root, arm, seed):
    return os.path.join(root, "runs", arm.label, f"seed{seed}")


def trainer_command(arm, seed, args, root, tree):
    """The arm's train_progressive.py with the flags every arm shares; in step mode also
    the stage and batch (in budget mode the arm's flags say them, and a checkpoint every
    BUDGET_SAVE_SECS keeps a run that is killed close to its budget.json)."""
    trainer = os.path.join(tree, "train_progressive.py")
    save = "1e9" if args.minutes is None else str(BUDGET_SAVE_SECS)
    command = [sys.executable, trainer, "--data_dir", args.folder, "--checkpoint_dir",
               arm_run(root, arm, seed), "--seed", str(seed), "--use_mixed_precision_training",
               "--save_every_secs", save, "--log_every_secs", "60"]
    if args.minutes is None:
        command += ["--num_blocks", str(args.stage), "--batch_size", str(args.batch_size)]
    known = subprocess.run([sys.executable, trainer, "--help"], capture_output=True,
                           text=True, check=False).stdout
    for option, path in (("--audio_cache", "audio_cache"), ("--conv_forms_cache",
                                                            "conv_forms.json")):
        if option in known:  # shared by the runs; commits before them decode every time
            command += [option, os.path.join(root, path)]
    return command


def train_arm(arm, seed, args, root, core=None):
    """The arm's commit's trainer in a subprocess (its console in train.log): to step 1 and
    then to --steps, each skipped where its checkpoint is there; or, with --minutes, once,
    stopped by SIGTERM (it saves) if it runs longer, skipped where done.json is there."""
    import checkpoints
    from utils import wait_saving_on_stop

    tree = source_tree(arm.ref, root)
    run = arm_run(root, arm, seed)
    os.makedirs(run, exist_ok=True)
    command = trainer_command(arm, seed, args, root, tree)
    if args.minutes is not None:
        return train_for([command + flags for flags in arm.commands()], arm, seed, run, tree,
                         args.minutes, args.keep, core)
    directory = checkpoints.stage_dir(run, args.stage)
    for steps in (1, args.steps):
        if checkpoints.checkpoint_exists(checkpoints.checkpoint_path(directory, steps)):
            continue
        print(f"training {arm.label} ({arm.ref}) seed {seed} to step {steps}", file=sys.stderr,
              flush=True)
        with open(os.path.join(run, "train.log"), "a") as log:  # own session: see utils
            process = subprocess.Popen(command + ["--max_steps", str(steps), *arm.flags],
                                       cwd=tree, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        code = wait_saving_on_stop(process, f"{arm.label} seed {seed}", run, args.keep)
        if code:
            raise UserError(f"{arm.label} seed {seed} stopped with exit code {code} before "
                            f"step {steps}: see {os.path.join(run, 'train.log')}")


POLL_SECS = 10  # how often a budgeted run's CPU time is read
STOPPING = threading.Event()  # the bench was stopped: --core_each's threads stop their runs
BUDGET_SAVE_SECS = 300  # a budgeted run's checkpoints: what a kill loses


def cpu_seconds(pid):
    """User + system CPU time of a running process, all its threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # from field 3, the state, on
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def train_for(commands, arm, seed, run, tree, minutes, keep, core=None):
    """Run the commands one after the other until they have used `minutes` of CPU time (on
    CPU `core` alone if given), then SIGTERM (it saves). budget.json keeps the CPU time used
    and (wall time, CPU time) samples, so a comparison stopped half-way (or paused with
    SIGSTOP while the machine does something else) goes on with what is left: each command
    runs again and goes on where it stopped (a grown schedule says so and ends at once);
    done.json records how it ended, and a larger `minutes` goes on from there. A stopped
    bench stops the trainer (it saves) and the run with it, not done."""
    from utils import read_json, wait_saving_on_stop, write_json

    path = os.path.join(run, "budget.json")
    budget = read_json(path) or {"cpu_seconds": 0.0, "samples": []}
    done = read_json(os.path.join(run, "done.json"))
    if done and not (done["stopped_at_budget"] and budget["cpu_seconds"] < minutes * 60):
        return  # done, unless a larger --minutes extends a run its budget stopped
    print(f"training {arm.label} ({arm.ref}) seed {seed} for {minutes:g} CPU minutes"
          + (f" on CPU {core}" if core is not None else "")
          + (f", {budget['cpu_seconds'] / 60:.1f} of them done before"
             if budget["cpu_seconds"] else ""), file=sys.stderr, flush=True)
    started, at_budget = time.time(), budget["cpu_seconds"] >= minutes * 60
    for command in commands:
        if at_budget:
            break
        if STOPPING.is_set():  # another arm's thread was told to stop: start no trainer
            raise SystemExit(130)
        before = budget["cpu_seconds"]
        with open(os.path.join(run, "train.log"), "a") as log:  # own session: see utils
            process = subprocess.Popen(command, cwd=tree, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        if core is not None:  # before TensorFlow starts its threads, which inherit it
            os.sched_setaffinity(process.pid, {core})
        code, at_budget = wait_saving_on_stop(
            process, f"{arm.label} seed {seed}", run, keep,
            functools.partial(spend, process, budget, path, before, minutes * 60))
        if code:
            raise UserError(f"{arm.label} seed {seed} stopped with exit code {code}: see "
                            f"{os.path.join(run, 'train.log')}")
    write_json(os.path.join(run, "done.json"), {
        "seconds": time.time() - started, "cpu_seconds": budget["cpu_seconds"],
        "stopped_at_budget": at_budget})


def spend(process, budget, path, before, seconds):
    """Wait for a budgeted run's trainer, writing the CPU time it has used (`before` it
    started, and since) to budget.json every POLL_SECS, and asking it to save and stop once
    the budget's `seconds` are used. Returns (exit code, whether the budget stopped it).
    Raises KeyboardInterrupt where STOPPING is set (a --core_each thread hears of a stop so);
    the CPU time since the last poll then goes uncounted."""
    from utils import ask_to_save_and_stop, write_json

    at_budget = False
    while True:
        # wait4 gives the CPU time of the whole run at its exit: the last poll's is late
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            budget["cpu_seconds"] = before + usage.ru_utime + usage.ru_stime
            process.returncode = os.waitstatus_to_exitcode(status)
            break
        if STOPPING.wait(POLL_SECS):
            raise KeyboardInterrupt
        try:
            budget["cpu_seconds"] = before + cpu_seconds(process.pid)
        except OSError:
            continue  # it is exiting
        budget["samples"].append([time.time(), budget["cpu_seconds"]])
        write_json(path, budget)
        if budget["cpu_seconds"] >= seconds:
            ask_to_save_and_stop(process)
            at_budget = True
    budget["samples"].append([time.time(), budget["cpu_seconds"]])
    write_json(path, budget)
    return process.returncode, at_budget


def cpu_minutes(run):
    """A function from wall time to the CPU minutes a budgeted run had used by then (from
    its budget.json), or None for a run trained by steps."""
    import numpy as np

    from utils import read_json

    samples = (read_json(os.path.join(run, "budget.json")) or {}).get("samples")
    if not samples:
        return None
    wall, cpu = np.array(samples, dtype=np.float64).T
    return lambda t: float(np.interp(t, wall, cpu)) / 60


def evaluations(run, stage, prefix="Eval/"):
    """The quality curve of a run at `stage` (its frozen transition's, then its own), from
    TensorBoard: [(minutes, step, {Eval tag: value})], in CPU minutes the run had used (a
    budgeted run) or wall minutes since its first event. Another prefix (or a tuple of them)
    reads other scalars (e.g. "ADA/": the augmentation's p)."""
    import tensorflow as tf

    import checkpoints

    started, to_cpu = None, cpu_minutes(run)
    points = {}
    for frozen in (True, False):
        directory = checkpoints.stage_dir(run, stage, frozen)
        names = sorted(n for n in os.listdir(directory) if n.startswith("events.out")) \
            if os.path.isdir(directory) else []
        for name in names:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
                started = started or event.wall_time
                for value in event.summary.value:
                    if value.tag.startswith(prefix) and \
                            value.metadata.plugin_data.plugin_name == "scalars":
                        point = points.setdefault((frozen, event.step), [event.wall_time, {}])
                        point[1][value.tag] = float(tf.make_ndarray(value.tensor))
    return [(to_cpu(wall) if to_cpu else (wall - started) / 60, step, values)
            for (_, step), (wall, values) in sorted(points.items(), key=lambda p: p[1][0])]


def score_arms(args, root):
    """({arm label: {"step N raw" | "end average" ...: [metrics of each seed]}},
    {arm label: [each seed's quality curve at --stage]})."""
    import checkpoints
    import evaluate
    import train_progressive
    import watch
    from dataloader import load_audio

    audio = load_audio(args.folder, rules.SAMPLING_RATE, log=lambda line: None,
                       cache_dir=os.path.join(root, "audio_cache"))
    count = evaluate.default_eval_count(rules.window_length(args.stage))
    curve = watch.QualityCurve(audio, args.stage, count, SEED, "uniform")
    scores = {"references": {"real vs real": [curve.references["real"]],
                             "noise": [curve.references["noise"]]}}
    curves = {}
    for arm in args.arm:
        scores[arm.label] = {}
        for seed in args.seeds:
            run = arm_run(root, arm, seed)
            directory = checkpoints.stage_dir(run, args.stage)
            chosen = ({"end": checkpoints.latest_checkpoint(directory)}
                      if args.minutes is not None else
                      {f"step {step}": checkpoints.checkpoint_path(directory, step)
                       for step in (1, args.steps)})
            for name, path in chosen.items():
                if path is None:  # its budget ended before it reached --stage
                    print(f"{arm.label} seed {seed} did not reach stage {args.stage}",
                          file=sys.stderr)
                    scores[arm.label].setdefault(f"{name} raw", []).append({})
                    continue
                for raw in (True, False):
                    generator, _, _, which = checkpoints.load_generator(
                        directory, train_progressive.RECIPE, path, raw)
                    if raw or which == rules.AVERAGE:
                        scores[arm.label].setdefault(
                            f"{name} {'raw' if raw else 'average'}", []).append(
                            curve.measure(generator)[0])
            curves.setdefault(arm.label, []).append(evaluations(run, args.stage))
    return scores, curves


def wait_for_threads(pool):
    """Until every thread of `pool` has ended: their trainers are saving, which takes
    seconds, and the runs' folder must outlive that."""
    while True:
        try:
            return pool.shutdown(wait=True)
        except KeyboardInterrupt:
            print("the trainers are saving their last step: they stop in a moment",
                  file=sys.stderr, flush=True)


def side_by_side(args):
    root = args.keep or tempfile.mkdtemp(prefix="bench_side_by_side_")
    try:
        for seed in args.seeds:  # seed by seed: a stopped comparison has whole seeds
            if args.core_each:  # the arms at once, a core each: the same CPU for each
                from concurrent.futures import ThreadPoolExecutor
                for arm in args.arm:
                    source_tree(arm.ref, root)  # unpacked once, before the threads
                with ThreadPoolExecutor(len(args.arm)) as pool:
                    runs = [pool.submit(train_arm, arm, seed, args, root, core)
                            for arm, core in zip(args.arm, sorted(os.sched_getaffinity(0)))]
                    try:
                        for done in runs:
                            done.result()
                    except BaseException as error:  # a stop or a failed arm: stop the others
                        STOPPING.set()  # the main thread alone hears a Ctrl+C: tell them
                        wait_for_threads(pool)
                        if isinstance(error, KeyboardInterrupt):
                            raise SystemExit(130) from None
                        raise
                continue
            for arm in args.arm:
                train_arm(arm, seed, args, root)
        scores, curves = score_arms(args, root)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    report = {"folder": args.folder, "stage": args.stage, "steps": args.steps,
              "minutes": args.minutes, "core_each": args.core_each,
              "batch_size": args.batch_size, "seeds": args.seeds,
              "arms": {arm.label: {"ref": arm.ref, "flags": list(arm.flags)}
                       for arm in args.arm}, "scores": scores, "curves": curves}
    if args.plot:
        plot_curves(report, args.plot)
    return report


def plot_curves(report, path):
    """The quality curves against training minutes, a line per seed, a colour per arm: the
    Frechet mel distance, the spectral distance and the RMS ratio at --stage, as evaluated
    (the moving average, or the raw weights where they scored better)."""
    from pictures import pyplot
    plt = pyplot()
    panels = (("Eval/frechet_mel_distance", "Frechet log-mel distance", "log"),
              ("Eval/spectral_distance_db", "spectral distance (dB)", "log"),
              ("Eval/rms_ratio", "RMS ratio", "linear"))
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 4.5))
    for colour, (label, runs) in zip(("tab:blue", "tab:orange", "tab:green", "tab:red"),
                                     report["curves"].items()):
        for number, points in enumerate(runs):
            for ax, (tag, _, _) in zip(axes, panels):
                xs = [m for m, _, values in points if tag in values]
                ys = [values[tag] for _, _, values in points if tag in values]
                ax.plot(xs, ys, color=colour, linewidth=1, marker=".", markersize=4,
                        label=label if number == 0 else None)
    minutes = "CPU minutes" if report.get("minutes") else "training minutes"
    for ax, (_, title, scale) in zip(axes, panels):
        ax.set_xlabel(minutes)
        ax.set_title(f"stage {report['stage']}: {title}")
        ax.set_yscale(scale)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def spread(values):
    """mean [min-max] of a list of numbers, or '-'."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} [{min(values):.4g}-{max(values):.4g}]"


def print_side_by_side(report):
    length = (f"{report['minutes']:g} CPU minutes" if report["minutes"] is not None else
              f"batch {report['batch_size']}, {report['steps']} steps")
    print(f"{report['folder']}: stage {report['stage']}, {length}, seeds "
          f"{' '.join(map(str, report['seeds']))}; mean [min-max] over the seeds")
    for label, arm in report["arms"].items():
        print(f"  {label}: {arm['ref']} {' '.join(arm['flags'])}")
    for title, key in ROWS:
        print(f"\n{title}")
        for label, sets in report["scores"].items():
            print(f"  {label:<14}" + "  ".join(
                f"{name}: {spread([m.get(key) for m in metrics])}"
                for name, metrics in sets.items()))


# Candidates for the score that decides (plateau, best/), lower is better: each keeps the
# evaluation where it is lowest. The last is the one chosen, rules.quality_score: the
# distance times the square of how many times too quiet or too loud the average is.
CANDIDATES = {
    "Frechet": lambda v: v["Eval/frechet_mel_distance"],
    "spectral": lambda v: v["Eval/spectral_distance_db"],
    "Frechet x loudness": lambda v: rules.quality_score(
        {"frechet_mel_distance": v["Eval/frechet_mel_distance"],
         "loudness.rms_ratio": v["Eval/rms_ratio"]}),
}


def print_keepers(report):
    """For each run, the evaluation each candidate score would keep as best/: its step and
    its Frechet distance, spectral distance and RMS ratio."""
    print("\nthe evaluation each candidate score keeps: step (Frechet, spectral dB, RMS ratio)")
    for label, runs in report["curves"].items():
        for seed, points in zip(report["seeds"], runs):
            print_kept(f"{label} seed {seed}", points)


def print_kept(name, curve):
    """One line: the evaluation of a quality curve each candidate score keeps."""
    points = [(step, v) for _, step, v in curve
              if {"Eval/frechet_mel_distance", "Eval/spectral_distance_db",
                  "Eval/rms_ratio"} <= set(v)]
    if not points:
        return
    kept = {score: min(points, key=lambda p, f=f: f(p[1])) for score, f in CANDIDATES.items()}
    print(f"  {name}, {len(points)} evaluations: " + "; ".join(
        f"{score} {step} ({v['Eval/frechet_mel_distance']:.4g}, "
        f"{v['Eval/spectral_distance_db']:.3g}, {v['Eval/rms_ratio']:.3g})"
        for score, (step, v) in kept.items()))


def measured(v):
    """An evaluation's logged values as the keys rules.quality_score reads, each label's
    (Label/<name>.frechet_mel_distance, Label/<name>.rms_ratio) among them where they were
    read (evaluations(prefix=("Eval/", "Label/")))."""
    out = {"frechet_mel_distance": v["Eval/frechet_mel_distance"],
           "loudness.rms_ratio": v["Eval/rms_ratio"]}
    out.update({"label." + tag[len("Label/"):]: value for tag, value in v.items()
                if tag.startswith("Label/")})
    return out


def curve_scores(curve):
    """[(minutes, step, quality score)] of a quality curve's evaluations (evaluations()):
    rules.quality_score, each label's where the curve holds them."""
    return [(minutes, step, rules.quality_score(measured(v)))
            for minutes, step, v in curve
            if {"Eval/frechet_mel_distance", "Eval/rms_ratio"} <= set(v)]


def print_budgets(report):
    """With --minutes: how soon each arm reaches the best score another arm reaches (what
    its best/ keeps), and where the default plateau rule of --grow_to would have ended each
    run's curve at --stage."""
    runs = {label: [curve_scores(curve) for curve in curves]
            for label, curves in report["curves"].items()}
    print(f"\nat stage {report['stage']}, by the quality score (Frechet x loudness), in CPU "
          f"minutes of each run")
    for number, seed in enumerate(report["seeds"]):
        for label, curves in runs.items():
            points = curves[number]
            if not points:
                continue
            for other, others in runs.items():
                if other == label or not others[number]:
                    continue
                best_minutes, _, best_score = min(others[number], key=lambda p: p[2])
                reached = next((m for m, _, score in points if score <= best_score), None)
                print(f"  seed {seed}: {label} reaches {other}'s best score ({best_score:.4g} "
                      f"at {best_minutes:.1f} min) "
                      + (f"at {reached:.1f} min" if reached is not None else "not at all"))
            print_plateau(f"seed {seed}: {label}", points)


def default_plateau():
    """--grow_to's default plateau rule: (patience, margin, minimum evaluations)."""
    from config import GrowConfig

    rule = GrowConfig()
    return rule.plateau_patience, rule.plateau_margin, rule.plateau_min_evaluations


def print_plateau(name, points, rule=None):
    """Where a plateau rule of --grow_to (grow.plateaued; the default rule unless given)
    would have ended a curve of [(minutes, step, score)], against the best score it reached
    by its end."""
    from grow import plateaued

    patience, margin, minimum = rule or default_plateau()
    what = f"patience {patience}, margin {margin:g}, minimum {minimum}"
    stop = next((i for i in range(len(points)) if plateaued(
        [score for _, _, score in points[:i + 1]], patience, margin, minimum)), None)
    best = min(score for _, _, score in points)
    if stop is None:
        print(f"  {name}: {what}: no plateau in {len(points)} evaluations (best score "
              f"{best:.4g})")
        return
    minutes, step, _ = points[stop]
    before = min(score for _, _, score in points[:stop + 1])
    print(f"  {name}: {what}: ends it at evaluation {stop + 1} of {len(points)} "
          f"({minutes:.1f} min, step {step}) with best score {before:.4g}; by its end "
          f"{best:.4g} ({100 * (1 - best / before):.0f} % lower)")


def print_learn(report):
    print(f"{report['folder']}: {report['hours']:.2f} h, {report['channels']} channels; stage "
          f"{report['stage']}, batch {report['batch_size']}, {report['steps']} steps in "
          f"{report['train_seconds'] / 60:.1f} min ({report['seconds_per_step']:.2f} s a step); "
          f"{report['windows']} windows compared")
    names = list(report["results"])
    print(f"{'metric':<22}" + "".join(f"{name:>18}" for name in names))
    for title, key in ROWS:
        values = [report["results"][name].get(key) for name in names]
        print(f"{title:<22}" + "".join(f"{'-' if v is None else f'{v:.4g}':>18}"
                                       for v in values))
    print(f"target: the average's Frechet distance at most half the step-1 generator's and its "
          f"RMS ratio within 0.8-1.2: {'met' if report['met'] else 'MISSED'}")


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="a folder of real music")
    parser.add_argument("--cost", action="store_true",
                        help="instead of training, time one evaluation of the quality curve")
    parser.add_argument("--stage", type=int_in_range(1, 8), default=None,
                        help="stage (default: 3 to learn, 5 for --cost)")
    parser.add_argument("--steps", type=int_in_range(2, 10**7), default=1000,
                        help="training steps")
    parser.add_argument("--batch_size", type=int_in_range(1, 4096), default=16)
    parser.add_argument("--repeat", type=int_in_range(1, 100), default=3,
                        help="with --cost: evaluations timed (the median is used)")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="train in DIR and keep it (default: a temporary folder)")
    parser.add_argument("--arm", type=parse_arm, action="append", default=None,
                        metavar="LABEL=REF [FLAGS]",
                        help="a recipe to compare side by side: a commit (\".\" the work "
                             "tree) and extra trainer flags; give two or more")
    parser.add_argument("--seeds", type=SEEDS, nargs="+",
                        default=[0, 1, 2], help="with --arm: the seeds each arm trains with")
    parser.add_argument("--minutes", type=float, default=None,
                        help="with --arm: each run trains once until its trainer has used "
                             "this many minutes of CPU time (the arm's flags give its stage, "
                             "e.g. --num_blocks 3 or --grow_to 3), instead of to step 1 and to "
                             "--steps; --stage is the stage scored")
    parser.add_argument("--core_each", action="store_true",
                        help="with --minutes: a seed's arms train at the same time, each on a "
                             "CPU core of its own (as many arms as cores): the comparison "
                             "takes a run's time, not one per arm")
    parser.add_argument("--plot", metavar="PNG", default=None,
                        help="with --arm: draw the quality curves at --stage against training "
                             "minutes")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    args.stage = args.stage or (5 if args.cost else 3)
    if args.arm is not None and args.cost:
        raise UserError("--arm trains recipes side by side: drop --cost")
    if args.arm is not None and len({arm.label for arm in args.arm}) < len(args.arm):
        raise UserError("each --arm needs a label of its own")
    if args.core_each and (args.minutes is None or len(args.arm or ()) > len(
            os.sched_getaffinity(0))):
        raise UserError(f"--core_each goes with --minutes and at most "
                        f"{len(os.sched_getaffinity(0))} arms (a core each)")
    if not os.path.isdir(args.folder):
        raise UserError(f"{args.folder} is not a folder: fetch music with bench/fetch_music.py")
    from private_apis import import_tensorflow
    import_tensorflow()
    if args.arm:  # SIGTERM as Ctrl+C: the trainers running save before the bench stops
        stop_on_signals()
    report = (cost(args) if args.cost else side_by_side(args) if args.arm else learn(args))
    if args.json:
        print(json.dumps(report, default=float))
    elif args.arm:
        print_side_by_side(report)
        print_keepers(report)
        if args.minutes is not None:
            print_budgets(report)
    elif not args.cost:
        print_learn(report)
    else:
        print(f"stage {report['stage']}, {report['windows']} windows: an evaluation takes "
              + ", ".join(f"{s:.2f}" for s in report["evaluation_seconds"])
              + f" s (set-up once: {report['set_up_seconds']:.1f} s); at one every "
              f"{DEFAULT_INTERVAL:g} s that is {100 * report['share_at_default_interval']:.2f} % "
              f"of training time: {'met' if report['met'] else 'MISSED'} (target 5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
