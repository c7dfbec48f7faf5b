"""Batched prediction with any one-machine strategy: features in, logits out, in order.

`predict_logits(model, dataset of (inputs {name: [seq] or [b, seq] int32},
targets {"unique_ids"}), strategy, batch_size)` -> unique_ids [n] int64,
start_logits [n, seq] float32, end_logits [n, seq] float32.

With `length_bucketing=True` the batches hold features of similar length,
trimmed to a multiple of `bucket_granularity` (see `length_buckets`); the
result has the same form and order, with `length_buckets.FILL_LOGIT` at the
positions never computed. The default runs every feature at full length.
"""
import sys
from typing import Callable, Iterable, TextIO

import numpy as np
import tensorflow as tf
import tf_keras
from absl import logging

from bert_squad.common import progress
from bert_squad.training import distribution
from bert_squad.training import length_buckets

_IS_REAL = length_buckets.IS_REAL  # marks the real rows of a padded prediction batch


def pad_to_full_batches(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
  """Batches `dataset` into full batches, marking real rows in targets[_IS_REAL].

  Appends `batch_size - 1` copies of the first element marked unreal, then
  drops the remainder: every real element lands in a full (static-shape)
  batch, which TPUs need and which splits evenly over replicas.
  """
  if dataset.element_spec[0]["input_ids"].shape.rank == 2:
    dataset = dataset.unbatch()

  def mark(is_real: int):
    def fn(inputs, targets):
      return inputs, dict(targets, **{_IS_REAL: tf.constant(is_real, tf.int32)})
    return fn

  padding = dataset.take(1).map(mark(0)).repeat(batch_size - 1)
  return dataset.map(mark(1)).concatenate(padding).batch(batch_size, drop_remainder=True)


def make_predict_step(model: tf_keras.Model, strategy: tf.distribute.Strategy,
                      jit_compile: bool = False,
                      any_length_inputs: Iterable[str] | None = None) -> Callable:
  """The compiled prediction step: (inputs, targets) -> (targets, start_logits, end_logits).

  Each replica runs the forward pass on its share of the batch (with XLA if
  `jit_compile`); `targets` (a dict, e.g. unique_ids) is passed through, and
  every output is concatenated over the replicas: logits [batch, seq] float32.
  With `any_length_inputs` (the input names) the forward pass is traced once
  for int32 inputs [batch, any seq], so a model built for max_seq_length
  also takes trimmed batches (XLA still compiles each width it meets once).
  """
  signature = None
  if any_length_inputs is not None:
    signature = [{name: tf.TensorSpec([None, None], tf.int32) for name in any_length_inputs}]
  forward = tf.function(lambda inputs: model(inputs, training=False), jit_compile=jit_compile,
                        input_signature=signature)

  def replica_fn(inputs, targets):
    outputs = forward(inputs)
    return (targets, tf.cast(outputs["start_logits"], tf.float32),
            tf.cast(outputs["end_logits"], tf.float32))

  @tf.function(reduce_retracing=any_length_inputs is not None)
  def predict_step(inputs, targets):
    per_replica = strategy.run(replica_fn, args=(inputs, targets))
    return tf.nest.map_structure(
        lambda value: tf.concat(strategy.experimental_local_results(value), axis=0), per_replica)

  return predict_step


def predict_logits(model: tf_keras.Model, dataset: tf.data.Dataset,
                   strategy: tf.distribute.Strategy, batch_size: int,
                   jit_compile: bool = False, num_features: int | None = None,
                   log_stream: TextIO | None = None, length_bucketing: bool = False,
                   bucket_granularity: int = length_buckets.DEFAULT_GRANULARITY
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Runs the span model over every feature of `dataset`, in order.

  Args:
    model: the span model (built under `strategy.scope()`).
    dataset: (inputs, targets) with targets["unique_ids"], batched or not
      (e.g. `make_dataset(..., is_training=False)`); read once.
    strategy: one machine's strategy (OneDevice, Mirrored or TPU).
    batch_size: global prediction batch, split across replicas.
    jit_compile: compile the forward pass with XLA.
    num_features: the features in `dataset`, for the progress bar's total.
    log_stream: show the batches done (`progress`) there; default: no display.
    length_bucketing: batch features of similar length and trim the padding
      (`predict_bucketed`); logs the tokens computed against a padded run.
    bucket_granularity: with length_bucketing, batch widths are multiples of it.

  Returns:
    unique_ids [n] int64, start_logits [n, seq] and end_logits [n, seq]
    float32, one row per input feature in the dataset's order.
  """
  if length_bucketing:
    unique_ids, start_logits, end_logits, tokens = predict_bucketed(
        model, dataset, strategy, batch_size, jit_compile, bucket_granularity,
        num_features, log_stream)
    logging.info(tokens.summary())
    return unique_ids, start_logits, end_logits
  _check_strategy(strategy, batch_size)
  predict_step = make_predict_step(model, strategy, jit_compile)
  padded = pad_to_full_batches(dataset, batch_size)
  results = [[], [], [], []]
  total = None if num_features is None else -(-num_features // batch_size)
  with progress.Progress(total, "predict", "batches", log_stream or sys.stderr,
                         enabled=log_stream is not None) as bar:
    for inputs, targets in strategy.experimental_distribute_dataset(padded):
      passed_on, start_logits, end_logits = predict_step(inputs, targets)
      for collected, value in zip(results, (passed_on["unique_ids"], passed_on[_IS_REAL],
                                            start_logits, end_logits)):
        collected.append(value.numpy())
      bar.advance()
  if not results[0]:
    seq_length = dataset.element_spec[0]["input_ids"].shape[-1] or 0
    return (np.zeros([0], np.int64), np.zeros([0, seq_length], np.float32),
            np.zeros([0, seq_length], np.float32))
  unique_ids, is_real, start_logits, end_logits = (np.concatenate(r) for r in results)
  real = is_real.astype(bool)
  return unique_ids[real].astype(np.int64), start_logits[real], end_logits[real]


def _check_strategy(strategy: tf.distribute.Strategy, batch_size: int) -> None:
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    raise ValueError("predict_logits runs on one machine: "
                     "use a OneDevice, Mirrored or TPU strategy")
  distribution.check_batch_size(batch_size, strategy, flag="--predict_batch_size")


def predict_bucketed(model: tf_keras.Model, dataset: tf.data.Dataset,
                     strategy: tf.distribute.Strategy, batch_size: int,
                     jit_compile: bool = False,
                     granularity: int = length_buckets.DEFAULT_GRANULARITY,
                     num_features: int | None = None, log_stream: TextIO | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, length_buckets.TokenCounts]:
  """`predict_logits` over length-bucketed batches (`length_buckets.bucketed_batches`).

  Same arguments as `predict_logits` (granularity: batch widths are its
  multiples). Returns unique_ids [n] int64, start/end logits [n, seq]
  float32 in the dataset's order, `length_buckets.FILL_LOGIT` at the
  positions past the width of a feature's batch, and the TokenCounts.
  """
  _check_strategy(strategy, batch_size)
  inputs_spec = dataset.element_spec[0]
  seq_length = inputs_spec["input_ids"].shape[-1]
  predict_step = make_predict_step(model, strategy, jit_compile, any_length_inputs=list(inputs_spec))
  batches = length_buckets.bucketed_batches(dataset, batch_size, granularity)
  keys = ("unique_ids", length_buckets.FEATURE_INDEX, length_buckets.IS_REAL)
  results = []
  with progress.Progress(num_features, "predict", "features", log_stream or sys.stderr,
                         enabled=log_stream is not None) as bar:
    for inputs, targets in strategy.experimental_distribute_dataset(batches):
      passed_on, start_logits, end_logits = predict_step(inputs, targets)
      batch = {key: passed_on[key].numpy() for key in keys}
      batch.update(start_logits=start_logits.numpy(), end_logits=end_logits.numpy())
      results.append(batch)
      bar.advance(int(batch[length_buckets.IS_REAL].sum()))
  return length_buckets.restore_order(results, seq_length)
