"""Train the progressive GAN (report §7.6), preview it or generate from it.

The workflow grows a stage at a time: stage 5 -> frozen 6 -> 6 -> frozen 7 -> 7 ...
    python train_progressive.py --data_dir data/demo --num_blocks 5
    python train_progressive.py --data_dir data/demo --num_blocks 6 --freeze_early_layers
    python train_progressive.py --data_dir data/demo --num_blocks 6
    python train_progressive.py --num_blocks 5 --preview          # beside training
    python train_progressive.py --num_blocks 5 --generate 10
The report's experimental variants (§7.7) are --model_variant asymmetric, extended or pggan;
each keeps its stage folders under <checkpoint_dir>/<variant>/:
    python train_progressive.py --data_dir data/demo --num_blocks 1 --model_variant extended
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import session
from checkpoints import check_config, stage_dir
from recipe import Recipe
from rules import MAX_BLOCKS, MIN_BLOCKS, STANDARD, VARIANTS
from utils import ArgumentParser, UserError, int_in_range


def build_networks(config, dtype, generator_only=False):
    from checkpoints import config_value
    from model_progressive import Discriminator, Generator
    args = {"num_blocks": config["num_blocks"], "channels": config["channels"],
            "smoothing": config["feature_map_smoothing"], "dtype": dtype,
            "variant": config_value(config, "model_variant")}
    networks = {"generator": Generator(use_sample_norm=config["use_sample_norm"], **args)}
    if not generator_only:
        networks["discriminator"] = Discriminator(**args)
    return networks


def make_config(args, channels, model="progressive"):
    """What a checkpoint of this run is made of, saved beside it as config.json."""
    return {"model": model, "num_blocks": args.num_blocks, "frozen": args.freeze_early_layers,
            "channels": channels, "feature_map_smoothing": not args.no_feature_map_smoothing,
            "use_sample_norm": args.use_sample_norm, "sampling_rate": args.sampling_rate,
            "model_variant": args.model_variant}


def checkpoint_root(args):
    """checkpoints/ for the standard model (where runs made before variants are), and
    checkpoints/<variant>/ for the others. A stage folder of another variant is refused."""
    root = args.checkpoint_dir
    if args.model_variant != STANDARD:
        root = os.path.join(root, args.model_variant)
    check_config(stage_dir(root, args.num_blocks, args.freeze_early_layers),
                 {"model_variant": args.model_variant},
                 fix="a variant's stages live in <checkpoint_dir>/<variant>/, the standard "
                     "model's in <checkpoint_dir>/: use another --checkpoint_dir")
    return root


RECIPE = Recipe(model="progressive", build_networks=build_networks, config=make_config,
                checkpoint_root=checkpoint_root)


STAGE_SWITCHES = {
    "--freeze_early_layers": "the transition stage between N-1 and N: blocks 1..N-1 stay as "
                             "stage N-1 left them, block N, the 1x1 layers and the dense "
                             "layers train; needs N >= 2",
    "--use_sample_norm": "sample normalisation after every generator activation",
    "--no_feature_map_smoothing": "feature maps 1024/2^b for every block (32, 16, 8, 4 for "
                                  "blocks 5-8) instead of the smoothed 48, 32, 24, 16",
}


def add_stage_flags(parser):
    """The progressive stage's flags, shared with the VAE-GAN trainer."""
    parser.add_argument("--num_blocks", type=int_in_range(MIN_BLOCKS, MAX_BLOCKS), default=5,
                        help="stage: number of blocks; windows of 2^(4+2N) samples "
                             "(5: 16384 = 1 s, 8: 1048576 = 65 s)")
    for switch, text in STAGE_SWITCHES.items():
        parser.add_argument(switch, action="store_true", help=text)


def make_parser(description, variants=False):
    """The stage's and session's flags; --model_variant only where variants is true (the
    VAE-GAN trainer shares these flags and is standard only)."""
    parser = ArgumentParser(description=description)
    add_stage_flags(parser)
    if variants:
        parser.add_argument("--model_variant", choices=tuple(VARIANTS), default=STANDARD,
                            help="the main model or one of the report's experimental "
                                 "variants (§7.7): asymmetric adds a stride-1 convolution to "
                                 "every discriminator block, extended to every block of both "
                                 "networks, pggan adds PGGAN's equalised learning rate, sample "
                                 "normalisation and minibatch standard deviation")
    else:
        parser.set_defaults(model_variant=STANDARD)
    session.add_flags(parser)
    return parser


def parse_args(argv, description, variants=False):
    """The flags of argv, checked together."""
    args = make_parser(description, variants).parse_args(argv)
    if args.freeze_early_layers and args.num_blocks < 2:
        raise UserError("--freeze_early_layers needs --num_blocks 2 or more: stage 1 has no "
                        "earlier blocks to freeze")
    sample_norm = VARIANTS[args.model_variant].sample_norm
    if args.use_sample_norm and sample_norm is False:
        raise UserError(f"--use_sample_norm is not offered with --model_variant "
                        f"{args.model_variant} (nor was it in the original): drop one of them")
    if sample_norm:
        args.use_sample_norm = True  # always on in the pggan variant
    return args


DESCRIPTION = __doc__.split("\n")[0]


def main(argv=None):
    return session.run(parse_args(argv, DESCRIPTION, variants=True), RECIPE)


if __name__ == "__main__":
    from utils import run_cli
    sys.exit(run_cli(main))
