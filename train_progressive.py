"""Train the progressive GAN (report §7.6), preview it or generate from it.

The workflow grows a stage at a time: stage 5 -> frozen 6 -> 6 -> frozen 7 -> 7 ...
    python train_progressive.py --data_dir data/demo --num_blocks 5
    python train_progressive.py --data_dir data/demo --num_blocks 6 --freeze_early_layers
    python train_progressive.py --data_dir data/demo --num_blocks 6
    python train_progressive.py --num_blocks 5 --preview          # beside training
    python train_progressive.py --num_blocks 5 --generate 10
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import session
from utils import MAX_BLOCKS, MIN_BLOCKS, ArgumentParser, UserError, int_in_range


def build_networks(config, dtype, generator_only=False):
    from model_progressive import Discriminator, Generator
    args = {"num_blocks": config["num_blocks"], "channels": config["channels"],
            "smoothing": config["feature_map_smoothing"], "dtype": dtype}
    networks = {"generator": Generator(use_sample_norm=config["use_sample_norm"], **args)}
    if not generator_only:
        networks["discriminator"] = Discriminator(**args)
    return networks


def make_config(args, channels, model="progressive"):
    """What a checkpoint of this run is made of, saved beside it as config.json."""
    return {"model": model, "num_blocks": args.num_blocks, "frozen": args.freeze_early_layers,
            "channels": channels, "feature_map_smoothing": not args.no_feature_map_smoothing,
            "use_sample_norm": args.use_sample_norm, "sampling_rate": args.sampling_rate}


RECIPE = session.Recipe(model="progressive", build_networks=build_networks, config=make_config,
                        checkpoint_root=lambda args: args.checkpoint_dir)


def add_stage_flags(parser):
    """The progressive stage's flags, shared with the VAE-GAN trainer."""
    parser.add_argument("--num_blocks", type=int_in_range(MIN_BLOCKS, MAX_BLOCKS), default=5,
                        help="stage: number of blocks; windows of 2^(4+2N) samples "
                             "(5: 16384 = 1 s, 8: 1048576 = 65 s)")
    parser.add_argument("--freeze_early_layers", action="store_true",
                        help="train only block N and the 1x1 layers (the transition stage "
                             "between N-1 and N); needs N >= 2")
    parser.add_argument("--use_sample_norm", action="store_true",
                        help="sample normalisation after every generator activation")
    parser.add_argument("--no_feature_map_smoothing", action="store_true",
                        help="feature maps 1024/2^b for every block (32, 16, 8, 4 for blocks "
                             "5-8) instead of the smoothed 48, 32, 24, 16")


def parse_args(argv, description):
    parser = ArgumentParser(description=description)
    add_stage_flags(parser)
    session.add_flags(parser)
    args = parser.parse_args(argv)
    if args.freeze_early_layers and args.num_blocks < 2:
        raise UserError("--freeze_early_layers needs --num_blocks 2 or more: stage 1 has no "
                        "earlier blocks to freeze")
    return args


def main(argv=None):
    return session.run(parse_args(argv, __doc__.split("\n")[0]), RECIPE)


if __name__ == "__main__":
    from utils import run_cli
    sys.exit(run_cli(main))
