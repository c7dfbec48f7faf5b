"""The training loop and prediction, on a tiny BertEncoder span model and a toy task.

Runs that need their own process (logical CPU devices, multi-worker, being
killed) go through `training_toys.py` as a command; the rest run in-process
on `OneDeviceStrategy`.
"""
import functools
import io
import json
import os
import re
import signal

import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.nlp.modeling import networks

from bert_squad.common.errors import InputError
from bert_squad.training import distribution
from bert_squad.training import input_pipeline
from bert_squad.training import loop
from bert_squad.training import loop_config
from bert_squad.training import prediction
from bert_squad.training import train_log
from bert_squad.training import update_step
from tests import toys_process_testlib as runs
from tests import training_toys as toys


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
  folder = tmp_path_factory.mktemp("toy_data")
  return {
      "train": toys.write_records(str(folder / "train.tf_record"), toys.toy_records(256, seed=0)),
      "eval": toys.write_records(str(folder / "eval.tf_record"), toys.toy_records(10, seed=1),
                                 is_training=False),
  }


@pytest.fixture(scope="module")
def strategy():
  return distribution.make_strategy("one_device", num_gpus=0)


@pytest.fixture(scope="module")
def initial_weights(strategy):
  with strategy.scope():
    return toys.model_weights(toys.tiny_span_model())


@pytest.fixture
def float16_policy():
  loop_config.set_precision("float16")
  yield
  loop_config.set_precision("float32")


@pytest.fixture
def bfloat16_policy():
  loop_config.set_precision("bfloat16")
  yield
  loop_config.set_precision("float32")


