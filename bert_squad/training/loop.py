"""The custom training loop (any `tf.distribute` strategy) and batched prediction.

`train()` takes everything it works on as arguments -- the model, the
optimizer, the per-example loss, a dataset function and the strategy -- so
the same loop runs the BERT span model in `run_squad.py` and tiny models in
the tests.

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
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from typing import Callable, TextIO

import numpy as np
import tensorflow as tf
import tf_keras
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bert_squad.common import errors
from bert_squad.common import io_utils
from bert_squad.common import progress
from bert_squad.common.errors import InputError
from bert_squad.training import distribution

HISTORY_FILE = "train_history.json"
CURVES_FILE = "training_curves.png"
TENSORBOARD_DIR = "tensorboard"

_PRECISION_POLICIES = {
    "float32": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
_IS_REAL = "_is_real"  # marks the real rows of a padded prediction batch

# loss_fn(start_positions [b], end_positions [b], start_logits [b, s],
#         end_logits [b, s]) -> per-example loss [b]
LossFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]
# dataset_fn(input_context) -> tf.data.Dataset of (inputs, targets) per-replica batches
DatasetFn = Callable[[tf.distribute.InputContext], tf.data.Dataset]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How long and how to train; the `run_squad.py` flag of each field in brackets.

  Attributes:
    output_dir: checkpoints, TensorBoard logs, history and plot [--output_dir].
    num_train_steps: optimizer updates in the whole run.
    train_batch_size: examples per optimizer update, over all replicas and
      micro-batches [--train_batch_size].
    steps_per_loop: the most updates per `tf.function` call; signals, logs
      and checkpoints are handled between calls. On a TPU this is the host
      loop; elsewhere a call also ends at the next log step (see
      `steps_in_next_call`) [--iterations_per_loop].
    save_checkpoints_steps: save every this many updates [--save_checkpoints_steps].
    keep_checkpoint_max: checkpoints kept, 0 for all [--keep_checkpoint_max].
    log_steps: progress line, TensorBoard and history every this many
      updates (on a TPU rounded up to the end of a host loop) [--log_steps].
    gradient_accumulation_steps: micro-batches of `train_batch_size / k`
      whose averaged gradients make one update [--gradient_accumulation_steps].
    dtype: "float32", "float16" (dynamic loss scaling) or "bfloat16"; set
      the matching Keras policy with `set_precision` BEFORE building the model.
    use_xla: compile each replica's forward and backward pass with XLA.
    handle_signals: on SIGINT/SIGTERM save a checkpoint after the current
      loop and raise `TrainingInterrupted` (main thread only).
  """
  output_dir: str
  num_train_steps: int
  train_batch_size: int
  steps_per_loop: int = 1000
  save_checkpoints_steps: int = 1000
  keep_checkpoint_max: int = 5
  log_steps: int = 100
  gradient_accumulation_steps: int = 1
  dtype: str = "float32"
  use_xla: bool = False
  handle_signals: bool = True

  def __post_init__(self):
    positive = {
        "--num_train_steps": self.num_train_steps,
        "--train_batch_size": self.train_batch_size,
        "--iterations_per_loop": self.steps_per_loop,
        "--save_checkpoints_steps": self.save_checkpoints_steps,
        "--log_steps": self.log_steps,
        "--gradient_accumulation_steps": self.gradient_accumulation_steps,
    }
    for flag, value in positive.items():
      if value <= 0:
        raise InputError(f"{flag}={value}: must be positive")
    if self.keep_checkpoint_max < 0:
      raise InputError(f"--keep_checkpoint_max={self.keep_checkpoint_max}: must be 0 (keep all) or positive")
    if self.dtype not in _PRECISION_POLICIES:
      raise InputError(f"--dtype={self.dtype}: expected one of {', '.join(_PRECISION_POLICIES)}")


@dataclasses.dataclass
class TrainResult:
  """What `train()` did.

  Attributes:
    initial_step: the step restored from `output_dir` (0 on a fresh start).
    final_step: the step of the last update (== num_train_steps).
    checkpoint_path: the last checkpoint written (None on a non-chief worker).
    history: the logged points, as in train_history.json.
  """
  initial_step: int
  final_step: int
  checkpoint_path: str | None
  history: list[dict]


