"""Small collections: does the critic's adaptive augmentation help, and what does fine-tuning
from another run buy?

    python bench/small_collections.py FOLDER --minutes 10 --keep DIR [--steps 150] [--stage 3]
            [--batch_size 16] [--seeds 0 1 2] [--validation_fraction 0.2] [--plot PNG]
        Draws a seeded collection of whole files of FOLDER about --minutes long (symlinks in
        DIR/collection; --collection_seed), then trains on it side by side
        --critic_augment none and --critic_augment ada, both with the same validation split,
        --steps steps each, a seed's two runs at once, one on each CPU core (bench/learning.py's
        side by side, each run ending by itself at --steps, where it is evaluated).

    python bench/small_collections.py FOLDER --minutes 10 --source OTHER --keep DIR
            [--source_steps 300] ...
        Fine-tuning: first one run on OTHER (music of another kind, e.g. another package of
        bench/fetch_music.py) for --source_steps at --stage, then on the collection side by
        side: from scratch, and --init_from that run's stage folder.

For every run the trainer's own quality curve is read from TensorBoard: the Frechet mel
distance to the held-out files' windows (validation) and to training windows, the share of
generated windows that copy a training window, the RMS ratio and the spectral distance (each
evaluation of the moving average, or of the raw weights where they measured better). The
table gives each at the last step (mean [min-max] over the seeds) and the best validation
score of the run; --plot draws the curves against the step. At the end the raw weights and
the average are also scored against windows of the whole collection, for their loudness and
spectral centroid: an augmentation that leaked would shift them. A training distance that falls
while the validation distance stays or rises is overfitting.

FOLDER and OTHER are real music, e.g. ~/music/supertux and ~/music/hedgewars of
bench/fetch_music.py (the same channels and stage are needed to fine-tune).
"""

import argparse
import os
import random
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from learning import CANDIDATES, Arm, arm_run, evaluations, side_by_side, spread, train_to

import utils
from config import SEEDS
from utils import ArgumentParser, UserError, int_in_range, read_json, run_cli, write_json

# The last evaluation's columns: (title, TensorBoard tag).
COLUMNS = (("validation Frechet", "Eval/frechet_mel_distance"),
           ("training Frechet", "Eval/train_frechet_mel_distance"),
           ("copies", "Eval/memorisation_fraction"), ("RMS ratio", "Eval/rms_ratio"),
           ("spectral dB", "Eval/spectral_distance_db"))


def make_collection(folder, minutes, seed, out):
    """A folder of symlinks to whole files of `folder`, drawn in a seeded order until they
    last `minutes` (and are two or more); recorded in <out>.json beside the folder (in it, the
    trainer would note a file that is no audio), and reused when it is there."""
    import soundfile as sf

    from dataloader import list_audio_files

    record = out.rstrip(os.sep) + ".json"
    chosen = read_json(record)
    if chosen is None or (chosen["folder"], chosen["minutes"], chosen["seed"]) != (
            os.path.abspath(folder), minutes, seed):
        if chosen is not None:
            raise UserError(f"{out} holds another collection ({chosen['minutes']:g} min of "
                            f"{chosen['folder']}, seed {chosen['seed']}): give another --keep")
        files = list_audio_files(folder)[0]
        random.Random(seed).shuffle(files)
        picked, seconds = [], 0.0
        for path in files:
            if seconds >= minutes * 60 and len(picked) >= 2:  # two: one to hold out
                break
            picked.append(os.path.abspath(path))
            seconds += sf.info(path).duration
        if seconds < minutes * 60:
            raise UserError(f"{folder} holds {seconds / 60:.1f} min of audio, less than "
                            f"--minutes {minutes:g}")
        chosen = {"folder": os.path.abspath(folder), "minutes": minutes, "seed": seed,
                  "seconds": seconds, "files": picked}
        os.makedirs(out, exist_ok=True)
        for number, path in enumerate(picked):
            os.symlink(path, os.path.join(out, f"{number:03d}_{os.path.basename(path)}"))
        write_json(record, chosen)
    return chosen


