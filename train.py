"""Train the WaveGAN baseline (report §7.4, §7.5), preview it or generate from it.

One fixed window of 16384 samples (1 s at 16 kHz), no stages; the loader, WGAN-GP step,
checkpoints, summaries, preview and generation are the progressive trainer's (session.py).
    python train.py --data_dir data/demo
    python train.py --data_dir data/demo --phaseshuffle_rad 0     # phase shuffle off
    python train.py --preview                                     # beside training
    python train.py --generate 10
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import session
from recipe import Recipe
from rules import MAX_PHASESHUFFLE_RAD, WAVEGAN_BLOCKS, default_batch_size
from utils import ArgumentParser, int_in_range

NUM_BLOCKS = WAVEGAN_BLOCKS  # the window of progressive stage 5: 16384 samples


def build_networks(config, dtype, generator_only=False):
    from model import Discriminator, Generator
    networks = {"generator": Generator(config["channels"], dtype=dtype)}
    if not generator_only:
        networks["discriminator"] = Discriminator(config["channels"], config["phaseshuffle_rad"],
                                                  dtype=dtype)
    return networks


def make_config(args, channels):
    """What a checkpoint of this run is made of, saved beside it as config.json."""
    return {"model": "wavegan", "num_blocks": NUM_BLOCKS, "frozen": False, "channels": channels,
            "sampling_rate": args.sampling_rate, "phaseshuffle_rad": args.phaseshuffle_rad}


# The original baseline followed each preview slice by window // 2 zeros.
RECIPE = Recipe(model="wavegan", build_networks=build_networks, config=make_config,
                checkpoint_root=lambda args: args.checkpoint_dir, growing=False,
                prior="uniform", preview_gap=lambda window: window // 2)


def make_parser():
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phaseshuffle_rad", type=int_in_range(0, MAX_PHASESHUFFLE_RAD),
                        default=2, help="shift each critic activation by up to this many "
                                        "samples (WaveGAN §3.3); 0 turns phase shuffle off")
    session.add_flags(parser, checkpoint_dir="checkpoints/wavegan",
                      batch_help=str(default_batch_size(NUM_BLOCKS)))
    return parser


def main(argv=None):
    return session.run(make_parser().parse_args(argv), RECIPE)


if __name__ == "__main__":
    from utils import run_cli
    sys.exit(run_cli(main))
