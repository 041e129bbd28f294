"""Which moving average follows a short run, and which score should keep best/?

    python bench/moving_average.py FOLDER [--stage 3] [--steps 300] [--batch_size 16]
            [--seeds 0 1 2] [--rampups 0.05 0.02 0.01] [--decays 0.999] [--keep DIR]

Trains train_progressive.py (in this process, the default recipe) on FOLDER to --steps, once
per seed. The average does not feed back into training, so beside the trainer's own average
(its default rule) the run keeps one more average per probed rule, all fed the same raw
weights: StyleGAN2-ADA's half-life with each ramp-up r of --rampups (the half-life is at most
r x the windows seen so far, and at most --ema_half_life's default), and each fixed decay of
--decays (TensorFlow's warm-up, the older default). At the end the raw weights and every
average are scored against the same seeded real windows (Frechet mel distance, RMS ratio,
spectral distance, NDB/K), and the table gives each metric's mean [min-max] over the seeds.
Target (issue: the average must follow a short run): the average's RMS ratio within 10 % of
the raw weights' and its Frechet distance at most theirs, on every seed.

The trainer's quality curve is evaluated every --eval_every_secs (default 120) on the
trainer's own average; for each run the script also prints the evaluation each candidate
score (bench/learning.py's CANDIDATES) would keep as best/, to choose the score that decides.

FOLDER is real music, e.g. ~/music/freedroidrpg from bench/fetch_music.py. With --keep DIR
the runs and their scores stay in DIR, and a seed already scored there is not trained again.
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from learning import SEED_ROWS as ROWS
from learning import print_kept, seed_parser, seed_report, spread, train_in_process

import rules
from utils import fraction_below_one, positive_float, run_cli


class Probes:
    """The trainer's moving average and the probed ones, updated together after each
    generator update (the iteration calls update(step) on what it was given)."""

    def __init__(self, main, probes):
        self.main, self.probes = main, probes

    def update(self, step):
        self.main.update(step)
        for probe in self.probes.values():
            probe.update(step)


def probed_build_run(rules_by_name, made):
    """runs.build_run (as the training loop calls it), with one more average per rule beside
    the trainer's; each run made is appended to `made` with its probes as run.probes."""
    from moving_average import MovingAverage
    from runs import build_run

    def build(recipe, config, *args, **kwargs):
        run = build_run(recipe, config, *args, **kwargs)
        run.probes = {}
        for name, rule in rules_by_name.items():
            average = recipe.build_networks(config, "float32", generator_only=True)["generator"]
            run.probes[name] = MovingAverage(run.networks["generator"], average, rule)
            run.probes[name].copy()
        run.iteration.moving_average = Probes(run.average, run.probes)
        made.append(run)
        return run

    return build


def train_and_score(args, seed, root, curve):
    """Train one seed with the probes; {weights: metrics} at the end."""
    import moving_average
    import train_loop
    import train_progressive

    probes = {f"half-life, ramp-up {r:g}": moving_average.HalfLife(
        rules.EMA_HALF_LIFE, r, args.batch_size) for r in args.rampups}
    probes.update({f"fixed decay {d:g}": moving_average.FixedDecay(d) for d in args.decays})
    made = []
    argv = ["--data_dir", args.folder, "--checkpoint_dir", root, "--num_blocks",
            str(args.stage), "--batch_size", str(args.batch_size), "--max_steps",
            str(args.steps), "--seed", str(seed), "--use_mixed_precision_training",
            "--save_every_secs", "1e9", "--log_every_secs", "60", "--eval_every_secs",
            str(args.eval_every_secs), "--audio_cache", os.path.join(args.keep_root,
                                                                     "audio_cache")]
    original = train_loop.build_run
    train_loop.build_run = probed_build_run(probes, made)
    try:
        train_in_process(train_progressive.main, argv, args.steps, f"seed {seed}")
    finally:
        train_loop.build_run = original
    run = made[-1]
    scores = {"raw": curve.measure(run.networks["generator"])[0],
              "trainer's average (default)": curve.measure(run.average.average)[0]}
    for name, probe in run.probes.items():
        scores[name] = curve.measure(probe.average)[0]
    return scores


def main(argv=None):
    def probes(parser):
        parser.add_argument("--rampups", type=fraction_below_one, nargs="*",
                            default=[0.05, 0.02, 0.01],
                            help="half-life ramp-ups to probe (the default rule's is 0.05)")
        parser.add_argument("--decays", type=fraction_below_one, nargs="*", default=[0.999],
                            help="fixed decays to probe (--ema_decay)")
        parser.add_argument("--eval_every_secs", type=positive_float, default=120.0,
                            help="the trainer's quality curve: seconds between evaluations")
    args = seed_parser(__doc__.split("\n")[0], 300, probes)(argv)
    return seed_report(args, "uniform", train_and_score, "bench_moving_average_",
                       print_report, with_curve=True)


def print_report(report):
    runs = list(report["runs"].values())
    print(f"{report['folder']}: stage {report['stage']}, batch {report['batch_size']}, "
          f"{report['steps']} steps, seeds {' '.join(map(str, report['seeds']))}; mean "
          "[min-max] over seeds")
    print(f"{'weights':<32}" + "".join(f"{title:>26}" for title, _ in ROWS)
          + f"{'RMS / raw RMS':>26}")
    for name in runs[0]["scores"]:
        values = [run["scores"][name] for run in runs]
        relative = [v["loudness.rms_ratio"] / run["scores"]["raw"]["loudness.rms_ratio"]
                    for v, run in zip(values, runs)]
        print(f"{name:<32}" + "".join(f"{spread([v[key] for v in values]):>26}"
                                      for _, key in ROWS) + f"{spread(relative):>26}")
    print("\nthe evaluation each candidate score keeps: step (Frechet, spectral dB, RMS ratio)")
    for seed, run in report["runs"].items():
        print_kept(f"seed {seed}", run["curve"])


if __name__ == "__main__":
    sys.exit(run_cli(main))
