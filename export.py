"""--export DIR: a trained generator that plays anywhere, without this repository's training
code or TensorFlow (play.py, LiteRT).

DIR gets
    saved_model/                a TensorFlow SavedModel: serving_default maps latents
                                [batch, 100] float32 to audio [batch, window, channels]
                                float32 in [-1, 1] (TensorFlow Serving, TF.js converters, ...)
    generator.tflite            the same for LiteRT (TensorFlow Lite), float32 weights
    generator.float16.tflite    half the size: float16 weights, its largest difference from
                                the float32 model measured and written in model.json
    model.json                  sampling rate, window, channels, latent size and prior, stage,
                                step, variant, which weights (moving average or raw), the
                                name stem --generate gives its files, and a conditional
                                model's labels (its latents end with their one-hot)
from the chosen checkpoint (--checkpoint, the latest by default) and its moving average
(--raw_generator: the trained weights). The export is written aside (.export-* beside DIR)
and its files are moved into DIR one by one, model.json last: a DIR that already holds an
export gets its files replaced, and whatever else you put there stays. A failed write (a full
disk, a file-size limit) is one line and leaves DIR as it was; what a killed export left
aside is removed by the next one.
"""

import contextlib
import logging
import os
import shutil
import tempfile

import numpy as np

import longform
from play import EXPORT_FILE, LiteGenerator
from rules import AVERAGE, LATENT_DIM, STANDARD, window_length
from utils import UserError, make_readable, write_json

SAVED_MODEL = "saved_model"
FLOAT32_MODEL, FLOAT16_MODEL = "generator.tflite", "generator.float16.tflite"
CHECK_LATENTS = 8  # latents of seed 0 the exported models are compared on


def serving_module(generator, labels=0):
    """A tf.Module whose serving_default maps latents to audio, with the generator's
    variables; a conditional generator's latents end with `labels` one-hot values."""
    import tensorflow as tf

    module = tf.Module()
    module.generator = generator
    module.generate = tf.function(
        lambda latents: {"audio": generator(latents)}, autograph=False,
        input_signature=[tf.TensorSpec([None, LATENT_DIM + labels], tf.float32,
                                       name="latents")])
    return module


def tflite_model(concrete_function, float16=False):
    """The LiteRT flatbuffer of a concrete function, its variables made constants; float16:
    weights stored in half precision."""
    import tensorflow as tf

    from private_apis import freeze_variables

    # Without trackable_obj the converter takes its frozen-graph path, the one a frozen
    # function needs, and warns that the path is deprecated: advice for the developer, not
    # the user, so it is not shown on every export.
    def not_the_path_warning(record):
        return "trackable_obj" not in record.getMessage()
    logging.getLogger("absl").addFilter(not_the_path_warning)
    try:
        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [freeze_variables(concrete_function)])
    finally:
        logging.getLogger("absl").removeFilter(not_the_path_warning)
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


@contextlib.contextmanager
def matmul_convolutions(generator):
    """The generator's kernel-25 convolutions in the matrix-product form while a graph is
    traced (conv_forms.py), their own forms back after. For LiteRT: its TRANSPOSE_CONV
    takes its output shape from the batch at run time, so LiteRT's fast CPU kernels
    (XNNPACK) leave it to a slow reference kernel; as matrix products (FULLY_CONNECTED, pads
    and adds) they run several times faster (BENCHMARKS.md, "Export")."""
    from conv_forms import convolution_layers, set_forms

    forms = {label: layer.form for label, layer in convolution_layers([generator]).items()}
    set_forms([generator], dict.fromkeys(forms, "matmul"))
    try:
        yield
    finally:
        set_forms([generator], forms)


def write_export(folder, generator, info):
    """Every file of an export into folder; returns the measured float16 error."""
    import tensorflow as tf

    labels = len(info.get("labels", []))
    module = serving_module(generator, labels)
    tf.saved_model.save(module, os.path.join(folder, SAVED_MODEL),
                        signatures={"serving_default": module.generate})
    with matmul_convolutions(generator):
        concrete = serving_module(generator, labels).generate.get_concrete_function()
    for name, float16 in ((FLOAT32_MODEL, False), (FLOAT16_MODEL, True)):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(tflite_model(concrete, float16))
    latents = longform.with_labels(longform.draw_latents(0, CHECK_LATENTS, info["prior"]),
                                   labels)
    reference = generator(latents).numpy()
    errors = {name: float(np.abs(LiteGenerator(os.path.join(folder, name))(latents)
                                 - reference).max())
              for name in (FLOAT32_MODEL, FLOAT16_MODEL)}
    info = dict(info, max_error=errors, check="the largest difference from the trained "
                f"generator's output on the first {CHECK_LATENTS} latents of seed 0")
    write_json(os.path.join(folder, EXPORT_FILE), info)
    return errors


