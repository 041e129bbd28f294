"""The one typed configuration of a run, made once from the command line.

Every flag of every command is a field of a frozen dataclass here, with its default, its
range (the parser of its values) and its help, defined once (nanoGPT's config block, typed).
A command builds its parser from the dataclass it takes (`parser`), parses its arguments into
it (`parse`), and hands each part of the code the fields it needs: the parsed flags are read
here alone. The dataclasses validate themselves when they are made: a bad value or
combination is one line (utils.UserError) before anything is read or written. No
TensorFlow, so that flags are checked in a fraction of a second.

    RunConfig                   a trainer's command (train_progressive.py, train.py, ...)
      model: ModelConfig        what the networks are: the stage and its options
      data: DataConfig          reading a folder of audio (dataloader.py)
      checkpoint_dir, seed
      train: TrainConfig        the training loop: batch, precision, devices, step, saves
      watch: WatchConfig        the moving average, the quality curve, the collapse watchdog
      job: JobConfig            a job that uses a checkpoint instead of training
      walk: WalkConfig          generated files and latent walks (shared with play.py)

docs/flags.md is generated from the parsers (python docs/flags.py > docs/flags.md).
"""

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field

from private_apis import parser_actions
from rules import (
    CONV_FORM_CHOICES,
    DEFAULT_BATCH_SIZE,
    DISTRIBUTIONS,
    EMA_HALF_LIFE,
    EMA_RAMPUP,
    EVAL_SAMPLES,
    GRAPHS,
    LEARNING_RATE,
    MAX_AUGMENTATION_LEVEL,
    MAX_BLOCKS,
    MAX_FEATURE_MAP_DIVISOR,
    MAX_LABEL_STRENGTH,
    MAX_PHASESHUFFLE_RAD,
    MIN_BLOCKS,
    SAMPLING_RATE,
    STANDARD,
    VARIANTS,
    WAVEGAN_BLOCKS,
)
from utils import (
    ArgumentParser,
    UserError,
    float_above,
    float_in_range,
    fraction_below_one,
    fraction_in_half,
    int_in_range,
    non_negative_float,
    positive_float,
)

MAX_SEED = 2**31 - 1  # the seeds --seed takes (NumPy's and TensorFlow's)
SEEDS = int_in_range(0, MAX_SEED)
COUNTS = int_in_range(1, 1_000_000)  # files to write
LABEL_STRENGTH = float_in_range(0.0, MAX_LABEL_STRENGTH)
ON_COLLAPSE = ("rollback", "stop", "warn")
# the --label_critic choices whose critic names the labels (model_progressive.Discriminator's
# `classifier`), the critics --label_weight weighs
NAMING_CRITICS = ("matching", "normalised", "auxiliary")
# the flags outside ModelConfig that only a conditional model uses: a trainer that does not
# offer --condition does not offer them either (cli.offered)
LABEL_FLAGS = ("label_balance", "label_weight", "label", "label_strength")
CHECKPOINT_DIR = "checkpoints"


def flag(default, help, *, parse=None, choices=None, metavar=None, nargs=None, hidden=False):
    """A field that is also the command-line flag --<field name>. A bool field is a switch;
    parse turns the flag's text into the value (and says what is wrong with bad text)."""
    return field(default=default, metadata={
        "help": argparse.SUPPRESS if hidden else help, "parse": parse, "choices": choices,
        "metavar": metavar, "nargs": nargs})


def seed_flag(default, help):
    return flag(default, help, parse=SEEDS)


def json_flag():
    return flag(False, "print one JSON object")


# --------------------------------------------------------------------------- the groups

