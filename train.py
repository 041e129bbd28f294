"""Train the WaveGAN baseline (report §7.4, §7.5), preview it or generate from it.

One fixed window of 16384 samples (1 s at 16 kHz), no stages; the loader, training
iteration, checkpoints, summaries, preview and generation are the progressive trainer's
(cli.py).
    python train.py --data_dir data/demo
    python train.py --data_dir data/demo --phaseshuffle_rad 0     # phase shuffle off
    python train.py --preview                                     # beside training
    python train.py --generate 10
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cli
from rules import WAVEGAN_BLOCKS
from runs import Recipe


def build_networks(config, dtype, generator_only=False):
    from model import Discriminator, Generator
    networks = {"generator": Generator(config["channels"], dtype=dtype)}
    if not generator_only:
        networks["discriminator"] = Discriminator(config["channels"], config["phaseshuffle_rad"],
                                                  dtype=dtype)
    return networks


def make_config(model, sampling_rate, channels, labels=()):
    """What a checkpoint of this run is made of, saved beside it as config.json."""
    return {"model": "wavegan", "num_blocks": WAVEGAN_BLOCKS, "frozen": False,
            "channels": channels, "sampling_rate": sampling_rate,
            "phaseshuffle_rad": model.phaseshuffle_rad}


# Its one window is progressive stage 5's (WAVEGAN_BLOCKS), its checkpoints in the run's
# folder; the original baseline followed each preview slice by window // 2 zeros.
RECIPE = Recipe(model="wavegan", description=__doc__.split("\n")[0],
                build_networks=build_networks, make_config=make_config,
                checkpoint_root=lambda checkpoint_dir, model: checkpoint_dir,
                model_flags=("phaseshuffle_rad",),
                defaults={"checkpoint_dir": "checkpoints/wavegan", "num_blocks": WAVEGAN_BLOCKS},
                growing=False, preview_gap=lambda window: window // 2)


def main(argv=None):
    return cli.main(RECIPE, argv)


if __name__ == "__main__":
    from utils import run_cli
    sys.exit(run_cli(main))
