"""Sharpness-aware minimisation (SAM, Foret et al. 2021) as a Keras training step.

Each step takes the gradient g at the weights w, moves to the nearby weights w + rho * g / |g|
where the loss climbs fastest, and applies the gradient taken *there* to w. Training then
settles where the loss stays low around the weights, not only at them; in anti-spoofing such
minima carried better to unseen datasets (Shim et al., ICASSP 2023). It costs a second forward
and backward pass per step; the saved model is the plain functional model (the step is bound
to the training instance only, so nothing new has to be registered to load a checkpoint).

Backend-specific (the gradient at other weights is taken differently): TensorFlow on a host,
JAX on GPU machines. Each step mirrors Keras 3's own train_step for its backend, private helpers
included (loss tracking, metrics); tests/test_sam.py checks it against a hand-worked step.
"""

from __future__ import annotations

# Keeps |g| = 0 (a batch the model already fits exactly) from dividing by zero.
_NORM_FLOOR = 1e-12


def enable_sam(model, rho: float) -> None:
    """Makes ``model.fit`` take SAM steps of radius ``rho`` (compile the model first)."""
    import keras

    if rho <= 0:
        raise ValueError(f"sam_rho = {rho}: must be above 0 to enable SAM")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        def step(data):
            return _tensorflow_step(model, rho, data)
    elif backend == "jax":
        def step(state, data):
            return _jax_step(model, rho, state, data)
    else:
        raise ValueError(f"SAM runs on the tensorflow and jax backends, not {backend}")
    # fit() looks the step up on the instance, so the class and what it saves stay plain.
    model.train_step = step
    model.train_function = None


def _tensorflow_step(model, rho: float, data):
    import keras
    import tensorflow as tf

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                   training=True)
    model._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
    gradients = tape.gradient(loss, variables)
    scale = rho / (tf.linalg.global_norm(gradients) + _NORM_FLOOR)
    climb = [g * scale for g in gradients]
    for variable, delta in zip(variables, climb, strict=True):
        variable.assign_add(delta)
    with tf.GradientTape() as tape:
        sharp_loss = model._compute_loss(x=x, y=y, y_pred=model(x, training=True),
                                         sample_weight=sample_weight, training=True)
    gradients = tape.gradient(sharp_loss, variables)
    for variable, delta in zip(variables, climb, strict=True):
        variable.assign_sub(delta)
    model.optimizer.apply_gradients(zip(gradients, variables, strict=True))
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def _jax_step(model, rho: float, state, data):
    import jax
    import jax.numpy as jnp
    import keras

    trainable, non_trainable, optimizer_variables, metrics_variables = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    loss_and_gradients = jax.value_and_grad(model.compute_loss_and_updates, has_aux=True)

    def gradients_at(weights, non_trainable):
        return loss_and_gradients(weights, non_trainable, metrics_variables, x, y,
                                  sample_weight, training=True,
                                  optimizer_variables=optimizer_variables)

    (_, aux), gradients = gradients_at(trainable, non_trainable)
    unscaled_loss, y_pred, non_trainable, _ = aux
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in gradients))
    scale = rho / (norm + _NORM_FLOOR)
    sharp = [w + g * scale for w, g in zip(trainable, gradients, strict=True)]
    # (The second pass advances the dropout seed once more; its metrics are not kept.)
    (_, (_, _, non_trainable, _)), gradients = gradients_at(sharp, non_trainable)
    trainable, optimizer_variables = model.optimizer.stateless_apply(
        optimizer_variables, gradients, trainable)
    logs, metrics_variables = model._update_metrics_variables(
        metrics_variables, unscaled_loss, x, y, y_pred, sample_weight)
    return logs, (trainable, non_trainable, optimizer_variables, metrics_variables)