class NonFiniteLossError(InputError):
  """The training loss became NaN or Inf; nothing was saved after the last good checkpoint.

  An `InputError` so that the entry point prints the one-line message: the
  usual cause is a learning rate or loss scale the user can change.
  """


class TrainingInterrupted(KeyboardInterrupt):
  """SIGINT/SIGTERM arrived; a checkpoint of the current step was saved.

  Attributes:
    signum: the signal received.
    step: the step saved.
    checkpoint_path: the checkpoint written (None on a non-chief worker).
  """

  def __init__(self, signum: int, step: int, checkpoint_path: str | None):
    super().__init__(f"{signal.Signals(signum).name} received: saved step {step} to "
                     f"{checkpoint_path}; run the same command again to resume")
    self.signum, self.step, self.checkpoint_path = signum, step, checkpoint_path


def set_precision(dtype: str) -> None:
  """Sets the Keras global dtype policy for `dtype`; call before building the model.

  float16 and bfloat16 compute in that type and keep float32 variables
  ("mixed_float16" / "mixed_bfloat16"); float32 restores the default.
  """
  if dtype not in _PRECISION_POLICIES:
    raise InputError(f"--dtype={dtype}: expected one of {', '.join(_PRECISION_POLICIES)}")
  tf_keras.mixed_precision.set_global_policy(_PRECISION_POLICIES[dtype])


# ----------------------------------------------------------------- one step


def _span_stats(per_example_loss: tf.Tensor, start_logits: tf.Tensor, end_logits: tf.Tensor,
                targets: dict[str, tf.Tensor], global_batch: int) -> tf.Tensor:
  """[loss, start accuracy, end accuracy] of this replica's share of the global batch.

  Each is a sum over the replica's examples divided by the GLOBAL batch size,
  so summing over replicas gives the mean over the global batch.
  """
  start_hit = tf.equal(tf.argmax(start_logits, axis=-1, output_type=tf.int32),
                       targets["start_positions"])
  end_hit = tf.equal(tf.argmax(end_logits, axis=-1, output_type=tf.int32),
                     targets["end_positions"])
  sums = tf.stack([tf.reduce_sum(per_example_loss),
                   tf.reduce_sum(tf.cast(start_hit, tf.float32)),
                   tf.reduce_sum(tf.cast(end_hit, tf.float32))])
  return sums / global_batch


