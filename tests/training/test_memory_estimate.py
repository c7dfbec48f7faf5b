"""The memory estimate: a hand count of the activations, the graph's own saved tensors, batch and accumulation logic, the CLI."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from bert_squad.common.errors import InputError
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from bert_squad.training import loop_config
from bert_squad.training import memory_estimate
from tests.run_testlib import REPO_ROOT

TINY = model_config.BertConfig(
    vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
    hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
    max_position_embeddings=16, type_vocab_size=2, initializer_range=0.02)


def test_activations_equal_a_hand_count_for_a_tiny_float32_model():
  # L=1, H=8, heads=2, I=16, s=4, b=1, float32 (4 bytes), bool masks 1 byte, dropout on.
  # s*H = 32 values, s*I = 64, heads*s*s = 32, s = 4.
  layer = {
      "layer_input": 32 * 4,
      "query_key_value": 3 * 32 * 4,           # scaled query, key, value
      "attention_probs": 32 * 4,               # softmax output
      "attention_dropout": 32 * 1 + 32 * 4,    # bool mask + dropped probabilities
      "attention_context": 32 * 4,
      "hidden_dropout_masks": 2 * 32 * 1,
      "layer_norms": 2 * (32 * 4 + 32 * 4 + 4 * 4 + 4 * 4),  # input, rsqrt*gamma, mean, rsqrt; two norms
      "intermediate_input": 32 * 4,
      "activation": 4 * 64 * 4,                # tanh GELU: input, tanh, x/2, 1 + tanh
      "output_input": 64 * 4,
  }
  assert memory_estimate.layer_activation_terms(TINY, 4, "float32") == layer
  assert sum(layer.values()) == 2976
  embeddings = (32 * 4 + 32 * 4 + 4 * 4 + 4 * 4) + 32 * 1 + 4 * 2 * 4 + 4 * 4  # norm, mask, type one-hot, ids
  head = 32 * 4 + 2 * 4 * 4  # float32 input of the head, two cross-entropy gradients
  estimate = memory_estimate.estimate_memory(TINY, 4, "float32")
  assert estimate.activations_per_example == 2976 + embeddings + head == 3504
  assert estimate.backward_per_example == 2976


def test_checkpointing_keeps_each_layers_input_and_recomputes_one_layer():
  # The tiny config of the hand count above, 3 layers, with checkpointing: per layer only its input
  # (s*H = 32 values, 4 bytes), once the attention mask [s, s] (16 values); while a layer's backward
  # pass runs, its 2976 bytes of activations are computed again.
  config = dataclasses.replace(TINY, num_hidden_layers=3)
  embeddings, head = 368, 160  # as in the hand count above
  plain = memory_estimate.estimate_memory(config, 4, "float32")
  checkpointing = memory_estimate.estimate_memory(config, 4, "float32", gradient_checkpointing=True)
  assert plain.activations_per_example == embeddings + 3 * 2976 + head
  assert memory_estimate.activation_terms(config, 4, "float32", gradient_checkpointing=True) == {
      "embeddings": embeddings, "layers": 3 * 32 * 4, "head": head, "attention_mask": 16 * 4}
  assert checkpointing.activations_per_example == embeddings + 3 * 128 + head + 64 == 976
  assert checkpointing.recomputed_per_example == checkpointing.backward_per_example == 2976
  assert plain.recomputed_per_example == 0
  assert checkpointing.per_example_bytes == 976 + 2 * 2976
  assert memory_estimate.activation_terms(config, 4, "float16", gradient_checkpointing=True)["layers"] == 3 * 32 * 2


def test_dropout_off_and_16_bit_change_the_terms_that_depend_on_them():
  no_dropout = dataclasses.replace(TINY, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  terms = memory_estimate.layer_activation_terms(no_dropout, 4, "float32")
  assert terms["attention_dropout"] == terms["hidden_dropout_masks"] == 0
  half = memory_estimate.layer_activation_terms(TINY, 4, "float16")
  assert half["layer_input"] == 32 * 2 and half["layer_norms"] == 2 * (32 * 4 * 2 + 4 * 4 * 2)  # norms stay float32
  assert half["activation"] == 4 * 64 * 2
  assert memory_estimate.layer_activation_terms(TINY, 4, "bfloat16")["activation"] == 4 * 64 * 4  # GELU in float32


def _saved_activation_bytes(dtype: str, batch: int, seq: int, gradient_checkpointing: bool = False) -> int:
  """Bytes of the forward tensors that the gradient ops of a training step read (the graph's own count).

  With checkpointing the recomputed layers' ops are gradient ops, so what
  they read of the forward pass is what the layers keep.
  """
  loop_config.set_precision(dtype)
  try:
    model = span_model.build_span_model(TINY, seq, gradient_checkpointing=gradient_checkpointing)

    @tf.function
    def step(ids, positions):
      with tf.GradientTape() as tape:
        out = model({"input_ids": ids, "input_mask": ids, "segment_ids": ids}, training=True)
        loss = tf.reduce_mean(span_model.span_loss(positions, positions, out["start_logits"], out["end_logits"]))
      return tape.gradient(loss, model.trainable_variables)

    graph = step.get_concrete_function(tf.ones([batch, seq], tf.int32), tf.zeros([batch], tf.int32)).graph
  finally:
    loop_config.set_precision("float32")
  reachable, stack = set(), [t.op for t in graph.outputs]
  while stack:  # only gradient ops the outputs depend on run
    op = stack.pop()
    if op.name not in reachable:
      reachable.add(op.name)
      stack.extend(t.op for t in op.inputs)
  operations = graph.get_operations()  # in the order they were made: the forward pass, then its gradient
  first_gradient = next(i for i, op in enumerate(operations) if op.name.startswith("gradient_tape"))
  forward = {op.name for op in operations[:first_gradient]}
  saved = {}
  for op in operations[first_gradient:]:
    if op.name in reachable:
      for t in op.inputs:
        # per-example tensors start with the batch ([b, ...] or [b*s, ...]); StopGradient aliases its input
        is_forward = t.op.name in forward and t.op.type != "StopGradient"
        if is_forward and t.shape.rank and t.shape[0] in (batch, batch * seq) and t.op.type != "Placeholder":
          saved[t.name] = t.shape.num_elements() * t.dtype.size
  return sum(saved.values())


@pytest.mark.parametrize("dtype, gradient_checkpointing",
                         [("float32", False), ("float16", False), ("float32", True), ("float16", True)])
def test_activations_equal_what_the_training_graph_keeps(dtype, gradient_checkpointing):
  batch, seq = 3, 5  # no weight shape has a 3 or 15 in front
  expected = memory_estimate.estimate_memory(TINY, seq, dtype, gradient_checkpointing).activations_per_example
  # In a fresh process: a graph built after other tests of the suite (global TF and Keras state) can
  # hold a few more bytes than a user's run_squad.py process builds.
  code = (f"from tests.training.test_memory_estimate import _saved_activation_bytes; "
          f"print(_saved_activation_bytes({dtype!r}, {batch}, {seq}, {gradient_checkpointing}))")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, check=True)
  assert int(result.stdout.split()[-1]) == batch * expected


def test_parameters_equal_the_models():
  estimate = memory_estimate.estimate_memory(TINY, 4, "float32")
  model = span_model.build_span_model(TINY, 4)
  assert estimate.num_parameters == model.count_params() == sum(v.shape.num_elements()
                                                                 for v in model.trainable_variables)
  assert estimate.weights == 4 * estimate.num_parameters
  pooler = TINY.hidden_size ** 2 + TINY.hidden_size
  assert estimate.optimizer_slots == 2 * 4 * (estimate.num_parameters - pooler)


def _estimate(fixed: int, per_example: int, accumulators: int = 0) -> memory_estimate.MemoryEstimate:
  return memory_estimate.MemoryEstimate(
      num_parameters=0, weights=fixed, weight_copies=0, gradients=0, accumulators=accumulators,
      optimizer_slots=0, workspace=0, activations_per_example=per_example, backward_per_example=0)


def test_max_batch_is_the_largest_that_fits():
  estimate = _estimate(fixed=100, per_example=30)
  assert estimate.max_train_batch_size(100 + 3 * 30) == 3
  assert estimate.max_train_batch_size(100 + 3 * 30 - 1) == 2
  assert estimate.max_train_batch_size(99) == 0
  assert estimate.total_bytes(3) == 190


def test_accumulation_steps_are_the_smallest_divisor_that_fits_with_the_accumulators():
  estimate = _estimate(fixed=100, per_example=10, accumulators=20)
  assert memory_estimate.gradient_accumulation_steps(estimate, 8, 100 + 8 * 10) == 1
  # 8 examples do not fit; with accumulators 100 + 20 + 4 * 10 = 160 fits micro-batch 4 (k = 2)
  assert memory_estimate.gradient_accumulation_steps(estimate, 8, 179) == 2
  # 150 bytes fit micro-batch 3 with accumulators: k = 2 (6) and k = 3 (4) do not, k = 4 does
  assert memory_estimate.gradient_accumulation_steps(estimate, 12, 100 + 20 + 3 * 10) == 4
  assert memory_estimate.gradient_accumulation_steps(estimate, 12, 100 + 20 + 3 * 10, num_replicas=2) == 2
  assert memory_estimate.gradient_accumulation_steps(estimate, 7, 160) == 7  # 7 is prime: 1 or 7 examples
  assert memory_estimate.gradient_accumulation_steps(estimate, 7, 100 + 20 + 9) is None


def test_bad_seq_and_dtype_raise_input_errors():
  with pytest.raises(InputError, match="max_position_embeddings"):
    memory_estimate.estimate_memory(TINY, 17, "float32")
  with pytest.raises(InputError, match="--dtype=float64"):
    memory_estimate.estimate_memory(TINY, 4, "float64")


def _memory_cli(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "bert_squad.memory", *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(name="tiny_config_file")
def fixture_tiny_config_file(tmp_path):
  path = tmp_path / "bert_config.json"
  path.write_text(json.dumps(TINY.to_dict()))
  return path


def test_cli_prints_the_parts_and_ends_with_max_train_batch_size(tiny_config_file):
  result = _memory_cli(f"--bert_config_file={tiny_config_file}", "--max_seq_length=16",
                       "--dtype=float16", "--gpu_memory_gb=1", "--train_batch_size=12")
  assert result.returncode == 0, result.stderr
  lines = result.stdout.strip().splitlines()
  estimate = memory_estimate.estimate_memory(TINY, 16, "float16")
  max_batch = estimate.max_train_batch_size(memory_estimate.GIB)
  checkpointed = memory_estimate.estimate_memory(TINY, 16, "float16", gradient_checkpointing=True)
  assert lines[-1] == f"max_train_batch_size: {max_batch}"
  assert lines[-2] == ("with --gradient_checkpointing: max_train_batch_size "
                       f"{checkpointed.max_train_batch_size(memory_estimate.GIB)}")
  assert lines[-3].startswith("--gradient_accumulation_steps=1: micro-batch 12 ")
  assert [line.split(":")[0] for line in lines[:3]] == [
      "weights (float32)", "weight copies (float16)", "gradients (float32)"]
  assert len({line.index(" GB") for line in lines if line.endswith(" GB")}) == 1  # aligned


def test_cli_with_gradient_checkpointing_counts_the_recomputed_layer(tiny_config_file):
  result = _memory_cli(f"--bert_config_file={tiny_config_file}", "--max_seq_length=16", "--gpu_memory_gb=1",
                       "--gradient_checkpointing")
  assert result.returncode == 0, result.stderr
  lines = result.stdout.strip().splitlines()
  estimate = memory_estimate.estimate_memory(TINY, 16, "float32", gradient_checkpointing=True)
  assert lines[-1] == f"max_train_batch_size: {estimate.max_train_batch_size(memory_estimate.GIB)}"
  assert any(line.startswith("recomputed layer per example:") for line in lines)
  assert not any("with --gradient_checkpointing" in line for line in lines)


@pytest.mark.parametrize("args, message", [
    (["--bert_config_file=/nonexistent/bert_config.json"], "/nonexistent/bert_config.json: file not found"),
    (["--max_seq_length=17"], "max_position_embeddings"),
    (["--gpu_memory_gb=0"], "--gpu_memory_gb=0.0: must be a positive number"),
    (["--gpu_memory_gb=-4"], "--gpu_memory_gb=-4.0: must be a positive number"),
    (["--dtype=float64"], "--dtype=float64: expected one of float32, float16, bfloat16"),
])
def test_cli_bad_input_gives_one_line_and_exit_2(tiny_config_file, args, message):
  defaults = {"--bert_config_file": str(tiny_config_file), "--max_seq_length": "16", "--gpu_memory_gb": "16"}
  for arg in args:
    defaults.pop(arg.split("=")[0], None)
  result = _memory_cli(*[f"{k}={v}" for k, v in defaults.items()], *args)
  assert result.returncode == 2, result.stderr
  assert result.stderr.strip().splitlines() == [f"error: {message}"] or (
      len(result.stderr.strip().splitlines()) == 1 and message in result.stderr), result.stderr
  assert result.stdout == ""


def test_run_squad_logs_the_estimate_and_warns_when_it_exceeds_the_gpu(monkeypatch):
  from bert_squad import pipeline  # pylint: disable=import-outside-toplevel
  from bert_squad import run_config  # pylint: disable=import-outside-toplevel
  from bert_squad.training import distribution  # pylint: disable=import-outside-toplevel
  config = run_config.RunConfig(max_seq_length=16, train_batch_size=12, dtype="float32")
  estimate = memory_estimate.estimate_memory(TINY, 16, "float32")
  strategy = tf.distribute.get_strategy()
  logged = []  # absl's records reach caplog only while no earlier test has changed absl's handlers
  monkeypatch.setattr(pipeline.logging, "info", lambda fmt, *args: logged.append(fmt % args))
  monkeypatch.setattr(pipeline.logging, "warning", lambda fmt, *args: logged.append(fmt % args))
  monkeypatch.setattr(distribution, "gpu_memory_bytes", lambda: None)  # a CPU: nothing to compare
  pipeline._log_memory_estimate(config, strategy, TINY)  # pylint: disable=protected-access
  assert f"memory estimate: {estimate.total_bytes(12) / memory_estimate.GIB:.2f} GB for micro-batch 12" in "\n".join(logged)
  assert "exceeds" not in "\n".join(logged)
  # a GPU that holds micro-batch 3 with accumulators, not 4: k = 4 (3 examples), 6 (2) or 12 (1)
  gpu = estimate.fixed_bytes(accumulating=True) + 3 * estimate.per_example_bytes
  monkeypatch.setattr(distribution, "gpu_memory_bytes", lambda: gpu)
  logged.clear()
  pipeline._log_memory_estimate(config, strategy, TINY)  # pylint: disable=protected-access
  assert "--gradient_accumulation_steps=4 or 6 or 12 should fit; with --gradient_checkpointing " \
         "--gradient_accumulation_steps=" in "\n".join(logged)
  checkpointed = memory_estimate.estimate_memory(TINY, 16, "float32", gradient_checkpointing=True)
  logged.clear()
  pipeline._log_memory_estimate(dataclasses.replace(config, gradient_checkpointing=True),  # pylint: disable=protected-access
                                strategy, TINY)
  assert (f"memory estimate: {checkpointed.total_bytes(12) / memory_estimate.GIB:.2f} GB for micro-batch 12 "
          "per device with gradient checkpointing") in "\n".join(logged)
