"""Each convolution's form, chosen by measurement on the device that runs it, as cuDNN's
benchmark mode chooses its algorithms (`--conv_forms auto`).

A kernel-25 convolution of the networks can run as the framework's convolution (oneDNN on a
CPU, cuDNN on a GPU) or as one matrix product (model_progressive.Convolution). Which is
faster depends on the shape and the processor: on one CPU oneDNN ran the 1024-channel block 1
at 40 % of the other blocks' rate, on another it does not; on a GPU nobody has measured it.
So at start-up each distinct shape of the stage (kernel, stride, channels, length, batch,
dtype, transposed or not) is timed in both forms (forward, input gradient and kernel
gradient), and the faster is used. The critic's are timed at twice the batch too, as it
scores real and fake in one call (rules.call_batches), and the form faster over both is
used. The choices are cached in a small JSON file, keyed by the device's name and the
TensorFlow version, so that later starts skip the timing.
`--conv_forms framework|matmul` forces one. The form never changes the weights or the
checkpoints, only float rounding.
"""

import json
import os
import platform
import statistics
import time

from rules import CONV_FORM_CHOICES as CHOICES
from rules import CONV_FORMS as FORMS
from rules import call_batches

AUTO = CHOICES[0]
REPEATS = 3
CACHE_FILE = "conv_forms.json"  # in --checkpoint_dir by default
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
             "amx_bf16", "amx_int8")  # the instruction sets oneDNN's kernels depend on


def device_name():
    """The device convolutions run on: the first GPU's name, or the CPU's model and the
    instruction sets that decide oneDNN's kernels (machines of one model name differ)."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return "GPU " + details.get("device_name", gpus[0].name)
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return f"CPU {model} [{' '.join(f for f in CPU_FLAGS if f in flags)}]"


def convolution_layers(networks):
    """{label: layer} of every kernel-25 convolution of the networks, labelled network/block
    (/conv or /strided_conv in a two-convolution block); the 1x1 layers stay the
    framework's."""
    from model_progressive import Convolution, convolutions

    return {"/".join([network.name, name] + ([layer.name] if layer is not block else [])):
            layer for network in networks for name, block in network.named_layers().items()
            for layer in convolutions(block)
            if isinstance(layer, Convolution) and layer.kernel_size[0] > 1}


def shape_key(layer, batch, dtype):
    """What a convolution's speed depends on, as a string."""
    from model_progressive import Conv1DTranspose
    kind = "transpose" if isinstance(layer, Conv1DTranspose) else "conv"
    _, length, channels = layer.built_shape
    return (f"{kind} k{layer.kernel_size[0]} s{layer.strides[0]} {channels}->{layer.filters} "
            f"length {length} batch {batch} {dtype}")


def forward_backward_seconds(layer, batch, policy, form, repeats=REPEATS):
    """Median seconds of the forward pass, input gradient and kernel gradient of a fresh
    copy of a convolution in `form`, with dtype policy `policy`, on random input of the
    shape it was built for."""
    import tensorflow as tf

    copy = type(layer).from_config({**layer.get_config(), "dtype": policy})
    shape = (batch,) + layer.built_shape[1:]
    copy.build(shape)
    copy.form = form
    x = tf.random.uniform(shape, -1.0, 1.0)
    dy = tf.cast(tf.random.uniform(copy.compute_output_shape(shape), -1, 1),
                 copy.compute_dtype)

    @tf.function(autograph=False)
    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = copy(x)
        grad_x, grad_kernel = tape.gradient(y, [x, copy.kernel], output_gradients=dy)
        # y is returned too: otherwise the function prunes the forward pass, which
        # output_gradients makes unnecessary for the gradients.
        return (tf.reduce_sum(tf.cast(y, tf.float32)) + tf.reduce_sum(grad_kernel)
                + tf.reduce_sum(tf.cast(grad_x, tf.float32)))

    forward_backward().numpy()  # traces
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward_backward().numpy()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def read_cache(path, device, version):
    """{shape key: {"form": ..., "seconds": {...}}} cached for this device and version."""
    try:
        with open(path) as f:
            entries = json.load(f)["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {entry["key"]: entry for entry in entries
            if entry.get("device") == device and entry.get("tensorflow") == version}


def write_cache(path, new):
    """Add entries to the cache file (others' devices and versions kept), atomically."""
    from utils import write_json
    try:
        with open(path) as f:
            entries = json.load(f)["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        entries = []
    keys = {(e["device"], e["tensorflow"], e["key"]) for e in new}
    entries = [e for e in entries if (e.get("device"), e.get("tensorflow"), e.get("key"))
               not in keys] + new
    write_json(path, {"entries": entries})


def choose(networks, batch, policy, mode, cache_path, timer=forward_backward_seconds):
    """Set the form of every kernel-25 convolution of the networks; returns a one-line
    account. mode: auto (measured, or cached), framework or matmul. timer(layer, batch,
    policy, form) -> seconds times one form of one layer."""
    import keras
    import tensorflow as tf

    layers = convolution_layers(networks)
    if mode != AUTO:
        set_forms(networks, dict.fromkeys(layers, mode))
        return f"convolutions: all {len(layers)} in the {mode} form (--conv_forms {mode})"
    device, version = device_name(), tf.__version__
    dtype = keras.mixed_precision.Policy(policy).compute_dtype
    cached = read_cache(cache_path, device, version)
    # a layer is timed at every batch its network runs at, and the faster form over them all
    # is used: the critic scores real and fake in one call of twice the batch
    keys = {label: [(b, shape_key(layer, b, dtype)) for b in call_batches(network, batch)]
            for network in networks for label, layer in convolution_layers([network]).items()}
    measured = []
    for label, layer in layers.items():
        for b, key in keys[label]:
            if key not in cached:
                seconds = {form: timer(layer, b, policy, form) for form in FORMS}
                cached[key] = {"device": device, "tensorflow": version, "key": key,
                               "form": min(FORMS, key=seconds.get), "seconds": seconds}
                measured.append(cached[key])
    if measured:
        write_cache(cache_path, measured)
    set_forms(networks, {label: min(FORMS, key=lambda form: sum(
        cached[key]["seconds"][form] for _, key in keys[label])) for label in layers})
    chosen = [label for label, layer in layers.items() if layer.form == "matmul"]
    how = (f"measured {len(measured)} shapes on {device}, cached in {cache_path}" if measured
           else f"from {cache_path}, for {device}")
    return (f"convolutions: the matrix product for {', '.join(chosen) or 'none'}, the "
            f"framework's for the other {len(layers) - len(chosen)} ({how})")


def set_forms(networks, forms):
    """Set each kernel-25 convolution's form from forms, {convolution_layers label: form}.
    A form is read when a graph is traced: graphs traced before keep theirs."""
    for label, layer in convolution_layers(networks).items():
        layer.form = forms[label]


def default_cache(checkpoint_dir):
    return os.path.join(checkpoint_dir, CACHE_FILE)
