"""One training step from a Google-format checkpoint equals the original's step.

The project's path -- `bert_config.json` -> `span_model.build_span_model`,
`google_format.load_google_checkpoint` (SQuAD head included),
`optimization.create_optimizer`, `loop.train` over a feature TFRecord
written by `bert_squad.features`, then `google_format.export_google_checkpoint`
-- runs ONE update (dropout 0, the batch is the whole data set). The
reference is computed here from the formulas of google-research/bert, not
from the project's model:

- forward and loss: a raw-tf float64 transcription of the original
  `modeling.py` (`embedding_lookup`, `embedding_postprocessor`,
  `attention_layer` with the -10000 mask adder, `transformer_model` with
  tanh-gelu and LayerNorm eps 1e-12) and of `run_squad.py`'s `create_model` /
  `compute_loss`, on the checkpoint's Google-named tensors. Its logits are
  checked against the numpy BERT of `checkpoint_testlib`, its loss against a
  numpy cross-entropy;
- gradient: TensorFlow autodiff of that transcription (float64);
- update: the original `AdamWeightDecayOptimizer` after
  `clip_by_global_norm(grads, 1.0)`, in numpy float64.

Every Google-named tensor of the export after the step, the Adam moments and
the logged loss are compared with the reference.
"""
import functools
import io
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from bert_squad.data import feature_files
from bert_squad.data import features
from bert_squad.data import records
from bert_squad.modeling import google_format
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from bert_squad.modeling import weight_map
from bert_squad.training import distribution
from bert_squad.training import input_pipeline
from bert_squad.training import loop
from bert_squad.training import loop_config
from bert_squad.training import optimization
from bert_squad.training import train_log
from tests import checkpoint_testlib as testlib

BERT_CONFIG = {
    "vocab_size": 40, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 128, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 32, "type_vocab_size": 2,
    "initializer_range": 0.02,
}
CONFIG = model_config.BertConfig.from_dict(BERT_CONFIG)
SEQ_LENGTH = 24
NUM_FEATURES = 4  # == train_batch_size: the one step sees the whole data set
SEED = 7
# A rate far above the original's 5e-5, so that every term of the update is far
# above float32 round-off: the Adam step of the first update is about
# lr * sqrt(10) = 0.32 per element, the weight decay lr * 0.01 * w is 2e-4 for a
# kernel entry of 0.2 and 1e-3 for a LayerNorm gamma of 1 (had it been decayed).
INIT_LR = 0.1
SCHEDULE_STEPS = 10  # the schedule's num_train_steps; the run stops after the first
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
    f"w{i}" for i in range(CONFIG.vocab_size - 5)]
PAD, CLS, SEP = (VOCAB.index(token) for token in ("[PAD]", "[CLS]", "[SEP]"))

# The original's AdamWeightDecayOptimizer constants and run_squad's exclusions.
BETA_1, BETA_2, EPSILON, WEIGHT_DECAY_RATE, CLIP_NORM = 0.9, 0.999, 1e-6, 0.01, 1.0
EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")

# Tolerances. The project computes in float32, the reference in float64.
# GRADIENT_TOLERANCE: absolute error allowed in the clipped gradient (global
# norm 1, largest entry ~0.09 here), checked through the Adam moments
# (m / (1 - b1) and sqrt(v / (1 - b2)) give g and |g|); measured 1.2e-7.
GRADIENT_TOLERANCE = 1e-6
# WEIGHT_TOLERANCE: absolute and relative error allowed in a weight after the
# step, on top of the effect of the gradient's error. The first Adam step
# a(g) = 0.1 g / (0.0316 |g| + 1e-6) is about sqrt(10) sign(g), but near g = 0 it
# amplifies an error of g by a'(g) = 0.1 * 1e-6 / (0.0316 |g| + 1e-6)^2, up to
# 1e5 times: weights whose gradient is within float32 noise of 0 (41% of the
# entries have |g| < 1e-3 here) may move by lr * a'(g) * GRADIENT_TOLERANCE
# more: any float32 computation of the gradient, the original's included, has
# this uncertainty. Measured: every weight is within 0.06 of its allowance; the
# wrong references of test_wrong_references_are_far_outside_the_tolerance miss
# it by 48x to 20000x.
WEIGHT_TOLERANCE = 1e-5
# The loss is one float32 forward pass: measured relative error 1e-7.
LOSS_RTOL = 1e-5