class _StepFunctions:
  """Builds the replica functions of one optimizer update.

  Without accumulation a replica computes gradients and applies them. With
  k > 1, k micro-steps add each replica's gradients into local (ON_READ)
  accumulators, then one apply uses their average: the update of one batch
  k times as large, with one optimizer step (so the learning-rate schedule
  advances once per update).
  """

  def __init__(self, model: tf_keras.Model, optimizer, loss_fn: LossFn,
               strategy: tf.distribute.Strategy, micro_batch_global: int,
               accumulation_steps: int, loss_scale_optimizer, use_xla: bool):
    self._model = model
    self._optimizer = optimizer  # the one that applies: the LossScaleOptimizer in float16
    self._loss_fn = loss_fn
    self._strategy = strategy
    self._micro_batch_global = micro_batch_global
    self._k = accumulation_steps
    self._loss_scale_optimizer = loss_scale_optimizer
    self._compute = tf.function(self._gradients_and_stats, jit_compile=True) if use_xla \
        else self._gradients_and_stats
    self._variables = model.trainable_variables
    self._accumulators = self._make_accumulators() if accumulation_steps > 1 else []
    # Which variables get a gradient (not the span model's pooler); known when traced.
    self._has_gradient: list[bool] = []

  def _make_accumulators(self) -> list[tf.Variable]:
    with self._strategy.scope():
      return [tf.Variable(tf.zeros_like(v), trainable=False,
                          synchronization=tf.VariableSynchronization.ON_READ,
                          aggregation=tf.VariableAggregation.SUM,
                          name=f"accumulated/{v.name.split(':')[0]}")
              for v in self._variables]

  def _gradients_and_stats(self, inputs, targets):
    """Gradients of this replica's share of the mean loss, and its stats."""
    with tf.GradientTape() as tape:
      outputs = self._model(inputs, training=True)
      start_logits = tf.cast(outputs["start_logits"], tf.float32)
      end_logits = tf.cast(outputs["end_logits"], tf.float32)
      per_example_loss = self._loss_fn(targets["start_positions"], targets["end_positions"],
                                       start_logits, end_logits)
      loss = tf.reduce_sum(per_example_loss) / self._micro_batch_global
      if self._loss_scale_optimizer is not None:
        loss = self._loss_scale_optimizer.get_scaled_loss(loss)
    gradients = tape.gradient(loss, self._variables)
    if self._loss_scale_optimizer is not None:
      gradients = self._loss_scale_optimizer.get_unscaled_gradients(gradients)
    stats = _span_stats(per_example_loss, start_logits, end_logits, targets,
                        self._micro_batch_global)
    return gradients, stats

  def _record_gradient_pattern(self, gradients) -> None:
    self._has_gradient = [g is not None for g in gradients]

  def _apply(self, gradients) -> None:
    """Applies the non-None gradients (the optimizer sums them across replicas).

    Sparse gradients (`IndexedSlices` from the word-embedding lookup) are made
    dense first: the global-norm clip of an `IndexedSlices` counts a token that
    occurs n times as n separate rows, so its norm would depend on how the
    batch is split into micro-batches and replicas. Dense, the clip sees the
    true gradient norm (as the original does on TPU, with one-hot embeddings).
    """
    pairs = [(tf.convert_to_tensor(g), v)
             for g, v, has in zip(gradients, self._variables, self._has_gradient) if has]
    self._optimizer.apply_gradients(pairs)

  def replica_step(self, inputs, targets) -> tf.Tensor:
    """One update without accumulation; returns this replica's stats."""
    gradients, stats = self._compute(inputs, targets)
    self._record_gradient_pattern(gradients)
    self._apply(gradients)
    return stats

  def replica_accumulate(self, inputs, targets) -> tf.Tensor:
    """Adds one micro-batch's gradients to the accumulators; returns its stats."""
    gradients, stats = self._compute(inputs, targets)
    self._record_gradient_pattern(gradients)
    for accumulator, gradient in zip(self._accumulators, gradients):
      if gradient is not None:
        accumulator.assign_add(gradient)
    return stats

  def replica_apply_accumulated(self) -> None:
    """Applies the mean of the accumulated gradients and resets the accumulators."""
    self._apply([a.read_value() / self._k for a in self._accumulators])
    for accumulator in self._accumulators:
      accumulator.assign(tf.zeros_like(accumulator))

  def update(self, iterator) -> tf.Tensor:
    """One optimizer update in cross-replica context; returns [loss, start acc, end acc]."""
    reduce = lambda per_replica: self._strategy.reduce(  # noqa: E731
        tf.distribute.ReduceOp.SUM, per_replica, axis=None)
    if self._k == 1:
      return reduce(self._strategy.run(self.replica_step, args=next(iterator)))
    stats = tf.zeros([3])
    for _ in tf.range(self._k):
      stats += reduce(self._strategy.run(self.replica_accumulate, args=next(iterator)))
    self._strategy.run(self.replica_apply_accumulated)
    return stats / self._k


def _make_train_loop(steps: _StepFunctions, step_counter: tf.Variable):
  """A `tf.function(iterator, num_steps)` -> (loss per update [n], summed stats [3])."""

  @tf.function
  def train_loop(iterator, num_steps):
    losses = tf.TensorArray(tf.float32, size=num_steps)
    totals = tf.zeros([3])
    for i in tf.range(num_steps):
      stats = steps.update(iterator)
      step_counter.assign_add(1)
      losses = losses.write(i, stats[0])
      totals += stats
    return losses.stack(), totals

  return train_loop


# ------------------------------------------------------------- checkpoints