def train_source(args, root):
    """One run on --source for --source_steps at --stage: the stage folder to fine-tune from."""
    import checkpoints

    source = os.path.join(root, "source")
    train_to(args.source, source, args.stage, args.source_steps, args.batch_size)
    return checkpoints.stage_dir(source, args.stage)


def arms(args, root):
    """The two recipes compared: augmentation or not, or fine-tuned or from scratch."""
    shared = ("--num_blocks", str(args.stage), "--batch_size", str(args.batch_size),
              "--max_steps", str(args.steps), "--validation_fraction",
              str(args.validation_fraction), "--eval_every_secs", str(args.eval_every_secs))
    if args.source is None:
        return [Arm("none", ".", shared + ("--critic_augment", "none")),
                Arm("ada", ".", shared + ("--critic_augment", "ada"))]
    return [Arm("scratch", ".", shared),
            Arm("fine-tuned", ".", shared + ("--init_from", train_source(args, root)))]


def compare(args):
    root = os.path.abspath(args.keep)
    collection = os.path.join(root, "collection")
    chosen = make_collection(args.folder, args.minutes, args.collection_seed, collection)
    print(f"collection: {len(chosen['files'])} files, {chosen['seconds'] / 60:.1f} min of "
          f"{chosen['folder']} (seed {args.collection_seed})", file=sys.stderr, flush=True)
    compared = arms(args, root)
    # Each run stops itself at --steps: the CPU budget is only there to run a seed's arms at
    # once, a core each (bench/learning.py's budget mode).
    report = side_by_side(argparse.Namespace(
        folder=collection, stage=args.stage, steps=args.steps, minutes=1e9, core_each=True,
        batch_size=args.batch_size, seeds=args.seeds, arm=compared, keep=root, plot=None))
    report["ada"] = {arm.label: [evaluations(arm_run(root, arm, seed), args.stage, "ADA/")
                                 for seed in args.seeds] for arm in compared}
    report.update(collection=chosen, source=args.source, source_steps=args.source_steps,
                  validation_fraction=args.validation_fraction)
    if args.plot:
        plot(report, args.plot)
    return report


score = CANDIDATES["Frechet x loudness"]  # rules.quality_score of an evaluation's tags


def print_report(report):
    chosen = report["collection"]
    print(f"{len(chosen['files'])} files, {chosen['seconds'] / 60:.1f} min of "
          f"{chosen['folder']}, {100 * report['validation_fraction']:g} % of the files held out"
          + (f"; fine-tuned from {report['source_steps']} steps on {report['source']}"
             if report["source"] else "")
          + f"; stage {report['stage']}, batch {report['batch_size']}, {report['steps']} steps, "
          f"seeds {' '.join(map(str, report['seeds']))}: mean [min-max] over the seeds")
    print("\nat the last step: " + ", ".join(title for title, _ in COLUMNS)
          + ", quality score (validation Frechet x loudness)")
    for label, curves in report["curves"].items():
        last = [curve[-1][2] for curve in curves if curve]
        print(f"  {label:<11}" + "; ".join(
            f"{title} {spread([v.get(tag) for v in last])}" for title, tag in COLUMNS)
            + f"; score {spread([score(v) for v in last])}")
    print("\nthe best quality score of each run (what best/ keeps), per seed: step (score)")
    for label, curves in report["curves"].items():
        kept = [min(((step, score(v)) for _, step, v in curve), key=lambda p: p[1])
                for curve in curves if curve]
        print(f"  {label:<11}" + ", ".join(f"{step} ({value:.4g})" for step, value in kept))
    print("\nthe generator's loudness and spectral centroid against all of the collection's "
          "windows, at the last step (an augmentation that leaked would shift them)")
    for label, sets in report["scores"].items():
        for name, measured in sets.items():
            if label == "references" or not any(measured):
                continue
            print(f"  {label:<11}{name:<12} RMS ratio "
                  f"{spread([m.get('loudness.rms_ratio') for m in measured])}; centroid "
                  f"{spread([m.get('spectrum.generated_centroid_hz') for m in measured])} Hz "
                  f"(real {spread([m.get('spectrum.real_centroid_hz') for m in measured])} Hz)")
    for label, runs in report["ada"].items():
        ends = [run[-1][2].get("ADA/p") for run in runs if run]
        heuristic = [v["ADA/r_v"] for run in runs for _, _, v in run if "ADA/r_v" in v]
        if any(p is not None for p in ends):
            print(f"\n{label}: the augmentation's p at the last step: {spread(ends)}; its "
                  f"overfitting heuristic r_v over the runs: {spread(heuristic)} "
                  f"({len(heuristic)} readings)")