@dataclass(frozen=True)
class ModelConfig:
    """What the networks are made of: the stage and its options (report §7.6, §7.7)."""
    num_blocks: int = flag(
        5, "stage: number of blocks; windows of 2^(4+2N) samples (5: 16384 = 1 s, 8: "
           "1048576 = 65 s)", parse=int_in_range(MIN_BLOCKS, MAX_BLOCKS))
    freeze_early_layers: bool = flag(
        False, "the transition stage between N-1 and N: blocks 1..N-1 stay as stage N-1 left "
               "them, block N, the 1x1 layers and the dense layers train; needs N >= 2")
    use_sample_norm: bool = flag(False, "sample normalisation after every generator "
                                        "activation")
    no_feature_map_smoothing: bool = flag(
        False, "feature maps 1024/2^b for every block (32, 16, 8, 4 for blocks 5-8) instead "
               "of the smoothed 48, 32, 24, 16")
    feature_map_divisor: int = flag(
        1, "divide every block's feature maps by this (ours, not the report's): 1 is the "
           "report's 1024/2^b; 4 makes networks about 16 times smaller and a stage-3 step "
           "about 12 times faster on a CPU (BENCHMARKS.md), for a first try; a stage grown "
           "from another needs its value", parse=int_in_range(1, MAX_FEATURE_MAP_DIVISOR))
    critic_emphasis: float = flag(
        0.0, "the critic hears each window pre-emphasised, x[t] - A x[t-1] with this A (ours, "
             "not the report's; 0: off, as the original; 0.95 is speech GANs' (SEGAN)), so "
             "that music's quiet highs weigh in its score; measured at 0.7 on a conditional "
             "model with the plain projection critic it left the music further off and the "
             "labels no clearer (BENCHMARKS.md); a stage grown from another needs its value",
        parse=fraction_below_one, metavar="A")
    model_variant: str = flag(
        STANDARD, "the main model or one of the report's experimental variants (§7.7): "
                  "asymmetric adds a stride-1 convolution to every discriminator block, "
                  "extended to every block of both networks, pggan adds PGGAN's equalised "
                  "learning rate, sample normalisation and minibatch standard deviation",
        choices=tuple(VARIANTS))
    condition: str = flag(
        "none", "none: one model of all the music, as the original; folders: a model that "
                "can be asked for a style, each top-level folder of --data_dir a label "
                "(docs/data.md)", choices=("none", "folders"))
    condition_depth: int = flag(
        1, "with --condition folders: a label is a file's first this many folders (2: "
           "artist/album)", parse=int_in_range(1, 8))
    label_critic: str = flag(
        "matching", "with --condition folders, how the critic hears the label. matching: its "
                    "score projects the label (Miyato & Koyama 2018), and it learns to name "
                    "the label of real windows by that projection's own terms (real music "
                    "with a wrong label scored below it with its own, Reed et al. 2016): on "
                    "real music the only critic measured whose labels a classifier named at "
                    "least 0.8 as often as the real music's on every seed (BENCHMARKS.md); "
                    "normalised: matching on the features scaled to unit RMS, so that the "
                    "label's term is the same at any loudness (ahead at 600 steps, behind "
                    "at 1200 and 2400); projection: the projection "
                    "alone, the plain conditional critic; centred: the projection less its "
                    "mean over the labels; auxiliary: the projection and a classifier of its "
                    "own (AC-GAN, as in WGAN-GP's and DrumGAN's conditional models); pooled: "
                    "the projection of the features summed over their positions (Miyato & "
                    "Koyama's global pooling)",
        choices=("matching", "normalised", "projection", "centred", "auxiliary", "pooled"))
    label_generator: str = flag(
        "input", "with --condition folders, where the generator hears the label. input: its "
                 "learned embedding joins the latent (DrumGAN's way); every_block: that, and "
                 "every block also shifts its channels by a learned projection of it (a "
                 "class-conditional bias at every scale, as BigGAN's conditional "
                 "normalisation); every_block_gain: that, and every block also scales its "
                 "channels by 1 + another (BigGAN's class-conditional gain), so that a label "
                 "can set its own loudness at every scale (measured within the seeds' spread "
                 "of input at 600 steps, the music further off)",
        choices=("input", "every_block", "every_block_gain"))
    phaseshuffle_rad: int = flag(
        2, "shift each critic activation by up to this many samples (WaveGAN §3.3); 0 turns "
           "phase shuffle off", parse=int_in_range(0, MAX_PHASESHUFFLE_RAD))

    def __post_init__(self):
        if self.condition == "none":
            asked = [f"--{name} {getattr(self, name)}" for name in ("condition_depth",
                                                                     "label_critic",
                                                                     "label_generator")
                     if getattr(self, name) != self.__dataclass_fields__[name].default]
            if asked:
                raise UserError(f"{', '.join(asked)} needs --condition folders: a model "
                                f"without labels has none to read or hear")
        if self.freeze_early_layers and self.num_blocks < 2:
            raise UserError("--freeze_early_layers needs --num_blocks 2 or more: stage 1 has "
                            "no earlier blocks to freeze")
        always = VARIANTS[self.model_variant].sample_norm
        if self.use_sample_norm and always is False:
            raise UserError(f"--use_sample_norm is not offered with --model_variant "
                            f"{self.model_variant} (nor was it in the original): drop one of "
                            f"them")
        if always:  # always on in the pggan variant
            object.__setattr__(self, "use_sample_norm", True)


