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

import contextlib
import json
import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from learning import SEED, spread

import rules
from config import SEEDS
from utils import ArgumentParser, UserError, int_in_range, run_cli

ROWS = (("Frechet", "frechet_mel_distance"), ("RMS ratio", "loudness.rms_ratio"),
        ("spectral dB", "spectrum.distance_db"), ("NDB/K", "ndb.ndb_over_k"))


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
    with contextlib.redirect_stdout(sys.stderr):
        if run_cli(train_progressive_vaegan.main, argv) != 0:
            raise UserError(f"seed {seed}: training stopped before step {args.steps}")
    directory = checkpoints.stage_dir(os.path.join(root, "vaegan"), args.stage)
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
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="a folder of real music")
    parser.add_argument("--stage", type=int_in_range(1, 8), default=3, help="stage trained")
    parser.add_argument("--steps", type=int_in_range(2, 10**7), default=200,
                        help="training steps of each run")
    parser.add_argument("--batch_size", type=int_in_range(1, 4096), default=16)
    parser.add_argument("--seeds", type=SEEDS, nargs="+", default=[0, 1, 2],
                        help="one run per seed")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="train in DIR and keep it (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.folder):
        raise UserError(f"{args.folder} is not a folder: fetch music with bench/fetch_music.py")
    from private_apis import import_tensorflow
    import_tensorflow()
    import evaluate
    import watch
    from dataloader import load_audio

    args.keep_root = args.keep or tempfile.mkdtemp(prefix="bench_vaegan_prior_")
    try:
        audio = load_audio(args.folder, rules.SAMPLING_RATE, log=lambda line: None,
                           cache_dir=os.path.join(args.keep_root, "audio_cache"))
        count = evaluate.default_eval_count(rules.window_length(args.stage))
        # N(0, 1) draws: the trainer's prior, and what the posterior maps from.
        curve = watch.QualityCurve(audio, args.stage, count, SEED, "normal")
        report = {"folder": args.folder, "stage": args.stage, "steps": args.steps,
                  "batch_size": args.batch_size, "seeds": args.seeds, "runs": {}}
        for seed in args.seeds:
            root = os.path.join(args.keep_root, f"seed{seed}")
            saved = os.path.join(root, "scores.json")
            if os.path.exists(saved):
                with open(saved) as f:
                    scores = json.load(f)
            else:
                shutil.rmtree(root, ignore_errors=True)  # a run cut short starts again
                scores = train_and_score(args, seed, root, curve)
                with open(saved, "w") as f:
                    json.dump(scores, f, default=float)
            report["runs"][seed] = scores
    finally:
        if args.keep is None:
            shutil.rmtree(args.keep_root, ignore_errors=True)
    if args.json:
        print(json.dumps(report, default=float))
    else:
        print_report(report)
    return 0


def print_report(report):
    runs = list(report["runs"].values())
    print(f"{report['folder']}: VAE-GAN stage {report['stage']}, batch "
          f"{report['batch_size']}, {report['steps']} steps, seeds "
          f"{' '.join(map(str, report['seeds']))}; mean [min-max] over seeds")
    print(f"{'generator':<30}" + "".join(f"{title:>26}" for title, _ in ROWS))
    for name in runs[0]:
        print(f"{name:<30}" + "".join(f"{spread([run[name][key] for run in runs]):>26}"
                                      for _, key in ROWS))


if __name__ == "__main__":
    sys.exit(run_cli(main))
