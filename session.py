"""The trainers' command line: the flags every trainer shares and the dispatch to training
or to a job that uses a checkpoint (report §7.4 "train.py", appendix B).

A trainer describes only what differs in a recipe.Recipe and hands its parsed flags here;
TensorFlow is imported only once the flags are checked, so that a bad flag is one line.
"""

import argparse
import random
import sys

from conv_forms import CHOICES as CONV_FORMS
from dataloader import add_data_flags
from distribute import DISTRIBUTIONS, check_cluster
from evaluate import EVAL_SAMPLES
from internals import custom_gradients_released, import_tensorflow
from jobs import evaluate_checkpoint, generate, interpolate, preview
from longform import add_walk_flags
from rules import EMA_DECAY, GRAPHS, MAX_AUGMENTATION_LEVEL
from training import train
from utils import (
    UserError,
    float_above,
    fraction_below_one,
    int_in_range,
    non_negative_float,
    positive_float,
)


def add_flags(parser, checkpoint_dir="checkpoints", batch_help="the stage's default"):
    """The flags every trainer has, defaults in --help: training's, then the jobs'."""
    parser.add_argument("--data_dir", default="data",
                        help="folder of training audio, subfolders included")
    parser.add_argument("--checkpoint_dir", default=checkpoint_dir,
                        help="where checkpoints and TensorBoard logs go")
    parser.add_argument("--batch_size", type=int_in_range(1, 1 << 20), default=None,
                        help=f"windows per batch (default: {batch_help}); lower it on "
                             f"out-of-memory errors")
    parser.add_argument("--use_mixed_precision_training", action="store_true",
                        help="float32 variables with float16 compute and a fixed loss scale "
                             "of 32 on a GPU, bfloat16 compute on a CPU")
    parser.add_argument("--distribution", choices=DISTRIBUTIONS, default="none",
                        help="training only. none: one device; mirrored: every GPU of this "
                             "machine (without GPUs, every logical CPU device); multi_worker: "
                             "the machines of the TF_CONFIG environment variable "
                             "(docs/scaling.md). "
                             "--batch_size is the global batch, split across replicas")
    parser.add_argument("--conv_forms", choices=CONV_FORMS, default=CONV_FORMS[0],
                        help="how the kernel-25 convolutions run: auto times the framework's "
                             "convolution and a matrix product for each shape on this device "
                             "at start-up (cached) and uses the faster; framework or matmul "
                             "forces one")
    parser.add_argument("--conv_forms_cache", metavar="FILE", default=None,
                        help="where --conv_forms auto keeps its timings (default: "
                             "<checkpoint_dir>/conv_forms.json)")
    parser.add_argument("--xla", action="store_true",
                        help="training only: compile each update's forward pass, gradient "
                             "penalty and gradients with XLA (for GPUs; slower on a CPU, see "
                             "docs/scaling.md)")
    graph_help = ("training only: what one traced graph holds. iteration: the whole iteration "
                  "(5 critic updates and the generator's), the fastest step; update: one "
                  "update, traced once and called for each, so the trainer starts sooner "
                  "(for short runs and tests)")
    parser.add_argument("--graph", choices=GRAPHS, default=GRAPHS[0], help=graph_help)
    parser.add_argument("--augmentation_level", type=int_in_range(0, MAX_AUGMENTATION_LEVEL),
                        default=0, help="also train on windows offset by k*window/10, k=1..L; "
                                        "for small datasets")
    add_data_flags(parser)
    add_watch_flags(parser)
    parser.add_argument("--seed", type=int_in_range(0, 2**31 - 1), default=None,
                        help="seed for initial weights, data order, latents and generation "
                             "(default: random, printed)")
    parser.add_argument("--max_steps", type=int_in_range(1, sys.maxsize), default=None,
                        help="stop when the step (generator updates) reaches this (default: "
                             "train until Ctrl+C)")
    parser.add_argument("--save_every_secs", type=positive_float, default=300.0,
                        help="seconds between checkpoints")
    parser.add_argument("--summary_every_secs", type=positive_float, default=120.0,
                        help="seconds between TensorBoard summaries")
    parser.add_argument("--log_every_secs", type=positive_float, default=5.0,
                        help="seconds between console progress lines")
    add_job_flags(parser)


def add_watch_flags(parser):
    """The flags of training that watches itself: the moving average, the quality curve and
    the collapse watchdog (README "Is my training going well?")."""
    parser.add_argument("--ema_decay", type=fraction_below_one, default=EMA_DECAY,
                        help="decay of the moving-average generator that preview, generation "
                             "and evaluation use; 0 turns it off")
    parser.add_argument("--eval_every_secs", type=non_negative_float, default=600.0,
                        help="seconds between evaluations of the moving-average generator "
                             "against real windows (TensorBoard Eval/*); they keep the best "
                             "checkpoint in <stage folder>/best/; 0 turns them off")
    parser.add_argument("--on_collapse", choices=("rollback", "stop", "warn"),
                        default="rollback", help="what a collapse does: roll back to best/ "
                        "with a new data order and latents, stop with exit code 3, or only "
                        "say so")
    parser.add_argument("--collapse_rms_ratio", type=non_negative_float, default=0.05,
                        help="collapsed when the raw generator's RMS falls below this share "
                             "of the real RMS after having been audible (silence)")
    parser.add_argument("--collapse_full_scale", type=non_negative_float, default=0.5,
                        help="collapsed when more than this share of generated samples is at "
                             "full scale")
    parser.add_argument("--collapse_frechet_factor", type=float_above(1.0), default=3.0,
                        help="collapsed when the Frechet mel distance is over this many times "
                             "the best")
    parser.add_argument("--collapse_patience", type=int_in_range(1, 1000), default=3,
                        help="observations in a row (evaluations, or summaries for silence and "
                             "full scale) before a collapse is declared")
    parser.add_argument("--rollback_lr_factor", type=positive_float, default=1.0,
                        help="learning rates are multiplied by this at each rollback")
    parser.add_argument("--max_rollbacks", type=int_in_range(0, 1000), default=3,
                        help="after this many rollbacks a collapse stops training (exit 3)")
    # Test-only: zero the generator's output layer at this step, once, to induce a collapse.
    parser.add_argument("--induce_collapse_at_step", type=int_in_range(1, sys.maxsize),
                        default=None, help=argparse.SUPPRESS)


