"""--condition folders: labels from the folders of the library, balanced batches, a label
embedding in the generator and a projection critic, and the jobs that ask for a label."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from helpers import DEMO, ROOT, assert_one_line_error, linked_stage_copy, networks_of, weights
from helpers import run as run_trainer

import checkpoints
import cli
import dataloader
import grow
import longform
import runs
import train_progressive
from model_progressive import LABEL_EMBEDDING, Discriminator, Generator, block_name
from utils import UserError

RATE = 16000
LABELS = ["drums", "strings"]  # sorted: the order in config.json


def run(*argv):
    return run_trainer(train_progressive.main, *argv)


def library(folder, layout):
    """A folder of demo pieces: {relative path: demo piece number}."""
    for path, piece in layout.items():
        os.makedirs(os.path.dirname(os.path.join(folder, path)), exist_ok=True)
        shutil.copy(os.path.join(DEMO, f"piece_0{piece}.wav"), os.path.join(folder, path))
    return str(folder)


def constant_library(folder, seconds):
    """Each label folder holds one file of a constant value: its label can be read off any
    window of it. {label: (value, seconds)}."""
    for label, (value, length) in seconds.items():
        os.makedirs(os.path.join(folder, label), exist_ok=True)
        sf.write(os.path.join(folder, label, "a.wav"),
                 np.full(int(length * RATE), value, np.float32), RATE, subtype="PCM_16")
    return dataloader.load_audio(str(folder))


# --------------------------------------------------------------------------- labels from folders

def test_labels_are_the_folders_in_path_order_at_the_depth_asked(tmp_path):
    folder = library(tmp_path, {"strings/b.wav": 1, "drums/kit/a.wav": 2, "drums/kit/b.wav": 3,
                                "drums/loops/c.wav": 4})
    audio = dataloader.load_audio(folder)
    names, file_labels = dataloader.folder_labels(audio)
    assert names == LABELS
    assert [names[k] for k in file_labels] == [
        os.path.relpath(f, folder).split(os.sep)[0] for f in audio.files]
    names, _ = dataloader.folder_labels(dataloader.load_audio(
        library(tmp_path / "deeper", {"drums/kit/a.wav": 2, "drums/loops/c.wav": 4})), depth=2)
    assert names == ["drums/kit", "drums/loops"]


@pytest.mark.parametrize("layout, depth, message", [
    ({"loose.wav": 1, "drums/a.wav": 2}, 1, "loose.wav is not in one: move it into a label"),
    ({"drums/a.wav": 2, "drums/kit/b.wav": 3}, 2, "drums/a.wav is not in one"),
    ({"drums/a.wav": 2, "drums/b.wav": 3}, 1, "found 1 label folder in"),
])
def test_a_library_that_cannot_be_labelled_is_one_line(tmp_path, layout, depth, message):
    audio = dataloader.load_audio(library(tmp_path, layout), log=lambda _: None)
    with pytest.raises(UserError, match=message):
        dataloader.folder_labels(audio, depth)


def test_a_label_folder_without_usable_audio_and_too_many_labels_are_one_line(tmp_path):
    folder = library(tmp_path / "broken", {"drums/a.wav": 2, "strings/a.wav": 1})
    os.makedirs(os.path.join(folder, "voice"))
    with open(os.path.join(folder, "voice", "take.wav"), "wb") as f:
        f.write(b"RIFF not really")
    audio = dataloader.load_audio(folder, log=lambda _: None)
    with pytest.raises(UserError, match="the label folder voice of .* has no audio that could"):
        dataloader.folder_labels(audio)
    many = tmp_path / "many"
    for k in range(dataloader.MAX_LABELS + 1):
        os.makedirs(many / f"label{k:02d}")
        sf.write(many / f"label{k:02d}" / "a.wav", np.zeros(64, np.float32), RATE)
    with pytest.raises(UserError, match=f"found {dataloader.MAX_LABELS + 1} label folders .* "
                                        f"give it 2 to {dataloader.MAX_LABELS}"):
        dataloader.folder_labels(dataloader.load_audio(str(many)))


@pytest.mark.parametrize("balance, expected", [("uniform", [0.5, 0.5]), ("data", [0.8, 0.2])])
def test_batches_are_balanced_over_labels_and_each_window_is_its_labels(tmp_path, balance,
                                                                       expected):
    audio = constant_library(tmp_path, {"big": (0.25, 8.0), "small": (-0.5, 2.0)})
    names, file_labels = dataloader.folder_labels(audio)
    parts = dataloader.label_parts(audio, file_labels, len(names))
    windows = [dataloader.stage_windows(part, 1) for part in parts]
    shares = dataloader.label_shares(windows, balance)
    np.testing.assert_allclose(shares, expected, atol=0.02)
    batches = dataloader.labelled_batches(parts, windows, 64, shares, seed=3)
    seen = np.zeros(2)
    for _ in range(20):
        batch, labels = next(batches)
        assert batch.shape == (64, 64, 1) and labels.dtype == np.int32
        values = batch[:, :, 0].astype(np.float64) / 32767
        expected_values = np.broadcast_to(np.where(labels == 0, 0.25, -0.5)[:, None],
                                          values.shape)
        np.testing.assert_allclose(values, expected_values, atol=1e-4)
        seen += np.bincount(labels, minlength=2)
    np.testing.assert_allclose(seen / seen.sum(), expected, atol=0.05)


# --------------------------------------------------------------------------- the networks

def test_the_generator_and_critic_depend_on_the_label_and_the_rest_is_unchanged():
    tf.keras.utils.set_random_seed(0)
    generator, critic = Generator(1, labels=2), Discriminator(1, labels=2)
    plain = Generator(1)
    latents = longform.draw_latents(0, 3, "uniform")
    first, second = (generator(longform.with_labels(latents, 2, [k] * 3)).numpy()
                     for k in (0, 1))
    assert first.shape == plain(latents).shape == (3, 64, 1)
    assert np.abs(first - second).max() > 1e-4
    # the embedding enters at unit second moment: its weights' scale is not the label's weight
    generator.label_embedding.kernel.assign(generator.label_embedding.kernel * 10)
    np.testing.assert_allclose(generator(longform.with_labels(latents, 2, [0] * 3)).numpy(),
                               first, atol=1e-6)
    one_hot = np.eye(2, dtype=np.float32)
    critic.label_projection.kernel.assign(tf.random.normal([2, critic.label_projection.units]))
    scores = [critic(tf.constant(first), one_hot[[k] * 3]).numpy() for k in (0, 1)]
    assert np.abs(scores[0] - scores[1]).max() > 1e-4
    assert set(generator.named_layers()) - set(plain.named_layers()) == {"label_embedding"}
    assert set(critic.named_layers()) - set(Discriminator(1).named_layers()) == \
        {"label_projection"}


def test_every_block_shifts_its_channels_by_the_label_starting_from_none():
    """--label_generator every_block: block b's label layer (zero at first, so the model
    starts as the one with the label at the input only) is a second path of the label."""
    tf.keras.utils.set_random_seed(0)
    generator = Generator(2, labels=2, label_blocks=True)
    latents = longform.with_labels(longform.draw_latents(0, 3, "uniform"), 2, [0] * 3)
    other = longform.with_labels(longform.draw_latents(0, 3, "uniform"), 2, [1] * 3)
    kernel = generator.projection.kernel  # rows 100.. read the label's embedding: cut them
    kernel.assign(tf.concat([kernel[:100], tf.zeros_like(kernel[100:])], axis=0))
    np.testing.assert_array_equal(generator(latents).numpy(), generator(other).numpy())
    for b in (1, 2):
        layer = generator.named_layers()[block_name(b) + "_label"]
        assert not np.any(layer.kernel.numpy())
        layer.kernel.assign(tf.random.normal(layer.kernel.shape))
    assert np.abs(generator(latents).numpy() - generator(other).numpy()).max() > 1e-4
    assert set(generator.named_layers()) - set(Generator(2, labels=2).named_layers()) == \
        {block_name(1) + "_label", block_name(2) + "_label"}
    assert generator.carried_over_layers().keys() >= {block_name(1) + "_label"}
    assert block_name(2) + "_label" not in generator.carried_over_layers()
    assert set(generator.early_blocks()) == {block_name(1), block_name(1) + "_label"}


def test_every_block_gain_scales_the_channels_by_the_label_as_well():
    """--label_generator every_block_gain: block b's label layer gives a gain and a shift,
    both zero at first. Its shift half alone is every_block's shift; its gain half scales
    the block's channels by 1 + gain, so a gain of -1 silences the block."""
    tf.keras.utils.set_random_seed(0)
    generator = Generator(2, labels=2, label_gain=True)
    shifted = Generator(2, labels=2, label_blocks=True)
    layers = [generator.named_layers()[block_name(b) + "_label"] for b in (1, 2)]
    assert not any(np.any(layer.kernel.numpy()) for layer in layers)
    for layer in layers:  # every_block's weights in the shift half
        half = layer.kernel.shape[1] // 2
        layer.kernel.assign(tf.concat([tf.zeros([LABEL_EMBEDDING, half]),
                                       tf.random.normal([LABEL_EMBEDDING, half])], axis=1))
    shifted.set_weights([w[:, w.shape[1] // 2:] if w.shape[1:] != v.shape[1:] else w
                         for v, w in zip(shifted.get_weights(), generator.get_weights())])
    latents = longform.with_labels(longform.draw_latents(0, 3, "uniform"), 2, [1] * 3)
    np.testing.assert_allclose(generator(latents).numpy(), shifted(latents).numpy(),
                               atol=1e-6)
    # label 1's embedding normalised is sqrt(32) e_0; the last block's gain then -1
    generator.label_embedding.kernel.assign(tf.one_hot([0, 0], LABEL_EMBEDDING))
    half = layers[1].kernel.shape[1] // 2
    gain = -np.eye(LABEL_EMBEDDING, half, dtype=np.float32)[:, :1].repeat(half, axis=1)
    layers[1].kernel.assign(np.concatenate(
        [gain / np.sqrt(LABEL_EMBEDDING), np.zeros_like(gain)], axis=1))
    silent = np.tanh(generator.named_layers()[block_name(2) + "_output"].bias.numpy())
    made = generator(latents).numpy()
    np.testing.assert_allclose(made, np.broadcast_to(silent, made.shape), atol=1e-5)


def test_the_centred_projection_learns_only_what_sets_the_labels_apart():
    """--label_critic centred: the label's projection less its mean over the labels. Scores
    differ between labels as the plain projection's with the same weights, their mean over
    the labels is the unconditional score, and windows scored as every label (what all labels
    share) move the projection's weights not at all, where they move the plain one's."""
    tf.keras.utils.set_random_seed(0)
    plain, centred = Discriminator(1, labels=2), Discriminator(1, labels=2, centred=True)
    centred.set_weights(plain.get_weights())
    plain.label_projection.kernel.assign(tf.random.normal([2, plain.label_projection.units]))
    centred.label_projection.kernel.assign(plain.label_projection.kernel)
    audio = tf.constant(np.random.default_rng(0).uniform(-0.5, 0.5, (3, 64, 1)), tf.float32)
    as_label = [np.eye(2, dtype=np.float32)[[k] * 3] for k in (0, 1)]
    p0, p1 = (plain(audio, c).numpy() for c in as_label)
    c0, c1 = (centred(audio, c).numpy() for c in as_label)
    np.testing.assert_allclose(c0 - c1, p0 - p1, rtol=1e-5, atol=1e-5)
    assert np.abs(p0 - p1).max() > 1e-3
    unconditional = centred.prediction(centred.features(audio)).numpy()
    np.testing.assert_allclose((c0 + c1) / 2, unconditional, rtol=1e-5, atol=1e-5)

    def projection_gradient(critic):  # of the mean score of each window heard as each label
        both = tf.concat([audio, audio], axis=0)
        with tf.GradientTape() as tape:
            score = tf.reduce_mean(critic(both, np.concatenate(as_label)))
        return tape.gradient(score, critic.label_projection.kernel).numpy()
    assert np.abs(projection_gradient(plain)).max() > 1e-3
    np.testing.assert_allclose(projection_gradient(centred), 0.0, atol=1e-6)


def test_the_pooled_projection_is_the_plain_one_with_one_weight_for_every_position():
    """--label_critic pooled: the label's projection has one weight per feature map, and
    scores as the plain projection whose weights are that one repeated at the 16 positions;
    the rest of the critic is the plain one's."""
    tf.keras.utils.set_random_seed(0)
    plain, pooled = Discriminator(1, labels=2), Discriminator(1, labels=2, pooled=True)
    maps = plain.feature_count // 16
    assert pooled.label_projection.units == maps and plain.label_projection.units == 16 * maps
    for name in set(plain.named_layers()) - {"label_projection"}:
        pooled.named_layers()[name].set_weights(plain.named_layers()[name].get_weights())
    pooled.label_projection.kernel.assign(tf.random.normal([2, maps]))
    plain.label_projection.kernel.assign(np.tile(pooled.label_projection.kernel.numpy(), 16))
    audio = tf.constant(np.random.default_rng(0).uniform(-0.5, 0.5, (3, 64, 1)), tf.float32)
    labels = np.eye(2, dtype=np.float32)[[0, 1, 1]]
    np.testing.assert_allclose(pooled(audio, labels), plain(audio, labels), rtol=1e-5,
                               atol=1e-5)
    as_other = pooled(audio, labels[:, ::-1]).numpy()
    assert np.abs(pooled(audio, labels).numpy() - as_other).max() > 1e-3
    config = {"num_blocks": 1, "channels": 1, "feature_map_smoothing": True,
              "use_sample_norm": False, "labels": LABELS}
    for critic, is_pooled in (("pooled", True), ("projection", False)):  # the flag's way in
        built = train_progressive.build_networks(dict(config, label_critic=critic), "float32")
        assert built["discriminator"].pooled is is_pooled


def classifying_run(label_critic, label_weight=1.0):
    """A stage-1 run whose critic names labels (--label_critic auxiliary or matching) with
    --label_weight label_weight, and a batch for it: (run, critic, iteration, audio, labels,
    one-hot labels, noise, alpha)."""
    config = {"model": "progressive", "num_blocks": 1, "channels": 1,
              "feature_map_smoothing": True, "use_sample_norm": False, "labels": LABELS,
              "label_critic": label_critic}
    run_ = runs.build_run(train_progressive.RECIPE, config, "float32", None, seed=2,
                          label_weight=label_weight)
    rng = np.random.default_rng(0)
    labels = tf.constant([0, 1, 1, 0])
    audio = tf.constant(rng.uniform(-0.5, 0.5, (4, 64, 1)), tf.float32)
    noise = tf.constant(rng.uniform(-1, 1, (4, 100)), tf.float32)
    alpha = tf.constant(rng.uniform(size=(4, 1, 1)), tf.float32)
    return (run_, run_.networks["discriminator"], run_.iteration, audio, labels,
            tf.one_hot(labels, 2), noise, alpha)


def cross_entropy_gradients(critic, network, x, one_hot):
    """The gradients, in `network`'s trainable variables, of the mean cross-entropy of the
    critic's logits of x() against the labels."""
    with tf.GradientTape() as tape:
        _, logits = critic(x(), one_hot, classify=True)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(one_hot, logits))
    return tape.gradient(loss, network.trainable_variables)


