"""The rules everything else derives from the stage number, and the project's constants: one
source of truth for each, without TensorFlow, so that flag parsers, the loader, evaluate.py,
the player and the benchmarks read them before (or without) loading it.

A stage is the number of blocks N (report §7.6): its window is BASE_LENGTH * STRIDE^N =
2^(4 + 2N) samples (16384, about 1 s at 16 kHz, at N = 5), block b has nf(b) feature maps,
and the report's batch size comes from a table (appendix B.2).
"""

import math
from dataclasses import dataclass

SAMPLING_RATE = 16000        # default --sampling_rate (the report's 16 kHz)
MAX_INT16 = 32767            # audio in [-1, 1] is int16 / MAX_INT16
LATENT_DIM = 100             # z: 100 values (§7.4)
PRIORS = ("uniform", "normal")  # U(-1, 1) (§7.4) or N(0, 1) (the VAE-GAN's)
MIN_BLOCKS, MAX_BLOCKS = 1, 8
BASE_LENGTH = 16             # samples out of the generator's projection, into block 1
KERNEL_SIZE = 25
STRIDE = 4
BASE_FEATURE_MAPS = 1024     # nf(0): the 16 x 1024 features between the dense layers and block 1
MAX_FEATURE_MAP_DIVISOR = 64  # --feature_map_divisor: nf(0) 1024 down to 16
MAX_AUGMENTATION_LEVEL = 9
MAX_LABEL_STRENGTH = 8.0     # --label_strength's ceiling, far past where the music holds
CONV_FORMS = ("framework", "matmul")  # how a convolution runs (conv_forms.py chooses)
CONV_FORM_CHOICES = ("auto",) + CONV_FORMS  # --conv_forms: measured, or one forced
EVAL_SAMPLES = 256  # generated and real windows an evaluation compares, by default, up to...
EVAL_MAX_SAMPLES = 1 << 23  # ... this many samples (8 windows of 65 s at stage 8)
DISTRIBUTIONS = ("none", "mirrored", "multi_worker")  # --distribution (distribute.py)
# How much of the training iteration one traced graph holds (--graph): all of it, or one
# update (one critic update traced once and called five times).
GRAPHS = ("iteration", "update")
AVERAGE = "generator_ema"    # the moving-average generator's name in checkpoints
POSTERIOR = "posterior"      # the VAE-GAN encoder's aggregate posterior's name in checkpoints
AUGMENT = "critic_augment"   # the adaptive critic augmentation's (its probability p)
EMA_HALF_LIFE = 10_000      # its half-life in windows seen, by default (StyleGAN2-ADA's 10 kimg)
EMA_RAMPUP = 0.05           # and at most this share of the windows the stage has seen

LEARNING_RATE = 1e-4        # Adam's, of every network (report §7.4; --learning_rate)

# Report, appendix B.2: default batch size of each stage.
DEFAULT_BATCH_SIZE = {1: 128, 2: 112, 3: 96, 4: 80, 5: 64, 6: 32, 7: 8, 8: 4}


def window_length(num_blocks):
    """Samples in one window of stage N (§7.6): 16 * 4^N = 2^(4 + 2N), 16384 at N = 5."""
    if not MIN_BLOCKS <= num_blocks <= MAX_BLOCKS:
        raise ValueError(f"stage {num_blocks} is not in {MIN_BLOCKS}..{MAX_BLOCKS}")
    return BASE_LENGTH * STRIDE ** num_blocks


def default_batch_size(num_blocks):
    """The report's batch size for stage N (appendix B.2)."""
    window_length(num_blocks)  # validates the range
    return DEFAULT_BATCH_SIZE[num_blocks]