@dataclass(frozen=True)
class DataConfig:
    """Reading a folder of audio (dataloader.py, report §7.6 "data loader")."""
    data_dir: str = flag("data", "folder of training audio, subfolders included")
    sampling_rate: int = flag(SAMPLING_RATE, "audio at other rates is resampled to this",
                              parse=int_in_range(1, 1_000_000))
    audio_cache: str | None = flag(
        None, "where decoded audio is cached, so that later starts decode nothing and "
              "training reads it from disk as it goes (default: <checkpoint_dir>/audio_cache)",
        metavar="DIR")
    no_audio_cache: bool = flag(False, "decode every file at every start and hold the audio "
                                       "in memory")
    strict: bool = flag(False, "refuse a file that cannot be decoded or decodes shorter than "
                               "its header states, instead of skipping it or using it as "
                               "decoded")
    augmentation_level: int = flag(
        0, "also train on windows offset by k*window/10, k=1..L; for small datasets",
        parse=int_in_range(0, MAX_AUGMENTATION_LEVEL))
    label_balance: str = flag(
        "uniform", "with --condition folders: uniform draws each label as often, so a small "
                   "folder is not drowned by a large one; data draws them as the music is "
                   "spread", choices=("uniform", "data"))
    validation_fraction: float | None = flag(
        None, "hold out this share of the files (whole files, seeded, at least one) as "
              "validation audio: the quality curve then measures against it, and also "
              "reports the distance to training windows, so that overfitting shows "
              "(default: no validation split)", parse=fraction_in_half, metavar="F")


@dataclass(frozen=True)
class TrainConfig:
    """The training loop: batch, precision, devices, how long, saves and summaries."""
    batch_size: int | None = flag(
        None, f"windows per batch (default: the report's for the stage, "
              f"{', '.join(map(str, DEFAULT_BATCH_SIZE.values()))} for stages 1-8, so "
              f"{DEFAULT_BATCH_SIZE[WAVEGAN_BLOCKS]} for train.py's window of stage "
              f"{WAVEGAN_BLOCKS}); lower it on out-of-memory errors",
        parse=int_in_range(1, 1 << 20))
    use_mixed_precision_training: bool = flag(
        False, "float32 variables with float16 compute and a fixed loss scale of 32 on a GPU, "
               "bfloat16 compute on a CPU")
    distribution: str = flag(
        "none", "training only. none: one device; mirrored: every GPU of this machine "
                "(without GPUs, every logical CPU device); multi_worker: the machines of the "
                "TF_CONFIG environment variable (docs/scaling.md). --batch_size is the global "
                "batch, split across replicas", choices=DISTRIBUTIONS)
    conv_forms: str = flag(
        "auto", "how the kernel-25 convolutions run: auto times the framework's convolution "
                "and a matrix product for each shape on this device at start-up (cached) and "
                "uses the faster; framework or matmul forces one", choices=CONV_FORM_CHOICES)
    conv_forms_cache: str | None = flag(
        None, "where --conv_forms auto keeps its timings (default: "
              "<checkpoint_dir>/conv_forms.json)", metavar="FILE")
    learning_rate: float = flag(
        LEARNING_RATE, "training only: Adam's learning rate of every network (the report's "
                       "by default, §7.4); a resumed run keeps the rate its checkpoint saved; "
                       "3e-4 got a conditional model's labels in half the steps at "
                       "--feature_map_divisor 4 (BENCHMARKS.md)",
        parse=positive_float)
    label_weight: float = flag(
        1.0, "training only, with --condition folders and a critic that names the labels "
             "(--label_critic matching, normalised or auxiliary): the weight of its "
             "cross-entropy of real windows' labels beside its Wasserstein loss (ours; 1: "
             "WGAN-GP's conditional model's); 10, with --label_generator every_block_gain "
             "and --learning_rate 3e-4, got the labels in 600 steps at "
             "--feature_map_divisor 4, overdrawn and not held at 1200 (BENCHMARKS.md)",
        parse=positive_float, metavar="W")
    critic_augment: str = flag(
        "none", "none: the critic sees the windows as they are, as in the original; ada: "
                "adaptive critic augmentation for small collections (gain, polarity, shift, "
                "EQ tilt, speed, noise, channel swap, each with a probability p that adapts "
                "to the critic's overfitting; needs --validation_fraction; docs/data.md)",
        choices=("none", "ada"))
    ada_target: float = flag(
        0.5, "with --critic_augment ada: the overfitting heuristic r_v p steers towards "
             "(0: validation scored as training, 1: as generated)", parse=fraction_below_one)
    init_from: str | None = flag(
        None, "fine-tune: start a new stage from the weights of another run's checkpoint (a "
              "stage folder, its best/, or a checkpoint path; the same stage and "
              "configuration); optimisers, step and random stream start afresh",
        metavar="PATH")
    xla: bool = flag(False, "training only: compile each update's forward pass, gradient "
                            "penalty and gradients with XLA (for GPUs; slower on a CPU, see "
                            "docs/scaling.md)")
    graph: str = flag(
        GRAPHS[0], "training only: what one traced graph holds. iteration: the whole "
                   "iteration (5 critic updates and the generator's), the fastest step; "
                   "update: one update, traced once and called for each, so the trainer "
                   "starts sooner (for short runs and tests)", choices=GRAPHS)
    max_steps: int | None = flag(
        None, "stop when the step (generator updates) reaches this (default: train until "
              "Ctrl+C)", parse=int_in_range(1, sys.maxsize))
    save_every_secs: float = flag(300.0, "seconds between checkpoints", parse=positive_float)
    summary_every_secs: float = flag(120.0, "seconds between TensorBoard summaries",
                                     parse=positive_float)
    log_every_secs: float = flag(5.0, "seconds between console progress lines",
                                 parse=positive_float)