def export_info(config, recipe, step, which, path, stem):
    return {"sampling_rate": config["sampling_rate"], "channels": config["channels"],
            "window": window_length(config["num_blocks"]), "latent_dim": LATENT_DIM,
            "prior": recipe.prior, "model": recipe.model, "stage": config["num_blocks"],
            "frozen": config.get("frozen", False),
            "variant": config.get("model_variant", STANDARD), "step": step,
            "weights": "moving average" if which == AVERAGE else "raw",
            "checkpoint": os.path.abspath(path), "file_stem": stem,
            "labels": config.get("labels", []),
            "files": {"saved_model": SAVED_MODEL, "float32": FLOAT32_MODEL,
                      "float16": FLOAT16_MODEL}}


OWN = (SAVED_MODEL, FLOAT32_MODEL, FLOAT16_MODEL, EXPORT_FILE)  # what an export writes
STALE_WORK_SECS = 600  # a .export-* folder older than this was left by a killed export


def move_in(work, folder):
    """The new export's files from work into folder, one by one, model.json last; only what
    an export writes is replaced."""
    os.makedirs(folder, exist_ok=True)
    for name in OWN:
        target, new = os.path.join(folder, name), os.path.join(work, name)
        if os.path.isdir(target):  # a folder is not replaced by a rename: swap it aside
            old = tempfile.mkdtemp(prefix=".old-", dir=folder)
            os.replace(target, os.path.join(old, name))
            os.replace(new, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(new, target)


def remove_stale_work(parent):
    """Remove the .export-* folders a killed export left in parent, with a note."""
    import time

    for name in os.listdir(parent):
        path = os.path.join(parent, name)
        if name.startswith(".export-") and os.path.isdir(path) and \
                time.time() - os.path.getmtime(path) > STALE_WORK_SECS:
            shutil.rmtree(path, ignore_errors=True)
            print(f"note: removed {path}, left by an export that was stopped")


def replaceable(folder):
    """An export folder may replace only an earlier export, or nothing."""
    if os.path.exists(folder) and (not os.path.isdir(folder) or (
            os.listdir(folder) and not os.path.exists(os.path.join(folder, EXPORT_FILE)))):
        raise UserError(f"--export {folder} exists and is not an export folder: give a new "
                        f"folder (nothing was written)")


def export_checkpoint(config, recipe):
    """--export DIR: the chosen checkpoint's generator as SavedModel and LiteRT models."""
    from checkpoints import read_best
    from generation import chosen_generator, file_stem

    folder = os.path.abspath(config.job.export)
    replaceable(folder)
    generator, made_of, step, directory, path, which = chosen_generator(config, recipe)
    info = export_info(made_of, recipe, step, which, path, file_stem(directory, step))
    best = read_best(directory)  # the stage's best evaluation: the listening room shows it
    if best is not None:
        info["scores"] = {key: best[key] for key in ("step", "score", "frechet_mel_distance",
                                                     "rms_ratio") if key in best}
        info["scores"]["of"] = ("this step" if best["step"] == step else
                                "the stage's best checkpoint (best/)")
    if config.job.prior == "posterior":  # the map onto the posterior is inside the model
        info["latents"] = "N(0, 1), mapped inside the model onto the encoder's aggregate posterior"
    import tensorflow as tf

    from private_apis import error_reason

    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    remove_stale_work(parent)
    work = tempfile.mkdtemp(prefix=".export-", dir=parent)
    make_readable(work)
    try:
        errors = write_export(work, generator, info)
        move_in(work, folder)
    except (OSError, tf.errors.OpError) as error:
        raise UserError(f"cannot write the export to {folder} ({error_reason(error)}): free "
                        f"space there or choose another --export folder; {folder} is as it "
                        f"was") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sizes = {name: os.path.getsize(os.path.join(folder, name)) / 1e6
             for name in (FLOAT32_MODEL, FLOAT16_MODEL)}
    print(f"exported {path} ({info['weights']}, step {step}) to {folder}: {SAVED_MODEL}/, "
          f"{FLOAT32_MODEL} ({sizes[FLOAT32_MODEL]:.1f} MB, largest difference "
          f"{errors[FLOAT32_MODEL]:.2g}), {FLOAT16_MODEL} ({sizes[FLOAT16_MODEL]:.1f} MB, "
          f"largest difference {errors[FLOAT16_MODEL]:.2g}), {EXPORT_FILE}; play it with: "
          f"python play.py {folder} --generate 3")
    return 0
