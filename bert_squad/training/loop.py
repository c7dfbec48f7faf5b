"""The custom training loop, for any `tf.distribute` strategy: a model and a dataset in, checkpoints out.

`train()` takes everything it works on as arguments -- the model, the
optimizer, the per-example loss (start/end positions [b] int32, start/end
logits [b, seq] float32 -> loss [b]), a dataset function of (inputs, targets)
batches and the strategy -- so the same loop runs the BERT span model in
`run_squad.py` and tiny models in the tests. It returns a
`loop_config.TrainResult`.

What lands in `output_dir`:
  ckpt-<step>.index/.data-*, checkpoint  `tf.train.Checkpoint(model=,
      optimizer=, step=)` -- plus `optimizer/loss_scale` in float16 and
      `dropout_generators=` after `set_determinism` -- every
      `save_checkpoints_steps`, at the end and on SIGINT/SIGTERM;
  tensorboard/                           scalars: loss, learning_rate,
      start_accuracy, end_accuracy, examples_per_second (+ loss_scale);
  train_history.json                     one entry per log step;
  training_curves.png                    loss and learning rate vs. step.

Resuming: the same call after an interruption restores the latest checkpoint
and skips the batches the restored steps consumed, so it ends at the same
step and -- with a seeded dataset and `distribution.set_determinism` -- with
the same weights as a run that was never interrupted.
"""
import sys
from typing import Callable, TextIO

import numpy as np
import tensorflow as tf
import tf_keras

from bert_squad.training import checkpointing
from bert_squad.training import distribution
from bert_squad.training import loop_config
from bert_squad.training import signals
from bert_squad.training import train_log
from bert_squad.training import update_step


def _check_model(model: tf_keras.Model, strategy: tf.distribute.Strategy, dtype: str) -> None:
  """Raises ValueError for a model the loop cannot train as configured."""
  if not model.trainable_variables:
    raise ValueError("the model has no trainable variables: build it before train()")
  if not strategy.extended.variable_created_in_scope(model.trainable_variables[0]):
    raise ValueError("build the model and the optimizer inside `with strategy.scope():`")
  policy = loop_config.PRECISION_POLICIES[dtype]
  if model.dtype_policy.name != policy:
    raise ValueError(f"dtype {dtype!r} needs a model built under the {policy!r} Keras policy "
                     f"(call set_precision({dtype!r}) first), not {model.dtype_policy.name!r}")


def _skipping_dataset_fn(dataset_fn: loop_config.DatasetFn, skip_updates: int, accumulation_steps: int,
                         per_replica_batch: int) -> loop_config.DatasetFn:
  """Wraps `dataset_fn` to drop the batches that `skip_updates` updates consumed.

  Skipping (rather than checkpointing the iterator) works for every strategy,
  keeps checkpoints small, and repeats the exact batch order when the dataset
  is seeded. Each pipeline feeds `replicas / pipelines` replicas per micro-step.
  """

  def fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
    dataset = dataset_fn(input_context)
    batch_dim = dataset.element_spec[0]["input_ids"].shape[0]
    if batch_dim is not None and batch_dim != per_replica_batch:
      raise ValueError(f"dataset_fn yields batches of {batch_dim} per replica, but "
                       f"train_batch_size gives {per_replica_batch}")
    replicas_per_pipeline = input_context.num_replicas_in_sync // input_context.num_input_pipelines
    return dataset.skip(skip_updates * accumulation_steps * replicas_per_pipeline)

  return fn


def _dropout_generators(model: tf_keras.Model) -> list[tf.random.Generator]:
  """The `tf.random.Generator`s that drive the model's dropout.

  They exist only when `distribution.set_determinism` ran before the model
  was built. Keras keeps them out of checkpoints on purpose; saving them here
  lets a resumed deterministic run draw the same dropout masks as a run that
  was never interrupted.
  """
  generators = []
  for layer in model.submodules:
    generator = getattr(getattr(layer, "_random_generator", None), "_generator", None)
    if isinstance(generator, tf.random.Generator):
      generators.append(generator)
  return generators


def wrap_for_precision(optimizer, dtype: str):
  """The optimizer that applies updates: a dynamic LossScaleOptimizer for float16."""
  if dtype != "float16" or isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer):
    return optimizer
  return tf_keras.mixed_precision.LossScaleOptimizer(optimizer)