# --------------------------------------------------------------------- data


def _training_features() -> list[features.InputFeatures]:
  """[CLS] query [SEP] doc [SEP] [PAD]... windows with answers in the doc (one at [CLS])."""
  rng = np.random.default_rng(SEED)
  result = []
  for index, (query_length, doc_length) in enumerate(((4, 12), (3, 17), (6, 9), (5, 15))):
    query = rng.integers(5, CONFIG.vocab_size, query_length).tolist()
    doc = rng.integers(5, CONFIG.vocab_size, doc_length).tolist()
    ids = [CLS] + query + [SEP] + doc + [SEP]
    segments = [0] * (query_length + 2) + [1] * (doc_length + 1)
    padding = SEQ_LENGTH - len(ids)
    doc_offset = query_length + 2
    if index == 2:  # an unanswerable window points at [CLS], as the original's
      start = end = 0
    else:
      start = doc_offset + int(rng.integers(0, doc_length - 3))
      end = start + int(rng.integers(0, 3))
    result.append(features.InputFeatures(
        unique_id=records.FIRST_UNIQUE_ID + index, example_index=index, doc_span_index=0,
        tokens=[VOCAB[i] for i in ids], token_to_orig_map={}, token_is_max_context={},
        input_ids=ids + [PAD] * padding, input_mask=[1] * len(ids) + [0] * padding,
        segment_ids=segments + [0] * padding, start_position=start, end_position=end,
        is_impossible=index == 2))
  return result


def _as_arrays(feature_list: list[features.InputFeatures]) -> dict[str, np.ndarray]:
  return {
      "input_ids": np.array([f.input_ids for f in feature_list]),
      "input_mask": np.array([f.input_mask for f in feature_list]),
      "segment_ids": np.array([f.segment_ids for f in feature_list]),
      "start_positions": np.array([f.start_position for f in feature_list]),
      "end_positions": np.array([f.end_position for f in feature_list]),
  }


@pytest.fixture(scope="module")
def run_files(tmp_path_factory) -> dict:
  """A Google checkpoint folder (ckpt, bert_config.json, vocab.txt) and a training TFRecord."""
  folder = tmp_path_factory.mktemp("one_step")
  model_dir = folder / "google_model"
  model_dir.mkdir()
  tensors = testlib.random_tensors(testlib.google_shapes(CONFIG), seed=SEED)
  prefix = testlib.write_tf1_checkpoint(str(model_dir / google_format.CHECKPOINT_NAME), tensors)
  (model_dir / "bert_config.json").write_text(json.dumps(BERT_CONFIG), encoding="utf-8")
  (model_dir / "vocab.txt").write_text("".join(t + "\n" for t in VOCAB), encoding="utf-8")
  feature_list = _training_features()
  train_record = str(folder / "train.tf_record")
  assert feature_files.write_tfrecord(train_record, feature_list, is_training=True) == NUM_FEATURES
  return {"folder": folder, "init_checkpoint": prefix, "tensors": tensors,
          "bert_config_file": str(model_dir / "bert_config.json"),
          "vocab_file": str(model_dir / "vocab.txt"), "train_record": train_record,
          "batch": _as_arrays(feature_list)}


# ---------------------------------------------- the original, transcribed


def _original_layer_norm(x, gamma, beta):
  """tf.contrib.layers.layer_norm over the last axis (variance_epsilon 1e-12)."""
  mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
  return (x - mean) * tf.math.rsqrt(variance + 1e-12) * gamma + beta


def _original_gelu(x):
  """modeling.gelu: the tanh approximation."""
  return x * 0.5 * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))


