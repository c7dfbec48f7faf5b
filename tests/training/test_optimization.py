"""AdamWeightDecay and WarmupLinearDecay against the original BERT formulas.

The reference is a numpy transcription of google-research/bert's
`optimization.py` (update and schedule, written here from the formulas, in
float64), tf-models-official's `legacy_adamw.AdamWeightDecay` for the
bias-corrected variant, TF1's `polynomial_decay` for the decay, and the real
variable names of tf-models-official's `BertEncoder`.

Run as a script (`python tests/training/test_optimization.py --mirrored-worker`) it is
the MirroredStrategy worker: two logical CPUs must be configured before
TensorFlow initializes its devices, so that check runs in a fresh process.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from bert_squad.common.errors import InputError  # noqa: E402
from bert_squad.training import optimization  # noqa: E402

BATCH_SIZE = 4
SEQ_LENGTH = 3
VOCAB_SIZE = 16
NUM_CLASSES = 3


# ----------------------------------------------------------------------------
# The original's formulas, in numpy.


def original_learning_rate(step: int, init_lr: float, num_train_steps: int,
                           num_warmup_steps: int) -> float:
  """google-research/bert: polynomial_decay(power=1, end=0), then warmup."""
  decayed = init_lr * (1.0 - min(step, num_train_steps) / num_train_steps)
  if num_warmup_steps and step < num_warmup_steps:
    return init_lr * step / num_warmup_steps
  return decayed


class OriginalAdamWeightDecay:
  """Google's AdamWeightDecayOptimizer + clip_by_global_norm, in float64.

  `bias_correction=True` gives the documented tf-models-official variant.
  """

  def __init__(self, params: dict[str, np.ndarray], decayed: set[str],
               init_lr: float, num_train_steps: int, num_warmup_steps: int,
               clip_norm: float | None = 1.0, bias_correction: bool = False):
    self.params = {k: v.astype(np.float64) for k, v in params.items()}
    self.m = {k: np.zeros_like(v) for k, v in self.params.items()}
    self.v = {k: np.zeros_like(v) for k, v in self.params.items()}
    self.decayed = decayed
    self.schedule = (init_lr, num_train_steps, num_warmup_steps)
    self.clip_norm = clip_norm
    self.bias_correction = bias_correction
    self.step = 0

  def apply(self, grads: dict[str, np.ndarray]) -> None:
    grads = {k: g.astype(np.float64) for k, g in grads.items()}
    if self.clip_norm is not None:
      norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
      scale = self.clip_norm / max(norm, self.clip_norm)
      grads = {k: g * scale for k, g in grads.items()}
    lr = original_learning_rate(self.step, *self.schedule)
    t = self.step + 1
    for name, grad in grads.items():
      self.m[name] = 0.9 * self.m[name] + 0.1 * grad
      self.v[name] = 0.999 * self.v[name] + 0.001 * grad * grad
      adam = self.m[name] / (np.sqrt(self.v[name]) + 1e-6)
      decay = 0.01 * self.params[name] if name in self.decayed else 0.0
      if self.bias_correction:
        adam_lr = lr * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        self.params[name] = self.params[name] - adam_lr * adam - lr * decay
      else:
        self.params[name] = self.params[name] - lr * (adam + decay)
    self.step += 1


# ----------------------------------------------------------------------------
# A tiny model with every kind of variable: embeddings (sparse gradient),
# kernels, biases, LayerNorm gamma/beta -- all away from 0 so that weight decay
# on any of them shows.


def tiny_model() -> tf_keras.Model:
  normal = tf_keras.initializers.RandomNormal
  ids = tf_keras.Input((SEQ_LENGTH,), dtype=tf.int32)
  x = tf_keras.layers.Embedding(
      VOCAB_SIZE, 6, embeddings_initializer=normal(stddev=1.0, seed=1),
      name="word_embeddings")(ids)
  x = tf_keras.layers.Dense(
      8, activation="tanh", kernel_initializer=normal(stddev=0.5, seed=2),
      bias_initializer=normal(stddev=1.0, seed=3), name="dense")(x)
  x = tf_keras.layers.LayerNormalization(
      beta_initializer=normal(stddev=1.0, seed=4),
      gamma_initializer=normal(mean=1.0, stddev=0.5, seed=5),
      name="layer_norm")(x)
  x = tf_keras.layers.Flatten()(x)
  logits = tf_keras.layers.Dense(
      NUM_CLASSES, kernel_initializer=normal(stddev=0.5, seed=6),
      bias_initializer=normal(stddev=1.0, seed=7), name="logits")(x)
  return tf_keras.Model(ids, logits)


def decayed_by_role(model: tf_keras.Model) -> set[str]:
  """Names of the variables the original decays: kernels and embeddings."""
  decayed = set()
  for layer in model.layers:
    for attribute in ("kernel", "embeddings"):
      if hasattr(layer, attribute):
        decayed.add(getattr(layer, attribute).name)
  return decayed


def tiny_batch(step: int) -> tuple[tf.Tensor, tf.Tensor]:
  """Distinct ids within a batch (so the sparse gradient has no duplicates)."""
  rng = np.random.default_rng(100 + step)
  ids = rng.permutation(VOCAB_SIZE)[:BATCH_SIZE * SEQ_LENGTH]
  labels = rng.integers(0, NUM_CLASSES, BATCH_SIZE)
  return (tf.constant(ids.reshape(BATCH_SIZE, SEQ_LENGTH), tf.int32),
          tf.constant(labels, tf.int32))


def loss_and_grads(model, ids, labels, loss_scale):
  """Mean cross-entropy times `loss_scale`, and its gradients (with None)."""
  with tf.GradientTape() as tape:
    per_example = tf_keras.losses.sparse_categorical_crossentropy(
        labels, model(ids), from_logits=True)
    loss = loss_scale * tf.reduce_mean(per_example)
  return loss, tape.gradient(loss, model.trainable_variables)


def dense_numpy(grad) -> np.ndarray:
  return tf.convert_to_tensor(grad).numpy()


def max_difference(model: tf_keras.Model, params: dict[str, np.ndarray]) -> float:
  return max(
      float(np.max(np.abs(v.numpy() - params[v.name])))
      for v in model.trainable_variables)


# Loss scales per step: large ones so that clipping kicks in, and one small
# one so that a step below the clip norm is covered too.
LOSS_SCALES = (300.0, 0.05, 2000.0, 40.0, 700.0)


# ----------------------------------------------------------------------------
# Step counts and schedule.


def test_num_train_steps_counts_examples_like_the_original():
  # SQuAD v1.1 train has 87599 examples; the original counts them, not features.
  assert optimization.num_train_steps(88641, 32, 2.0) == 5540
  assert optimization.num_train_steps(87599, 12, 2.0) == 14599
  assert optimization.num_train_steps(87599, 32, 3.0) == 8212
  assert optimization.num_warmup_steps(5540, 0.1) == 554
  assert optimization.num_warmup_steps(14599, 0.1) == 1459
  assert optimization.num_warmup_steps(10, 0.0) == 0


def test_num_train_steps_rejects_runs_without_a_step():
  with pytest.raises(InputError, match="train_batch_size 32"):
    optimization.num_train_steps(10, 32, 1.0)


def test_schedule_at_the_boundaries():
  schedule = optimization.WarmupLinearDecay(1e-3, num_train_steps=100,
                                            num_warmup_steps=10)
  expected = {  # Worked out by hand from the original's two formulas.
      0: 0.0,  # the first update uses step 0: no move at all
      1: 1e-4,
      9: 9e-4,
      10: 9e-4,  # end of warmup: decay from step 0, not back to the peak
      11: 8.9e-4,
      50: 5e-4,
      99: 1e-5,
      100: 0.0,
      150: 0.0,
  }
  for step, lr in expected.items():
    for typed_step in (tf.constant(step, tf.int64),
                       tf.constant(step, tf.float32)):
      np.testing.assert_allclose(
          schedule(typed_step).numpy(), lr, rtol=1e-6, atol=1e-12,
          err_msg=f"step {step}")


def test_schedule_decay_is_tf1_polynomial_decay():
  init_lr, total, warmup = 5e-5, 37, 4
  schedule = optimization.WarmupLinearDecay(init_lr, total, warmup)
  for step in range(warmup, total + 5):
    tf1 = tf.compat.v1.train.polynomial_decay(
        init_lr, tf.constant(step, tf.int64), total, end_learning_rate=0.0,
        power=1.0, cycle=False)
    np.testing.assert_allclose(schedule(step).numpy(), tf1().numpy(),
                               rtol=1e-6, atol=1e-12)


def test_schedule_without_warmup_starts_at_the_peak():
  schedule = optimization.WarmupLinearDecay(2.0, num_train_steps=4,
                                            num_warmup_steps=0)
  np.testing.assert_allclose([schedule(s).numpy() for s in range(6)],
                             [2.0, 1.5, 1.0, 0.5, 0.0, 0.0])


def test_config_round_trip_keeps_schedule_and_settings():
  optimizer = optimization.create_optimizer(3e-5, 100, 10, bias_correction=True,
                                            clip_norm=2.0)
  restored = optimization.AdamWeightDecay.from_config(optimizer.get_config())
  assert isinstance(restored._get_hyper("learning_rate"),  # pylint: disable=protected-access
                    optimization.WarmupLinearDecay)
  assert restored.get_config() == optimizer.get_config()
  assert restored.bias_correction and restored.global_clipnorm == 2.0


# ----------------------------------------------------------------------------
# The update against the numpy original.


def run_against_reference(optimizer, reference, model, loss_scales):
  """Applies the same raw gradients to both; returns (norms, max diff/step)."""
  norms, differences = [], []
  for step, loss_scale in enumerate(loss_scales):
    ids, labels = tiny_batch(step)
    _, grads = loss_and_grads(model, ids, labels, loss_scale)
    norms.append(float(tf.linalg.global_norm(grads)))
    reference.apply({v.name: dense_numpy(g)
                     for v, g in zip(model.trainable_variables, grads)})
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    differences.append(max_difference(model, reference.params))
  return norms, differences


def test_five_steps_match_the_original_update_and_schedule():
  model = tiny_model()
  initial = {v.name: v.numpy() for v in model.trainable_variables}
  schedule = dict(init_lr=0.05, num_train_steps=6, num_warmup_steps=2)
  optimizer = optimization.create_optimizer(**schedule)
  reference = OriginalAdamWeightDecay(initial, decayed_by_role(model),
                                      **schedule)

  norms, differences = run_against_reference(optimizer, reference, model,
                                             LOSS_SCALES)

  assert sum(n > 1.0 for n in norms) >= 3 and min(norms) < 1.0, norms
  assert max(differences) < 1e-6, differences
  assert int(optimizer.iterations) == 5
  # The comparison is sharp enough to see the clipping, and a decay of the
  # kernels missing or one of the biases / LayerNorm weights too many.
  variants = (dict(clip_norm=None), dict(decayed=set()),
              dict(decayed=set(initial)))
  for variant in variants:
    wrong_reference = OriginalAdamWeightDecay(
        initial, variant.get("decayed", decayed_by_role(model)),
        clip_norm=variant.get("clip_norm", 1.0), **schedule)
    _, wrong_differences = run_against_reference(
        optimization.create_optimizer(**schedule), wrong_reference,
        tiny_model(), LOSS_SCALES)
    assert max(wrong_differences) > 1e-4, variant


def test_bias_correction_matches_tf_models_official_adamw():
  from official.modeling.optimization import legacy_adamw  # pylint: disable=g-import-not-at-top
  schedule = optimization.WarmupLinearDecay(0.05, num_train_steps=6,
                                            num_warmup_steps=2)
  models = {name: tiny_model() for name in ("ours", "official", "original")}
  initial = models["ours"].get_weights()
  for model in models.values():
    model.set_weights(initial)
  optimizers = {
      "ours": optimization.AdamWeightDecay(schedule, bias_correction=True),
      "official": legacy_adamw.AdamWeightDecay(
          learning_rate=schedule, weight_decay_rate=0.01, epsilon=1e-6,
          exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"],
          gradient_clip_norm=1.0),
      "original": optimization.AdamWeightDecay(schedule),
  }
  reference = OriginalAdamWeightDecay(
      {v.name: v.numpy() for v in models["ours"].trainable_variables},
      decayed_by_role(models["ours"]), 0.05, 6, 2, bias_correction=True)

  for step, loss_scale in enumerate(LOSS_SCALES):
    ids, labels = tiny_batch(step)
    for name, model in models.items():
      _, grads = loss_and_grads(model, ids, labels, loss_scale)
      if name == "ours":
        reference.apply({v.name: dense_numpy(g)
                         for v, g in zip(model.trainable_variables, grads)})
      optimizers[name].apply_gradients(zip(grads, model.trainable_variables))

  ours = models["ours"].trainable_variables
  for mine, theirs in zip(ours, models["official"].trainable_variables):
    np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=1e-6,
                               rtol=0, err_msg=mine.name)
  assert max_difference(models["ours"], reference.params) < 1e-6
  # The switch matters: without correction the weights land elsewhere.
  assert max(
      float(np.max(np.abs(mine.numpy() - plain.numpy())))
      for mine, plain in zip(ours, models["original"].trainable_variables)
  ) > 1e-3


# ----------------------------------------------------------------------------
# Weight decay exclusion on the real BertEncoder names, and None gradients.


@pytest.fixture(scope="module")
def span_model() -> tf_keras.Model:
  """tf-models-official's tiny BertEncoder under its span labeler head."""
  from official.nlp.modeling import models, networks  # pylint: disable=g-import-not-at-top
  encoder = networks.BertEncoder(
      vocab_size=30, hidden_size=64, num_layers=2, num_attention_heads=2,
      intermediate_size=128, max_sequence_length=16, type_vocab_size=2)
  return models.BertSpanLabeler(network=encoder)