def test_the_matching_critic_names_labels_by_its_projection_and_learns_from_it():
    """--label_critic matching: no classifier layer of its own; its logit of label k is what
    the projection adds to the score of x heard as k, so the critic's cross-entropy on real
    windows trains the projection (and the features), as the score's own label term."""
    _, critic, step, audio, labels, one_hot, noise, alpha = classifying_run("matching")
    assert set(critic.named_layers()) == set(Discriminator(1, labels=2).named_layers())
    assert step.classifier
    _, logits = critic(audio, one_hot, classify=True)
    unlabelled = critic(audio, tf.zeros([4, 2]))  # w . f(x) + b alone
    for k in range(2):
        as_k = critic(audio, tf.one_hot([k] * 4, 2)) - unlabelled
        np.testing.assert_allclose(as_k[:, 0], logits[:, k], rtol=1e-4, atol=1e-5)
    with_term, _ = step.critic_gradients((audio, labels), noise, alpha)
    step.classifier = False
    without, _ = step.critic_gradients((audio, labels), noise, alpha)
    term = cross_entropy_gradients(critic, critic, lambda: audio, one_hot)
    for variable, a, b, c in zip(critic.trainable_variables, with_term, without, term):
        if "label_projection" in variable.path:
            assert np.abs(c.numpy()).max() > 1e-6
            np.testing.assert_allclose((a - b).numpy(), c.numpy(), rtol=1e-3, atol=1e-6)