def plot(report, path):
    """The curves against the step: validation and training distance, copies, RMS ratio; a
    colour per arm, a line per seed."""
    from pictures import pyplot
    plt = pyplot()
    panels = (COLUMNS[0], COLUMNS[1], COLUMNS[3], COLUMNS[2])
    fig, axes = plt.subplots(1, len(panels), figsize=(18, 4.5))
    for colour, (label, curves) in zip(("tab:blue", "tab:orange"), report["curves"].items()):
        for number, points in enumerate(curves):
            for ax, (_, tag) in zip(axes, panels):
                kept = [(step, v[tag]) for _, step, v in points if tag in v]
                ax.plot([s for s, _ in kept], [y for _, y in kept], color=colour, linewidth=1,
                        marker=".", markersize=4, label=label if number == 0 else None)
    for number, (ax, (title, _)) in enumerate(zip(axes, panels)):
        ax.set_title(f"stage {report['stage']}: {title}")
        ax.set_xlabel("step")
        ax.set_yscale("log" if number < 2 else "linear")  # the two distances
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a folder of real music to draw the collection from")
    parser.add_argument("--minutes", type=utils.positive_float, default=10.0,
                        help="how long the collection lasts (whole files, at least this)")
    parser.add_argument("--collection_seed", type=SEEDS, default=0,
                        help="which files the collection draws")
    parser.add_argument("--stage", type=int_in_range(1, 8), default=3, help="stage trained")
    parser.add_argument("--steps", type=int_in_range(2, 10**7), default=150,
                        help="training steps of each run")
    parser.add_argument("--batch_size", type=int_in_range(1, 4096), default=16)
    parser.add_argument("--seeds", type=SEEDS, nargs="+", default=[0, 1, 2],
                        help="one run per seed and recipe")
    parser.add_argument("--validation_fraction", type=utils.fraction_below_one, default=0.2,
                        help="the share of the collection's files held out")
    parser.add_argument("--eval_every_secs", type=utils.positive_float, default=120.0,
                        help="seconds between the quality curve's evaluations")
    parser.add_argument("--source", metavar="OTHER", default=None,
                        help="compare fine-tuning from a run on OTHER with training from "
                             "scratch, instead of the augmentation")
    parser.add_argument("--source_steps", type=int_in_range(1, 10**7), default=300,
                        help="with --source: the steps of the run fine-tuned from")
    parser.add_argument("--keep", metavar="DIR", required=True,
                        help="the collection and the runs (a comparison stopped half-way goes "
                             "on from what is there, but for a fine-tuned run stopped half-way: "
                             "remove its folder, runs/fine-tuned/seedN)")
    parser.add_argument("--plot", metavar="PNG", default=None, help="draw the curves")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    for folder in (args.folder, args.source):
        if folder is not None and not os.path.isdir(folder):
            raise UserError(f"{folder} is not a folder: fetch music with bench/fetch_music.py")
    from private_apis import import_tensorflow
    import_tensorflow()
    report = compare(args)
    if args.json:
        import json
        print(json.dumps(report, default=float))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
