"""The two span models the model benchmarks race, built and stepped the same way, and their FLOPs.

ours  this project's `span_model.build_span_model` + `optimization.create_optimizer`,
      trained by the training loop's own step (`update_step.make_train_loop`)
      and predicting through `prediction.make_predict_step`;
ref   tf-models-official's `BertSpanLabeler` over a `BertEncoder` of the same
      size + its `AdamWeightDecay`, in plain `tf.function` steps.

A `Runner` runs n steps of one of them on a fixed batch and returns when the
results are on the host. Also: Google's small BERT configs ("L4/H512"), model
FLOPs per example, and the matmul peak that MFU divides by. Used by
benchmarks/model.py, predict_buckets.py and train_buckets.py; import it after
`benchmarks._setup` (TensorFlow's environment).
"""
import re
import time
from typing import Callable

import numpy as np
import tensorflow as tf
import tf_keras
from official.modeling.optimization import legacy_adamw
from official.nlp import optimization as tfm_optimization
from official.nlp.modeling import models as tfm_models
from official.nlp.modeling import networks as tfm_networks

from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from bert_squad.training import loop
from bert_squad.training import optimization
from bert_squad.training import prediction
from bert_squad.training import update_step

VOCAB_SIZE = 30522  # Google's uncased WordPiece vocabulary
PEAK_MATMUL_SIZE = 4096

# A runner executes n steps and returns when their results are on the host.
Runner = Callable[[int], None]


def small_bert_config(size: str) -> model_config.BertConfig:
  """The config of Google's small BERT "L<layers>/H<hidden>" (e.g. "L4/H256")."""
  match = re.fullmatch(r"L(\d+)/H(\d+)", size)
  if not match or int(match[2]) % 64:
    raise ValueError(f"size {size!r}: expected L<layers>/H<hidden>, hidden a multiple of 64")
  layers, hidden = int(match[1]), int(match[2])
  return model_config.BertConfig(
      vocab_size=VOCAB_SIZE, hidden_size=hidden, num_hidden_layers=layers,
      num_attention_heads=hidden // 64, intermediate_size=4 * hidden, hidden_act="gelu",
      hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=512,
      type_vocab_size=2, initializer_range=0.02)


def forward_flops_per_example(config: model_config.BertConfig, seq_length: int) -> float:
  """Model FLOPs of one forward pass over one example (2 FLOPs per multiply-add).

  Per token every weight matrix of the encoder does one multiply-add per
  weight: per layer 4 H^2 (query, key, value, attention output) + 2 H I
  (intermediate and output), and the span head H x 2. Per layer, attention
  scores Q K^T and the weighted sum of V are seq^2 x H multiply-adds each.
  So forward = 2 seq (L (4 H^2 + 2 H I) + 2 H) + 4 L seq^2 H. Embedding
  lookups, biases, LayerNorm, softmax, GELU and dropout are left out (a few
  percent), as is usual for MFU. Training counts 3x forward (the backward pass
  needs two matmuls per forward matmul).
  """
  hidden, layers, inner = config.hidden_size, config.num_hidden_layers, config.intermediate_size
  matmul_weights = layers * (4 * hidden * hidden + 2 * hidden * inner) + 2 * hidden
  return 2.0 * seq_length * matmul_weights + 4.0 * layers * seq_length ** 2 * hidden


def matmul_runner(size: int = PEAK_MATMUL_SIZE, dtype: str = "float32") -> Runner:
  """n `size` x `size` matrix products in `dtype` (2 size^3 FLOPs each)."""
  a = tf.cast(tf.random.normal([size, size], seed=1), dtype)
  b = tf.cast(tf.random.normal([size, size], seed=2), dtype)
  matmul = tf.function(tf.linalg.matmul)

  def run(num_steps: int) -> None:
    for _ in range(num_steps):
      product = matmul(a, b)
    product.numpy()

  return run


def measure_peak_flops(size: int = PEAK_MATMUL_SIZE, repeats: int = 5,
                       matmuls_per_repeat: int = 3, dtype: str = "float32") -> float:
  """Best FLOP/s of `matmul_runner(size, dtype)` over `repeats` timings.

  A timing runs at least `matmuls_per_repeat` products, more (x4 at a time,
  up to 1024) while they take under 50 ms, so that a GPU's launch and copy
  overheads do not dominate.
  """
  run = matmul_runner(size, dtype)
  run(1)
  while matmuls_per_repeat < 1024:
    start = time.perf_counter()
    run(matmuls_per_repeat)
    if time.perf_counter() - start >= 0.05:
      break
    matmuls_per_repeat *= 4
  best = 0.0
  for _ in range(repeats):
    start = time.perf_counter()
    run(matmuls_per_repeat)
    best = max(best, matmuls_per_repeat * 2.0 * size ** 3 / (time.perf_counter() - start))
  return best