def test_the_normalised_critic_hears_the_label_on_features_at_unit_loudness():
    """--label_critic normalised: the matching critic whose label term is e_y . f / rms(f),
    so that scaling a window's features, as a louder window does, leaves that term as it is;
    its logits are those terms, and with the same weights they differ from the plain ones."""
    _, critic, step, audio, _, one_hot, _, _ = classifying_run("normalised")
    assert critic.matching and critic.normalised and step.classifier
    features = critic.features(audio)
    unit = features / tf.sqrt(tf.reduce_mean(tf.square(features), axis=1, keepdims=True))
    kernel = critic.label_projection.kernel
    _, logits = critic(audio, one_hot, classify=True)
    np.testing.assert_allclose(logits, tf.matmul(unit, kernel, transpose_b=True), rtol=1e-4,
                               atol=1e-5)
    unlabelled = critic(audio, tf.zeros([4, 2]))
    np.testing.assert_allclose((critic(audio, one_hot) - unlabelled)[:, 0],
                               tf.reduce_sum(logits * one_hot, axis=1), rtol=1e-4, atol=1e-5)
    plain = classifying_run("matching")[1]
    plain.set_weights(critic.get_weights())  # the same weights, the plain term: it differs
    assert not np.allclose(plain(audio, one_hot, classify=True)[1], logits, atol=1e-3)


