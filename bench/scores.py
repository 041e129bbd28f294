"""Which score should decide best/ and the plateau: how do the candidates rank a run's evaluations?

    python bench/scores.py RUN [RUN ...] [--stage 3] [--plateau K,MARGIN,MIN ...] [--every]

Reads the quality curve of each RUN (a --checkpoint_dir of train_progressive.py whose
evaluations logged Eval/frechet_mel_distance, Eval/spectral_distance_db and Eval/rms_ratio,
e.g. the runs bench/moving_average.py --keep DIR leaves in DIR/seedN) and, for each candidate
score of bench/learning.py's CANDIDATES, prints the evaluation it keeps as best/ (step,
Frechet mel distance, linear-frequency spectral distance, RMS ratio) and its Spearman rank
correlation with the spectral distance over the run's evaluations. The spectral distance is
the referee for the log-mel candidates: it reads a different frequency scale and ranks quiet
windows as far from the music. A score that keeps a quiet evaluation (RMS ratio under 0.5)
where a louder one is as close is the fault the issue names. Last, where the default plateau
rule of --grow_to (grow.plateaued), or each --plateau rule, would have ended the run by
rules.quality_score, against the best score it reached by its end.

A run with labels (--condition folders) also logged each label's distance and RMS ratio
(Label/*): there the pooled product is set beside rules.quality_score, the mean of each
label's own product, and every evaluation printed gives each label's RMS ratio, to see
whether a score keeps a step where one label is far too quiet while the pool looks fine.
--every also prints every evaluation with each candidate's score.
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from learning import CANDIDATES, curve_scores, default_plateau, evaluations, measured, print_plateau

import rules
from utils import ArgumentParser, UserError, int_in_range, run_cli

NEEDED = {"Eval/frechet_mel_distance", "Eval/spectral_distance_db", "Eval/rms_ratio"}


def ranks(values):
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    for rank, index in enumerate(order):
        out[index] = float(rank)
    return out


def spearman(a, b):
    """Spearman's rank correlation of two equally long lists (no ties expected)."""
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    mean = (n - 1) / 2
    cov = sum((x - mean) * (y - mean) for x, y in zip(ra, rb))
    var = sum((x - mean) ** 2 for x in ra)
    return cov / var if var else float("nan")


def plateau_rule(text):
    """K,MARGIN,MIN: --plateau_patience, --plateau_margin, --plateau_min_evaluations."""
    import argparse

    try:
        patience, margin, minimum = text.split(",")
        return int(patience), float(margin), int(minimum)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not K,MARGIN,MIN, e.g. 4,0.02,6")


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN", help="--checkpoint_dir of a run")
    parser.add_argument("--stage", type=int_in_range(1, 8), default=3, help="stage read")
    parser.add_argument("--plateau", type=plateau_rule, nargs="+", metavar="K,MARGIN,MIN",
                        help="plateau rules to read the runs with (default: --grow_to's)")
    parser.add_argument("--every", action="store_true",
                        help="also print every evaluation with each candidate's score")
    args = parser.parse_args(argv)
    for run in args.runs:
        if not os.path.isdir(run):
            raise UserError(f"{run} is not a folder: pass the --checkpoint_dir of a run")
    print("the evaluation each score keeps: step, Frechet mel distance, spectral distance (dB), "
          "RMS ratio; and the score's rank correlation with the spectral distance")
    for run in args.runs:
        curve = evaluations(run, args.stage, prefix=("Eval/", "Label/"))
        points = [(step, v) for _, step, v in curve if NEEDED <= set(v)]
        if len(points) < 2:
            print(f"{run}: fewer than two evaluations with {', '.join(sorted(NEEDED))}")
            continue
        last = points[-1]
        print(f"{run}: {len(points)} evaluations, the last at step {last[0]} "
              f"({format_point(last[1])})")
        referee = [v["Eval/spectral_distance_db"] for _, v in points]
        candidates = dict(CANDIDATES)
        if any(tag.startswith("Label/") for _, v in points for tag in v):
            candidates["each label's, mean"] = lambda v: rules.quality_score(measured(v))
        for name, score in candidates.items():
            step, v = min(points, key=lambda p, f=score: f(p[1]))
            rho = spearman([score(v) for _, v in points], referee)
            print(f"  {name:<20} keeps step {step:>5} ({format_point(v)}); rank correlation "
                  f"{rho:+.2f}")
        if args.every:
            for step, v in points:
                print(f"    step {step:>5} ({format_point(v)}): " + ", ".join(
                    f"{name} {score(v):.4g}" for name, score in candidates.items()))
        for rule in args.plateau or [default_plateau()]:
            print_plateau("plateau", curve_scores(curve), rule)
    return 0


def format_point(v):
    each = rules.label_readings(measured(v))
    return (f"{v['Eval/frechet_mel_distance']:.4g}, {v['Eval/spectral_distance_db']:.3g} dB, "
            f"RMS ratio {v['Eval/rms_ratio']:.3g}" + "".join(
                f", {name} {ratio:.3g}" for name, (_, ratio) in each.items()))


if __name__ == "__main__":
    sys.exit(run_cli(main))