class _Checkpointer:
  """Saves to `output_dir` on the chief; other workers save to a scratch dir.

  Every worker of a multi-worker job takes part in each save (as
  `tf.distribute` asks) and all restore the chief's latest checkpoint.
  """

  def __init__(self, checkpoint: tf.train.Checkpoint, step_counter: tf.Variable,
               output_dir: str, keep: int, chief: bool):
    self._checkpoint = checkpoint
    self._output_dir = output_dir
    self._manager = (tf.train.CheckpointManager(checkpoint, output_dir, max_to_keep=keep or None,
                                                step_counter=step_counter) if chief else None)
    self.last_saved: str | None = tf.train.latest_checkpoint(output_dir) if chief else None

  def restore_latest(self) -> str | None:
    latest = tf.train.latest_checkpoint(self._output_dir)
    if latest:
      # Partial: a float32 run resumed in float16 (or the reverse) finds no
      # (or an unused) loss scale, a non-deterministic run unused generators.
      try:
        self._checkpoint.restore(latest).expect_partial()
      except (ValueError, AssertionError, tf.errors.OpError) as e:
        raise InputError(
            f"{latest}: cannot resume from this checkpoint in {self._output_dir} ({errors.first_line(e)}); it was "
            "written by another model or is damaged: use another --output_dir or delete its ckpt-* files") from None
    return latest

  def save(self, step: int) -> None:
    if self._manager is None:
      scratch = tempfile.mkdtemp(prefix="bert_squad_worker_checkpoint_")
      try:
        self._checkpoint.write(os.path.join(scratch, f"ckpt-{step}"))
      finally:
        shutil.rmtree(scratch, ignore_errors=True)
      return
    try:
      self.last_saved = self._manager.save(checkpoint_number=step)
    except BaseException:
      self._remove_partial_save(step)
      raise

  def _remove_partial_save(self, step: int) -> None:
    """Deletes what a failed save (e.g. a full disk) wrote: TensorFlow's `<prefix>_temp` folder and
    any `<prefix>.*` file. The latest recorded checkpoint is older, so it is untouched."""
    prefix = os.path.join(self._output_dir, f"ckpt-{step}")
    if tf.io.gfile.isdir(prefix + "_temp"):
      tf.io.gfile.rmtree(prefix + "_temp")
    for path in tf.io.gfile.glob(prefix + ".*"):
      tf.io.gfile.remove(path)


# ---------------------------------------------------------------- logging


def current_learning_rate(optimizer) -> float:
  """The learning rate of the optimizer's last update (its schedule at iterations - 1)."""
  learning_rate = optimizer.learning_rate
  if isinstance(learning_rate, tf_keras.optimizers.schedules.LearningRateSchedule):
    learning_rate = learning_rate(tf.maximum(optimizer.iterations - 1, 0))
  return float(tf_keras.backend.get_value(learning_rate))


def read_history(output_dir: str) -> list[dict]:
  """The logged points of train_history.json in `output_dir` ([] if none)."""
  path = os.path.join(output_dir, HISTORY_FILE)
  if not tf.io.gfile.exists(path):
    return []
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def plot_history(history: list[dict], path: str) -> None:
  """Writes a PNG of training loss, learning rate and start/end accuracy against the step.

  The accuracies are the share of training examples in each log interval whose
  argmax start (end) logit is the labelled position: a quick check that the
  loss curve means learning, not just a shrinking null answer.
  """
  steps = [p["step"] for p in history]
  marker = "." if len(steps) < 50 else None
  figure = Figure(figsize=(15, 4), tight_layout=True)
  FigureCanvasAgg(figure)
  loss_axes, lr_axes, accuracy_axes = figure.subplots(1, 3)
  loss_axes.plot(steps, [p["loss"] for p in history], marker=marker)
  loss_axes.set(title="training loss", xlabel="step", ylabel="loss")
  lr_axes.plot(steps, [p["learning_rate"] for p in history], color="tab:orange")
  lr_axes.set(title="learning rate", xlabel="step", ylabel="learning rate")
  lr_axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
  for name, color in (("start", "tab:green"), ("end", "tab:red")):
    accuracy_axes.plot(steps, [p[f"{name}_accuracy"] for p in history], color=color, marker=marker,
                       label=f"{name} position")
  accuracy_axes.set(title="training accuracy (argmax = label)", xlabel="step", ylabel="accuracy",
                    ylim=(0.0, 1.0))
  accuracy_axes.legend(loc="lower right")
  for axes in (loss_axes, lr_axes, accuracy_axes):
    axes.grid(alpha=0.3)
  with io_utils.atomic_open(path, "wb") as f:
    figure.savefig(f, format="png", dpi=100)