def _non_finite_error(what: str,
                      checkpointer: checkpointing.Checkpointer) -> loop_config.NonFiniteLossError:
  kept = checkpointer.last_saved or "none (no checkpoint was saved yet)"
  return loop_config.NonFiniteLossError(f"{what}; stopped without saving, the last good checkpoint is "
                                        f"{kept} (lower the learning rate, or use float32)")


def _check_finite_losses(losses: np.ndarray, first_step: int,
                         checkpointer: checkpointing.Checkpointer) -> None:
  """Raises naming the first update (1-based step) whose loss is NaN or Inf."""
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    step = first_step + int(bad[0]) + 1
    raise _non_finite_error(f"training loss became {losses[bad[0]]} at step {step}", checkpointer)


def _save_if_finite(checkpointer: checkpointing.Checkpointer, model: tf_keras.Model, step: int) -> None:
  """Saves, unless the last update already broke the weights (its loss can still be finite)."""
  finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in model.trainable_variables])
  if not bool(finite):
    raise _non_finite_error(f"the model weights became NaN or Inf by step {step}", checkpointer)
  checkpointer.save(step)


def _check_setup(model: tf_keras.Model, strategy: tf.distribute.Strategy,
                 config: loop_config.TrainConfig) -> tuple[int, bool]:
  """Checks the batch split and the model; makes `output_dir` on the chief.

  Returns:
    (examples per replica in one micro-batch, whether this worker is the chief).
  """
  per_replica_batch = distribution.check_batch_size(
      config.train_batch_size, strategy, gradient_accumulation_steps=config.gradient_accumulation_steps)
  _check_model(model, strategy, config.dtype)
  chief = distribution.is_chief(strategy)
  if chief:
    tf.io.gfile.makedirs(config.output_dir)
  return per_replica_batch, chief


def _make_checkpoint(model: tf_keras.Model, optimizer, strategy: tf.distribute.Strategy,
                     config: loop_config.TrainConfig):
  """The step counter, the optimizer that applies updates and their checkpoint, under `strategy.scope()`.

  Returns:
    (tf.train.Checkpoint of model, optimizer, step (and dropout generators),
    step counter: int64 scalar variable, the applying optimizer,
    the LossScaleOptimizer in float16 or None).
  """
  with strategy.scope():
    step_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    applying_optimizer = wrap_for_precision(optimizer, config.dtype)
    parts = {"model": model, "optimizer": applying_optimizer, "step": step_counter}
    generators = _dropout_generators(model)
    if generators:
      parts["dropout_generators"] = generators
    loss_scale_optimizer = None
    if isinstance(applying_optimizer, tf_keras.mixed_precision.LossScaleOptimizer):
      # A LossScaleOptimizer presents its inner optimizer's state (step,
      # slots) as its own plus "loss_scale", so float32 and float16 runs can
      # resume each other's checkpoints. (Tracking the inner optimizer a
      # second time makes saving fail for optimizers with slots.)
      loss_scale_optimizer = applying_optimizer
    checkpoint = tf.train.Checkpoint(**parts)
  return checkpoint, step_counter, applying_optimizer, loss_scale_optimizer


def _resume(checkpoint: tf.train.Checkpoint, step_counter: tf.Variable,
            config: loop_config.TrainConfig, applying_optimizer, loss_scale_optimizer,
            chief: bool, log_stream: TextIO | None):
  """Restores the latest checkpoint of `output_dir`, if any; returns (checkpointer, initial step, logger)."""
  checkpointer = checkpointing.Checkpointer(checkpoint, step_counter, config.output_dir,
                                            config.keep_checkpoint_max, chief)
  restored = checkpointer.restore_latest()
  initial_step = int(step_counter.numpy())
  logger = train_log.Logger(config, applying_optimizer, loss_scale_optimizer, chief, initial_step,
                            log_stream or sys.stderr)
  if restored:
    logger.message(f"resuming from {restored} (step {initial_step})")
  return checkpointer, initial_step, logger