def random_batch(batch_size: int, seq_length: int, vocab_size: int,
                 seed: int = 0) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
  """A SQuAD-like (inputs, targets) batch of int32 tensors.

  Each example has a random length in [seq/2, seq] (mask 1, then padding 0),
  a question segment of 16 tokens then the context (segment 1), and answer
  positions inside the context.
  """
  rng = np.random.default_rng(seed)
  lengths = rng.integers(seq_length // 2, seq_length + 1, size=batch_size)
  positions = np.arange(seq_length)[None, :]
  input_mask = (positions < lengths[:, None]).astype(np.int32)
  question_length = min(16, seq_length // 4)
  segment_ids = ((positions >= question_length) & (input_mask == 1)).astype(np.int32)
  input_ids = rng.integers(1000, vocab_size, size=(batch_size, seq_length)) * input_mask
  start_positions = rng.integers(question_length, lengths)
  end_positions = np.minimum(start_positions + rng.integers(0, 5, size=batch_size), lengths - 1)
  inputs = {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids}
  targets = {"start_positions": start_positions, "end_positions": end_positions,
             "unique_ids": np.arange(batch_size)}
  to_tensors = lambda d: {k: tf.constant(v, tf.int32) for k, v in d.items()}  # noqa: E731
  return to_tensors(inputs), to_tensors(targets)


# ------------------------------------------------------------------ ours


def build_ours(config: model_config.BertConfig, seq_length: int, strategy: tf.distribute.Strategy,
               fused_update: bool = False, gradient_checkpointing: bool = False):
  """This project's span model and optimizer, built under `strategy`.

  `fused_update`: the XLA-compiled optimizer update that `run_squad.py --use_xla` uses;
  `gradient_checkpointing`: as `run_squad.py --gradient_checkpointing`.
  """
  with strategy.scope():
    model = span_model.build_span_model(config, seq_length, gradient_checkpointing=gradient_checkpointing)
    optimizer = optimization.create_optimizer(5e-5, num_train_steps=10000, num_warmup_steps=1000,
                                              fused_update=fused_update)
  return model, optimizer


def ours_train_runner(model, optimizer, strategy: tf.distribute.Strategy, batch,
                      use_xla: bool = False, dtype: str = "float32") -> Runner:
  """n updates of `loop.train`'s own loop function on the repeated `batch`."""
  inputs, targets = batch
  targets = {k: v for k, v in targets.items() if k != "unique_ids"}
  batch_size = int(inputs["input_ids"].shape[0])
  with strategy.scope():
    applying_optimizer = loop.wrap_for_precision(optimizer, dtype)
  loss_scale_optimizer = applying_optimizer if applying_optimizer is not optimizer else None
  steps = update_step.StepFunctions(
      model, applying_optimizer, span_model.span_loss, strategy,
      micro_batch_global=batch_size, accumulation_steps=1,
      loss_scale_optimizer=loss_scale_optimizer, use_xla=use_xla)
  with strategy.scope():
    step_counter = tf.Variable(0, dtype=tf.int64, trainable=False)
  train_loop = update_step.make_train_loop(steps, step_counter)
  dataset_fn = lambda _: tf.data.Dataset.from_tensors((inputs, targets)).repeat()  # noqa: E731
  iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))

  def run(num_steps: int) -> None:
    losses, _ = train_loop(iterator, tf.constant(num_steps, tf.int32))
    losses.numpy()

  return run


def ours_predict_runner(model, strategy: tf.distribute.Strategy, batch,
                        jit_compile: bool) -> Runner:
  """n prediction batches through `prediction.predict_logits`'s own prediction step."""
  inputs, targets = batch
  predict_step = prediction.make_predict_step(model, strategy, jit_compile)

  def run(num_steps: int) -> None:
    for _ in range(num_steps):
      for value in tf.nest.flatten(predict_step(inputs, {"unique_ids": targets["unique_ids"]})):
        value.numpy()

  return run


# ------------------------------------------------------------- reference


def build_reference(config: model_config.BertConfig):
  """tf-models-official's `BertSpanLabeler` and BERT optimizer for `config`."""
  encoder = tfm_networks.BertEncoder(
      vocab_size=config.vocab_size, hidden_size=config.hidden_size,
      num_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
      max_sequence_length=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
      inner_dim=config.intermediate_size, inner_activation=model_config.ACTIVATIONS[config.hidden_act],
      output_dropout=config.hidden_dropout_prob,
      attention_dropout=config.attention_probs_dropout_prob,
      initializer=tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range))
  model = tfm_models.BertSpanLabeler(network=encoder)
  optimizer = tfm_optimization.create_optimizer(5e-5, num_train_steps=10000, num_warmup_steps=1000)
  assert isinstance(optimizer, legacy_adamw.AdamWeightDecay)
  return model, optimizer


def _reference_inputs(inputs: dict[str, tf.Tensor]) -> list[tf.Tensor]:
  return [inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"]]


def reference_train_runner(model, optimizer, batch, dtype: str = "float32") -> Runner:
  """n calls of a plain compiled train step on `batch` (float16: with dynamic loss scaling)."""
  inputs, targets = batch
  ref_inputs = _reference_inputs(inputs)
  variables = model.trainable_variables
  scaler = tf_keras.mixed_precision.LossScaleOptimizer(optimizer) if dtype == "float16" else None

  @tf.function
  def train_step(inputs, start_positions, end_positions):
    with tf.GradientTape() as tape:
      start_logits, end_logits = model(inputs, training=True)
      loss = tf.reduce_mean(span_model.span_loss(start_positions, end_positions,
                                               tf.cast(start_logits, tf.float32),
                                               tf.cast(end_logits, tf.float32)))
      scaled_loss = scaler.get_scaled_loss(loss) if scaler else loss
    gradients = tape.gradient(scaled_loss, variables)
    if scaler:
      gradients = scaler.get_unscaled_gradients(gradients)
    (scaler or optimizer).apply_gradients(
        [(g, v) for g, v in zip(gradients, variables) if g is not None])
    return loss

  def run(num_steps: int) -> None:
    for _ in range(num_steps):
      loss = train_step(ref_inputs, targets["start_positions"], targets["end_positions"])
    loss.numpy()

  return run


def reference_predict_runner(model, batch) -> Runner:
  """n batches through the reference's forward pass in a plain `tf.function`."""
  ref_inputs = _reference_inputs(batch[0])
  forward = tf.function(lambda x: model(x, training=False))

  def run(num_steps: int) -> None:
    for _ in range(num_steps):
      for value in forward(ref_inputs):
        value.numpy()

  return run