def span_inputs() -> dict[str, tf.Tensor]:
  ids = tf.constant([[2, 5, 7, 9, 3, 0], [2, 4, 4, 8, 3, 11]], tf.int32)
  return dict(input_word_ids=ids, input_mask=tf.ones_like(ids),
              input_type_ids=tf.constant([[0, 0, 0, 1, 1, 1]] * 2, tf.int32))


def test_weight_decay_applies_to_kernels_and_embeddings_of_bert_encoder(
    span_model):
  names = [v.name for v in span_model.trainable_variables]
  kernels = [n for n in names if n.endswith(("/kernel:0", "/embeddings:0"))]
  layer_norms = [n for n in names if n.endswith(("/gamma:0", "/beta:0"))]
  biases = [n for n in names if n.endswith("/bias:0")]
  # Every variable is one of the three kinds; 1 + 2 per layer LayerNorms.
  assert sorted(kernels + layer_norms + biases) == sorted(names)
  assert len(layer_norms) == 2 * (1 + 2 * 2)
  assert all("layer_norm/" in n for n in layer_norms)
  assert "word_embeddings/embeddings:0" in kernels
  assert "pooler_transform/bias:0" in biases

  # A zero gradient leaves Adam's term at 0: what moves is the weight decay.
  lr, rate = 0.1, 0.01
  optimizer = optimization.AdamWeightDecay(lr, weight_decay_rate=rate)
  before = {v.name: v.numpy() for v in span_model.trainable_variables}
  optimizer.apply_gradients(
      (tf.zeros_like(v), v) for v in span_model.trainable_variables)
  decayed = set()
  for v in span_model.trainable_variables:
    if np.array_equal(v.numpy(), before[v.name]):
      continue
    np.testing.assert_allclose(v.numpy(), before[v.name] * (1 - lr * rate),
                               rtol=1e-6, err_msg=v.name)
    decayed.add(v.name)
  assert decayed == set(kernels)
  assert {n for n in names if optimizer.uses_weight_decay(n)} == set(kernels)
  assert optimizer.uses_weight_decay("dense/kernel/replica_1:0")
  assert not optimizer.uses_weight_decay("dense/bias/replica_1:0")
  assert not optimizer.uses_weight_decay("bert/encoder/layer_0/output/LayerNorm/gamma")