def feature_maps(block, smoothing=True, divisor=1):
    """nf(b), the channels of block b (§7.6 "feature map smoothing").

    WaveGAN's 1024 // 2^b for b <= 4 (and for every b without smoothing); smoothed b >= 5 is
    25 % or 50 % below the next power of two: 48, 32, 24, 16 for blocks 5..8. With
    --feature_map_divisor K every block has nf(b) // K of them (at least one): ours, not the
    report's, a network about K^2 times smaller.
    """
    if block <= 4 or not smoothing:
        maps = BASE_FEATURE_MAPS // 2 ** block
    else:
        exponent = math.ceil((block - 4) / 2)
        next_power = 64 // 2 ** (exponent - 1)
        maps = int(0.75 * next_power) if block % 2 else int(0.5 * next_power)
    return max(1, maps // divisor)


# --------------------------------------------------------------------------- variants (§7.7)

@dataclass(frozen=True)
class Variant:
    """What a variant of the progressive model changes."""
    generator_convs: int = 1       # convolutions per generator block
    critic_convs: int = 1          # convolutions per discriminator block
    equalised_lr: bool = False     # PGGAN's run-time weight scaling, in every layer
    sample_norm: bool | None = None  # None: the caller chooses; True: always; False: never
    minibatch_stddev: bool = False  # one more channel into block 1 of the discriminator


STANDARD = "standard"
VARIANTS = {
    STANDARD: Variant(),
    "asymmetric": Variant(critic_convs=2, sample_norm=False),
    "extended": Variant(generator_convs=2, critic_convs=2, sample_norm=False),
    "pggan": Variant(equalised_lr=True, sample_norm=True, minibatch_stddev=True),
}


# --------------------------------------------------------------------------- WaveGAN (§7.4)

WAVEGAN_BLOCKS = 5  # its one window is progressive stage 5's: 16384 samples
# Channels after each layer: G's dense gives 16 x 1024, its five transposed convolutions
# 512, 256, 128, 64 and C; D mirrors it with 64 .. 1024.
WAVEGAN_G_FEATURE_MAPS = (1024, 512, 256, 128, 64)
WAVEGAN_D_FEATURE_MAPS = (64, 128, 256, 512, 1024)
# Reflect padding needs a radius below the shortest shuffled length: 64 samples, after the
# critic's fourth layer.
MAX_PHASESHUFFLE_RAD = window_length(WAVEGAN_BLOCKS) // STRIDE ** (WAVEGAN_BLOCKS - 1) - 1


def scores_together(critic):
    """Whether Iteration.score scores real and fake in one call of the critic: where the critic
    scores each example alone (not pggan's, whose minibatch standard deviation mixes them;
    not WaveGAN's, whose phase shuffle draws one shift per call)."""
    return bool(getattr(critic, "scores_examples_alone", False))


def call_batches(network, batch):
    """The batches a network runs at in an iteration of `batch` examples per replica: the
    critic that scores real and fake together at twice the batch, and at the batch (the
    gradient penalty's interpolates, the generator update)."""
    return (2 * batch, batch) if scores_together(network) else (batch,)


def quality_score(measured):
    """The one number that decides best/, the plateau of a grown stage and whether the
    moving average restarts (lower is better): the Frechet mel distance times the square of
    how many times too quiet or too loud the generated audio is, max(r, 1/r)^2 for the RMS
    ratio r. The distance alone kept nearly silent early steps as the best on real music;
    a silent generator scores infinity here (BENCHMARKS.md, "Which score decides"). With
    labels, the mean of each label's own score (its windows against its own music), so that
    a label made too quiet or far off cannot hide behind the others in the pooled windows,
    as one at a third of its loudness did in a pool at 0.79 (BENCHMARKS.md, "Each label's
    own score"). None where a reading is missing (a diverged generator)."""
    labels = label_readings(measured)
    if labels:
        scores = [_distance_times_loudness(*reading) for reading in labels.values()]
        return None if None in scores else sum(scores) / len(scores)
    return _distance_times_loudness(measured.get("frechet_mel_distance"),
                                    measured.get("loudness.rms_ratio"))


def label_readings(measured):
    """{label: (its Frechet mel distance, its RMS ratio)} of an evaluation's per-label keys
    (metrics.label_metrics: label.<name>.frechet_mel_distance, label.<name>.rms_ratio), in
    their order; {} for a model without labels."""
    head, tail = "label.", ".frechet_mel_distance"
    return {key[len(head):-len(tail)]: (value, measured.get(key[:-len(tail)] + ".rms_ratio"))
            for key, value in measured.items() if key.startswith(head) and key.endswith(tail)}


def _distance_times_loudness(distance, ratio):
    if distance is None or ratio is None:
        return None
    if ratio <= 0:
        return math.inf
    return distance * max(ratio, 1 / ratio) ** 2
