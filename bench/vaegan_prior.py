"""Are the VAE-GAN's samples as loud as what it learned: its prior N(0, 1) or --prior posterior?

    python bench/vaegan_prior.py FOLDER [--stage 3] [--steps 200] [--batch_size 16]
            [--seeds 0 1 2] [--keep DIR] [--json]

Trains train_progressive_vaegan.py (in this process, the default recipe) on FOLDER to
--steps, once per seed, then scores its last checkpoint four ways against the same seeded real
windows: the moving average and the raw weights, each fed from the trainer's prior N(0, 1) and
from the aggregate posterior (a Gaussian fitted to the encoder's means over training windows,
saved with the checkpoint; what --prior posterior plays). Prints each metric's mean [min-max]
over the seeds. The issue's question: the samples of N(0, 1) are about 3x too quiet on real
music; is the posterior's loudness near the real one (RMS ratio near 1), at a Frechet distance
no worse?

FOLDER is real music, e.g. ~/music/freedroidrpg from bench/fetch_music.py. With --keep DIR
the runs and their scores stay in DIR, and a seed already scored there is not trained again.
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from learning import SEED_ROWS as ROWS
from learning import seed_parser, seed_report, spread, train_in_process

from utils import run_cli


def train_and_score(args, seed, root, curve):
    """Train one seed; {"average, prior" ...: metrics} of its last checkpoint."""
    from types import SimpleNamespace

    import checkpoints
    import generation
    import train_progressive_vaegan

    argv = ["--data_dir", args.folder, "--checkpoint_dir", root, "--num_blocks",
            str(args.stage), "--batch_size", str(args.batch_size), "--max_steps",
            str(args.steps), "--seed", str(seed), "--use_mixed_precision_training",
            "--save_every_secs", "1e9", "--log_every_secs", "60", "--eval_every_secs", "0",
            "--audio_cache", os.path.join(args.keep_root, "audio_cache")]
    directory = checkpoints.stage_dir(os.path.join(root, "vaegan"), args.stage)
    train_in_process(train_progressive_vaegan.main, argv, args.steps, f"seed {seed}")
    path = checkpoints.latest_checkpoint(directory)
    scores = {}
    for raw in (False, True):
        for prior in ("trainer", "posterior"):
            job = SimpleNamespace(raw_generator=raw, prior=prior)
            generator, *_ = generation.job_generator(directory, train_progressive_vaegan.RECIPE,
                                                     path, job)
            name = f"{'raw weights' if raw else 'average'}, {prior} prior"
            scores[name] = curve.measure(generator)[0]
    return scores


def main(argv=None):
    args = seed_parser(__doc__.split("\n")[0], 200)(argv)
    # N(0, 1) draws: the trainer's prior, and what the posterior maps from.
    return seed_report(args, "normal", train_and_score, "bench_vaegan_prior_", print_report)


def print_report(report):
    runs = [run["scores"] for run in report["runs"].values()]
    print(f"{report['folder']}: VAE-GAN stage {report['stage']}, batch "
          f"{report['batch_size']}, {report['steps']} steps, seeds "
          f"{' '.join(map(str, report['seeds']))}; mean [min-max] over seeds")
    print(f"{'generator':<30}" + "".join(f"{title:>26}" for title, _ in ROWS))
    for name in runs[0]:
        print(f"{name:<30}" + "".join(f"{spread([run[name][key] for run in runs]):>26}"
                                      for _, key in ROWS))


if __name__ == "__main__":
    sys.exit(run_cli(main))
