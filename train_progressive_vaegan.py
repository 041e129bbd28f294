"""Train the progressive VAE-GAN (report §7.3, §7.7), preview it or generate from it.

The progressive GAN with an encoder that gives the generator its latent from real audio. Same
flags, stages and workflow as train_progressive.py; its checkpoints go to
<checkpoint_dir>/vaegan/stage_0000N, apart from the progressive GAN's:
    python train_progressive_vaegan.py --data_dir data/demo --num_blocks 5
    python train_progressive_vaegan.py --data_dir data/demo --num_blocks 6 --freeze_early_layers
    python train_progressive_vaegan.py --data_dir data/demo --num_blocks 6
    python train_progressive_vaegan.py --num_blocks 5 --preview       # beside training
    python train_progressive_vaegan.py --num_blocks 5 --generate 10
Preview and generation draw z from N(0, 1), the prior the encoder is trained towards, or with
--prior posterior from a Gaussian fitted to where the encoder puts the training windows:
    python train_progressive_vaegan.py --num_blocks 5 --generate 10 --prior posterior
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cli
import train_progressive
from checkpoints import config_value
from runs import Recipe


def build_networks(config, dtype, generator_only=False):
    networks = train_progressive.build_networks(config, dtype, generator_only)
    if not generator_only:
        from model_vaegan import Encoder
        networks["encoder"] = Encoder(config["num_blocks"], config["channels"],
                                      config["feature_map_smoothing"], dtype,
                                      config_value(config, "feature_map_divisor"))
    return networks


def make_config(model, sampling_rate, channels, labels=()):
    return train_progressive.make_config(model, sampling_rate, channels, name="vaegan")


RECIPE = Recipe(model="vaegan", description=__doc__.split("\n")[0],
                build_networks=build_networks, make_config=make_config,
                checkpoint_root=lambda checkpoint_dir, model: os.path.join(checkpoint_dir,
                                                                           "vaegan"),
                model_flags=train_progressive.STAGE_FLAGS, prior="normal",
                iteration="VAEGANIteration", posterior=True)


def main(argv=None):
    return cli.main(RECIPE, argv)


if __name__ == "__main__":
    from utils import run_cli
    sys.exit(run_cli(main))
