"""How far the training step's gradients move from float32's in bfloat16, form by form.

    python bench/precision_error.py [FOLDER] [--stage 3] [--batch_size 16] [--repeats 4]

Builds one stage's generator and critic with fixed float32 weights, then computes one critic
update's and one generator update's quantities exactly as the trainer does
(iteration.Iteration.critic_gradients and generator_gradients) on the same batches, in
float32 and in mixed bfloat16, with every kernel-25 convolution in the framework's form and
in the matrix-product form (conv_forms.py). Against float32 in the framework's form it
reports: the critic's scores, the norm of its input gradient at the interpolates (what the
gradient penalty reads), the penalty itself, D_loss, and the cosine and norm ratio of the
critic's and the generator's weight gradients. A form whose bfloat16 rounding is not
harmless in training shows as a biased input-gradient norm or penalty, or gradients that
point elsewhere. Real batches come from FOLDER (real music; the bundled demo by default).
On a CPU without bfloat16 instructions TensorFlow emulates them: slow, but the same numbers.
"""

import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from rules import CONV_FORMS, SAMPLING_RATE, window_length
from utils import ArgumentParser, int_in_range, run_cli

SEED = 0


def batches(folder, stage, batch, repeats):
    """`repeats` seeded real batches [batch, window, channels] of the folder, float32."""
    from dataloader import load_audio
    from evaluate import full_window_starts, sample_windows

    audio = load_audio(folder, SAMPLING_RATE, log=lambda line: None)
    starts, window = full_window_starts(audio, stage)
    real = sample_windows(audio, starts, window, batch * repeats,
                          np.random.default_rng(SEED))
    return [real[i * batch:(i + 1) * batch] for i in range(repeats)], audio.channels


def quantities(policy, form, stage, channels, reals, weights):
    """The update's quantities on each batch with this dtype policy and form."""
    import tensorflow as tf

    import adam
    import conv_forms
    import iteration
    import losses
    import train_progressive
    from config import ModelConfig

    config = train_progressive.make_config(ModelConfig(num_blocks=stage), SAMPLING_RATE,
                                           channels)
    networks = train_progressive.build_networks(config, policy)
    for name, network in networks.items():
        for variable, value in zip(network.weights, weights[name]):
            variable.assign(value)
    conv_forms.set_forms(networks.values(), dict.fromkeys(
        conv_forms.convolution_layers(networks.values()), form))
    optimizers = {name + "_optimizer": adam.make_optimizer() for name in networks}
    rng = tf.random.Generator.from_seed(SEED)
    step = iteration.Iteration(networks, optimizers, tf.Variable(0, dtype=tf.int64), rng,
                               lambda batch: rng.uniform([batch, 100], -1.0, 1.0))
    D = networks["discriminator"]
    out = []
    for number, real in enumerate(reals):
        draws = np.random.default_rng(SEED + number)
        noise = tf.constant(draws.uniform(-1, 1, (len(real), 100)), tf.float32)
        alpha = tf.constant(draws.uniform(0, 1, (len(real), 1, 1)), tf.float32)
        real = tf.constant(real)
        fake = networks["generator"](noise)
        x_hat = real + alpha * (fake - real)
        with tf.GradientTape() as tape:
            tape.watch(x_hat)
            scores = D(x_hat)
        norms = tf.norm(tf.reshape(tf.cast(tape.gradient(scores, x_hat), tf.float32),
                                   [len(real), -1]), axis=1)
        penalty, _ = losses.gradient_penalty(D, real, fake, alpha)
        d_gradients, d_out = step.critic_gradients(real, noise, alpha)
        g_gradients, _ = step.generator_gradients(None, noise)
        out.append({"scores": tf.concat(step.score(real, fake)[:2], 0).numpy().ravel(),
                    "input_gradient_norm": norms.numpy(), "penalty": penalty.numpy(),
                    "d_loss": float(d_out["d_loss"]),
                    "d_gradient": flat(d_gradients), "g_gradient": flat(g_gradients)})
    return out


def flat(gradients):
    return np.concatenate([np.asarray(g, np.float64).ravel() for g in gradients])


def compare(result, reference):
    """Each quantity against the reference's, averaged over the batches."""
    def cosine(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    rows = []
    for mine, theirs in zip(result, reference):
        rows.append({
            "scores_relative_error": float(np.abs(mine["scores"] - theirs["scores"]).max()
                                           / np.abs(theirs["scores"]).max()),
            "input_gradient_norm_ratio": float(mine["input_gradient_norm"].mean()
                                               / theirs["input_gradient_norm"].mean()),
            "penalty_ratio": float(mine["penalty"].mean() / theirs["penalty"].mean()),
            "d_loss_difference": mine["d_loss"] - theirs["d_loss"],
            "d_gradient_cosine": cosine(mine["d_gradient"], theirs["d_gradient"]),
            "d_gradient_norm_ratio": float(np.linalg.norm(mine["d_gradient"])
                                           / np.linalg.norm(theirs["d_gradient"])),
            "g_gradient_cosine": cosine(mine["g_gradient"], theirs["g_gradient"]),
            "g_gradient_norm_ratio": float(np.linalg.norm(mine["g_gradient"])
                                           / np.linalg.norm(theirs["g_gradient"]))})
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def measure(folder, stage, batch, repeats):
    from private_apis import import_tensorflow
    import_tensorflow()
    import keras

    import train_progressive
    from config import ModelConfig

    reals, channels = batches(folder, stage, batch, repeats)
    keras.utils.set_random_seed(SEED)
    config = train_progressive.make_config(ModelConfig(num_blocks=stage), SAMPLING_RATE,
                                           channels)
    weights = {name: [w.numpy() for w in network.weights] for name, network in
               train_progressive.build_networks(config, "float32").items()}
    reference = quantities("float32", CONV_FORMS[0], stage, channels, reals, weights)
    cases = {}
    for policy in ("float32", "mixed_bfloat16"):
        for form in CONV_FORMS:
            if (policy, form) != ("float32", CONV_FORMS[0]):
                cases[f"{policy} {form}"] = compare(
                    quantities(policy, form, stage, channels, reals, weights), reference)
    return {"folder": folder, "stage": stage, "window": window_length(stage),
            "batch_size": batch, "batches": repeats,
            "reference": "float32, the framework's convolutions", "cases": cases}


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default=os.path.join(REPO, "data", "demo"),
                        help="real music to take the batches from")
    parser.add_argument("--stage", type=int_in_range(1, 5), default=3)
    parser.add_argument("--batch_size", type=int_in_range(1, 256), default=16)
    parser.add_argument("--repeats", type=int_in_range(1, 100), default=4,
                        help="batches compared (the figures are their means)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    report = measure(args.folder, args.stage, args.batch_size, args.repeats)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['folder']}: stage {report['stage']}, batch {report['batch_size']}, "
          f"{report['batches']} batches; against {report['reference']}")
    keys = list(next(iter(report["cases"].values())))
    print(f"{'':<26}" + "".join(f"{case:>24}" for case in report["cases"]))
    for key in keys:
        print(f"{key:<26}" + "".join(f"{values[key]:>24.5g}"
                                     for values in report["cases"].values()))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
