"""Benchmark the pictures of an image summary: seconds to draw the four pictures
(pictures.render_plots, which training writes to TensorBoard every --summary_every_secs) of
one random window of each stage, the median of --repeats drawings after one warm-up.

    python bench/summary_pictures.py                     # stages 1-8, stereo
    python bench/summary_pictures.py --stages 7 8 --channels 1 --json
"""

import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

import pictures
from rules import MAX_BLOCKS, MIN_BLOCKS, SAMPLING_RATE, window_length
from utils import ArgumentParser, int_in_range


def picture_seconds(stage, channels, seed=0):
    """Seconds to draw the four pictures of one real and one generated window of the stage
    (uniform noise: the drawing's cost does not depend on the values)."""
    rng = np.random.default_rng(seed)
    real, generated = (rng.uniform(-1, 1, (2, window_length(stage), channels))
                       .astype(np.float32) for _ in range(2))
    start = time.perf_counter()
    pictures.render_plots(real, generated, SAMPLING_RATE)
    return time.perf_counter() - start


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", type=int_in_range(MIN_BLOCKS, MAX_BLOCKS), nargs="+",
                        default=list(range(MIN_BLOCKS, MAX_BLOCKS + 1)),
                        help="stages to draw a window of (default: 1-8)")
    parser.add_argument("--channels", type=int_in_range(1, 2), default=2,
                        help="channels of the windows (default: 2)")
    parser.add_argument("--repeats", type=int_in_range(1, 100), default=3,
                        help="drawings timed per stage, the median reported (default: 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    picture_seconds(MIN_BLOCKS, args.channels)  # warm-up: imports matplotlib, caches fonts
    result = {stage: round(statistics.median(picture_seconds(stage, args.channels)
                                             for _ in range(args.repeats)), 3)
              for stage in args.stages}
    if args.json:
        print(json.dumps({"channels": args.channels, "seconds_by_stage": result}))
        return 0
    for stage, seconds in result.items():
        print(f"stage {stage} ({window_length(stage)} samples, {args.channels} channel(s)): "
              f"the four pictures in {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
