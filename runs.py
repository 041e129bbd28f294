"""A training run: what a trainer says about itself (Recipe) and everything a run is made of
(Run: networks, optimisers, step counter, random stream, moving average, training iteration
and checkpoint), built the same way for the three trainers and bench/ (report §7.6).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from rules import AUGMENT, AVERAGE, GRAPHS, LATENT_DIM, LEARNING_RATE, POSTERIOR


@dataclass(frozen=True)
class Recipe:
    """What one trainer does differently from the others."""
    model: str                       # name stored in config.json
    description: str                 # the first line of its --help
    build_networks: Callable         # (config.json dict, dtype policy) -> {"generator": G, ...}
    make_config: Callable            # (ModelConfig, sampling rate, channels) -> config.json
    checkpoint_root: Callable        # (checkpoint_dir, ModelConfig) -> folder of the stages
    model_flags: tuple = ()          # the ModelConfig fields it offers as flags
    defaults: dict = field(default_factory=dict)  # its own defaults of other flags
    growing: bool = True             # progressive restore chain, or one fixed stage
    prior: str = "uniform"           # latent prior: "uniform" on [-1, 1] or "normal"
    preview_gap: Callable = lambda window: 16000  # zeros after each preview slice
    iteration: str = "Iteration"     # its training iteration: a class of iteration.py
    posterior: bool = False          # keeps the aggregate posterior of an encoder (VAE-GAN)


@dataclass
class Run:
    """What a training run is made of; `checkpoint` holds all of it but the iteration
    (checkpoints.contents)."""
    networks: dict
    optimizers: dict
    step: object       # tf.Variable: iterations (generator updates) so far
    rng: object        # tf.random.Generator of every draw of the iteration
    iteration: object  # iteration.Iteration: iteration(iterator) trains one iteration
    # Checkpoint entries that checkpoints of earlier versions lack: {name: variable}
    optional: dict
    average: object = None  # moving_average.MovingAverage, or None with --ema_decay 0
    checkpoint: object = None  # tf.train.Checkpoint (checkpoints.make_checkpoint)
    posterior: object = None  # model_vaegan.AggregatePosterior of the encoder, or None

    @property
    def sound_generator(self):
        """The generator whose sound a user hears: the moving average, if there is one."""
        return self.average.average if self.average else self.networks["generator"]

    def start_afresh(self, name):
        """An optional entry a checkpoint lacks starts afresh; what that means, to say so."""
        if self.average is not None and name == AVERAGE:
            self.average.copy()
            return "the moving average starts from the weights"
        if name == POSTERIOR:
            return "it is fitted at the next save"
        if name == AUGMENT:
            return "the augmentations' probability starts at 0"
        return "it starts afresh"

    def fit_posterior(self, windows, batch):
        """Fit the aggregate posterior to the encoder's means of windows [n, window,
        channels]: their mean and the Cholesky factor of their covariance, shrunk towards its
        diagonal by LATENT_DIM / n (a sample of few windows has a covariance of low rank)."""
        import numpy as np

        encoder = self.networks["encoder"]
        means = np.concatenate([np.asarray(encoder(windows[i:i + batch])[0], np.float64)
                                for i in range(0, len(windows), batch)])
        covariance = np.atleast_2d(np.cov(means, rowvar=False)) if len(means) > 1 else \
            np.zeros((LATENT_DIM, LATENT_DIM))
        shrink = min(1.0, LATENT_DIM / len(means))
        covariance = (1 - shrink) * covariance + shrink * np.diag(np.diag(covariance))
        scale = np.linalg.cholesky(covariance + 1e-6 * np.eye(LATENT_DIM))
        self.posterior.mean.assign(means.mean(axis=0).astype(np.float32))
        self.posterior.scale.assign(scale.astype(np.float32))
        self.posterior.windows.assign(float(len(means)))


def draw_latent(rng, batch, prior):
    """The generator's input during training, from the run's tf.random.Generator: 100 values
    from U(-1, 1) (§7.4) or N(0, 1) (the VAE-GAN's prior)."""
    shape = [batch, LATENT_DIM]
    return rng.uniform(shape, -1.0, 1.0) if prior == "uniform" else rng.normal(shape)


def build_run(recipe, config, policy, loss_scale, seed, strategy=None, xla=False,
              average_rule=None, graph=GRAPHS[0], augment=False, label_shares=None,
              learning_rate=LEARNING_RATE, label_weight=1.0):
    """Networks (frozen as config says), one optimiser per network built on its trainable
    variables, step counter, random stream, the generator's moving average (moving by
    average_rule, moving_average.rule's; none if None) and training iteration (with the
    critic's adaptive augmentation if augment; a conditional model's generator asked for its
    labels in label_shares, its critic naming them with label_weight; Adam at learning_rate,
    the report's by default). Initial weights come from seed; the average starts as the
    generator (checkpoints.start_stage carries it from a checkpoint)."""
    import keras
    import tensorflow as tf

    import iteration
    from adam import make_optimizer
    from checkpoints import make_checkpoint
    from moving_average import MovingAverage

    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(seed)
    # Mirrored variables under a strategy; optimisers are built inside its scope, before the
    # first iteration (a lazy build there fails).
    with strategy.scope():
        networks = recipe.build_networks(config, policy)
        if config.get("frozen"):
            for network in networks.values():
                network.freeze_early_layers()
        optimizers = {}
        for name, network in networks.items():
            optimizers[name + "_optimizer"] = make_optimizer(loss_scale, learning_rate)
            optimizers[name + "_optimizer"].build(network.trainable_variables)
        average = None
        if average_rule is not None:
            average = MovingAverage(networks["generator"], recipe.build_networks(
                config, "float32", generator_only=True)["generator"], average_rule)
            average.copy()
    step = tf.Variable(0, dtype=tf.int64, name="step")
    rng = tf.random.Generator.from_seed(seed)
    augmentation = None
    if augment:
        from augment import Augment
        augmentation = Augment(config["channels"])
    train = getattr(iteration, recipe.iteration)(
        networks, optimizers, step, rng, lambda batch: draw_latent(rng, batch, recipe.prior),
        loss_scale, strategy=strategy, xla=xla, moving_average=average, graph=graph,
        augment=augmentation, label_shares=label_shares, label_weight=label_weight)
    optional = {name: state for network in networks.values()
                for name, state in getattr(network, "random_state", dict)().items()}
    if average is not None:
        optional[AVERAGE] = average.average
    if augmentation is not None:
        optional[AUGMENT] = augmentation
    posterior = None
    if recipe.posterior:
        from model_vaegan import AggregatePosterior
        optional[POSTERIOR] = posterior = AggregatePosterior()
    run = Run(networks, optimizers, step, rng, train, optional, average, posterior=posterior)
    run.checkpoint = make_checkpoint(run)
    return run