def test_the_matching_critic_is_the_default_and_unconditional_runs_keep_the_plain_one(
        tmp_path):
    """A conditional model's critic is --label_critic matching unless asked otherwise; an
    unconditional model's config.json stores the plain projection, what configs written
    before the flag mean, so the stages trained before it went on resume with it."""
    model = cli.parse(train_progressive.RECIPE, ["--condition", "folders", "--num_blocks", "1",
                                                 "--seed", "0"]).model
    config = train_progressive.make_config(model, RATE, 1, labels=LABELS)
    assert train_progressive.build_networks(config, "float32")["discriminator"].matching
    plain = train_progressive.make_config(
        cli.parse(train_progressive.RECIPE, ["--num_blocks", "1", "--seed", "0"]).model, RATE, 1)
    before = {key: value for key, value in plain.items()
              if key not in ("labels", "label_critic", "label_generator")}
    checkpoints.write_config(str(tmp_path), before)
    checkpoints.check_config(str(tmp_path), plain)  # raises where they differ
    checkpoints.write_config(str(tmp_path), dict(before, labels=LABELS, label_critic="projection"))
    with pytest.raises(UserError, match="label_critic=projection"):
        checkpoints.check_config(str(tmp_path), config)


@pytest.mark.parametrize("weight", [1.0, 10.0])
def test_the_auxiliary_classifier_adds_its_terms_with_their_weights(weight):
    """--label_critic auxiliary: D_loss gains W CE(C(real), the real labels), W the
    --label_weight, G_loss gains 0.1 CE(C(fake), the labels asked for) whatever W; the
    classifier is one dense layer on the features."""
    run_, critic, step, audio, labels, one_hot, noise, alpha = classifying_run("auxiliary",
                                                                               weight)
    assert set(critic.named_layers()) - set(Discriminator(1, labels=2).named_layers()) == \
        {"label_classifier"}
    assert critic.label_classifier.units == 2 and step.classifier
    # The classifier's weights take no part in the Wasserstein terms: their gradient in D_loss
    # is the cross-entropy's on the real windows alone, at weight W.
    gradients, out = step.critic_gradients((audio, labels), noise, alpha)
    expected = cross_entropy_gradients(critic, critic, lambda: audio, one_hot)
    named = np.argmax(critic(audio, one_hot, classify=True)[1].numpy(), axis=1)
    assert float(out["Labels/real_recognised"]) == pytest.approx(np.mean(named == labels))
    for variable, got, want in zip(critic.trainable_variables, gradients, expected):
        if "label_classifier" in variable.path:
            assert np.abs(want.numpy()).max() > 1e-6
            np.testing.assert_allclose(got.numpy(), weight * want.numpy(), rtol=1e-4,
                                       atol=1e-7)
    # The generator's gradient with the classifier, less that without, is 0.1 CE's.
    G = run_.networks["generator"]
    latents = tf.concat([noise, one_hot], axis=1)
    with_term, out = step.generator_gradients(None, latents)
    named = np.argmax(critic(G(latents), one_hot, classify=True)[1].numpy(), axis=1)
    assert float(out["Labels/fake_recognised"]) == pytest.approx(np.mean(named == labels))
    step.classifier = False
    without, _ = step.generator_gradients(None, latents)
    term = cross_entropy_gradients(critic, G, lambda: G(latents), one_hot)
    for a, b, c in zip(with_term, without, term):
        np.testing.assert_allclose((a - b).numpy(), 0.1 * c.numpy(), rtol=1e-3, atol=1e-7)
    assert any(np.abs(c.numpy()).max() > 1e-6 for c in term)