@dataclass(frozen=True)
class WatchConfig:
    """Training that watches itself: the moving average, the quality curve and the collapse
    watchdog (docs/watching.md)."""
    ema_half_life: float = flag(
        EMA_HALF_LIFE, "half-life of the moving-average generator that preview, generation "
                       "and evaluation use, in windows seen (StyleGAN2-ADA's ema_kimg x 1000)",
        parse=positive_float, metavar="WINDOWS")
    ema_rampup: float = flag(
        EMA_RAMPUP, "the half-life is at most this share of the windows the stage has seen, "
                    "so that the average follows a short run (StyleGAN2-ADA's ema_rampup); 0: "
                    "no ramp-up", parse=fraction_below_one)
    ema_decay: float | None = flag(
        None, "a fixed decay d of the moving average instead of the half-life, with "
              "TensorFlow's warm-up min(d, (1 + t) / (10 + t)); 0 turns the average off "
              "(default: none, the --ema_half_life rule)",
        parse=fraction_below_one)
    eval_every_secs: float = flag(
        600.0, "seconds between evaluations of the moving-average generator against real "
               "windows (TensorBoard Eval/*); they keep the best checkpoint in <stage "
               "folder>/best/; 0 turns them off (120 by default with --grow_to)",
        parse=non_negative_float)
    num_eval_samples: int | None = flag(
        None, "generated and real windows compared by --evaluate and by the evaluations "
              f"during training (default: {EVAL_SAMPLES}, fewer at stages 6-8)",
        parse=int_in_range(1, 1 << 20), metavar="M")
    on_collapse: str = flag(
        "rollback", "what a collapse does: roll back to best/ with a new data order and "
                    "latents, stop with exit code 3, or only say so", choices=ON_COLLAPSE)
    collapse_rms_ratio: float = flag(
        0.05, "collapsed when the raw generator's RMS falls below this share of the real RMS "
              "after having been audible (silence)", parse=non_negative_float)
    collapse_full_scale: float = flag(
        0.5, "collapsed when more than this share of generated samples is at full scale",
        parse=non_negative_float)
    collapse_frechet_factor: float = flag(
        3.0, "collapsed when the Frechet mel distance is over this many times the best",
        parse=float_above(1.0))
    collapse_patience: int = flag(
        3, "observations in a row (evaluations, or summaries for silence and full scale) "
           "before a collapse is declared", parse=int_in_range(1, 1000))
    rollback_lr_factor: float = flag(1.0, "learning rates are multiplied by this at each "
                                          "rollback", parse=positive_float)
    max_rollbacks: int = flag(3, "after this many rollbacks a collapse stops training (exit "
                                 "3)", parse=int_in_range(0, 1000))
    # Test-only: zero the generator's output layer at this step, once, to induce a collapse.
    induce_collapse_at_step: int | None = flag(None, "", parse=int_in_range(1, sys.maxsize),
                                               hidden=True)