class _Logger:
  """Accumulates stats between log steps; writes bar, TensorBoard and history."""

  def __init__(self, config: TrainConfig, optimizer, loss_scale_optimizer, chief: bool,
               initial_step: int, stream: TextIO):
    self._config = config
    self._optimizer = optimizer
    self._loss_scale_optimizer = loss_scale_optimizer
    self._chief = chief
    self._progress = progress.Progress(config.num_train_steps, "train", "steps", stream,
                                       initial=initial_step, log_every_s=None, enabled=chief)
    self._step = initial_step
    self._writer = (tf.summary.create_file_writer(os.path.join(config.output_dir, TENSORBOARD_DIR))
                    if chief else tf.summary.create_noop_writer())
    self.history = [p for p in read_history(config.output_dir) if p["step"] <= initial_step]
    self._loss_scale = (float(loss_scale_optimizer.loss_scale) if loss_scale_optimizer is not None
                        else None)
    self._reset(initial_step)

  def _reset(self, step: int) -> None:
    self._since_step = step
    self._since_time = time.time()
    self._sums = np.zeros(3)

  def message(self, text: str) -> None:
    if self._chief:
      self._progress.message(text)

  def after_loop(self, step: int, totals: np.ndarray, last: bool = False) -> None:
    """Records one loop's summed stats; logs at log steps and at the `last` loop."""
    self._sums += totals
    done = step - self._since_step
    log_now = (step // self._config.log_steps > self._since_step // self._config.log_steps
               or step == self._config.num_train_steps or last)
    loss, start_accuracy, end_accuracy = self._sums / done
    point = {
        "step": step,
        "loss": float(loss),
        "learning_rate": current_learning_rate(self._optimizer),
        "start_accuracy": float(start_accuracy),
        "end_accuracy": float(end_accuracy),
        "examples_per_second": done * self._config.train_batch_size
                               / max(time.time() - self._since_time, 1e-9),
    }
    self._progress.advance(step - self._step, postfix=(
        f"loss {point['loss']:.4f} lr {point['learning_rate']:.3g} "
        f"{point['examples_per_second']:.1f} ex/s"))
    self._step = step
    self._report_loss_scale_drop(step)
    if not log_now:
      return
    self._progress.log_line()
    if self._loss_scale_optimizer is not None:
      point["loss_scale"] = float(self._loss_scale_optimizer.loss_scale)
    self.history.append(point)
    if self._chief:
      with self._writer.as_default(step=step):
        for name, value in point.items():
          if name != "step":
            tf.summary.scalar(name, value)
      self._writer.flush()
      io_utils.write_json(os.path.join(self._config.output_dir, HISTORY_FILE), self.history)
    self._reset(step)

  def _report_loss_scale_drop(self, step: int) -> None:
    """float16: says when overflowing gradients made the dynamic loss scaling skip updates."""
    if self._loss_scale_optimizer is None:
      return
    loss_scale = float(self._loss_scale_optimizer.loss_scale)
    if loss_scale < self._loss_scale:
      self.message(f"step {step}: float16 gradients overflowed; dynamic loss scaling skipped those "
                   f"updates and lowered the loss scale from {self._loss_scale:g} to {loss_scale:g}")
    self._loss_scale = loss_scale

  def finish(self) -> None:
    self._progress.close()
    if self._chief and self.history:
      plot_history(self.history, os.path.join(self._config.output_dir, CURVES_FILE))
    self._writer.close()


# --------------------------------------------------------------- signals


class _StopRequest:
  """Remembers SIGINT/SIGTERM so the loop can save and stop between tf.function calls.

  A second signal of the same kind gets the previous handler (e.g. Ctrl-C twice
  stops at once, without a checkpoint).
  """

  _SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self, enabled: bool):
    self.signum: int | None = None
    self._previous = {}
    if enabled and threading.current_thread() is threading.main_thread():
      for signum in self._SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)

  def _handle(self, signum, frame) -> None:
    del frame
    self.signum = signum
    signal.signal(signum, self._previous[signum])

  def restore_handlers(self) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


def _stop_agreement(strategy: tf.distribute.Strategy) -> Callable[[int | None], int | None]:
  """A function: this worker's signal (or None) -> the signal all workers stop for.

  In a multi-worker job all workers must stop at the same step, or the others
  would wait forever in the next all-reduce: a worker that got no signal
  stops for SIGTERM when another one got a signal.
  """
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return lambda signum: signum

  @tf.function
  def workers_stopping(flag):
    return strategy.reduce(tf.distribute.ReduceOp.SUM,
                           strategy.run(lambda: tf.identity(flag)), axis=None)

  def agreed(signum: int | None) -> int | None:
    if float(workers_stopping(tf.constant(0.0 if signum is None else 1.0))) == 0:
      return None
    return signum or signal.SIGTERM

  return agreed