def test_asking_for_a_label_the_model_does_not_know_is_one_line():
    assert longform.asked_labels(None, LABELS, "here") == [0, 1]
    assert longform.asked_labels(("strings",), LABELS, "here") == [1]
    assert longform.asked_labels(None, [], "here") == []
    with pytest.raises(UserError, match="here knows no label piano: it knows drums, strings"):
        longform.asked_labels(("piano",), LABELS, "here")
    with pytest.raises(UserError, match="but here was trained without: drop --label"):
        longform.asked_labels(("drums",), [], "here")
    with pytest.raises(UserError, match="trained without: drop --label_strength"):
        longform.asked_labels(None, [], "here", strength=2.0)


def test_a_stronger_label_is_pushed_away_from_the_blend_of_every_label():
    np.testing.assert_allclose(longform.label_input([[1, 0, 0], [0.5, 0.5, 0]], 2.0),
                               [[5 / 3, -1 / 3, -1 / 3], [2 / 3, 2 / 3, -1 / 3]], atol=1e-6)
    np.testing.assert_array_equal(longform.label_input(np.eye(3), 1.0), np.eye(3))
    tf.keras.utils.set_random_seed(0)
    generator = Generator(1, labels=2)
    latents = longform.draw_latents(0, 3, "uniform")

    def made(label, strength):
        return longform.WithLabel(generator, label, 2, strength)(latents).numpy()
    assert np.abs(made(0, 2.0) - made(0, 1.0)).max() > 1e-4
    np.testing.assert_array_equal(made(0, 0.0), made(1, 0.0))  # 0: every label alike
    walk = longform.walk(np.random.default_rng(0), "uniform", anchor_every=4, labels=2,
                         sequence=[1, 0], strength=2.0)
    np.testing.assert_allclose(np.stack([next(walk) for _ in range(3)])[:, 100:],
                               [[-0.5, 1.5], [0, 1], [0.5, 0.5]])


