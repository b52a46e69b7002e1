"""Data parallelism with ``keras.distribution``: every local accelerator of a host, and every
host of a ``jax.distributed`` cluster, from the same training code.

On the JAX backend with more than one device, ``DataParallel`` replicates the model on each
device and splits every global batch between them (gradients all-reduced). Several hosts join
through ``keras.distribution.initialize()`` (``jax.distributed.initialize``), configured by
``KERAS_DISTRIBUTION_JOB_ADDRESSES`` / ``_NUM_PROCESSES`` / ``_PROCESS_ID``; each process then
feeds its own share of each global batch (``Sharding``). Other backends train on one device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from host_training.streaming import Sharding

CLUSTER_ENV = "KERAS_DISTRIBUTION_NUM_PROCESSES"


@dataclass(frozen=True)
class Placement:
    backend: str
    devices: int  # devices one global batch is split over (all processes together)
    sharding: Sharding  # this process's share of the data
    description: str


def configure(batch_size: int) -> Placement:
    """Sets the global distribution for this process before the model is built."""
    import keras

    backend = keras.backend.backend()
    if backend != "jax":
        return Placement(backend, 1, Sharding(), f"{backend}, one device")
    import jax

    if int(os.environ.get(CLUSTER_ENV, "1")) > 1:
        keras.distribution.initialize()
    devices = keras.distribution.list_devices()
    kind = devices[0].split(":")[0] if devices else "cpu"
    sharding = Sharding(jax.process_index(), jax.process_count())
    description = (f"jax, {len(devices)} {kind} device(s) in {jax.process_count()} "
                   f"process(es)")
    if len(devices) < 2:
        return Placement(backend, 1, sharding, description)
    if batch_size % len(devices):
        raise ValueError(f"batch_size {batch_size} must be a multiple of the {len(devices)} "
                         "devices it is split over")
    # Each process already feeds only its own share (Sharding); Keras's auto-sharding would
    # demand a tf.data.Dataset and refuse the PyDataset on more than one process.
    keras.distribution.set_distribution(keras.distribution.DataParallel(
        devices=devices, auto_shard_dataset=jax.process_count() == 1))
    return Placement(backend, len(devices), sharding, description + ", DataParallel")