def original_span_logits(t: dict, input_ids, input_mask, segment_ids):
  """google-research/bert BertModel (dropout 0) + run_squad's `create_model` head.

  Args:
    t: Google name -> float64 tensor (or variable).
    input_ids, input_mask, segment_ids: int [batch, seq].

  Returns:
    (start_logits, end_logits), each float64 [batch, seq].
  """
  batch, seq = input_ids.shape
  hidden, heads = CONFIG.hidden_size, CONFIG.num_attention_heads
  size = hidden // heads
  # embedding_lookup (tf.gather, use_one_hot_embeddings=False) + embedding_postprocessor.
  output = tf.gather(t["bert/embeddings/word_embeddings"], input_ids)
  one_hot_types = tf.one_hot(tf.reshape(segment_ids, [-1]), CONFIG.type_vocab_size,
                             dtype=tf.float64)
  output += tf.reshape(one_hot_types @ t["bert/embeddings/token_type_embeddings"],
                       [batch, seq, hidden])
  output += tf.slice(t["bert/embeddings/position_embeddings"], [0, 0], [seq, -1])[None]
  output = _original_layer_norm(output, t["bert/embeddings/LayerNorm/gamma"],
                                t["bert/embeddings/LayerNorm/beta"])
  # create_attention_mask_from_input_mask, then attention_layer's adder.
  to_mask = tf.cast(tf.reshape(input_mask, [batch, 1, seq]), tf.float64)
  attention_mask = tf.ones([batch, seq, 1], tf.float64) * to_mask
  adder = (1.0 - tf.expand_dims(attention_mask, 1)) * -10000.0

  def dense(x, scope):
    return x @ t[f"{scope}/kernel"] + t[f"{scope}/bias"]

  def transpose_for_scores(x):
    return tf.transpose(tf.reshape(x, [batch, seq, heads, size]), [0, 2, 1, 3])

  prev_output = tf.reshape(output, [batch * seq, hidden])
  for n in range(CONFIG.num_hidden_layers):
    scope = f"bert/encoder/layer_{n}"
    query, key, value = (transpose_for_scores(dense(prev_output, f"{scope}/attention/self/{p}"))
                         for p in ("query", "key", "value"))
    scores = tf.matmul(query, key, transpose_b=True) * (1.0 / math.sqrt(float(size)))
    probs = tf.nn.softmax(scores + adder)
    context = tf.reshape(tf.transpose(probs @ value, [0, 2, 1, 3]), [batch * seq, hidden])
    attention_output = _original_layer_norm(
        dense(context, f"{scope}/attention/output/dense") + prev_output,
        t[f"{scope}/attention/output/LayerNorm/gamma"],
        t[f"{scope}/attention/output/LayerNorm/beta"])
    intermediate = _original_gelu(dense(attention_output, f"{scope}/intermediate/dense"))
    prev_output = _original_layer_norm(
        dense(intermediate, f"{scope}/output/dense") + attention_output,
        t[f"{scope}/output/LayerNorm/gamma"], t[f"{scope}/output/LayerNorm/beta"])
  logits = tf.matmul(prev_output, t["cls/squad/output_weights"], transpose_b=True)
  logits = tf.nn.bias_add(logits, t["cls/squad/output_bias"])
  start_logits, end_logits = tf.unstack(tf.transpose(tf.reshape(logits, [batch, seq, 2]),
                                                     [2, 0, 1]), axis=0)
  return start_logits, end_logits


def original_total_loss(start_logits, end_logits, start_positions, end_positions):
  """run_squad's `compute_loss` for start and end, averaged: a scalar."""
  seq = start_logits.shape[1]

  def compute_loss(logits, positions):
    one_hot_positions = tf.one_hot(positions, depth=seq, dtype=tf.float64)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    return -tf.reduce_mean(tf.reduce_sum(one_hot_positions * log_probs, axis=-1))

  return (compute_loss(start_logits, start_positions) +
          compute_loss(end_logits, end_positions)) / 2.0


def numpy_mean_span_loss(start_logits, end_logits, start_positions, end_positions) -> float:
  """mean over the batch of (CE(start) + CE(end)) / 2, in numpy float64."""

  def cross_entropy(logits, positions):
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return -log_probs[np.arange(len(positions)), positions]

  return float(np.mean((cross_entropy(start_logits, start_positions) +
                        cross_entropy(end_logits, end_positions)) / 2.0))


def original_learning_rate(step: int, num_warmup_steps: int) -> float:
  """optimization.create_optimizer's rate at global_step `step`."""
  if num_warmup_steps and step < num_warmup_steps:
    return INIT_LR * step / num_warmup_steps
  return INIT_LR * (1.0 - min(step, SCHEDULE_STEPS) / SCHEDULE_STEPS)


