"""Where the training iteration's time goes, by operation type: TensorFlow's profiler records
--iterations iterations of train_progressive.py's step (built as bench/train_step.py builds it,
after its warm-up), and the table sums each type's self time over every thread of the
process, idle time left out. With 2 cores the threads' sum is about twice the wall time.

    python bench/profile_step.py --stage 3 --batch_size 16 --use_mixed_precision_training

It reads the profile with TensorFlow's own converter (the one TensorBoard's profile plugin
calls, a private module of TensorFlow 2.21): if a later TensorFlow moves it, this script says
so and exits 1.
"""

import collections
import glob
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
from train_step import stage_parser, training_run  # puts the project on the path

from rules import default_batch_size
from utils import int_in_range


def op_self_times(logdir):
    """{operation type: (self time in microseconds, occurrences)} of the profile in logdir."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    planes = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    data, ok = plugin.xspace_to_tools_data(planes, "framework_op_stats", {})
    if not ok:
        raise RuntimeError("TensorFlow's profile converter gave no op statistics")
    table = json.loads(data)
    table = table[0] if isinstance(table, list) else table
    columns = [column["id"] for column in table["cols"]]
    totals = collections.defaultdict(lambda: [0.0, 0])
    for row in table["rows"]:
        cells = dict(zip(columns, (cell.get("v") for cell in row["c"])))
        totals[cells["type"]][0] += cells["total_self_time"]
        totals[cells["type"]][1] += int(cells["occurrences"])
    totals.pop("IDLE", None)
    return dict(totals)


def main(argv=None):
    parser = stage_parser("Profile train_progressive.py's training iteration by operation type.")
    parser.add_argument("--iterations", type=int_in_range(1, 100), default=2,
                        help="iterations recorded, after 2 untimed ones")
    parser.add_argument("--top", type=int_in_range(1, 1000), default=20,
                        help="operation types listed")
    args = parser.parse_args(argv)
    batch = args.batch_size or default_batch_size(args.stage)
    run, iterator, policy, _, forms = training_run(args.stage, batch,
                                                   args.use_mixed_precision_training)
    with tempfile.TemporaryDirectory(prefix="bench_profile_") as scratch:
        for _ in range(2):
            np.asarray(run.iteration(iterator)["d_loss"])
        import tensorflow as tf
        logdir = os.path.join(scratch, "profile")
        tf.profiler.experimental.start(logdir)
        for _ in range(args.iterations):
            np.asarray(run.iteration(iterator)["d_loss"])
        tf.profiler.experimental.stop()
        try:
            totals = op_self_times(logdir)
        except (ImportError, AttributeError, RuntimeError) as error:
            print(f"cannot read TensorFlow's profile here: {error}", file=sys.stderr)
            return 1
    busy = sum(microseconds for microseconds, _ in totals.values())
    print(f"stage {args.stage}, batch {batch}, {policy}; {forms}")
    print(f"self time of every thread, per iteration: {busy / 1e3 / args.iterations:.0f} ms")
    print(f"  {'operation type':34s} {'ms / iteration':>14s} {'share':>7s} {'calls':>6s}")
    for name, (microseconds, count) in sorted(totals.items(), key=lambda kv: -kv[1][0])[
            :args.top]:
        print(f"  {name:34s} {microseconds / 1e3 / args.iterations:14.1f} "
              f"{100 * microseconds / busy:6.1f}% {count // args.iterations:6d}")
    return 0


if __name__ == "__main__":
    from utils import run_cli
    sys.exit(run_cli(main))