# ------------------------------------------------------------------ train


def _check_model(model: tf_keras.Model, strategy: tf.distribute.Strategy, dtype: str) -> None:
  """Raises ValueError for a model the loop cannot train as configured."""
  if not model.trainable_variables:
    raise ValueError("the model has no trainable variables: build it before train()")
  if not strategy.extended.variable_created_in_scope(model.trainable_variables[0]):
    raise ValueError("build the model and the optimizer inside `with strategy.scope():`")
  policy = _PRECISION_POLICIES[dtype]
  if model.dtype_policy.name != policy:
    raise ValueError(f"dtype {dtype!r} needs a model built under the {policy!r} Keras policy "
                     f"(call set_precision({dtype!r}) first), not {model.dtype_policy.name!r}")


def _skipping_dataset_fn(dataset_fn: DatasetFn, skip_updates: int, accumulation_steps: int,
                         per_replica_batch: int) -> DatasetFn:
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


def _wrap_for_precision(optimizer, dtype: str):
  """The optimizer that applies updates: a dynamic LossScaleOptimizer for float16."""
  if dtype != "float16" or isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer):
    return optimizer
  return tf_keras.mixed_precision.LossScaleOptimizer(optimizer)


def _non_finite_error(what: str, checkpointer: _Checkpointer) -> NonFiniteLossError:
  kept = checkpointer.last_saved or "none (no checkpoint was saved yet)"
  return NonFiniteLossError(f"{what}; stopped without saving, the last good checkpoint is "
                            f"{kept} (lower the learning rate, or use float32)")


def _check_finite_losses(losses: np.ndarray, first_step: int, checkpointer: _Checkpointer) -> None:
  """Raises naming the first update (1-based step) whose loss is NaN or Inf."""
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    step = first_step + int(bad[0]) + 1
    raise _non_finite_error(f"training loss became {losses[bad[0]]} at step {step}", checkpointer)


def _save_if_finite(checkpointer: _Checkpointer, model: tf_keras.Model, step: int) -> None:
  """Saves, unless the last update already broke the weights (its loss can still be finite)."""
  finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in model.trainable_variables])
  if not bool(finite):
    raise _non_finite_error(f"the model weights became NaN or Inf by step {step}", checkpointer)
  checkpointer.save(step)


def steps_in_next_call(step: int, config: TrainConfig, host_loop: bool) -> int:
  """How many updates the next compiled call runs, from `step`.

  A call ends at the next checkpoint step, at the end, and after at most
  `steps_per_loop` updates. On a TPU (`host_loop`) that is all: the host
  loop is what keeps a TPU busy, and log steps are rounded up to its end, as
  in TPUEstimator. Elsewhere a call also ends at the next log step, so that
  progress, history and TensorBoard follow `log_steps` exactly, whatever
  `steps_per_loop` says; the number of steps is a tensor, so calls of other
  lengths reuse the same trace.
  """
  ends = [step + config.steps_per_loop, config.num_train_steps,
          _next_multiple(step, config.save_checkpoints_steps)]
  if not host_loop:
    ends.append(_next_multiple(step, config.log_steps))
  return min(ends) - step


