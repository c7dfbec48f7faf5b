"""One optimizer update and the compiled loop of updates, replica by replica.

`StepFunctions.update(iterator)` runs one update (k micro-batches of
(inputs {name: [b, seq] int32}, targets {name: [b] int32}) with gradient
accumulation) and returns the float32 stats [NUM_STATS]: loss, start
accuracy, end accuracy, mean width of its batches (positions computed per
example). `make_train_loop` compiles n updates into one `tf.function` ->
(loss per update [n] float32, summed stats [NUM_STATS]); `steps_in_next_call`
says how many updates the next call runs.
"""
import tensorflow as tf
import tf_keras

from bert_squad.modeling import span_model
from bert_squad.training import loop_config

NUM_STATS = 4  # loss, start accuracy, end accuracy, batch width

def span_stats(per_example_loss: tf.Tensor, start_logits: tf.Tensor, end_logits: tf.Tensor,
               targets: dict[str, tf.Tensor], global_batch: int) -> tf.Tensor:
  """[loss, start accuracy, end accuracy, width] of this replica's share of the global batch.

  Each is a sum over the replica's examples divided by the GLOBAL batch size,
  so summing over replicas gives the mean over the global batch; the last
  sums the positions computed (the logits' width per example).
  """
  start_hit = tf.equal(tf.argmax(start_logits, axis=-1, output_type=tf.int32),
                       targets["start_positions"])
  end_hit = tf.equal(tf.argmax(end_logits, axis=-1, output_type=tf.int32),
                     targets["end_positions"])
  sums = tf.stack([tf.reduce_sum(per_example_loss),
                   tf.reduce_sum(tf.cast(start_hit, tf.float32)),
                   tf.reduce_sum(tf.cast(end_hit, tf.float32)),
                   tf.cast(tf.size(start_logits), tf.float32)])
  return sums / global_batch


class StepFunctions:
  """Builds the replica functions of one optimizer update.

  Without accumulation a replica computes gradients and applies them. With
  k > 1, k micro-steps add each replica's gradients into local (ON_READ)
  accumulators, then one apply uses their average: the update of one batch
  k times as large, with one optimizer step (so the learning-rate schedule
  advances once per update). With `mask_padding_logits` the loss and the
  accuracies see only the real positions of each example
  (`span_model.mask_padding_logits`), as length-bucketed batches need.
  """

  def __init__(self, model: tf_keras.Model, optimizer, loss_fn: loop_config.LossFn,
               strategy: tf.distribute.Strategy, micro_batch_global: int,
               accumulation_steps: int, loss_scale_optimizer, use_xla: bool,
               mask_padding_logits: bool = False):
    self._model = model
    self._optimizer = optimizer  # the one that applies: the LossScaleOptimizer in float16
    self._loss_fn = loss_fn
    self._strategy = strategy
    self._micro_batch_global = micro_batch_global
    self._k = accumulation_steps
    self._loss_scale_optimizer = loss_scale_optimizer
    self._mask_padding_logits = mask_padding_logits
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
      if self._mask_padding_logits:
        start_logits = span_model.mask_padding_logits(start_logits, inputs["input_mask"])
        end_logits = span_model.mask_padding_logits(end_logits, inputs["input_mask"])
      per_example_loss = self._loss_fn(targets["start_positions"], targets["end_positions"],
                                       start_logits, end_logits)
      loss = tf.reduce_sum(per_example_loss) / self._micro_batch_global
      if self._loss_scale_optimizer is not None:
        loss = self._loss_scale_optimizer.get_scaled_loss(loss)
    gradients = tape.gradient(loss, self._variables)
    if self._loss_scale_optimizer is not None:
      gradients = self._loss_scale_optimizer.get_unscaled_gradients(gradients)
    stats = span_stats(per_example_loss, start_logits, end_logits, targets,
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
    """One optimizer update in cross-replica context; returns [loss, start acc, end acc, width]."""
    reduce = lambda per_replica: self._strategy.reduce(  # noqa: E731
        tf.distribute.ReduceOp.SUM, per_replica, axis=None)
    if self._k == 1:
      return reduce(self._strategy.run(self.replica_step, args=next(iterator)))
    stats = tf.zeros([NUM_STATS])
    for _ in tf.range(self._k):
      stats += reduce(self._strategy.run(self.replica_accumulate, args=next(iterator)))
    self._strategy.run(self.replica_apply_accumulated)
    return stats / self._k


def make_train_loop(steps: StepFunctions, step_counter: tf.Variable):
  """A `tf.function(iterator, num_steps)` -> (loss per update [n], summed stats [NUM_STATS])."""

  @tf.function
  def train_loop(iterator, num_steps):
    losses = tf.TensorArray(tf.float32, size=num_steps)
    totals = tf.zeros([NUM_STATS])
    for i in tf.range(num_steps):
      stats = steps.update(iterator)
      step_counter.assign_add(1)
      losses = losses.write(i, stats[0])
      totals += stats
    return losses.stack(), totals

  return train_loop


def steps_in_next_call(step: int, config: loop_config.TrainConfig, host_loop: bool) -> int:
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