@pytest.mark.parametrize("flags", [["--label", "drums"], ["--label_strength", "2"]])
def test_the_listening_room_takes_its_label_on_the_page_not_from_a_flag(tmp_path, capsys, flags):
    import play
    from utils import run_cli

    with pytest.raises(SystemExit) as exit_:
        run_cli(play.main, [str(tmp_path), "--serve", *flags])
    assert_one_line_error(exit_.value.code, capsys.readouterr().err,
                          "--label and --label_strength go with --generate or --live")


def test_a_walk_moves_from_label_to_label_at_each_anchor():
    walk = longform.walk(np.random.default_rng(0), "uniform", anchor_every=4, labels=3,
                         sequence=[2, 0])
    latents = np.stack([next(walk) for _ in range(9)])
    assert latents.shape == (9, 100 + 3)
    np.testing.assert_allclose(latents[:, 100:], [
        [0, 0, 1], [0.25, 0, 0.75], [0.5, 0, 0.5], [0.75, 0, 0.25],  # label 2 -> label 0
        [1, 0, 0], [0.75, 0, 0.25], [0.5, 0, 0.5], [0.25, 0, 0.75],  # and back
        [0, 0, 1]])
    plain = longform.walk(np.random.default_rng(0), "uniform", anchor_every=4)
    np.testing.assert_array_equal(np.stack([next(plain) for _ in range(9)]), latents[:, :100])


# --------------------------------------------------------------------------- a trained model

@pytest.fixture(scope="module")
def trained(module_tmp):
    """A conditional stage 1 of two steps, grown to the frozen stage 2 for one step; its critic
    has the auxiliary classifier, its generator the label's gain and shift in every block."""
    data = library(module_tmp / "music", {"strings/a.wav": 1, "strings/b.wav": 2,
                                          "drums/a.wav": 3, "drums/b.wav": 4})
    root = str(module_tmp / "runs")
    flags = ["--data_dir", data, "--checkpoint_dir", root, "--condition", "folders",
             "--label_critic", "auxiliary", "--label_generator", "every_block_gain"]
    logs = {"stage 1": run(*flags, "--num_blocks", "1", "--max_steps", "2",
                           "--eval_every_secs", "1e-9", "--num_eval_samples", "8"),
            "frozen 2": run(*flags, "--num_blocks", "2", "--freeze_early_layers",
                            "--max_steps", "1")}
    for name, (code, out, err) in logs.items():
        assert code == 0, (name, out, err)
    return data, root, flags, logs


def test_training_writes_the_labels_and_measures_each(trained):
    _, root, _, logs = trained
    for stage, folder in ((1, checkpoints.stage_dir(root, 1)),
                          (2, checkpoints.stage_dir(root, 2, frozen=True))):
        assert checkpoints.read_config(folder)["labels"] == LABELS, stage
        assert checkpoints.read_config(folder)["label_critic"] == "auxiliary", stage
        assert checkpoints.read_config(folder)["label_generator"] == "every_block_gain", stage
    out = logs["stage 1"][1]
    assert "labels: drums (1.2 min, 50 % of the batches), strings (1.2 min, 50 % of the " \
           "batches)" in out
    assert "per label drums " in out and ", strings " in out
    assert "real_recognised +" in out and "fake_recognised +" in out  # the critic's classifier


def test_growing_carries_the_label_layers_over_and_they_train_as_the_dense_beside(trained,
                                                                                  tmp_path):
    _, root, _, _ = trained
    one = checkpoints.stage_dir(root, 1)
    linked_stage_copy(one, checkpoints.stage_dir(str(tmp_path), 1))
    config = checkpoints.read_config(one)
    stage_1 = networks_of(checkpoints.latest_checkpoint(one), config)
    grown = dict(config, num_blocks=2, frozen=True)
    run_ = runs.build_run(train_progressive.RECIPE, grown, "float32", None, seed=5,
                          average_rule=None)
    _, how = checkpoints.start_stage(run_, str(tmp_path), 2, True, grown)
    assert how.startswith("blocks 1..1 grown from stage 1"), how
    for name, layer, beside in (("generator", "label_embedding", "projection"),
                                ("discriminator", "label_projection", "prediction"),
                                ("discriminator", "label_classifier", "prediction")):
        network = run_.networks[name]
        assert layer in network.carried_over_layers()
        before, after = weights(stage_1[name], [layer]), weights(network, [layer])
        assert all(np.array_equal(before[k], after[k]) for k in before), name
        assert network.named_layers()[layer].trainable == \
            network.named_layers()[beside].trainable is True  # frozen stage: only blocks stop
        assert not network.named_layers()[block_name(1)].trainable
    # block 1's label layer comes from stage 1 and freezes with its block; block 2's is new
    generator, label = run_.networks["generator"], block_name(1) + "_label"
    before, after = weights(stage_1["generator"], [label]), weights(generator, [label])
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert not generator.named_layers()[label].trainable
    assert generator.named_layers()[block_name(2) + "_label"].trainable


