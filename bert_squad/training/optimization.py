"""The optimizer of Google's BERT: AdamWeightDecay with linear warmup and decay.

Semantics of google-research/bert `optimization.py` (see docs/optimization.md):

- learning rate at step s (the update counter *before* this update, so the
  first update uses s = 0): `init_lr * s / num_warmup_steps` while
  s < num_warmup_steps, else `init_lr * (1 - min(s, num_train_steps) /
  num_train_steps)`. The decay is measured from step 0, so the rate drops at
  the end of warmup instead of restarting from `init_lr`.
- all gradients are clipped together to global norm 1.0, then per variable:
  `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
  `w -= lr * (m / (sqrt(v) + eps) + weight_decay_rate * w)`, with no bias
  correction and no weight decay for variables whose name contains
  "LayerNorm", "layer_norm" or "bias".

Clipping happens inside the optimizer, on the gradients summed over replicas:
training loops must not clip again.
"""
import re
from collections.abc import Sequence

import tensorflow as tf
import tf_keras

from bert_squad.common.errors import InputError

# Name fragments of the variables that the original never decays. With
# tf-models-official's BertEncoder they match every LayerNorm gamma/beta
# ("embeddings/layer_norm/gamma:0", ".../output_layer_norm/beta:0") and every
# bias; "LayerNorm" is the TF1 checkpoint spelling, kept for fidelity.
EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")


def num_train_steps(num_train_examples: int, train_batch_size: int,
                    num_train_epochs: float) -> int:
  """Number of optimizer updates, counted from *examples* as the original.

  The original uses `len(train_examples)` although one example can give
  several doc-stride features, so training sees more batches than this: the
  rate reaches 0 before the last epoch ends and stays 0 for the rest.

  Raises:
    InputError: when fewer than one step results (too few examples or epochs).
  """
  steps = int(num_train_examples / train_batch_size * num_train_epochs)
  if steps < 1:
    raise InputError(
        f"num_train_epochs: {num_train_examples} examples / train_batch_size "
        f"{train_batch_size} * num_train_epochs {num_train_epochs} gives "
        f"{steps} training steps; need at least 1")
  return steps


def num_warmup_steps(num_train_steps: int, warmup_proportion: float) -> int:  # pylint: disable=redefined-outer-name
  """Warmup length `int(num_train_steps * warmup_proportion)`, as the original."""
  return int(num_train_steps * warmup_proportion)


@tf_keras.utils.register_keras_serializable(package="bert_squad")
class WarmupLinearDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
  """Linear warmup from 0, then linear decay to 0 measured from step 0.

  Step 0 gives 0 (when there is warmup), step `num_warmup_steps` gives
  `init_lr * (1 - num_warmup_steps / num_train_steps)`, steps from
  `num_train_steps` on give 0. Without warmup (0 steps) the rate starts at
  `init_lr`.
  """

  def __init__(self, init_lr: float, num_train_steps: int,  # pylint: disable=redefined-outer-name
               num_warmup_steps: int):  # pylint: disable=redefined-outer-name
    super().__init__()
    if num_train_steps < 1:
      raise ValueError(f"num_train_steps must be >= 1, got {num_train_steps}")
    if num_warmup_steps < 0:
      raise ValueError(f"num_warmup_steps must be >= 0, got {num_warmup_steps}")
    self.init_lr = init_lr
    self.num_train_steps = num_train_steps
    self.num_warmup_steps = num_warmup_steps

  def __call__(self, step: tf.Tensor) -> tf.Tensor:
    """Learning rate (float32 scalar) for the update counter `step` (scalar)."""
    with tf.name_scope("warmup_linear_decay"):
      step = tf.cast(step, tf.float32)
      decayed_lr = self._linear_decay(step)
      if not self.num_warmup_steps:
        return decayed_lr
      warmup_lr = self.init_lr * (step / float(self.num_warmup_steps))
      return tf.where(step < float(self.num_warmup_steps), warmup_lr,
                      decayed_lr)

  def _linear_decay(self, step: tf.Tensor) -> tf.Tensor:
    """TF1 `polynomial_decay` with power 1, end rate 0 and no cycling."""
    done = tf.minimum(step, float(self.num_train_steps)) / float(
        self.num_train_steps)
    return self.init_lr * (1.0 - done)

  def get_config(self) -> dict:
    return {
        "init_lr": self.init_lr,
        "num_train_steps": self.num_train_steps,
        "num_warmup_steps": self.num_warmup_steps,
    }