def original_first_update(params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                          learning_rate: float, *, clip: bool = True, bias_correction: bool = False,
                          exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY) -> dict:
  """clip_by_global_norm(1.0) + the original AdamWeightDecayOptimizer, first update, float64.

  Variables without a gradient (the pooler) are skipped, as the original skips
  `grad is None`. The keyword arguments give WRONG variants for the tests
  that show the comparison can fail.

  Returns:
    {"params": after the update, "m", "v": the moments, "grads": the clipped
    gradient}, each by Google name.
  """
  global_norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
  scale = CLIP_NORM / max(global_norm, CLIP_NORM) if clip else 1.0
  after, m, v, clipped = dict(params), {}, {}, {}
  for name, grad in grads.items():
    grad = clipped[name] = grad * scale
    m[name] = (1.0 - BETA_1) * grad  # beta_1 * 0 + (1 - beta_1) * g
    v[name] = (1.0 - BETA_2) * grad * grad
    adam = m[name] / (np.sqrt(v[name]) + EPSILON)
    if bias_correction:  # tf-models-official / Keras Adam; NOT the original
      adam *= math.sqrt(1.0 - BETA_2) / (1.0 - BETA_1)
    update = adam
    if not any(pattern in name for pattern in exclude_from_weight_decay):
      update = update + WEIGHT_DECAY_RATE * params[name]
    after[name] = params[name] - learning_rate * update
  return {"params": after, "m": m, "v": v, "grads": clipped}


@pytest.fixture(scope="module")
def reference(run_files) -> dict:
  """The original's loss and gradient at the checkpoint, in float64."""
  batch = run_files["batch"]
  params = {n: v.astype(np.float64) for n, v in run_files["tensors"].items()}
  variables = {n: tf.Variable(v) for n, v in params.items()}
  with tf.GradientTape() as tape:
    start_logits, end_logits = original_span_logits(
        variables, batch["input_ids"], batch["input_mask"], batch["segment_ids"])
    loss = original_total_loss(start_logits, end_logits, batch["start_positions"],
                               batch["end_positions"])
  grads = tape.gradient(loss, variables)
  return {
      "params": params,
      "start_logits": start_logits.numpy(), "end_logits": end_logits.numpy(),
      "loss": float(loss),
      # IndexedSlices (word embeddings) made dense: the clip then sees the true
      # norm, as the original with use_one_hot_embeddings=True (its TPU path)
      # and the project (docs/training.md). The original on CPU/GPU clips with
      # the norm of the slices, which counts a repeated token once per
      # occurrence: 7.529 instead of 7.560 on this batch.
      "grads": {n: tf.convert_to_tensor(g).numpy() for n, g in grads.items() if g is not None},
  }


# -------------------------------------------------- the project's one step


def _slot_in_google_layout(weight: weight_map.MappedWeight, slot: tf.Variable) -> np.ndarray:
  value = slot.numpy()
  return value.T if weight.transpose else value.reshape(weight.google_shape)


def train_one_step(run_files: dict, output_dir, num_warmup_steps: int) -> dict:
  """The project's fine-tuning of run_squad, stopped after its first update.

  Returns:
    "exported": Google name -> tensor of the Google export after the step;
    "m", "v": the optimizer's moments by Google name; "result": the
    TrainResult; "history_file": train_history.json; "loaded": the names loaded.
  """
  bert_config = model_config.BertConfig.from_json_file(run_files["bert_config_file"])
  model_config.validate_config(bert_config, SEQ_LENGTH, run_files["vocab_file"])
  strategy = distribution.make_strategy("one_device", num_gpus=0)
  with strategy.scope():
    model = span_model.build_span_model(bert_config, SEQ_LENGTH)
    loaded = google_format.load_google_checkpoint(model, run_files["init_checkpoint"])
    optimizer = optimization.create_optimizer(INIT_LR, SCHEDULE_STEPS, num_warmup_steps)
  dataset_fn = functools.partial(input_pipeline.make_dataset, run_files["train_record"],
                                 SEQ_LENGTH, NUM_FEATURES, True, seed=SEED)
  config = loop_config.TrainConfig(output_dir=str(output_dir / "train"), num_train_steps=1,
                                   train_batch_size=NUM_FEATURES, steps_per_loop=1,
                                   save_checkpoints_steps=1, log_steps=1, handle_signals=False)
  result = loop.train(model, optimizer, span_model.span_loss, dataset_fn, strategy, config,
                          log_stream=io.StringIO())
  prefix = google_format.export_google_checkpoint(model, run_files["vocab_file"],
                                                str(output_dir / "export"))
  reader = tf.train.load_checkpoint(prefix)
  exported = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
  moments = {"m": {}, "v": {}}
  for name, weight in weight_map.google_weight_map(model).items():
    for slot_name, values in moments.items():
      try:
        slot = optimizer.get_slot(weight.variable, slot_name)
      except KeyError:  # no slot: the variable got no gradient (the pooler)
        continue
      values[name] = _slot_in_google_layout(weight, slot)
  return {"exported": exported, "result": result, "loaded": loaded, **moments,
          "history_file": train_log.read_history(config.output_dir),
          "learning_rate": train_log.current_learning_rate(optimizer)}