@pytest.mark.slow
def test_growing_a_conditional_model_previews_each_label(tmp_path):
    """--grow_to with --condition folders: a stable stage's preview is PREVIEW_FILES files for
    each label, named after it, as --generate writes them (it asked the generator for no
    label and stopped)."""
    data = library(tmp_path / "music", {"strings/a.wav": 1, "drums/a.wav": 3})
    code, out, err = run("--data_dir", data, "--checkpoint_dir", tmp_path / "runs",
                         "--condition", "folders", "--grow_to", "1", "--stage_steps", "1",
                         "--output_dir", tmp_path / "gen")
    assert code == 0, out + err
    made = sorted(os.listdir(tmp_path / "gen" / "stage_00001"))
    assert len(made) == 2 * grow.PREVIEW_FILES
    drums, strings = made[:grow.PREVIEW_FILES], made[grow.PREVIEW_FILES:]
    assert all("_drums_" in name for name in drums), made
    assert all("_strings_" in name for name in strings), made
    for a, b in zip(drums, strings):  # the same latents asked for each label
        assert not np.array_equal(*(sf.read(str(tmp_path / "gen" / "stage_00001" / name))[0]
                                    for name in (a, b)))


def test_other_labels_for_an_existing_run_are_one_line(trained, tmp_path):
    data, root, flags, _ = trained
    other = library(tmp_path, {"strings/a.wav": 1, "voice/a.wav": 2})
    code, _, err = run(*flags, "--data_dir", other, "--num_blocks", "1", "--max_steps", "3")
    assert_one_line_error(code, err, "labels")
    code, _, err = run("--data_dir", data, "--checkpoint_dir", root, "--num_blocks", "1",
                       "--max_steps", "3")
    assert_one_line_error(code, err, "labels")
    code, _, err = run(*flags[:-3], "projection", "--num_blocks", "1", "--max_steps", "3")
    assert_one_line_error(code, err, "label_critic=auxiliary")
    code, _, err = run(*flags[:-2], "--num_blocks", "1", "--max_steps", "3")
    assert_one_line_error(code, err, "label_generator=every_block_gain")


def test_generate_with_a_label_is_reproducible_and_named_after_it(trained, tmp_path):
    _, root, _, _ = trained
    written = []
    for attempt in ("a", "b"):
        code, out, err = run("--checkpoint_dir", root, "--num_blocks", "1", "--generate", "2",
                             "--label", "strings", "--seed", "3", "--output_dir",
                             str(tmp_path / attempt))
        assert code == 0, out + err
        written.append(sorted(os.listdir(tmp_path / attempt)))
    assert written[0] == written[1] and len(written[0]) == 2
    assert all("_strings" in name for name in written[0])
    for name in written[0]:
        a, b = (sf.read(str(tmp_path / which / name))[0] for which in ("a", "b"))
        assert np.array_equal(a, b)
    code, out, err = run("--checkpoint_dir", root, "--num_blocks", "1", "--generate", "1",
                         "--seed", "3", "--output_dir", str(tmp_path / "every"))
    assert code == 0, out + err
    every = sorted(os.listdir(tmp_path / "every"))
    assert len(every) == 2 and "_drums" in every[0] and "_strings" in every[1]
    assert np.array_equal(sf.read(str(tmp_path / "every" / every[1]))[0],
                          sf.read(str(tmp_path / "a" / written[0][0]))[0])
    drums = sf.read(str(tmp_path / "every" / every[0]))[0]
    assert not np.array_equal(drums, sf.read(str(tmp_path / "every" / every[1]))[0])


def test_interpolate_moves_from_one_label_to_another(trained, tmp_path):
    _, root, _, _ = trained
    code, out, err = run("--checkpoint_dir", root, "--num_blocks", "1", "--interpolate", "1",
                         "1", "--label", "drums", "strings", "--output_dir", str(tmp_path))
    assert code == 0, out + err
    [name] = os.listdir(tmp_path)
    assert "_drums_to_strings" in name, name


def test_evaluate_measures_each_label_against_its_own_music(trained):
    """As trained, then asked harder (--label_strength 2), beside it."""
    data, root, _, _ = trained
    evaluations = os.path.join(checkpoints.stage_dir(root, 1), "evaluation")
    measured = {}
    for strength in ("1", "2"):
        code, out, err = run("--checkpoint_dir", root, "--num_blocks", "1", "--data_dir",
                             data, "--evaluate", "--num_eval_samples", "8", "--seed", "1",
                             "--label_strength", strength)
        assert code == 0, out + err
        [folder] = [name for name in os.listdir(evaluations) if name not in measured]
        with open(os.path.join(evaluations, folder, "metrics.json")) as f:
            measured[folder] = json.load(f)
        for name in LABELS:
            distance = measured[folder][f"label.{name}.frechet_mel_distance"]
            assert f"label {name}: Frechet mel distance {distance:.4g}" in out
            assert measured[folder][f"label.{name}.rms_ratio"] > 0
    trained_so, harder = sorted(measured)
    assert harder == trained_so + "_strength2"
    assert measured[harder]["label.drums.rms_ratio"] != measured[trained_so][
        "label.drums.rms_ratio"]


