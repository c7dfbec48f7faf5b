"""Tests for bert_squad/modeling/recompute.py: gradient checkpointing gives the gradients of the plain model."""
import numpy as np
import pytest
import tensorflow as tf

from bert_squad.modeling import model_config
from bert_squad.modeling import recompute
from bert_squad.modeling import span_model
from bert_squad.training import loop

SEQ = 16
TINY = model_config.BertConfig(
    vocab_size=50, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
    intermediate_size=48, hidden_act="gelu", hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1, max_position_embeddings=SEQ, type_vocab_size=2,
    initializer_range=0.02)


def _batch(batch_size: int = 4, seed: int = 0) -> tuple[dict, dict]:
  rng = np.random.RandomState(seed)
  lengths = rng.randint(SEQ // 2, SEQ + 1, size=batch_size)
  mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int32)
  inputs = {"input_ids": tf.constant(rng.randint(1, TINY.vocab_size, size=(batch_size, SEQ)) * mask),
            "input_mask": tf.constant(mask),
            "segment_ids": tf.constant((np.arange(SEQ)[None, :] >= 4) * mask)}
  targets = {"start_positions": tf.constant(rng.randint(0, SEQ // 2, size=batch_size)),
             "end_positions": tf.constant(rng.randint(0, SEQ // 2, size=batch_size))}
  return inputs, targets


def _twin_models() -> tuple[span_model.BertSpanModel, span_model.BertSpanModel]:
  """A plain model (generator dropout) and a checkpointing one with its weights and generator states."""
  with recompute.replayable_dropout():
    plain = span_model.build_span_model(TINY, SEQ)
  checkpointing = span_model.build_span_model(TINY, SEQ, gradient_checkpointing=True)
  checkpointing.set_weights(plain.get_weights())
  plain_generators, checkpointing_generators = (loop._dropout_generators(plain),
                                                loop._dropout_generators(checkpointing))
  assert len(plain_generators) == len(checkpointing_generators) > TINY.num_hidden_layers
  for source, target in zip(plain_generators, checkpointing_generators):
    target.reset(source.state)
  return plain, checkpointing


def _gradient_function(model: span_model.BertSpanModel, mode: str):
  """(inputs, targets) -> (loss, gradients of the trainable variables; zeros where None)."""

  def gradients(inputs, targets):
    with tf.GradientTape() as tape:
      outputs = model(inputs, training=True)
      loss = span_model.span_loss_mean(targets["start_positions"], targets["end_positions"],
                                       outputs["start_logits"], outputs["end_logits"])
    grads = tape.gradient(loss, model.trainable_variables)
    return loss, [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                  for g, v in zip(grads, model.trainable_variables)]

  if mode == "eager":
    return gradients
  return tf.function(gradients, jit_compile=mode == "xla")


def _max_differences(mode: str) -> tuple[float, float, float]:
  """(max |loss difference|, max |gradient difference|, max |gradient|) over 2 successive batches."""
  plain, checkpointing = _twin_models()
  plain_fn, checkpointing_fn = _gradient_function(plain, mode), _gradient_function(checkpointing, mode)
  loss_difference, difference, largest = 0.0, 0.0, 0.0
  for seed in (0, 1):  # the second batch draws from the states the first one left
    inputs, targets = _batch(seed=seed)
    plain_loss, plain_grads = plain_fn(inputs, targets)
    checkpointing_loss, checkpointing_grads = checkpointing_fn(inputs, targets)
    loss_difference = max(loss_difference, abs(float(plain_loss) - float(checkpointing_loss)))
    for a, b in zip(plain_grads, checkpointing_grads):
      difference = max(difference, float(tf.reduce_max(tf.abs(a - b))))
      largest = max(largest, float(tf.reduce_max(tf.abs(a))))
  return loss_difference, difference, largest


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_gradients_with_checkpointing_equal_those_without(mode):
  loss_difference, difference, largest = _max_differences(mode)
  assert largest > 1e-2  # the gradients are not trivially small
  assert loss_difference < 1e-6 and difference < 1e-6


def _op_counts(model: span_model.BertSpanModel) -> dict[str, int]:
  """How many ops of each type the traced gradient step holds."""
  inputs, targets = _batch()
  graph = _gradient_function(model, "graph").get_concrete_function(inputs, targets).graph
  counts: dict[str, int] = {}
  for op in graph.get_operations():
    counts[op.type] = counts.get(op.type, 0) + 1
  return counts


def test_the_backward_pass_runs_each_layer_again():
  plain, checkpointing = (_op_counts(model) for model in _twin_models())
  layers = TINY.num_hidden_layers
  assert plain["Softmax"] == layers and checkpointing["Softmax"] == 2 * layers
  # Dropout draws: the embeddings' once, each layer's three (attention probabilities,
  # attention output, FFN output) once more in the recomputation.
  assert plain["RngReadAndSkip"] == 1 + 3 * layers
  assert checkpointing["RngReadAndSkip"] == 1 + 6 * layers


def test_without_replayed_masks_the_gradients_differ(monkeypatch):
  # The broken variant: the recomputation draws fresh dropout masks.
  monkeypatch.setattr(recompute, "_reset_states", lambda generators, states: None)
  _, difference, _ = _max_differences("graph")
  assert difference > 1e-3


def test_dropout_masks_differ_between_steps_and_are_on():
  # Replaying must not freeze the masks: the generators advance once per forward.
  _, model = _twin_models()
  inputs, _ = _batch()
  first, second = (model(inputs, training=True)["start_logits"] for _ in range(2))
  inference = model(inputs, training=False)["start_logits"]
  assert float(tf.reduce_max(tf.abs(first - second))) > 1e-4
  assert float(tf.reduce_max(tf.abs(first - inference))) > 1e-4


def test_same_variables_and_checkpoint_layout(tmp_path):
  plain = span_model.build_span_model(TINY, SEQ)
  checkpointing = span_model.build_span_model(TINY, SEQ, gradient_checkpointing=True)
  assert [v.name for v in plain.variables] == [v.name for v in checkpointing.variables]
  saved = [{name for name, _ in tf.train.list_variables(
      tf.train.Checkpoint(model=model).write(str(tmp_path / name / "ckpt")))}
           for name, model in (("plain", plain), ("checkpointing", checkpointing))]
  assert saved[0] == saved[1]


def test_legacy_dropout_cannot_be_recomputed():
  model = span_model.build_span_model(TINY, SEQ)  # tf_keras's default: legacy stateful dropout ops
  with pytest.raises(ValueError, match="replayable_dropout"):
    recompute.recompute_layers(model.encoder)
