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

import cli
from checkpoints import CONFIG_DEFAULTS, check_config, config_value, stage_dir
from rules import STANDARD
from runs import Recipe

STAGE_FLAGS = ("num_blocks", "freeze_early_layers", "use_sample_norm",
               "no_feature_map_smoothing", "feature_map_divisor", "critic_emphasis")


def build_networks(config, dtype, generator_only=False):
    from model_progressive import Discriminator, Generator
    args = {"num_blocks": config["num_blocks"], "channels": config["channels"],
            "smoothing": config["feature_map_smoothing"],
            "divisor": config_value(config, "feature_map_divisor"), "dtype": dtype,
            "variant": config_value(config, "model_variant"),
            "labels": len(config_value(config, "labels"))}
    critic = config_value(config, "label_critic")
    generator_label = config_value(config, "label_generator")
    networks = {"generator": Generator(
        use_sample_norm=config["use_sample_norm"],
        label_blocks=generator_label == "every_block",
        label_gain=generator_label == "every_block_gain", **args)}
    if not generator_only:
        networks["discriminator"] = Discriminator(
            classifier=critic == "auxiliary", centred=critic == "centred",
            pooled=critic == "pooled", matching=critic == "matching",
            normalised=critic == "normalised",
            emphasis=config_value(config, "critic_emphasis"), **args)
    return networks


def make_config(model, sampling_rate, channels, name="progressive", labels=()):
    """What a checkpoint of this run is made of, saved beside it as config.json (with the
    labels of a conditional model in their order, its --label_critic and --label_generator;
    an unconditional model has no labels, and its config refuses any but the plain two: it
    stores the plain critic, what configs before --label_critic mean, whatever the default)."""
    return {"model": name, "num_blocks": model.num_blocks, "frozen": model.freeze_early_layers,
            "channels": channels, "feature_map_smoothing": not model.no_feature_map_smoothing,
            "feature_map_divisor": model.feature_map_divisor,
            "critic_emphasis": model.critic_emphasis,
            "use_sample_norm": model.use_sample_norm, "sampling_rate": sampling_rate,
            "model_variant": model.model_variant, "labels": list(labels),
            "label_critic": model.label_critic if labels else CONFIG_DEFAULTS["label_critic"],
            "label_generator": model.label_generator}


def checkpoint_root(checkpoint_dir, model):
    """checkpoints/ for the standard model (where runs made before variants are), and
    checkpoints/<variant>/ for the others. A stage folder of another variant is refused."""
    root = checkpoint_dir
    if model.model_variant != STANDARD:
        root = os.path.join(root, model.model_variant)
    check_config(stage_dir(root, model.num_blocks, model.freeze_early_layers),
                 {"model_variant": model.model_variant},
                 fix="a variant's stages live in <checkpoint_dir>/<variant>/, the standard "
                     "model's in <checkpoint_dir>/: use another --checkpoint_dir")
    return root


RECIPE = Recipe(model="progressive", description=__doc__.split("\n")[0],
                build_networks=build_networks, make_config=make_config,
                checkpoint_root=checkpoint_root,
                model_flags=STAGE_FLAGS + ("model_variant", "condition", "condition_depth",
                                           "label_critic", "label_generator"))


def main(argv=None):
    return cli.main(RECIPE, argv)


if __name__ == "__main__":
    from utils import run_cli
    sys.exit(run_cli(main))