@pytest.mark.parametrize("argv, message", [
    (["--generate", "1", "--label", "piano"], "knows no label piano: it knows drums, strings"),
    (["--preview", "--label", "drums"], "--label goes with --generate or --interpolate"),
    (["--preview", "--label_strength", "2"], "--label_strength goes with --generate, --inter"),
    (["--generate", "1", "--label_strength", "9"], "9 is out of range: use 0 to 8"),
])
def test_bad_label_asks_are_one_line(trained, tmp_path, argv, message):
    _, root, _, _ = trained
    code, _, err = run("--checkpoint_dir", root, "--num_blocks", "1", "--output_dir",
                       str(tmp_path), *argv)
    assert_one_line_error(code, err, message)
    assert not os.path.exists(tmp_path) or not os.listdir(tmp_path)


def test_the_export_takes_a_label_and_plays_as_generate(trained, tmp_path):
    """At --label_strength 2, so that the strength is carried alike (at 1 the label's input
    is its one-hot either way)."""
    _, root, _, _ = trained
    folder = str(tmp_path / "export")
    code, out, err = run("--checkpoint_dir", root, "--num_blocks", "1", "--export", folder)
    assert code == 0, out + err
    with open(os.path.join(folder, "model.json")) as f:
        assert json.load(f)["labels"] == LABELS
    play = subprocess.run([sys.executable, "play.py", folder, "--generate", "2", "--label",
                           "drums", "--label_strength", "2", "--seed", "4", "--output_dir",
                           str(tmp_path / "play")],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert play.returncode == 0, play.stderr
    code, out, err = run("--checkpoint_dir", root, "--num_blocks", "1", "--generate", "2",
                         "--label", "drums", "--label_strength", "2", "--seed", "4",
                         "--output_dir", str(tmp_path / "trainer"))
    assert code == 0, out + err
    names = sorted(os.listdir(tmp_path / "trainer"))
    assert sorted(os.listdir(tmp_path / "play")) == names and len(names) == 2
    assert all("_drums_strength2_" in name for name in names), names
    for name in names:
        ours = sf.read(str(tmp_path / "play" / name), dtype="int16")[0].astype(int)
        theirs = sf.read(str(tmp_path / "trainer" / name), dtype="int16")[0]
        assert np.abs(ours - theirs).max() <= 1, name
    play = subprocess.run([sys.executable, "play.py", folder, "--generate", "1", "--label",
                           "piano", "--output_dir", str(tmp_path / "bad")],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert_one_line_error(play.returncode, play.stderr, "knows no label piano")


@pytest.mark.parametrize("flags, message", [
    (["--label_critic", "auxiliary"], "--label_critic auxiliary needs --condition folders"),
    (["--label_generator", "every_block"], "--label_generator every_block needs --condition"),
    (["--condition_depth", "2"], "--condition_depth 2 needs --condition folders"),
    (["--label_balance", "data"], "--label_balance draws batches over the labels")])
def test_a_label_flag_without_condition_is_one_line(tmp_path, flags, message):
    code, _, err = run("--data_dir", DEMO, "--checkpoint_dir", str(tmp_path), *flags)
    assert_one_line_error(code, err, message)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("flags", [[], ["--condition", "folders", "--label_critic",
                                         "projection"]])
def test_a_label_weight_without_a_critic_that_names_labels_is_one_line(tmp_path, flags):
    code, _, err = run("--data_dir", DEMO, "--checkpoint_dir", str(tmp_path),
                       "--label_weight", "10", *flags)
    assert_one_line_error(code, err, "--label_weight weighs the critic's naming of the labels")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("flag", [("--condition", "folders"), ("--label_balance", "data"),
                                  ("--label_weight", "10"), ("--label", "ambient"),
                                  ("--label_strength", "2")])
@pytest.mark.parametrize("trainer", ["train_progressive_vaegan.py", "train.py"])
def test_the_other_models_neither_offer_nor_take_the_label_flags(trainer, flag):
    result = subprocess.run([sys.executable, trainer, *flag], cwd=ROOT, capture_output=True,
                            text=True, check=False, timeout=60)  # taken, it would train
    assert_one_line_error(result.returncode, result.stderr, flag[0])
    assert flag[0] not in subprocess.run([sys.executable, trainer, "--help"], cwd=ROOT,
                                         capture_output=True, text=True, check=True).stdout
