"""Gradient checkpointing for tf-models-official's `BertEncoder`: each layer recomputed in the backward pass.

Why: the backward pass of a transformer layer reads about 20 tensors of its
forward pass (Q, K, V, attention probabilities and dropout masks [b, h, s, s],
the FFN's [b, s, I] intermediates, ...; `training.memory_estimate`), so a
training step keeps L layers' worth of them per example. With
`recompute_layers(encoder)` each `TransformerEncoderBlock` keeps only its
inputs -- x [b, s, H] and the attention mask [b, s, s], shared by all layers --
and its backward pass runs the layer's forward again first: one layer's
activations are live at a time, for about one more forward pass of compute.

How: each block's `call` is replaced, on the instance, by one that runs the
original under `tf.recompute_grad`. The encoder, its variables, their names and
the checkpoint layout are unchanged (nothing is forked or re-wrapped), and the
gradients are those of the plain layer:

- Dropout. The recomputed forward must drop the same units as the first, so
  every dropout layer of a recomputed block must draw from a
  `tf.random.Generator` (tf_keras's "stateful" RNG type): a Philox generator's
  draws are a function of its state variable. Before the forward the wrapper
  reads the state of each of the block's generators; the recomputation resets
  them to those values, draws exactly the masks of the first forward, and
  leaves each generator where the forward left it. The masks are those that a
  model without checkpointing draws from the same generator states, so a
  seeded run (`distribution.set_determinism`) trains to the same weights with
  and without checkpointing. Build the model inside `replayable_dropout()`
  when `set_determinism` did not already switch tf_keras to generators.
  Under a distribution strategy each replica reads and resets its own copy of
  the state (the generator itself folds the replica id into its key).
- Training mode. The recomputation runs outside the Keras call that holds the
  training flag, so the wrapper reads the flag from tf_keras's call context in
  the forward and passes it explicitly when it calls the block again. In
  inference (the flag False or unset) the block runs as it is.
  That call goes through the block's Keras `__call__` (autocasting of
  variables under mixed precision included); a thread-local guard makes the
  nested `call` run the original layer.
"""
import contextlib
import threading
from typing import Any, Callable, Iterator

import tensorflow as tf
import tf_keras
from official.nlp.modeling import networks
from tf_keras.src.engine import base_layer_utils  # the Keras call context: the training flag of the forward


@contextlib.contextmanager
def replayable_dropout() -> Iterator[None]:
  """Within it, tf_keras dropout layers built draw from `tf.random.Generator`s (restores the setting after).

  Without a seed (`set_determinism`) each generator starts from a random
  state, as tf_keras's legacy dropout does, so only the replay changes.
  """
  experimental = tf_keras.backend.experimental
  was_enabled = experimental.is_tf_random_generator_enabled()
  experimental.enable_tf_random_generator()
  try:
    yield
  finally:
    if not was_enabled:
      experimental.disable_tf_random_generator()


def dropout_generators(block: tf_keras.layers.Layer) -> list[tf.random.Generator]:
  """The generators of the dropout layers in `block`, once each, in a fixed order.

  Raises:
    ValueError: a dropout layer with a nonzero rate draws from TensorFlow's
      legacy stateful ops, whose masks cannot be drawn again.
  """
  generators: dict[int, tf.random.Generator] = {}
  for layer in block.submodules:
    random_generator = getattr(layer, "_random_generator", None)
    if random_generator is None:
      continue
    generator = getattr(random_generator, "_generator", None)
    if isinstance(generator, tf.random.Generator):
      generators.setdefault(id(generator), generator)
    elif getattr(layer, "rate", 0) != 0:
      raise ValueError(f"{block.name}/{layer.name}: dropout without a tf.random.Generator cannot be "
                       "recomputed with the same mask; build the model inside recompute.replayable_dropout()")
  return list(generators.values())


def _read_states(generators: list[tf.random.Generator]) -> list[tf.Tensor]:
  """Each generator's state [3] int64 (this replica's copy under a strategy)."""
  return [tf.raw_ops.ReadVariableOp(resource=g.state.handle, dtype=g.state.dtype) for g in generators]


def _reset_states(generators: list[tf.random.Generator], states: list[tf.Tensor]) -> None:
  """Sets each generator's state (this replica's copy) back to `states`."""
  for generator, state in zip(generators, states):
    tf.raw_ops.AssignVariableOp(resource=generator.state.handle, value=state)


def _recomputing_call(block: tf_keras.layers.Layer) -> Callable[..., Any]:
  """A replacement for `block.call(inputs, output_range=None)` that recomputes it in the backward pass.

  `inputs` is [x [b, s, H], attention_mask [b, s, s]], as `BertEncoder` passes
  them; returns the block's output [b, s, H].
  """
  original_call = block.call
  guard = threading.local()

  @tf.autograph.experimental.do_not_convert
  def call(inputs: list[tf.Tensor], output_range: tf.Tensor | None = None) -> tf.Tensor:
    training = base_layer_utils.call_context().training
    if getattr(guard, "inside", False) or training is None or training is False:
      # The recomputation's own call of the block, or inference (no dropout, no backward pass to save for).
      return original_call(inputs, output_range=output_range)
    generators = dropout_generators(block)
    states = _read_states(generators)
    calls = []  # tf.recompute_grad runs `forward` once in the forward pass, then once per gradient computed

    def forward(x: tf.Tensor, attention_mask: tf.Tensor) -> tf.Tensor:
      calls.append(None)
      if len(calls) == 1:
        return original_call([x, attention_mask], output_range=output_range)
      _reset_states(generators, states)  # the recomputation: replay the forward's dropout masks
      guard.inside = True
      try:
        return block([x, attention_mask], output_range=output_range, training=training)
      finally:
        guard.inside = False

    x, attention_mask = inputs
    return tf.recompute_grad(forward)(x, attention_mask)

  return call


def recompute_layers(encoder: networks.BertEncoder) -> None:
  """Makes each transformer layer of `encoder` recompute its activations in the backward pass.

  Call once, after the encoder is built (e.g. by the model that holds it);
  see the module docstring.

  Raises:
    ValueError: a dropout layer that cannot replay its mask (`dropout_generators`).
  """
  for block in encoder.transformer_layers:
    dropout_generators(block)  # fail now rather than at the first training step
    block.call = _recomputing_call(block)