def test_none_gradients_leave_their_variables_alone(span_model):
  with tf.GradientTape() as tape:
    start_logits, end_logits = span_model(span_inputs())
    loss = tf.reduce_sum(start_logits[:, 1]) - tf.reduce_sum(end_logits[:, 2])
  variables = span_model.trainable_variables
  grads = tape.gradient(loss, variables)
  without_gradient = {v.name for v, g in zip(variables, grads) if g is None}
  assert without_gradient == {"pooler_transform/kernel:0",
                              "pooler_transform/bias:0"}
  before = {v.name: v.numpy() for v in variables}

  optimizer = optimization.AdamWeightDecay(0.1)
  optimizer.apply_gradients(zip(grads, variables))

  for v in variables:
    unchanged = np.array_equal(v.numpy(), before[v.name])
    assert unchanged == (v.name in without_gradient), v.name


# ----------------------------------------------------------------------------
# Checkpoints, loss scaling, MirroredStrategy.


def train_steps(model, optimizer, steps):
  for step in steps:
    ids, labels = tiny_batch(step)
    _, grads = loss_and_grads(model, ids, labels, LOSS_SCALES[step])
    optimizer.apply_gradients(zip(grads, model.trainable_variables))


def test_checkpoint_restores_moments_and_iterations(tmp_path):
  def make():
    return tiny_model(), optimization.create_optimizer(0.05, 6, 2)

  model, optimizer = make()
  train_steps(model, optimizer, range(3))
  path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(
      str(tmp_path / "ckpt"))

  restored_model, restored_optimizer = make()
  tf.train.Checkpoint(model=restored_model, optimizer=restored_optimizer
                     ).restore(path).assert_existing_objects_matched()
  assert int(restored_optimizer.iterations) == 3

  # The next update needs the restored m, v and step (learning rate) to agree.
  train_steps(model, optimizer, [3])
  train_steps(restored_model, restored_optimizer, [3])
  for original, restored in zip(model.trainable_variables,
                                restored_model.trainable_variables):
    np.testing.assert_array_equal(original.numpy(), restored.numpy())
    for slot in ("m", "v"):
      np.testing.assert_array_equal(
          optimizer.get_slot(original, slot).numpy(),
          restored_optimizer.get_slot(restored, slot).numpy())
  assert int(restored_optimizer.iterations) == 4


