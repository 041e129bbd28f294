"""Choosing where training runs: one device, every GPU of a machine, or several machines, on
TensorFlow's own tf.distribute (`--distribution none|mirrored|multi_worker`).
"""

import json
import os

from utils import UserError


def check_cluster():
    """multi_worker's TF_CONFIG must name a cluster: a one-line error otherwise."""
    config = os.environ.get("TF_CONFIG")
    try:
        cluster = json.loads(config)["cluster"] if config else None
    except (ValueError, KeyError, TypeError):
        cluster = None
    if not isinstance(cluster, dict) or not cluster:
        raise UserError("--distribution multi_worker needs the TF_CONFIG environment variable "
                        "to describe the cluster and this worker's task, e.g. TF_CONFIG="
                        "'{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
                        "\"task\": {\"type\": \"worker\", \"index\": 0}}' (docs/scaling.md)")


def make_strategy(name):
    """The tf.distribute strategy of --distribution: none, mirrored or multi_worker. Made
    before any other TensorFlow op: multi_worker needs that."""
    import tensorflow as tf
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    check_cluster()
    return tf.distribute.MultiWorkerMirroredStrategy()


def distribute(dataset, strategy):
    """An iterator of the dataset's global batches, split across the strategy's replicas
    (and sharded across workers: each worker takes its own batches)."""
    import tensorflow as tf
    if strategy is tf.distribute.get_strategy():  # the default: one device
        return iter(dataset)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return iter(strategy.experimental_distribute_dataset(dataset.with_options(options)))