# Built on the legacy OptimizerV2, as tf-models-official's own AdamWeightDecay:
# its `apply_gradients` drops `None` gradients, sums gradients over replicas and
# only then applies `global_clipnorm` (`_transform_gradients`), so the clip uses
# the norm of the global batch's gradient like the single-device original; it
# is what `tf_keras.mixed_precision.LossScaleOptimizer` wraps (that wrapper also
# aggregates first and then lets the inner optimizer clip); and it reads the
# learning rate at `iterations` before the increment, the original's step.
@tf_keras.utils.register_keras_serializable(package="bert_squad")
class AdamWeightDecay(tf_keras.optimizers.legacy.Optimizer):
  """Adam with decoupled weight decay, as the original BERT optimizer.

  Each update: clip all gradients to `global_clipnorm` (after summing over
  replicas), update the moments `m`, `v`, then
  `w -= lr * (m / (sqrt(v) + epsilon) + weight_decay_rate * w)`; the weight
  decay term is left out for variables whose name contains any of
  `exclude_from_weight_decay` (regular expressions, searched).

  With `bias_correction=True` the Adam term uses
  `lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)` with t = update number (from 1),
  while the weight decay keeps the plain `lr`: the update of tf-models-official's
  `AdamWeightDecay` (Keras Adam), not of the original.

  With `fused_update=True` each variable's update is one XLA-compiled function
  (one pass over the weights and moments instead of ~15 element-wise ops; ~2x
  less time per update on a CPU) whose results differ from the unfused ones
  by rounding: XLA contracts multiply-adds into FMAs. `run_squad.py --use_xla`
  turns it on, as its forward and backward passes already give up bit
  equality with the non-XLA run.

  Variables with a `None` gradient are skipped entirely (no weight decay
  either), as in the original; Keras logs a warning for them when tracing.
  Sparse (`tf.IndexedSlices`) gradients are applied densely, as the original
  did: moments decay and weights shrink on every row, not only on the rows
  looked up in this batch.
  """

  _HAS_AGGREGATE_GRAD = True

  def __init__(
      self,
      learning_rate: float | tf_keras.optimizers.schedules.LearningRateSchedule,
      weight_decay_rate: float = 0.01,
      beta_1: float = 0.9,
      beta_2: float = 0.999,
      epsilon: float = 1e-6,
      exclude_from_weight_decay: Sequence[str] = EXCLUDE_FROM_WEIGHT_DECAY,
      bias_correction: bool = False,
      global_clipnorm: float | None = 1.0,
      fused_update: bool = False,
      name: str = "AdamWeightDecay",
      **kwargs):
    """Creates the optimizer; `global_clipnorm=None` turns clipping off."""
    if global_clipnorm is not None and global_clipnorm <= 0:
      raise ValueError(
          f"global_clipnorm must be > 0 or None, got {global_clipnorm}")
    super().__init__(name, global_clipnorm=global_clipnorm, **kwargs)
    self._set_hyper("learning_rate", learning_rate)
    # Python floats, not Keras hyper variables: `1 - beta_2` must be formed in
    # float64 before the cast, as the original did. Formed from a float32
    # 0.999 it is off by 1.3e-5 relative, enough to move the weights of the
    # 5-step reference test by 3e-6.
    self.beta_1 = beta_1
    self.beta_2 = beta_2
    self.epsilon = epsilon
    self.weight_decay_rate = weight_decay_rate
    self.exclude_from_weight_decay = tuple(exclude_from_weight_decay)
    self.bias_correction = bias_correction
    self.fused_update = fused_update

  def uses_weight_decay(self, variable_name: str) -> bool:
    """Whether the variable called `variable_name` gets the weight decay term.

    Args:
      variable_name: a Keras variable name, e.g. "transformer/layer_0/
        intermediate/kernel:0"; the ":0" output index and the "/replica_1"
        suffix of MirroredStrategy copies are ignored.
    """
    if not self.weight_decay_rate:
      return False
    base_name = _base_variable_name(variable_name)
    return not any(
        re.search(pattern, base_name)
        for pattern in self.exclude_from_weight_decay)

  def _create_slots(self, var_list: list[tf.Variable]) -> None:
    for var in var_list:
      self.add_slot(var, "m")
    for var in var_list:
      self.add_slot(var, "v")

  def _prepare_local(self, var_device, var_dtype, apply_state) -> None:
    """Computes the per-step constants once per (device, dtype)."""
    super()._prepare_local(var_device, var_dtype, apply_state)
    coefficients = apply_state[(var_device, var_dtype)]
    beta_1 = tf.constant(self.beta_1, var_dtype)
    beta_2 = tf.constant(self.beta_2, var_dtype)
    adam_lr = coefficients["lr_t"]
    if self.bias_correction:
      step = tf.cast(self.iterations + 1, var_dtype)
      adam_lr = adam_lr * (
          tf.sqrt(1.0 - tf.pow(beta_2, step)) / (1.0 - tf.pow(beta_1, step)))
    coefficients.update(
        beta_1=beta_1,
        beta_2=beta_2,
        one_minus_beta_1=tf.constant(1.0 - self.beta_1, var_dtype),
        one_minus_beta_2=tf.constant(1.0 - self.beta_2, var_dtype),
        adam_lr=adam_lr,
        epsilon=tf.constant(self.epsilon, var_dtype),
        weight_decay_rate=tf.constant(self.weight_decay_rate, var_dtype))

  def _resource_apply_dense(self, grad, var, apply_state=None):
    """Applies one update to `var` from its (clipped) dense gradient."""
    coefficients = (apply_state or {}).get(
        (var.device, var.dtype.base_dtype)) or self._fallback_apply_state(
            var.device, var.dtype.base_dtype)
    m = self.get_slot(var, "m")
    v = self.get_slot(var, "v")
    update = _fused_adam_update if self.fused_update else _adam_update
    next_m, next_v, next_var = update(
        grad, var.read_value(), m.read_value(), v.read_value(),
        {key: coefficients[key] for key in _UPDATE_COEFFICIENTS},
        decay=self.uses_weight_decay(var.name), bias_correction=self.bias_correction)
    return tf.group(m.assign(next_m, use_locking=self._use_locking),
                    v.assign(next_v, use_locking=self._use_locking),
                    var.assign(next_var, use_locking=self._use_locking))

  def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
    """Applies a gathered gradient (rows `indices` of `var`) as a dense one."""
    dense_grad = tf.math.unsorted_segment_sum(grad, indices, tf.shape(var)[0])
    return self._resource_apply_dense(dense_grad, var, apply_state)

  def get_config(self) -> dict:
    config = super().get_config()
    config.update(
        learning_rate=self._serialize_hyperparameter("learning_rate"),
        weight_decay_rate=self.weight_decay_rate,
        beta_1=self.beta_1,
        beta_2=self.beta_2,
        epsilon=self.epsilon,
        exclude_from_weight_decay=list(self.exclude_from_weight_decay),
        bias_correction=self.bias_correction,
        global_clipnorm=self.global_clipnorm,
        fused_update=self.fused_update)
    return config