def _train_in_process(strategy, data, initial_weights, output_dir, *, steps=3, batch=8,
                      accumulation=1, optimizer=None, log_stream=None, **config):
  """Trains the tiny model from `initial_weights`; returns (model, optimizer, result, log)."""
  with strategy.scope():
    model = toys.tiny_span_model()
    model.set_weights(initial_weights)
    optimizer = optimizer() if optimizer else tf_keras.optimizers.legacy.SGD(0.05)
  dataset_fn = functools.partial(input_pipeline.make_dataset, data["train"], toys.SEQ_LENGTH,
                                 batch // accumulation, True, shuffle_buffer_size=1)
  config = loop_config.TrainConfig(
      output_dir=str(output_dir), num_train_steps=steps, train_batch_size=batch,
      gradient_accumulation_steps=accumulation,
      **{"steps_per_loop": 1, "log_steps": 1, "handle_signals": False, **config})
  log_stream = log_stream or io.StringIO()
  result = loop.train(model, optimizer, toys.span_loss, dataset_fn, strategy, config,
                      log_stream=log_stream)
  return model, optimizer, result, log_stream.getvalue()


@pytest.fixture(scope="module")
def sgd_reference(tmp_path_factory, strategy, data, initial_weights):
  """3 updates of SGD(0.05) on batches of 8 in float32, without XLA: (weights, losses)."""
  model, _, result, _ = _train_in_process(strategy, data, initial_weights,
                                          tmp_path_factory.mktemp("sgd_reference"))
  return toys.model_weights(model), [p["loss"] for p in result.history]


# ------------------------------------------------------ accumulation


def test_accumulating_4_batches_of_2_equals_one_batch_of_8_sgd(
    tmp_path, strategy, data, initial_weights, sgd_reference):
  reference_weights, reference_losses = sgd_reference
  model, optimizer, result, _ = _train_in_process(strategy, data, initial_weights, tmp_path,
                                                  accumulation=4)
  assert toys.max_difference(toys.model_weights(model), reference_weights) < 1e-5
  assert toys.max_difference(reference_weights, initial_weights) > 1e-3
  np.testing.assert_allclose([p["loss"] for p in result.history], reference_losses, rtol=1e-5)
  assert int(optimizer.iterations) == 3


def test_accumulating_4_batches_of_2_equals_one_batch_of_8_clipped_adam(
    tmp_path, strategy, data, initial_weights):
  whole, whole_optimizer, whole_result, _ = _train_in_process(
      strategy, data, initial_weights, tmp_path / "whole", optimizer=toys.clipped_adam)
  parts, parts_optimizer, parts_result, _ = _train_in_process(
      strategy, data, initial_weights, tmp_path / "parts", accumulation=4,
      optimizer=toys.clipped_adam)
  assert toys.max_difference(toys.model_weights(whole), toys.model_weights(parts)) < 1e-5
  assert int(whole_optimizer.iterations) == int(parts_optimizer.iterations) == 3
  np.testing.assert_allclose([p["loss"] for p in parts_result.history],
                             [p["loss"] for p in whole_result.history], rtol=1e-5)


def test_gradients_of_unused_variables_are_dropped(tmp_path, strategy, data, initial_weights):
  # The encoder's pooler gets no gradient from span logits; it must stay as it was
  # (an applied zero gradient would still move it under Adam's epsilon or weight decay).
  model, _, _, _ = _train_in_process(strategy, data, initial_weights, tmp_path, steps=2,
                                     accumulation=2, optimizer=toys.clipped_adam)
  pooler = [(v, w) for v, w in zip(model.trainable_variables, initial_weights)
            if "pooler" in v.name]
  assert pooler
  for variable, initial in pooler:
    np.testing.assert_array_equal(variable.numpy(), initial)


# ------------------------------------------------------- precision, XLA


def test_xla_step_gives_the_same_update(tmp_path, strategy, data, initial_weights, sgd_reference):
  model, _, result, _ = _train_in_process(strategy, data, initial_weights, tmp_path, use_xla=True)
  assert toys.max_difference(toys.model_weights(model), sgd_reference[0]) < 1e-5
  np.testing.assert_allclose([p["loss"] for p in result.history], sgd_reference[1], rtol=1e-5)


@pytest.mark.parametrize("strategy_name", ["one_device", "mirrored"])
def test_fused_optimizer_update_under_xla_trains_as_the_exact_one(tmp_path, strategy, data,
                                                                  initial_weights, strategy_name):
  """What run_squad.py --use_xla runs: XLA gradients + AdamWeightDecay(fused_update=True)."""
  from bert_squad.training import optimization  # pylint: disable=import-outside-toplevel
  exact_model, _, exact, _ = _train_in_process(
      strategy, data, initial_weights, tmp_path / "exact",
      optimizer=lambda: optimization.create_optimizer(1e-2, 3, 1))
  fused_strategy = distribution.make_strategy(strategy_name, num_gpus=0)
  fused_model, fused_optimizer, fused, _ = _train_in_process(
      fused_strategy, data, initial_weights, tmp_path / "fused", use_xla=True,
      optimizer=lambda: optimization.create_optimizer(1e-2, 3, 1, fused_update=True))
  assert fused_optimizer.fused_update and fused_optimizer.iterations.numpy() == 3
  assert toys.max_difference(toys.model_weights(fused_model), initial_weights) > 1e-4  # it trained
  # Adam divides by sqrt(v), which magnifies rounding where a gradient is near 0:
  # 1e-4 is 1 % of one update's size (lr 1e-2).
  assert toys.max_difference(toys.model_weights(fused_model), toys.model_weights(exact_model)) < 1e-4
  np.testing.assert_allclose([p["loss"] for p in fused.history],
                             [p["loss"] for p in exact.history], rtol=1e-5)


def test_float16_uses_dynamic_loss_scaling(tmp_path, strategy, data, initial_weights,
                                           sgd_reference, float16_policy):
  model, optimizer, result, _ = _train_in_process(strategy, data, initial_weights, tmp_path,
                                                  dtype="float16")
  assert model.layers[-1].compute_dtype == "float32"  # the head stays float32
  assert all("loss_scale" in point for point in result.history)
  saved = dict(tf.train.list_variables(result.checkpoint_path))
  assert any(name.startswith("optimizer/loss_scale/") for name in saved)
  np.testing.assert_allclose([p["loss"] for p in result.history], sgd_reference[1], rtol=1e-2)
  assert toys.max_difference(toys.model_weights(model), sgd_reference[0]) < 1e-2
  assert int(optimizer.iterations) == 3


def test_bfloat16_trains_without_loss_scaling(tmp_path, strategy, data, initial_weights,
                                              bfloat16_policy):
  model, _, result, _ = _train_in_process(strategy, data, initial_weights, tmp_path, steps=3,
                                          dtype="bfloat16")
  encoder = next(layer for layer in model.layers if isinstance(layer, networks.BertEncoder))
  assert encoder.compute_dtype == "bfloat16"
  assert not any("loss_scale" in point for point in result.history)
  losses = [p["loss"] for p in result.history]
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


# ------------------------------------------------------------ NaN / Inf


class _InfiniteAt(tf_keras.optimizers.schedules.LearningRateSchedule):
  """0.01, except an infinite learning rate for the update at `iteration` (0-based)."""

  def __init__(self, iteration: int):
    self.iteration = iteration

  def __call__(self, step):
    return tf.where(tf.equal(step, tf.cast(self.iteration, step.dtype)), np.inf, 0.01)

  def get_config(self):
    return {"iteration": self.iteration}


def _sgd_broken_at_update_6():
  return tf_keras.optimizers.legacy.SGD(_InfiniteAt(5))


def test_non_finite_loss_stops_naming_the_step(tmp_path, strategy, data, initial_weights):
  # Update 6 makes the weights infinite; update 7 is the first with a NaN loss.
  with pytest.raises(loop_config.NonFiniteLossError, match=r"loss became nan at step 7;") as error:
    _train_in_process(strategy, data, initial_weights, tmp_path, steps=12,
                      optimizer=_sgd_broken_at_update_6, steps_per_loop=5,
                      save_checkpoints_steps=4, log_steps=4)
  assert "ckpt-4" in str(error.value)
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-4")
  reader = tf.train.load_checkpoint(str(tmp_path))
  for name, _ in tf.train.list_variables(str(tmp_path)):
    if name.startswith("model/"):
      assert np.all(np.isfinite(reader.get_tensor(name))), name
  history = train_log.read_history(str(tmp_path))
  assert [p["step"] for p in history] == [4]  # calls end at 4 and 8; 8 was never logged


def test_broken_weights_are_never_saved(tmp_path, strategy, data, initial_weights):
  # The save at step 6 would hold the weights broken by update 6 (whose loss was fine).
  with pytest.raises(loop_config.NonFiniteLossError, match=r"weights became NaN or Inf by step 6;"):
    _train_in_process(strategy, data, initial_weights, tmp_path, steps=12,
                      optimizer=_sgd_broken_at_update_6, save_checkpoints_steps=3)
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-3")


# ------------------------------------------------------------------ logs


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_logs_tensorboard_history_and_curves(tmp_path, strategy, data, initial_weights):
  handlers_before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  model, _, result, log = _train_in_process(
      strategy, data, initial_weights, tmp_path, steps=40, batch=16,
      optimizer=lambda: tf_keras.optimizers.legacy.Adam(3e-3), steps_per_loop=5, log_steps=10,
      save_checkpoints_steps=20, keep_checkpoint_max=1, handle_signals=True)
  assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers_before

  # Progress without a TTY: one line per log step.
  lines = log.strip().splitlines()
  assert [line.split()[1] for line in lines] == ["10/40", "20/40", "30/40", "40/40"]
  assert all(line.startswith("train: ") and "\r" not in line and re.search(
      r" steps +\d+% \[\d\d:\d\d<\d\d:\d\d, .*, loss \d\.\d{4} lr 0\.003 \d+\.\d ex/s\]$", line)
             for line in lines), lines

  history = train_log.read_history(str(tmp_path))
  assert history == result.history
  assert [p["step"] for p in history] == [10, 20, 30, 40]
  losses = [p["loss"] for p in history]
  assert losses[-1] < 0.6 * losses[0], losses
  assert history[-1]["start_accuracy"] > history[0]["start_accuracy"]
  assert all(p["examples_per_second"] > 0 and p["learning_rate"] == pytest.approx(3e-3)
             for p in history)

  events = list((tmp_path / loop_config.TENSORBOARD_DIR).glob("events.out.tfevents.*"))
  assert events
  tags = set()
  for event in tf.compat.v1.train.summary_iterator(str(events[0])):
    tags.update(value.tag for value in event.summary.value)
  assert {"loss", "learning_rate", "start_accuracy", "end_accuracy",
          "examples_per_second"} <= tags

  png = (tmp_path / loop_config.CURVES_FILE).read_bytes()
  assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
  assert matplotlib.image.imread(tmp_path / loop_config.CURVES_FILE).shape[:2] == (400, 1500)  # three panels
  assert [p.name for p in tmp_path.glob("ckpt-*.index")] == ["ckpt-40.index"]
  assert result.checkpoint_path.endswith("ckpt-40")

  # Same command again: nothing left to do, same step.
  again = _train_in_process(strategy, data, initial_weights, tmp_path, steps=40, batch=16)[2]
  assert (again.initial_step, again.final_step) == (40, 40)


def test_off_tpu_logs_and_checkpoints_follow_their_steps_whatever_steps_per_loop(
    tmp_path, strategy, data, initial_weights):
  """The original's default --iterations_per_loop=1000 is a TPU host loop: it must not silence a CPU run."""
  _, _, result, log = _train_in_process(strategy, data, initial_weights, tmp_path, steps=40,
                                        steps_per_loop=1000, log_steps=10, save_checkpoints_steps=20,
                                        keep_checkpoint_max=0)
  assert [line.split()[1] for line in log.strip().splitlines()] == ["10/40", "20/40", "30/40", "40/40"]
  assert [p["step"] for p in train_log.read_history(str(tmp_path))] == [10, 20, 30, 40]
  assert sorted(p.name for p in tmp_path.glob("ckpt-*.index")) == ["ckpt-20.index", "ckpt-40.index"]
  assert result.final_step == 40


@pytest.mark.parametrize("host_loop, calls", [
    (True, [30, 30, 30, 10]),    # TPU: host loops of steps_per_loop; logs rounded up to their ends
    (False, [10] * 10),          # elsewhere: every call ends at the next log step
])
def test_compiled_calls_end_at_log_steps_except_on_tpu(tmp_path, host_loop, calls):
  config = loop_config.TrainConfig(str(tmp_path), num_train_steps=100, train_batch_size=8, steps_per_loop=30,
                                   save_checkpoints_steps=1000, log_steps=10)
  step, lengths = 0, []
  while step < config.num_train_steps:
    lengths.append(update_step.steps_in_next_call(step, config, host_loop))
    step += lengths[-1]
  assert lengths == calls


def test_compiled_calls_end_at_checkpoints_and_at_most_after_steps_per_loop(tmp_path):
  config = loop_config.TrainConfig(str(tmp_path), num_train_steps=50, train_batch_size=8, steps_per_loop=4,
                                   save_checkpoints_steps=6, log_steps=100)
  for host_loop in (True, False):
    assert [update_step.steps_in_next_call(step, config, host_loop) for step in (0, 4, 6, 48)] == [4, 2, 4, 2]


def _signalling_at_batch(dataset_fn, batch_number: int, signum: int):
  """Wraps `dataset_fn` so that producing batch `batch_number` sends `signum` to this process."""

  def fn(input_context):
    def send(index, batch):
      inputs, targets = batch
      sent = tf.numpy_function(
          lambda i: np.int64(i == batch_number and os.kill(os.getpid(), signum) or 0),
          [index], tf.int64)
      with tf.control_dependencies([sent]):
        return {k: tf.identity(v) for k, v in inputs.items()}, targets
    return dataset_fn(input_context).enumerate(start=1).map(send)

  return fn


def test_sigterm_saves_a_checkpoint_and_stops(tmp_path, strategy, data, initial_weights):
  with strategy.scope():
    model = toys.tiny_span_model()
    optimizer = tf_keras.optimizers.legacy.SGD(0.05)
  dataset_fn = functools.partial(input_pipeline.make_dataset, data["train"], toys.SEQ_LENGTH, 8,
                                 True)
  config = loop_config.TrainConfig(str(tmp_path), num_train_steps=200, train_batch_size=8,
                                   steps_per_loop=2, save_checkpoints_steps=100, log_steps=100)
  handler_before = signal.getsignal(signal.SIGTERM)
  with pytest.raises(loop_config.TrainingInterrupted, match="SIGTERM received: saved step") as stop:
    loop.train(model, optimizer, toys.span_loss,
               _signalling_at_batch(dataset_fn, 5, signal.SIGTERM), strategy, config,
               log_stream=io.StringIO())
  assert signal.getsignal(signal.SIGTERM) == handler_before
  assert stop.value.signum == signal.SIGTERM
  assert 2 <= stop.value.step < 100 and stop.value.step % 2 == 0  # at the end of a loop
  assert stop.value.checkpoint_path == tf.train.latest_checkpoint(str(tmp_path))
  assert stop.value.checkpoint_path.endswith(f"ckpt-{stop.value.step}")
  assert (tmp_path / loop_config.CURVES_FILE).exists()


def test_progress_bar_redraws_one_line_on_a_terminal(tmp_path, strategy, data, initial_weights):
  terminal = _Terminal()
  _train_in_process(strategy, data, initial_weights, tmp_path, steps=20, batch=16, steps_per_loop=5,
                    log_steps=10, log_stream=terminal)
  text = terminal.getvalue()
  assert text.count("\n") == 1 and text.endswith("\n")  # one line, redrawn after every loop
  assert text.count("\r") >= 4 and "train: 100%|" in text and " 20/20 [" in text
  assert re.search(r"loss \d\.\d{4} lr [\d.e-]+ \d+\.\d ex/s\]", text)


# --------------------------------------------------------------- checks


def test_batch_that_does_not_split_is_an_input_error(tmp_path, strategy, data, initial_weights):
  with pytest.raises(InputError, match=r"--train_batch_size=6: .*--gradient_accumulation_steps=4"):
    _train_in_process(strategy, data, initial_weights, tmp_path, batch=6, accumulation=4)


def test_keep_checkpoint_max_zero_keeps_every_checkpoint(tmp_path, strategy, data, initial_weights):
  """0 keeps all, as `keep_checkpoint_max` of tf.estimator.RunConfig (the original's Estimator)."""
  _train_in_process(strategy, data, initial_weights, tmp_path, steps=7, save_checkpoints_steps=1,
                    keep_checkpoint_max=0)
  assert sorted(int(p.name[5:-6]) for p in tmp_path.glob("ckpt-*.index")) == list(range(1, 8))


def test_config_rejects_non_positive_values(tmp_path):
  with pytest.raises(InputError, match=r"--save_checkpoints_steps=0"):
    loop_config.TrainConfig(str(tmp_path), 10, 8, save_checkpoints_steps=0)
  with pytest.raises(InputError, match=r"--keep_checkpoint_max=-1: must be 0 \(keep all\) or positive"):
    loop_config.TrainConfig(str(tmp_path), 10, 8, keep_checkpoint_max=-1)
  with pytest.raises(InputError, match=r"--dtype=float64"):
    loop_config.TrainConfig(str(tmp_path), 10, 8, dtype="float64")


def test_models_the_loop_cannot_train_are_refused(tmp_path, strategy, data):
  dataset_fn = functools.partial(input_pipeline.make_dataset, data["train"], toys.SEQ_LENGTH, 8,
                                 True)
  outside_scope = toys.tiny_span_model()
  with pytest.raises(ValueError, match="strategy.scope"):
    loop.train(outside_scope, tf_keras.optimizers.legacy.SGD(0.1), toys.span_loss,
               dataset_fn, strategy, loop_config.TrainConfig(str(tmp_path), 1, 8))
  with strategy.scope():
    float32_model = toys.tiny_span_model()
    optimizer = tf_keras.optimizers.legacy.SGD(0.1)
  with pytest.raises(ValueError, match=r"call set_precision\('float16'\) first"):
    loop.train(float32_model, optimizer, toys.span_loss, dataset_fn, strategy,
               loop_config.TrainConfig(str(tmp_path), 1, 8, dtype="float16"))
  assert not list(tmp_path.iterdir())


# -------------------------------------------------------------- predict


def _eager_logits(model, eval_file):
  inputs, targets = next(iter(input_pipeline.make_dataset(eval_file, toys.SEQ_LENGTH, 1000, False)))
  outputs = model(inputs, training=False)
  return targets["unique_ids"].numpy(), outputs["start_logits"].numpy(), \
      outputs["end_logits"].numpy()


@pytest.mark.parametrize("jit_compile", [False, True], ids=["eager-graph", "xla"])
def test_predict_logits_keeps_order_and_the_partial_batch(strategy, data, jit_compile):
  with strategy.scope():
    model = toys.tiny_span_model()
  expected_ids, expected_start, expected_end = _eager_logits(model, data["eval"])
  dataset = input_pipeline.make_dataset(data["eval"], toys.SEQ_LENGTH, 4, False)  # 4+4+2
  log = io.StringIO()
  unique_ids, start_logits, end_logits = prediction.predict_logits(
      model, dataset, strategy, 4, jit_compile=jit_compile, num_features=10, log_stream=log)
  assert log.getvalue().startswith("predict: 3/3 batches 100% [") and log.getvalue().count("\n") == 1
  assert unique_ids.tolist() == [toys.FIRST_UNIQUE_ID + i for i in range(10)]
  assert unique_ids.tolist() == expected_ids.tolist()
  np.testing.assert_allclose(start_logits, expected_start, atol=1e-5)
  np.testing.assert_allclose(end_logits, expected_end, atol=1e-5)


def test_predict_logits_takes_unbatched_and_empty_datasets(strategy, data):
  with strategy.scope():
    model = toys.tiny_span_model()
  unbatched = input_pipeline.make_dataset(data["eval"], toys.SEQ_LENGTH, 3, False).unbatch()
  unique_ids, start_logits, _ = prediction.predict_logits(model, unbatched, strategy, 3)
  assert len(unique_ids) == 10 and start_logits.shape == (10, toys.SEQ_LENGTH)
  empty = input_pipeline.make_dataset(data["eval"], toys.SEQ_LENGTH, 3, False).take(0)
  unique_ids, start_logits, end_logits = prediction.predict_logits(model, empty, strategy, 3)
  assert unique_ids.shape == (0,) and end_logits.shape == (0, toys.SEQ_LENGTH)


# ---------------------------------------------- separate processes


def test_same_global_batch_same_update_on_one_device_mirrored_and_multi_worker(tmp_path, data):
  # Clipping by a global norm smaller than the gradient's, and a seeded shuffle:
  # the replicas must clip the aggregated gradient and see the same global batch.
  common = ["--steps", 4, "--batch", 8, "--optimizer", "sgd", "--learning_rate", 0.5,
            "--clipnorm", 0.5, "--shuffle_buffer", 64]
  # One process (two logical CPUs) runs the single-device reference, then mirrored.
  local = runs.start(runs.toys_command(data, tmp_path, *common, "--strategy", "one_device,mirrored",
                                       "--logical_cpus", 2, "--predict_data", data["eval"]))
  workers = [f"127.0.0.1:{runs.free_port()}", f"127.0.0.1:{runs.free_port()}"]
  multi_worker = []
  for index in range(2):
    tf_config = json.dumps({"cluster": {"worker": workers},
                            "task": {"type": "worker", "index": index}})
    multi_worker.append(runs.start(
        runs.toys_command(data, tmp_path / "multi_worker", *common, "--strategy", "auto"),
        env_extra={"TF_CONFIG": tf_config}))
  local_outcomes = runs.finish(local)
  worker_outcomes = [runs.finish(process) for process in multi_worker]
  assert local_outcomes["one_device"]["replicas"] == 1
  assert local_outcomes["mirrored"]["replicas"] == 2
  assert [o["replicas"] for o in worker_outcomes] == [2, 2]

  reference = runs.final_weights(tmp_path / "one_device")
  reference_losses = [p["loss"] for p in train_log.read_history(str(tmp_path / "one_device"))]
  assert len(reference_losses) == 4
  for name in ("mirrored", "multi_worker"):
    assert toys.max_difference(runs.final_weights(tmp_path / name), reference) < 1e-5, name
    losses = [p["loss"] for p in train_log.read_history(str(tmp_path / name))]
    np.testing.assert_allclose(losses, reference_losses, rtol=1e-5, err_msg=name)

  one = np.load(tmp_path / "one_device" / toys.PREDICTIONS_FILE)
  mirrored = np.load(tmp_path / "mirrored" / toys.PREDICTIONS_FILE)
  assert one["unique_ids"].tolist() == mirrored["unique_ids"].tolist()
  assert len(one["unique_ids"]) == 10  # 6 + 4, the last batch padded and trimmed
  np.testing.assert_allclose(mirrored["start_logits"], one["start_logits"], atol=1e-4)
  np.testing.assert_allclose(mirrored["end_logits"], one["end_logits"], atol=1e-4)


def test_killed_run_resumes_to_the_same_step_and_weights(tmp_path, data):
  # Dropout on and a real shuffle: exact equality needs the dropout RNG state and
  # the data position to resume, not only the weights.
  common = ["--steps", 12, "--batch", 8, "--optimizer", "adam", "--learning_rate", 1e-3,
            "--dropout", 0.1, "--shuffle_buffer", 64, "--save_steps", 3, "--steps_per_loop", 2]
  interrupted = tmp_path / "interrupted"
  uninterrupted = runs.start(runs.toys_command(data, tmp_path / "uninterrupted", *common))

  run = runs.start(runs.toys_command(data, interrupted, *common, "--slow_seconds", 0.3))
  runs.wait_for(lambda: runs.latest_step(interrupted) > 0, run)
  run.send_signal(signal.SIGKILL)
  run.wait()
  killed_at = runs.latest_step(interrupted)
  assert 3 <= killed_at < 12

  resumed = runs.finish(runs.start(runs.toys_command(data, interrupted, *common)))
  assert resumed == {"initial_step": killed_at, "final_step": 12, "replicas": 1}
  assert runs.finish(uninterrupted)["final_step"] == 12
  assert toys.max_difference(runs.final_weights(interrupted),
                             runs.final_weights(tmp_path / "uninterrupted")) < 1e-5
  # Every log step once (log_steps=1), across the kill and the resume.
  assert [p["step"] for p in train_log.read_history(str(interrupted))] == list(range(1, 13))