@dataclass(frozen=True)
class WalkConfig:
    """Generated files and latent walks (longform.py), shared by the trainers and play.py."""
    output_dir: str = flag("generated_samples", "where generated files go")
    duration: float | None = flag(
        None, "with --generate: each file lasts exactly this long, made of windows along a "
              "smooth latent walk joined by crossfades (default: one window)",
        parse=positive_float, metavar="SECONDS")
    anchor_every: int = flag(4, "with --duration (or play.py's --live): windows between the "
                                "walk's random anchor latents",
                             parse=int_in_range(1, 1_000_000))
    crossfade: float | None = flag(
        None, "with --duration (or a trainer's --interpolate, or --live): overlap of "
              "neighbouring windows (default: a quarter of the window, at most 1 s)",
        parse=float_above(0.0, inclusive=True), metavar="SECONDS")


@dataclass(frozen=True)
class GrowConfig:
    """Growing by itself: the report's stage-by-stage workflow as one command (grow.py)."""
    grow_to: int | None = flag(
        None, "grow by itself up to stage N: train stage --num_blocks (default: the lowest "
              "stage not yet grown, from 1), then each next stage's frozen transition and "
              "stable stage, each ending when its quality curve plateaus or its budget ends "
              "(docs/growing.md); the same command again goes on where it stopped",
        parse=int_in_range(MIN_BLOCKS, MAX_BLOCKS), metavar="N")
    # 12: on three 300-step stage-3 runs of real music, 4-8 ended the stage in a flat stretch
    # before the score fell 13-89 % (BENCHMARKS.md, "Growing by itself").
    plateau_patience: int = flag(
        12, "with --grow_to: a stage has plateaued when its best score has not improved over "
           "its last this many evaluations by more than --plateau_margin",
        parse=int_in_range(1, 1000), metavar="K")
    plateau_margin: float = flag(
        0.02, "with --grow_to: the share of the best score before them that the last "
              "--plateau_patience evaluations must improve it by, else the stage has "
              "plateaued", parse=fraction_below_one)
    plateau_min_evaluations: int = flag(
        6, "with --grow_to: a stage ends on a plateau only after this many evaluations",
        parse=int_in_range(1, 1000))
    stage_steps: int | None = flag(
        None, "with --grow_to: a stable stage ends after this many steps at most (a frozen "
              "transition after --frozen_share of them; default: no limit, the stage ends on "
              "its plateau)", parse=int_in_range(1, sys.maxsize))
    stage_minutes: float | None = flag(
        None, "with --grow_to: a stable stage ends after this many minutes of training at most "
              "(a frozen transition after --frozen_share of them; default: no limit)",
        parse=positive_float)
    frozen_share: float = flag(
        0.5, "with --grow_to: a frozen transition's share of a stable stage's budget",
        parse=float_above(0.0))


