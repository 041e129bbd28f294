"""conv_forms.py: each convolution's form chosen by measurement, forced, and cached per
device and TensorFlow version."""

import json

import numpy as np
import pytest
import tensorflow as tf

import conv_forms
import model_progressive as mp


def networks():
    return [mp.Generator(2), mp.Discriminator(2)]


class Timer:
    """A timing function whose answers the test controls: the matrix product is faster for
    the layers `fast_matmul` names (by their input channels), slower for the others."""

    def __init__(self, fast_matmul_channels):
        self.fast, self.calls = fast_matmul_channels, []

    def __call__(self, layer, batch, policy, form):
        self.calls.append((layer.built_shape[-1], batch, policy, form))
        matmul_fast = layer.built_shape[-1] in self.fast
        return {"matmul": 1.0 if matmul_fast else 3.0, "framework": 2.0}[form]


def forms_of(nets):
    return {label: layer.form for label, layer in conv_forms.convolution_layers(nets).items()}


def test_auto_picks_the_faster_form_and_caches_it(tmp_path):
    cache = str(tmp_path / "forms.json")
    nets, timer = networks(), Timer(fast_matmul_channels={1024, 256})
    line = conv_forms.choose(nets, 4, "float32", "auto", cache, timer)
    # G block 1 reads 1024 channels, D block 2 reads 256: the matrix product is faster there
    assert forms_of(nets) == {"generator/progressive_block_1": "matmul",
                              "generator/progressive_block_2": "framework",
                              "discriminator/progressive_block_2": "matmul",
                              "discriminator/progressive_block_1": "framework"}
    # the critic's layers are timed at twice the batch too: it scores real and fake together
    assert sorted((c[0], c[1]) for c in timer.calls if c[3] == "matmul") == \
        [(256, 4), (256, 8), (512, 4), (512, 4), (512, 8), (1024, 4)]
    assert len(timer.calls) == 12 and {c[2] for c in timer.calls} == {"float32"}
    assert "measured 6 shapes" in line and "generator/progressive_block_1" in line
    with open(cache) as f:
        entries = json.load(f)["entries"]
    assert {e["form"] for e in entries} == {"matmul", "framework"} and len(entries) == 6
    assert all(e["device"] == conv_forms.device_name() and e["tensorflow"] == tf.__version__
               for e in entries)
    # the second start reads the cache and times nothing
    again, second = networks(), Timer(fast_matmul_channels=set())
    line = conv_forms.choose(again, 4, "float32", "auto", cache, second)
    assert second.calls == [] and forms_of(again) == forms_of(nets)
    assert line.endswith(f"(from {cache}, for {conv_forms.device_name()})")
    # another batch is another shape: measured anew
    third = Timer(fast_matmul_channels=set())
    conv_forms.choose(networks(), 16, "float32", "auto", cache, third)
    assert len(third.calls) == 12


def test_the_form_faster_over_all_batches_of_a_layer_is_chosen(tmp_path):
    """The critic runs at batch 2 B (real and fake) and B (the interpolates): a form faster at
    B but slower over both is not chosen; pggan's critic runs at B only."""
    def timer(layer, batch, policy, form):  # matmul: 1 s at B, 4 s at 2 B; framework 2 s
        return {"framework": 2.0, "matmul": 1.0 if batch == 4 else 4.0}[form]
    for variant, critic_form in (("standard", "framework"), ("pggan", "matmul")):
        nets = [mp.Generator(2, variant=variant), mp.Discriminator(2, variant=variant)]
        conv_forms.choose(nets, 4, "float32", "auto", str(tmp_path / f"{variant}.json"), timer)
        forms = forms_of(nets)
        assert forms["generator/progressive_block_1"] == "matmul"
        assert {forms["discriminator/progressive_block_1"],
                forms["discriminator/progressive_block_2"]} == {critic_form}


@pytest.mark.parametrize("field", ["device", "tensorflow"])
def test_the_cache_is_ignored_for_another_device_or_version(tmp_path, field):
    cache = str(tmp_path / "forms.json")
    conv_forms.choose(networks(), 4, "float32", "auto", cache, Timer({1024, 512, 256}))
    with open(cache) as f:
        data = json.load(f)
    for entry in data["entries"]:
        entry[field] = "something else"
    with open(cache, "w") as f:
        json.dump(data, f)
    nets, timer = networks(), Timer(fast_matmul_channels=set())
    conv_forms.choose(nets, 4, "float32", "auto", cache, timer)
    assert len(timer.calls) == 12 and set(forms_of(nets).values()) == {"framework"}
    with open(cache) as f:
        assert len(json.load(f)["entries"]) == 12  # the other device's entries stay


@pytest.mark.parametrize("form", ["framework", "matmul"])
def test_a_forced_form_is_used_without_timing(tmp_path, form):
    nets, timer = networks(), Timer(set())
    line = conv_forms.choose(nets, 4, "float32", form, str(tmp_path / "f.json"), timer)
    assert timer.calls == [] and set(forms_of(nets).values()) == {form}
    assert line == f"convolutions: all 4 in the {form} form (--conv_forms {form})"
    z = tf.random.uniform([2, 100], -1, 1, seed=1)
    generator = nets[0]
    assert np.all(np.isfinite(generator(z).numpy()))


def test_the_real_timer_times_both_forms_of_a_layer():
    layer = mp.Generator(1).progressive_block_1
    seconds = {form: conv_forms.forward_backward_seconds(layer, 2, "float32", form, repeats=1)
               for form in ("framework", "matmul")}
    assert all(0 < s < 60 for s in seconds.values())


def test_the_shape_key_names_what_speed_depends_on():
    G = mp.Generator(2)
    assert conv_forms.shape_key(G.progressive_block_2, 16, "bfloat16") == \
        "transpose k25 s4 512->256 length 64 batch 16 bfloat16"
    D = mp.Discriminator(2, variant="asymmetric")
    assert conv_forms.shape_key(D.progressive_block_1.conv, 8, "float32") == \
        "conv k25 s1 512->1024 length 64 batch 8 float32"
    assert "CPU" in conv_forms.device_name() or "GPU" in conv_forms.device_name()