def _next_multiple(step: int, every: int) -> int:
  return (step // every + 1) * every


def train(model: tf_keras.Model,
          optimizer: tf_keras.optimizers.legacy.Optimizer,
          loss_fn: LossFn,
          dataset_fn: DatasetFn,
          strategy: tf.distribute.Strategy,
          config: TrainConfig,
          log_stream: TextIO | None = None) -> TrainResult:
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
    config: see `TrainConfig`.
    log_stream: where the progress bar (`progress`) goes (default stderr).

  Returns:
    A `TrainResult`.

  Raises:
    InputError: the batch does not split evenly over replicas x micro-batches.
    NonFiniteLossError: the loss became NaN/Inf (names the step).
    TrainingInterrupted: SIGINT/SIGTERM; a checkpoint was saved first.
  """
  k = config.gradient_accumulation_steps
  per_replica_batch = distribution.check_batch_size(config.train_batch_size, strategy,
                                                    gradient_accumulation_steps=k)
  _check_model(model, strategy, config.dtype)
  chief = distribution.is_chief(strategy)
  if chief:
    tf.io.gfile.makedirs(config.output_dir)

  with strategy.scope():
    step_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    applying_optimizer = _wrap_for_precision(optimizer, config.dtype)
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
  checkpointer = _Checkpointer(checkpoint, step_counter, config.output_dir,
                               config.keep_checkpoint_max, chief)
  restored = checkpointer.restore_latest()
  initial_step = int(step_counter.numpy())

  logger = _Logger(config, applying_optimizer, loss_scale_optimizer, chief, initial_step,
                   log_stream or sys.stderr)
  if restored:
    logger.message(f"resuming from {restored} (step {initial_step})")
  if initial_step >= config.num_train_steps:
    logger.message(f"already trained to step {initial_step}; nothing to do")
    logger.finish()
    return TrainResult(initial_step, initial_step, checkpointer.last_saved, logger.history)

  steps = _StepFunctions(model, applying_optimizer, loss_fn, strategy,
                         config.train_batch_size // k, k, loss_scale_optimizer, config.use_xla)
  train_loop = _make_train_loop(steps, step_counter)
  agreed_stop = _stop_agreement(strategy)
  stop = _StopRequest(config.handle_signals)
  step = initial_step
  host_loop = isinstance(strategy, tf.distribute.TPUStrategy)
  try:
    iterator = iter(strategy.distribute_datasets_from_function(
        _skipping_dataset_fn(dataset_fn, initial_step, k, per_replica_batch)))
    while step < config.num_train_steps:
      num_steps = steps_in_next_call(step, config, host_loop)
      losses, totals = train_loop(iterator, tf.constant(num_steps, tf.int32))
      _check_finite_losses(losses.numpy(), step, checkpointer)
      step += num_steps
      signum = agreed_stop(stop.signum)
      logger.after_loop(step, totals.numpy(), last=signum is not None)
      if (step % config.save_checkpoints_steps == 0 or step == config.num_train_steps
          or signum is not None):
        _save_if_finite(checkpointer, model, step)
      if signum is not None:
        raise TrainingInterrupted(signum, step, checkpointer.last_saved)
  finally:
    stop.restore_handlers()
    logger.finish()
  return TrainResult(initial_step, step, checkpointer.last_saved, logger.history)


# ---------------------------------------------------------------- predict


def _pad_to_full_batches(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
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
                      jit_compile: bool = False) -> Callable:
  """The compiled prediction step: (inputs, targets) -> (targets, start_logits, end_logits).

  Each replica runs the forward pass on its share of the batch (with XLA if
  `jit_compile`); `targets` (a dict, e.g. unique_ids) is passed through, and
  every output is concatenated over the replicas: logits [batch, seq] float32.
  """
  forward = tf.function(lambda inputs: model(inputs, training=False), jit_compile=jit_compile)

  def replica_fn(inputs, targets):
    outputs = forward(inputs)
    return (targets, tf.cast(outputs["start_logits"], tf.float32),
            tf.cast(outputs["end_logits"], tf.float32))

  @tf.function
  def predict_step(inputs, targets):
    per_replica = strategy.run(replica_fn, args=(inputs, targets))
    return tf.nest.map_structure(
        lambda value: tf.concat(strategy.experimental_local_results(value), axis=0), per_replica)

  return predict_step


def predict_logits(model: tf_keras.Model, dataset: tf.data.Dataset,
                   strategy: tf.distribute.Strategy, batch_size: int,
                   jit_compile: bool = False, num_features: int | None = None,
                   log_stream: TextIO | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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

  Returns:
    unique_ids [n] int64, start_logits [n, seq] and end_logits [n, seq]
    float32, one row per input feature in the dataset's order.
  """
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    raise ValueError("predict_logits runs on one machine: "
                     "use a OneDevice, Mirrored or TPU strategy")
  distribution.check_batch_size(batch_size, strategy, flag="--predict_batch_size")
  predict_step = make_predict_step(model, strategy, jit_compile)
  padded = _pad_to_full_batches(dataset, batch_size)
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