def test_loss_scale_optimizer_gives_the_unscaled_update():
  plain_model, scaled_model = tiny_model(), tiny_model()
  scaled_model.set_weights(plain_model.get_weights())
  plain = optimization.create_optimizer(0.05, 6, 2)
  scaled = tf_keras.mixed_precision.LossScaleOptimizer(
      optimization.create_optimizer(0.05, 6, 2))

  train_steps(plain_model, plain, range(3))
  for step in range(3):
    ids, labels = tiny_batch(step)
    with tf.GradientTape() as tape:
      per_example = tf_keras.losses.sparse_categorical_crossentropy(
          labels, scaled_model(ids), from_logits=True)
      loss = LOSS_SCALES[step] * tf.reduce_mean(per_example)
      scaled_loss = scaled.get_scaled_loss(loss)
    grads = scaled.get_unscaled_gradients(
        tape.gradient(scaled_loss, scaled_model.trainable_variables))
    scaled.apply_gradients(zip(grads, scaled_model.trainable_variables))

  for a, b in zip(plain_model.trainable_variables,
                  scaled_model.trainable_variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, rtol=0)

  # An overflowing step is skipped: weights stay, the step count moves on.
  before = scaled_model.get_weights()
  infinite = [tf.fill(tf.shape(v), np.inf) for v in
              scaled_model.trainable_variables]
  scaled.apply_gradients(zip(infinite, scaled_model.trainable_variables))
  for a, b in zip(before, scaled_model.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert int(scaled.iterations) == 4


def test_mirrored_strategy_clips_the_aggregated_gradient():
  result = subprocess.run(
      [sys.executable, str(pathlib.Path(__file__).resolve()),
       "--mirrored-worker"],
      capture_output=True, text=True, timeout=300,
      cwd=pathlib.Path(__file__).resolve().parents[2],
      env={**os.environ, "PYTHONPATH": str(
          pathlib.Path(__file__).resolve().parents[2])})
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["replicas"] == 2
  assert min(report["local_norms"]) > 1.0  # clipping bites on every replica
  assert report["ours_vs_single_device"] < 1e-6, report
  assert report["ours_replicas_disagree"] == 0.0, report
  # tf-models-official clips each replica's gradient before the sum, and the
  # comparison sees that.
  assert report["official_vs_single_device"] > 1e-4, report


# ----------------------------------------------------------------------------
# The MirroredStrategy worker (a fresh process: see the module docstring).

MIRRORED_GLOBAL_BATCH = 8
MIRRORED_LOSS_SCALES = (500.0, 2000.0, 80.0)


def mirrored_batch() -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(7)
  ids = rng.integers(0, VOCAB_SIZE, (MIRRORED_GLOBAL_BATCH, SEQ_LENGTH))
  labels = rng.integers(0, NUM_CLASSES, MIRRORED_GLOBAL_BATCH)
  return ids.astype(np.int32), labels.astype(np.int32)


def train_distributed(strategy, make_optimizer, initial_weights):
  """3 steps on the global batch split over the replicas; returns the model."""
  ids, labels = mirrored_batch()
  with strategy.scope():
    model = tiny_model()
    model.set_weights(initial_weights)
    optimizer = make_optimizer()

  def replica_slice(context):
    per_replica = MIRRORED_GLOBAL_BATCH // context.num_replicas_in_sync
    start = context.replica_id_in_sync_group * per_replica
    return (tf.constant(ids[start:start + per_replica]),
            tf.constant(labels[start:start + per_replica]))

  inputs = strategy.experimental_distribute_values_from_function(
      replica_slice)
  local_norms = []

  @tf.function
  def step(batch, loss_scale):
    def replica_step(batch_ids, batch_labels):
      with tf.GradientTape() as tape:
        per_example = tf_keras.losses.sparse_categorical_crossentropy(
            batch_labels, model(batch_ids), from_logits=True)
        loss = loss_scale * tf.nn.compute_average_loss(
            per_example, global_batch_size=MIRRORED_GLOBAL_BATCH)
      grads = tape.gradient(loss, model.trainable_variables)
      optimizer.apply_gradients(zip(grads, model.trainable_variables))
      return tf.linalg.global_norm(grads)
    return strategy.experimental_local_results(
        strategy.run(replica_step, args=batch))

  for loss_scale in MIRRORED_LOSS_SCALES:
    local_norms.extend(float(n) for n in step(inputs, tf.constant(loss_scale)))
  return model, local_norms


def replica_values(variable) -> list[np.ndarray]:
  values = getattr(variable, "values", (variable,))
  return [v.numpy() for v in values]


def mirrored_worker() -> dict:
  """Compares a 2-replica MirroredStrategy with one device, 3 clipped steps."""
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  from official.modeling.optimization import legacy_adamw  # pylint: disable=g-import-not-at-top
  mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  single = tf.distribute.get_strategy()
  initial_weights = tiny_model().get_weights()
  optimizers = {
      "ours": lambda: optimization.create_optimizer(0.05, 4, 1),
      "official": lambda: legacy_adamw.AdamWeightDecay(
          learning_rate=optimization.WarmupLinearDecay(0.05, 4, 1),
          weight_decay_rate=0.01, epsilon=1e-6,
          exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"],
          gradient_clip_norm=1.0),
  }
  report = {"replicas": mirrored.num_replicas_in_sync}
  for name, make_optimizer in optimizers.items():
    single_model, _ = train_distributed(single, make_optimizer,
                                        initial_weights)
    mirrored_model, local_norms = train_distributed(mirrored, make_optimizer,
                                                    initial_weights)
    difference, disagreement = 0.0, 0.0
    for one, many in zip(single_model.trainable_variables,
                         mirrored_model.trainable_variables):
      copies = replica_values(many)
      difference = max(difference, float(np.max(np.abs(one.numpy() - copies[0]))))
      disagreement = max(disagreement, max(
          float(np.max(np.abs(c - copies[0]))) for c in copies))
    report[f"{name}_vs_single_device"] = difference
    report[f"{name}_replicas_disagree"] = disagreement
    report["local_norms"] = local_norms
  return report


if __name__ == "__main__":
  if sys.argv[1:] == ["--mirrored-worker"]:
    print(json.dumps(mirrored_worker()))


@pytest.mark.parametrize("bias_correction", [False, True])
def test_fused_update_equals_the_unfused_one_up_to_rounding(bias_correction):
  """fused_update=True (XLA, one pass per variable): the same update, rounded differently."""
  plain_model, fused_model = tiny_model(), tiny_model()
  fused_model.set_weights(plain_model.get_weights())
  plain = optimization.create_optimizer(0.05, 6, 2, bias_correction=bias_correction)
  fused = optimization.create_optimizer(0.05, 6, 2, bias_correction=bias_correction,
                                        fused_update=True)
  assert fused.get_config()["fused_update"] and not plain.get_config()["fused_update"]
  initial = [w.copy() for w in plain_model.get_weights()]
  for step in range(4):
    ids, labels = tiny_batch(step)
    for model, optimizer in ((plain_model, plain), (fused_model, fused)):
      _, grads = loss_and_grads(model, ids, labels, LOSS_SCALES[step])
      optimizer.apply_gradients(zip(grads, model.trainable_variables))
  for before, p, f in zip(initial, plain_model.get_weights(), fused_model.get_weights()):
    assert not np.array_equal(before, f)  # it trained
    np.testing.assert_allclose(f, p, rtol=1e-5, atol=1e-7)
  # XLA's FMAs change some bits (so the fused path really ran): in m, at least.
  assert any(not np.array_equal(fused.get_slot(f, "m").numpy(), plain.get_slot(p, "m").numpy())
             for p, f in zip(plain_model.trainable_variables, fused_model.trainable_variables))
  for p, f in zip(plain_model.trainable_variables, fused_model.trainable_variables):
    for slot in ("m", "v"):
      # m = beta_1 m + (1 - beta_1) g can cancel to near 0, where one FMA rounding shows.
      np.testing.assert_allclose(fused.get_slot(f, slot).numpy(), plain.get_slot(p, slot).numpy(),
                                 rtol=1e-5, atol=1e-8)