def _run_loops(train_loop: Callable, iterator, step: int, model: tf_keras.Model,
               config: loop_config.TrainConfig, strategy: tf.distribute.Strategy,
               checkpointer: checkpointing.Checkpointer, logger: train_log.Logger,
               stop_signal: Callable[[], int | None]) -> int:
  """Runs compiled calls of `train_loop` from `step` to the last step; returns the step reached.

  After each call it checks the losses and logs; it saves at checkpoint
  steps, at the end, and when `stop_signal()` (the signal all workers agree
  on, or None) asks to stop -- then raises `TrainingInterrupted`.
  """
  host_loop = isinstance(strategy, tf.distribute.TPUStrategy)
  while step < config.num_train_steps:
    num_steps = update_step.steps_in_next_call(step, config, host_loop)
    losses, totals = train_loop(iterator, tf.constant(num_steps, tf.int32))
    _check_finite_losses(losses.numpy(), step, checkpointer)
    step += num_steps
    signum = stop_signal()
    logger.after_loop(step, totals.numpy(), last=signum is not None)
    if (step % config.save_checkpoints_steps == 0 or step == config.num_train_steps
        or signum is not None):
      _save_if_finite(checkpointer, model, step)
    if signum is not None:
      raise loop_config.TrainingInterrupted(signum, step, checkpointer.last_saved)
  return step


def train(model: tf_keras.Model,
          optimizer: tf_keras.optimizers.legacy.Optimizer,
          loss_fn: loop_config.LossFn,
          dataset_fn: loop_config.DatasetFn,
          strategy: tf.distribute.Strategy,
          config: loop_config.TrainConfig,
          log_stream: TextIO | None = None) -> loop_config.TrainResult:
  """Trains `model` for `config.num_train_steps` updates, resuming from `output_dir`.

  Args:
    model: built under `strategy.scope()`; maps {"input_ids", "input_mask",
      "segment_ids"} [batch, seq] to {"start_logits", "end_logits"} [batch, seq].
    optimizer: a legacy tf_keras optimizer built under `strategy.scope()`;
      it aggregates gradients across replicas (and clips, if it does) itself.
      In float16 it is wrapped in a dynamic `LossScaleOptimizer` here.
    loss_fn: (start_positions, end_positions, start_logits, end_logits) ->
      per-example loss [batch]. Each replica's loss is its sum divided by the
      GLOBAL (micro-)batch size, so replicas sum to the mean loss.
    dataset_fn: input_context -> dataset of (inputs, targets) per-replica
      micro-batches of `train_batch_size / (replicas * k)` examples, repeated
      forever, e.g. `functools.partial(input_pipeline.make_dataset, pattern,
      seq_length, train_batch_size // k, True, seed=seed)`.
    strategy: the `tf.distribute` strategy.
    config: see `loop_config.TrainConfig`.
    log_stream: where the progress bar (`progress`) goes (default stderr).

  Returns:
    A `loop_config.TrainResult`.

  Raises:
    InputError: the batch does not split evenly over replicas x micro-batches.
    NonFiniteLossError: the loss became NaN/Inf (names the step).
    TrainingInterrupted: SIGINT/SIGTERM; a checkpoint was saved first.
  """
  k = config.gradient_accumulation_steps
  per_replica_batch, chief = _check_setup(model, strategy, config)
  checkpoint, step_counter, applying_optimizer, loss_scale_optimizer = _make_checkpoint(
      model, optimizer, strategy, config)
  checkpointer, initial_step, logger = _resume(checkpoint, step_counter, config, applying_optimizer,
                                               loss_scale_optimizer, chief, log_stream)
  if initial_step >= config.num_train_steps:
    logger.message(f"already trained to step {initial_step}; nothing to do")
    logger.finish()
    return loop_config.TrainResult(initial_step, initial_step, checkpointer.last_saved, logger.history)
  steps = update_step.StepFunctions(model, applying_optimizer, loss_fn, strategy,
                                    config.train_batch_size // k, k, loss_scale_optimizer, config.use_xla,
                                    config.mask_padding_logits)
  train_loop = update_step.make_train_loop(steps, step_counter)
  agreed_stop = signals.stop_agreement(strategy)
  stop = signals.StopRequest(config.handle_signals)
  try:
    iterator = iter(strategy.distribute_datasets_from_function(
        _skipping_dataset_fn(dataset_fn, initial_step, k, per_replica_batch)))
    step = _run_loops(train_loop, iterator, initial_step, model, config, strategy, checkpointer, logger,
                      lambda: agreed_stop(stop.signum))
  finally:
    stop.restore_handlers()
    logger.finish()
  return loop_config.TrainResult(initial_step, step, checkpointer.last_saved, logger.history)
