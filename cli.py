"""The trainers' command line: their flags, parsed once into a config.RunConfig, and the
dispatch to training or to a job that uses a checkpoint (report §7.4 "train.py", appendix B).

A trainer (train_progressive.py, train_progressive_vaegan.py, train.py) describes only what
differs in a runs.Recipe and calls main(recipe, argv). TensorFlow is imported only once the
flags are checked, so that a bad flag is one fast line.
"""

import dataclasses
import random

import config
from distribute import check_cluster
from private_apis import custom_gradients_released, import_tensorflow
from utils import UserError


def offered(recipe):
    """The flags a trainer offers: every field of RunConfig but the model fields it lacks
    (and growing's, for a trainer of one fixed window; the labels', for one without
    --condition)."""
    lacks = {f.name for f in config.leaves(config.ModelConfig)} - set(recipe.model_flags)
    if "condition" not in recipe.model_flags:
        lacks |= set(config.LABEL_FLAGS)
    if not recipe.growing:
        lacks |= {f.name for f in config.leaves(config.GrowConfig)}
    return {f.name for f in config.leaves(config.RunConfig)} - lacks


def make_parser(recipe):
    return config.make_parser(config.RunConfig, recipe.description, offered(recipe),
                              recipe.defaults)


def parse(recipe, argv=None):
    """The trainer's flags as its RunConfig, checked; a seed drawn (and said) where none is
    given."""
    run = config.parse(config.RunConfig, argv, make_parser(recipe), recipe.defaults)
    if run.job.prior == "posterior" and not recipe.posterior:
        raise UserError(f"--prior posterior is the VAE-GAN's (where its encoder puts the data): "
                        f"the {recipe.model} trainer samples its prior; drop --prior")
    if run.train.distribution == "multi_worker":
        check_cluster()  # before any data is read
    # Interpolation's seeds are A and B; an export draws nothing (its check uses seed 0).
    if run.seed is None and not run.job.interpolate and run.job.name != "export":
        seed = random.randrange(2**31)
        print(f"seed {seed} (pass --seed {seed} to repeat this run)")
        run = dataclasses.replace(run, seed=seed)
    return run


def dispatch(run, recipe):
    """Training, or the one job the flags ask for; returns the exit code."""
    import_tensorflow()
    import generation
    from export import export_checkpoint
    from grow import grow
    from train_loop import train

    job = {"generate": generation.generate, "interpolate": generation.interpolate,
           "evaluate": generation.evaluate_checkpoint, "export": export_checkpoint,
           "preview": generation.preview}.get(run.job.name)
    if job is not None:
        return job(run, recipe)
    if run.grow.grow_to is not None:
        return grow(run, recipe)  # each stage releases its graphs
    with custom_gradients_released():
        return train(run, recipe)


def main(recipe, argv=None):
    """A trainer's command: its flags, then training or a job; returns the exit code."""
    return dispatch(parse(recipe, argv), recipe)