@dataclass(frozen=True)
class JobConfig:
    """A job that uses a checkpoint instead of training (report §7.4 "preview", appendix B)."""
    preview: bool = flag(False, "instead of training, write 5 fixed-latent slices for every "
                                "new checkpoint to <checkpoint folder>/preview/ until Ctrl+C")
    once: bool = flag(False, "with --preview: preview the latest checkpoint and exit")
    evaluate: bool = flag(
        False, "instead of training, compare windows generated by the latest checkpoint with "
               "windows of --data_dir (evaluate.py's metrics); writes <checkpoint "
               "folder>/evaluation/<step>/")
    generate: int | None = flag(None, "instead of training, write N generated WAV files from "
                                      "the latest checkpoint", parse=COUNTS, metavar="N")
    export: str | None = flag(None, "instead of training, write the generator as a SavedModel "
                                    "and LiteRT models with model.json to DIR, for play.py or "
                                    "any LiteRT runtime", metavar="DIR")
    checkpoint: str = flag("latest", "with a job: the stage's latest checkpoint, its best "
                                     "(kept by the evaluations during training) or a "
                                     "checkpoint path", metavar="latest|best|PATH")
    raw_generator: bool = flag(False, "with a job: the trained weights instead of the moving "
                                      "average")
    prior: str = flag(
        "trainer", "with a job: the latents' distribution. trainer: the trainer's prior "
                   "(U(-1, 1), the VAE-GAN's N(0, 1)); posterior: the VAE-GAN only, a Gaussian "
                   "fitted to where its encoder puts the training windows (kept with each "
                   "checkpoint)", choices=("trainer", "posterior"))
    label: tuple | None = flag(
        None, "with --generate or --interpolate of a model trained with --condition folders: "
              "the label(s) to ask for (a file set per label, every label by default; with "
              "--interpolate, from the first to the last)",
        nargs="+", metavar="NAME")
    label_strength: float = flag(
        1.0, "with --generate, --interpolate or --evaluate of a model trained with --condition "
             "folders: ask for the label S times as far from the blend of every label as "
             "trained (1: as trained; past 1 the music drifts further from the labels, "
             "which the plain projection critic's models make clearer and the matching "
             "critic's do not, BENCHMARKS.md; 0: every label alike)",
        parse=LABEL_STRENGTH, metavar="S")
    interpolate: tuple | None = flag(
        None, "instead of training, write one file that morphs from the latent of seed A to "
              "that of seed B", parse=SEEDS, nargs=2, metavar=("A", "B"))
    steps: int | None = flag(None, "with --interpolate: windows from A to B (default: 8)",
                             parse=int_in_range(2, 1_000_000))

    @property
    def chosen(self):
        """The flags of the jobs asked for."""
        return [name for name, on in (("--preview", self.preview), ("--generate", self.generate),
                                      ("--interpolate", self.interpolate),
                                      ("--evaluate", self.evaluate), ("--export", self.export))
                if on]

    @property
    def name(self):
        """The one job asked for ("generate", ...), or None: training."""
        return self.chosen[0][2:] if self.chosen else None

    def __post_init__(self):
        if self.once and not self.preview:
            raise UserError("--once goes with --preview: add --preview, or drop --once")
        if len(self.chosen) > 1:
            raise UserError(f"{' and '.join(self.chosen)} are separate jobs: use one of them")
        if self.steps is not None and not self.interpolate:
            raise UserError("--steps goes with --interpolate: add --interpolate A B")
        for name in ("interpolate", "label"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclass(frozen=True)
class RunConfig:
    """A trainer's command: training a stage, or one job with its checkpoint."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    checkpoint_dir: str = flag(CHECKPOINT_DIR, "where checkpoints and TensorBoard logs go")
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int | None = seed_flag(None, "seed for initial weights, data order, latents and "
                                       "generation (default: random, printed)")
    watch: WatchConfig = field(default_factory=WatchConfig)
    grow: GrowConfig = field(default_factory=GrowConfig)
    job: JobConfig = field(default_factory=JobConfig)
    walk: WalkConfig = field(default_factory=WalkConfig)
    given: frozenset = field(default=frozenset(), metadata={})  # the flags given, by name

    def __post_init__(self):
        job = self.job.name
        if self.grow.grow_to is not None:
            self.check_growing()
        if self.train.distribution == "multi_worker" and self.seed is None:
            raise UserError("--distribution multi_worker needs --seed, the same on every "
                            "worker (they draw the same latents and initial weights)")
        if self.watch.num_eval_samples is not None and job not in (None, "evaluate"):
            raise UserError("--num_eval_samples goes with training or --evaluate")
        if job is None and (self.job.checkpoint != "latest" or self.job.raw_generator
                            or self.job.prior != "trainer"):
            raise UserError("--checkpoint, --raw_generator and --prior go with --preview, "
                            "--generate, --interpolate, --evaluate or --export")
        if self.walk.duration is not None and not self.job.generate:
            raise UserError("--duration goes with --generate: add --generate N")
        if self.walk.crossfade is not None and self.walk.duration is None \
                and not self.job.interpolate:
            raise UserError("--crossfade goes with --generate N --duration S or "
                            "--interpolate A B")
        if self.train.critic_augment == "ada" and self.data.validation_fraction is None:
            raise UserError("--critic_augment ada adapts to how the critic scores held-out "
                            "music: add --validation_fraction (e.g. 0.1)")
        if self.job.label is not None and job not in ("generate", "interpolate"):
            raise UserError("--label goes with --generate or --interpolate (the other jobs "
                            "take every label of a conditional model)")
        if "label_strength" in self.given and job not in ("generate", "interpolate",
                                                          "evaluate"):
            raise UserError("--label_strength goes with --generate, --interpolate or "
                            "--evaluate")
        if "label_balance" in self.given and self.model.condition == "none":
            raise UserError("--label_balance draws batches over the labels: it goes with "
                            "--condition folders")
        if "label_weight" in self.given and (self.model.condition == "none" or
                                             self.model.label_critic not in NAMING_CRITICS):
            raise UserError(f"--label_weight weighs the critic's naming of the labels: it goes "
                            f"with --condition folders and --label_critic "
                            f"{', '.join(NAMING_CRITICS[:-1])} or {NAMING_CRITICS[-1]}")
        if job is not None and (self.train.init_from or self.train.critic_augment != "none"):
            raise UserError("--init_from and --critic_augment go with training, not with a job")
        grow_flags = sorted(f"--{f.name}" for f in leaves(GrowConfig)
                            if f.name in self.given and f.name != "grow_to")
        if grow_flags and self.grow.grow_to is None:
            raise UserError(f"{', '.join(grow_flags)} go with --grow_to N")

    def check_growing(self):
        """--grow_to's one-line refusals, before anything is read or written."""
        grow, first = self.grow, self.model.num_blocks
        clashes = [flag for flag, on in (
            ("--freeze_early_layers", self.model.freeze_early_layers),
            ("--max_steps", self.train.max_steps is not None),
            ("--distribution multi_worker", self.train.distribution == "multi_worker"),
            *((name, True) for name in self.job.chosen)) if on]
        if clashes:
            raise UserError(f"--grow_to decides the stages and when each ends: drop "
                            f"{' and '.join(clashes)} (--stage_steps and --stage_minutes "
                            f"bound each stage)")
        if "num_blocks" in self.given and grow.grow_to < first:
            raise UserError(f"--grow_to {grow.grow_to} is below the first stage, --num_blocks "
                            f"{first}: grow to {first} or more")
        if not self.watch.eval_every_secs and grow.stage_steps is None \
                and grow.stage_minutes is None:
            raise UserError("--grow_to ends a stage on a plateau of its evaluations or at its "
                            "budget: keep --eval_every_secs above 0, or give --stage_steps or "
                            "--stage_minutes")


# --------------------------------------------------------------------------- the other tools

@dataclass(frozen=True)
class DataCheckConfig:
    """python dataloader.py FOLDER: a folder of audio checked before a long run."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    checkpoint_dir: str = flag(CHECKPOINT_DIR, "the trainers' --checkpoint_dir, whose "
                                               "audio_cache folder is the default decode cache")
    json: bool = json_flag()


@dataclass(frozen=True)
class EvaluateConfig:
    """python evaluate.py REAL_DIR GENERATED_DIR: two folders of audio compared."""
    real_dir: str = flag(None, "folder of real (training) audio")
    generated_dir: str = flag(None, "folder of generated audio")
    model: ModelConfig = field(default_factory=ModelConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    seed: int = seed_flag(0, "seed for the choice of windows and the k-means of NDB/K")
    data: DataConfig = field(default_factory=DataConfig)
    json: bool = json_flag()
    plots: str | None = flag(None, "write waveform, zoom, spectrogram and loudness PNGs and "
                                   "metrics.json to DIR", metavar="DIR")


@dataclass(frozen=True)
class PlayConfig:
    """python play.py EXPORT: an exported generator played without TensorFlow."""
    export: str = flag(None, "a folder written by a trainer's --export DIR")
    generate: int | None = flag(None, "write N files, as the trainer's --generate (--duration "
                                      "alone: one file)", parse=COUNTS, metavar="N")
    label: tuple | None = flag(
        None, "an export of a model trained with --condition folders: the label(s) to play "
              "(--generate: a file set each; --live: the walk moves from one to the next at "
              "each anchor); every label by default", nargs="+", metavar="NAME")
    label_strength: float = flag(
        1.0, "an export of a model trained with --condition folders: ask for the label S "
             "times as far from the blend of every label as trained, as the trainer's "
             "--label_strength", parse=LABEL_STRENGTH, metavar="S")
    walk: WalkConfig = field(default_factory=WalkConfig)
    live: bool = flag(False, "play an endless latent walk until Ctrl+C")
    stdout: bool = flag(False, "with --live: raw 16-bit PCM on standard output instead of the "
                               "sound card")
    chunks: int | None = flag(None, "with --live: stop after this many chunks (default: never)",
                              parse=int_in_range(1, sys.maxsize))
    chunk_windows: int = flag(4, "with --live: windows rendered at a time",
                              parse=int_in_range(1, 4096))
    seed: int | None = seed_flag(None, "seed of the latents (default: random, printed)")
    float16: bool = flag(False, "the export's smaller model (float16 weights)")
    serve: bool = flag(False, "serve the listening room, a page to explore the export in a "
                              "browser (docs/generation.md), until Ctrl+C")
    host: str = flag("127.0.0.1", "with --serve: the address to listen on (the default: this "
                                  "machine only; 0.0.0.0: every machine that can reach it)")
    port: int = flag(8765, "with --serve: the port to listen on (0: a free one)",
                     parse=int_in_range(0, 65535))

    def __post_init__(self):
        if self.walk.duration is not None and self.generate is None and not (self.live or
                                                                              self.serve):
            object.__setattr__(self, "generate", 1)  # --duration alone: one file
        asked = [bool(self.generate), self.live, self.serve].count(True)
        if asked != 1:
            raise UserError(("one thing at a time: " if asked else "say what to play: ")
                            + "--generate N (or --duration S), --live or --serve")
        if (self.stdout or self.chunks) and not self.live:
            raise UserError("--stdout and --chunks go with --live")
        if self.serve and (self.label is not None or self.label_strength != 1.0):
            raise UserError("--label and --label_strength go with --generate or --live: the "
                            "listening room asks for them on its page")
        if self.label is not None:
            object.__setattr__(self, "label", tuple(self.label))


# --------------------------------------------------------------------------- parsing

def leaves(cls):
    """The flag fields of a configuration class, nested ones included, in order."""
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type):
            yield from leaves(f.type)
        elif "help" in f.metadata:
            yield f


def add_flags(parser, cls, offer=None, defaults=None, positional=()):
    """A flag on parser for each field of cls (nested included) named in offer (every field
    if None); `defaults` overrides a field's default for this command, fields in `positional`
    become positional arguments."""
    defaults = defaults or {}
    for f in leaves(cls):
        if offer is not None and f.name not in offer:
            continue
        meta = f.metadata
        default = defaults.get(f.name, f.default)
        if isinstance(f.default, bool):
            parser.add_argument(f"--{f.name}", action="store_true", help=meta["help"])
            continue
        names = [f.name] if f.name in positional else [f"--{f.name}"]
        options = {"default": default} if f.name not in positional else {}
        parser.add_argument(*names, type=meta["parse"], choices=meta["choices"],
                            metavar=meta["metavar"], nargs=meta["nargs"], help=meta["help"],
                            **options)


def make_parser(cls, description, offer=None, defaults=None, positional=()):
    """An argparse parser of the fields of cls (see add_flags): defaults in --help, bad
    flags one line and exit code 2."""
    parser = ArgumentParser(description=description)
    add_flags(parser, cls, offer, defaults, positional)
    return parser


def build(cls, values, defaults=None, given=frozenset()):
    """An instance of cls from {field name: value} (nested configurations too); a field
    without a value takes `defaults`' or its own default; a field `given` gets the names of
    the flags given."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type):
            kwargs[f.name] = build(f.type, values, defaults)
        elif f.name == "given":
            kwargs[f.name] = frozenset(given)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
        elif defaults and f.name in defaults:
            kwargs[f.name] = defaults[f.name]
    return cls(**kwargs)


def parse(cls, argv, parser, defaults=None):
    """argv parsed by parser into an instance of cls: the one place the parsed flags are
    read."""
    values = vars(parser.parse_args(argv))
    actions = parser_actions(parser)
    offered = {action.dest for action in actions}
    return build(cls, {name: values[name] for name in offered if name in values}, defaults,
                 given_flags(parser, actions, argv))


def given_flags(parser, actions, argv):
    """The names of the flags argv gives (a default given explicitly counts as given): argv
    parsed again with every default a marker."""
    marker = object()
    saved = {action.dest: action.default for action in actions}
    try:
        for action in actions:
            action.default = marker
        values = vars(parser.parse_args(argv))
    finally:
        for action in actions:
            action.default = saved[action.dest]
    return {name for name, value in values.items() if value is not marker and name != "help"}