def add_job_flags(parser):
    """The flags of the jobs that use a checkpoint instead of training."""
    parser.add_argument("--preview", action="store_true",
                        help="instead of training, write 5 fixed-latent slices for every new "
                             "checkpoint to <checkpoint folder>/preview/ until Ctrl+C")
    parser.add_argument("--once", action="store_true",
                        help="with --preview: preview the latest checkpoint and exit")
    add_evaluate_flags(parser)
    parser.add_argument("--generate", type=int_in_range(1, 1_000_000), default=None, metavar="N",
                        help="instead of training, write N generated WAV files from the latest "
                             "checkpoint")
    parser.add_argument("--export", metavar="DIR", default=None,
                        help="instead of training, write the generator as a SavedModel and "
                             "LiteRT models with model.json to DIR, for play.py or any LiteRT "
                             "runtime")
    parser.add_argument("--checkpoint", default="latest", metavar="latest|best|PATH",
                        help="with a job: the stage's latest checkpoint, its best (kept by the "
                             "evaluations during training) or a checkpoint path")
    parser.add_argument("--raw_generator", action="store_true",
                        help="with a job: the trained weights instead of the moving average")
    add_walk_flags(parser, "--interpolate")
    parser.add_argument("--interpolate", type=int_in_range(0, 2**31 - 1), nargs=2, default=None,
                        metavar=("A", "B"), help="instead of training, write one file that "
                        "morphs from the latent of seed A to that of seed B")
    parser.add_argument("--steps", type=int_in_range(2, 1_000_000), default=None,
                        help="with --interpolate: windows from A to B (default: 8)")


def add_evaluate_flags(parser):
    parser.add_argument("--evaluate", action="store_true",
                        help="instead of training, compare windows generated by the latest "
                             "checkpoint with windows of --data_dir (evaluate.py's metrics); "
                             "writes <checkpoint folder>/evaluation/<step>/")
    parser.add_argument("--num_eval_samples", type=int_in_range(1, 1 << 20), default=None,
                        metavar="M", help=f"generated and real windows compared by "
                                          f"--evaluate and by the evaluations during "
                                          f"training (default: {EVAL_SAMPLES}, fewer at "
                                          f"stages 6-8)")


def check_flags(args):
    if args.distribution == "multi_worker":
        if args.seed is None:
            raise UserError("--distribution multi_worker needs --seed, the same on every "
                            "worker (they draw the same latents and initial weights)")
        check_cluster()  # before any data is read
    if args.once and not args.preview:
        raise UserError("--once goes with --preview: add --preview, or drop --once")
    jobs = [flag for flag, on in (("--preview", args.preview), ("--generate", args.generate),
                                  ("--interpolate", args.interpolate),
                                  ("--evaluate", args.evaluate), ("--export", args.export))
            if on]
    if len(jobs) > 1:
        raise UserError(f"{' and '.join(jobs)} are separate jobs: use one of them")
    job = jobs != []
    if args.num_eval_samples is not None and job and not args.evaluate:
        raise UserError("--num_eval_samples goes with training or --evaluate")
    if not job and (args.checkpoint != "latest" or args.raw_generator):
        raise UserError("--checkpoint and --raw_generator go with --preview, --generate, "
                        "--interpolate, --evaluate or --export")
    if args.duration is not None and not args.generate:
        raise UserError("--duration goes with --generate: add --generate N")
    if args.steps is not None and not args.interpolate:
        raise UserError("--steps goes with --interpolate: add --interpolate A B")
    if args.crossfade is not None and args.duration is None and not args.interpolate:
        raise UserError("--crossfade goes with --generate N --duration S or --interpolate A B")


def run(args, recipe):
    """Dispatch to generation, interpolation, evaluation, preview or training; returns the
    exit code."""
    check_flags(args)
    if args.seed is None and not args.interpolate:  # interpolation's seeds are A and B
        args.seed = random.randrange(2**31)
        print(f"seed {args.seed} (pass --seed {args.seed} to repeat this run)")
    import_tensorflow()
    if args.generate:
        return generate(args, recipe)
    if args.interpolate:
        return interpolate(args, recipe)
    if args.evaluate:
        return evaluate_checkpoint(args, recipe)
    if args.export:
        from export import export_checkpoint
        return export_checkpoint(args, recipe)
    if args.preview:
        return preview(args, recipe)
    with custom_gradients_released():
        return train(args, recipe)