@pytest.fixture(scope="module")
def one_step(run_files) -> dict:
  """No warmup: the first update runs at init_lr."""
  return train_one_step(run_files, run_files["folder"] / "no_warmup", num_warmup_steps=0)


@pytest.fixture(scope="module")
def one_warmup_step(run_files) -> dict:
  """Warmup: the first update runs at rate 0 (it only fills the Adam moments)."""
  return train_one_step(run_files, run_files["folder"] / "warmup", num_warmup_steps=2)


def weight_allowance(params: dict, clipped_grads: dict, learning_rate: float) -> dict:
  """Per-entry tolerance of the weights after the step (see WEIGHT_TOLERANCE).

  WEIGHT_TOLERANCE * (1 + |w|) + lr * a'(g) * GRADIENT_TOLERANCE, with a'(g) the
  derivative of the first Adam step 0.1 g / (0.0316 |g| + eps) at the clipped g.
  """
  allowance = {}
  for name, value in params.items():
    allowance[name] = WEIGHT_TOLERANCE * (1.0 + np.abs(value))
    if name in clipped_grads:
      slope = (1.0 - BETA_1) * EPSILON / (
          math.sqrt(1.0 - BETA_2) * np.abs(clipped_grads[name]) + EPSILON)**2
      allowance[name] = allowance[name] + learning_rate * slope * GRADIENT_TOLERANCE
  return allowance


def worst_ratio(actual: dict, expected: dict, allowance: dict) -> tuple[float, str]:
  """Largest |actual - expected| / allowance over all entries, and its tensor."""
  ratios = {n: float(np.max(np.abs(actual[n] - expected[n]) / allowance[n])) for n in expected}
  name = max(ratios, key=ratios.get)
  return ratios[name], name


def gradient_in_moments(moments: dict) -> tuple[dict, dict]:
  """(m / (1 - b1), sqrt(v / (1 - b2))): the clipped g and |g| after a first update."""
  return ({n: m / (1.0 - BETA_1) for n, m in moments["m"].items()},
          {n: np.sqrt(v / (1.0 - BETA_2)) for n, v in moments["v"].items()})


def _max_difference(actual: dict, expected: dict) -> tuple[float, str]:
  """Largest |actual - expected| over the tensors of `expected`, and where."""
  differences = {n: float(np.max(np.abs(actual[n] - expected[n]))) for n in expected}
  name = max(differences, key=differences.get)
  return differences[name], name


# --------------------------------------------------------------------- tests


