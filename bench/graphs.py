"""--graph iteration against --graph update, in one process: the first iteration (tracing and
graph optimisation included) and later iterations, alternately timed.

It builds train_progressive.py's run with --graph update (runs.build_run, as
bench/train_step.py) and, beside its three per-update functions, one function of the whole
iteration made of the same updates (what --graph iteration traces), so both share the networks,
optimisers and batches. The first call of each is timed once (the per-update one first), then
--iterations calls of each, alternating which goes first.

    python bench/graphs.py --stage 3 --batch_size 16
    python bench/graphs.py --stage 3 --batch_size 16 --use_mixed_precision_training
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import (  # puts the project on the path
    stage_parser,
    time_alternately,
    time_calls,
    training_run,
)

from rules import GRAPHS, default_batch_size
from utils import int_in_range


def main(argv=None):
    parser = stage_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int_in_range(2, 1000), default=8,
                        help="timed later iterations of each")
    args = parser.parse_args(argv)
    batch = args.batch_size or default_batch_size(args.stage)
    run, iterator, policy, _, forms = training_run(
        args.stage, batch, args.use_mixed_precision_training, graph=GRAPHS[1])
    gan = run.iteration
    whole = gan.iteration_graph()
    calls = {"update": lambda: gan(iterator)["d_loss"],
             "iteration": lambda: whole(iterator)["d_loss"]}
    first = {name: round(time_calls(calls[name], 1), 3) for name in ("update", "iteration")}
    median = {name: round(seconds, 3)
              for name, seconds in time_alternately(calls, args.iterations).items()}
    print(f"stage {args.stage}, batch {batch}, {policy}; {forms}")
    print(json.dumps({"first_iteration_seconds": first, "later_iteration_seconds": median,
                      "later_update_over_iteration": round(median["update"] /
                                                           median["iteration"], 3)}))
    return 0


if __name__ == "__main__":
    from utils import run_cli
    sys.exit(run_cli(main))