_UPDATE_COEFFICIENTS = ("beta_1", "one_minus_beta_1", "beta_2", "one_minus_beta_2", "epsilon",
                        "lr_t", "adam_lr", "weight_decay_rate")


def _adam_update(grad: tf.Tensor, var: tf.Tensor, m: tf.Tensor, v: tf.Tensor,
                 coefficients: dict[str, tf.Tensor], decay: bool, bias_correction: bool
                 ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """One AdamWeightDecay step of one variable: (next m, next v, next var), all of var's shape.

  The original's operations in the original's order, so that, unfused, the
  rounding is the original's too.
  """
  next_m = coefficients["beta_1"] * m + coefficients["one_minus_beta_1"] * grad
  next_v = coefficients["beta_2"] * v + coefficients["one_minus_beta_2"] * tf.square(grad)
  adam_step = next_m / (tf.sqrt(next_v) + coefficients["epsilon"])
  if bias_correction:
    delta = coefficients["adam_lr"] * adam_step
    if decay:
      delta += coefficients["lr_t"] * coefficients["weight_decay_rate"] * var
  else:
    if decay:
      adam_step += coefficients["weight_decay_rate"] * var
    delta = coefficients["lr_t"] * adam_step
  return next_m, next_v, var - delta


# One compiled function per (shape, dtype, decay, bias_correction): a dozen for BERT.
_fused_adam_update = tf.function(_adam_update, jit_compile=True, reduce_retracing=True)


def _base_variable_name(variable_name: str) -> str:
  """"a/b/bias/replica_1:0" -> "a/b/bias" (drops output index, replica copy)."""
  name = re.sub(r":\d+$", "", variable_name)
  return re.sub(r"/replica_\d+$", "", name)


def create_optimizer(init_lr: float,
                     num_train_steps: int,  # pylint: disable=redefined-outer-name
                     num_warmup_steps: int,  # pylint: disable=redefined-outer-name
                     weight_decay_rate: float = 0.01,
                     bias_correction: bool = False,
                     clip_norm: float | None = 1.0,
                     fused_update: bool = False) -> AdamWeightDecay:
  """The original BERT fine-tuning optimizer with its learning-rate schedule.

  Args:
    init_lr: peak learning rate, e.g. 5e-5 (run_squad's `learning_rate`).
    num_train_steps: see `num_train_steps()`.
    num_warmup_steps: see `num_warmup_steps()`.
    weight_decay_rate: decoupled weight decay, 0.01 in the original.
    bias_correction: True gives tf-models-official's Adam update instead.
    clip_norm: global gradient norm, applied by the optimizer after replica
      aggregation; None turns clipping off.
    fused_update: compile each variable's update with XLA (faster, equal up
      to rounding; see `AdamWeightDecay`).
  """
  schedule = WarmupLinearDecay(init_lr, num_train_steps, num_warmup_steps)
  return AdamWeightDecay(
      learning_rate=schedule,
      weight_decay_rate=weight_decay_rate,
      bias_correction=bias_correction,
      global_clipnorm=clip_norm,
      fused_update=fused_update)