def test_transcription_agrees_with_the_numpy_bert(run_files, reference):
  batch = run_files["batch"]
  start, end = testlib.numpy_span_logits(run_files["tensors"], CONFIG, batch["input_ids"],
                                         batch["input_mask"], batch["segment_ids"])
  np.testing.assert_allclose(reference["start_logits"], start, rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(reference["end_logits"], end, rtol=1e-9, atol=1e-9)
  numpy_loss = numpy_mean_span_loss(start, end, batch["start_positions"], batch["end_positions"])
  assert reference["loss"] == pytest.approx(numpy_loss, rel=1e-12)
  # Only the pooler gets no gradient; the clip is active (the norm is well above 1).
  assert sorted(set(run_files["tensors"]) - set(reference["grads"])) == [
      "bert/pooler/dense/bias", "bert/pooler/dense/kernel"]
  assert math.sqrt(sum(np.sum(g * g) for g in reference["grads"].values())) > 2 * CLIP_NORM


def test_one_step_equals_the_original_update(run_files, reference, one_step):
  assert sorted(one_step["loaded"]) == sorted(run_files["tensors"])  # head included
  learning_rate = original_learning_rate(0, num_warmup_steps=0)
  assert learning_rate == INIT_LR
  assert one_step["learning_rate"] == pytest.approx(learning_rate)
  expected = original_first_update(reference["params"], reference["grads"], learning_rate)
  exported = one_step["exported"]
  assert sorted(exported) == sorted(run_files["tensors"])
  allowance = weight_allowance(reference["params"], expected["grads"], learning_rate)
  ratio, name = worst_ratio(exported, expected["params"], allowance)
  assert ratio <= 1.0, f"{name}: {ratio:.3g} times the allowed difference"
  # The step really moved the weights; the pooler, without a gradient, did not move.
  moved, _ = _max_difference(exported, reference["params"])
  assert moved > 0.2
  for name in ("bert/pooler/dense/kernel", "bert/pooler/dense/bias"):
    np.testing.assert_array_equal(exported[name], run_files["tensors"][name])


def test_adam_moments_hold_the_clipped_gradient(reference, one_step):
  clipped = original_first_update(reference["params"], reference["grads"], INIT_LR)["grads"]
  gradient, gradient_size = gradient_in_moments(one_step)
  assert sorted(gradient) == sorted(gradient_size) == sorted(clipped)
  for name, grad in clipped.items():
    np.testing.assert_allclose(gradient[name], grad, rtol=0, atol=GRADIENT_TOLERANCE,
                               err_msg=name)
    np.testing.assert_allclose(gradient_size[name], np.abs(grad), rtol=0,
                               atol=GRADIENT_TOLERANCE, err_msg=name)


def test_logged_loss_is_the_original_loss(reference, one_step):
  history = one_step["result"].history
  assert [p["step"] for p in history] == [1]
  assert history[0]["loss"] == pytest.approx(reference["loss"], rel=LOSS_RTOL)
  assert one_step["history_file"] == history
  assert history[0]["learning_rate"] == pytest.approx(INIT_LR)


def test_wrong_references_are_far_outside_the_tolerance(reference, one_step):
  # The comparisons above can fail: each reference that breaks one rule of the
  # original misses the project's weights by far more than the allowance.
  params, grads, exported = reference["params"], reference["grads"], one_step["exported"]
  right = original_first_update(params, grads, INIT_LR)
  allowance = weight_allowance(params, right["grads"], INIT_LR)
  wrong_variants = {
      "bias-corrected Adam": original_first_update(params, grads, INIT_LR, bias_correction=True),
      "weight decay on LayerNorm too": original_first_update(
          params, grads, INIT_LR, exclude_from_weight_decay=("bias",)),
      "weight decay on biases too": original_first_update(
          params, grads, INIT_LR, exclude_from_weight_decay=("LayerNorm", "layer_norm")),
      "no weight decay": original_first_update(
          params, grads, INIT_LR, exclude_from_weight_decay=("",)),
      "no clipping": original_first_update(params, grads, INIT_LR, clip=False),
      "a warmup rate (0) at step 0": original_first_update(
          params, grads, original_learning_rate(0, num_warmup_steps=1)),
  }
  for variant, expected in wrong_variants.items():
    ratio, name = worst_ratio(exported, expected["params"], allowance)
    assert ratio > 10.0, (variant, ratio, name)
  # Without the clip the moments would hold the raw gradient (7.6 times larger).
  gradient, _ = gradient_in_moments(one_step)
  miss, name = _max_difference(gradient, grads)
  assert miss > 1000 * GRADIENT_TOLERANCE, (miss, name)


def test_warmup_first_step_changes_no_weight(run_files, reference, one_warmup_step):
  # Rate 0 at step 0: w - 0 * (adam + 0.01 w) == w exactly, for every tensor.
  assert original_learning_rate(0, num_warmup_steps=2) == 0.0
  assert one_warmup_step["learning_rate"] == 0.0
  exported = one_warmup_step["exported"]
  assert sorted(exported) == sorted(run_files["tensors"])
  for name, value in run_files["tensors"].items():
    np.testing.assert_array_equal(exported[name], value, err_msg=name)
  # The moments still took the clipped gradient, and the loss is the same.
  clipped = original_first_update(reference["params"], reference["grads"], 0.0)["grads"]
  gradient, _ = gradient_in_moments(one_warmup_step)
  for name, grad in clipped.items():
    np.testing.assert_allclose(gradient[name], grad, rtol=0, atol=GRADIENT_TOLERANCE,
                               err_msg=name)
  assert one_warmup_step["result"].history[0]["loss"] == pytest.approx(reference["loss"],
                                                                       rel=LOSS_RTOL)
