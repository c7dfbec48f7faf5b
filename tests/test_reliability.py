"""run_squad.py under faults: killed, stopped, diverging, and run twice.

Each run fine-tunes a random 2-layer BERT (Google format, the real uncased vocabulary) on the
embedded demo data: 485 questions, batch 16, 30 steps, a checkpoint every 4 steps, then predicts
the demo dev set. The runs that the tests compare are started once per module, the independent
ones side by side.
"""
import functools
import io
import json
import pathlib
import random
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from bert_squad.modeling import google_format
from bert_squad.training import distribution
from bert_squad.training import input_pipeline
from bert_squad.training import loop
from bert_squad.training import loop_config
from bert_squad.training import optimization
from bert_squad.training import train_log
from tests import run_testlib
from tests import toys_process_testlib
from tests import training_toys as toys
from tests.run_testlib import DEMO_DATA
from tests.run_testlib import REPO_ROOT

NUM_STEPS = 485 // 16
STEP_LINE = re.compile(rf"^train: (\d+)/{NUM_STEPS} steps ")
# Each kill lands at a step drawn here; the seed is in every assertion message.
SEED = random.SystemRandom().randrange(1 << 30)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, minilm_dir) -> pathlib.Path:
  folder = tmp_path_factory.mktemp("tiny") / "model"
  return pathlib.Path(run_testlib.export_tiny_checkpoint(str(minilm_dir / "vocab.txt"), str(folder)))


def _command(checkpoint: pathlib.Path, output_dir: pathlib.Path, *extra: str) -> list[str]:
  return [
      sys.executable, str(REPO_ROOT / "run_squad.py"), f"--init_checkpoint={checkpoint}",
      "--do_train", f"--train_file={DEMO_DATA / 'squad1.1_demo_train.json'}",
      "--do_predict", f"--predict_file={DEMO_DATA / 'squad1.1_demo_dev.json'}", f"--output_dir={output_dir}",
      "--max_seq_length=128", "--doc_stride=64", "--max_query_length=32", "--train_batch_size=16",
      "--predict_batch_size=32", "--learning_rate=1e-3", "--num_train_epochs=1", "--save_checkpoints_steps=4",
      "--iterations_per_loop=1", "--log_steps=1", "--keep_checkpoint_max=3", "--deterministic", "--seed=7",
      *extra]


def _start(command: list[str]) -> subprocess.Popen:
  return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          bufsize=1)


def _finish(process: subprocess.Popen) -> tuple[int, str]:
  _, stderr = process.communicate(timeout=600)
  return process.returncode, stderr


def _run_until_step(command: list[str], step: int, signum: int) -> tuple[int, str]:
  """Runs `command`, sends `signum` once it logs training step >= `step`; (exit code, stderr)."""
  process = _start(command)
  lines = []
  for line in process.stderr:
    lines.append(line)
    match = STEP_LINE.match(line)
    if match and int(match.group(1)) >= step and process.poll() is None:
      process.send_signal(signum)
      break
  else:
    process.wait()
    pytest.fail(f"seed {SEED}: the run ended before step {step}:\n{''.join(lines)[-3000:]}")
  code, rest = _finish(process)
  return code, "".join(lines) + rest


def _export_tensors(output_dir: pathlib.Path) -> dict[str, np.ndarray]:
  prefix = str(output_dir / "export" / google_format.CHECKPOINT_NAME)
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_checkpoint):
  """Two uninterrupted runs, and one stopped by SIGTERM, killed by SIGKILL, then finished.

  The interrupted run's three parts go one after the other, beside the two full runs. The
  signals come at random steps early enough that training cannot finish before they land.
  """
  root = tmp_path_factory.mktemp("runs")
  first, second = (_start(_command(tiny_checkpoint, root / name)) for name in ("first", "second"))
  try:
    rng = random.Random(SEED)
    interrupted = root / "interrupted"
    command = _command(tiny_checkpoint, interrupted)
    term_at = rng.randint(5, 10)
    term = _run_until_step(command, term_at, signal.SIGTERM)
    saved_at_term = toys_process_testlib.latest_step(interrupted)
    # After a periodic save (every 4 steps) that follows the SIGTERM one.
    kill_at = rng.randint((saved_at_term // 4 + 1) * 4 + 1, NUM_STEPS - 6)
    kill = _run_until_step(command, kill_at, signal.SIGKILL)
    saved_at_kill = toys_process_testlib.latest_step(interrupted)
    finish = _finish(_start(command))
    return {
        "first": (root / "first", _finish(first)), "second": (root / "second", _finish(second)),
        "interrupted": interrupted, "term": (term_at, term, saved_at_term),
        "kill": (kill_at, kill, saved_at_kill), "finish": finish,
    }
  finally:
    for process in (first, second):
      if process.poll() is None:
        process.kill()
        process.communicate()


def test_two_deterministic_runs_give_bit_identical_predictions_and_weights(runs):
  (first, (code_1, stderr_1)), (second, (code_2, stderr_2)) = runs["first"], runs["second"]
  assert code_1 == 0, stderr_1[-3000:]
  assert code_2 == 0, stderr_2[-3000:]
  for name in ("predictions.json", "nbest_predictions.json"):
    assert (first / name).read_bytes() == (second / name).read_bytes(), name
  with np.load(first / "predict_logits.npz") as a, np.load(second / "predict_logits.npz") as b:
    for key in a.files:
      np.testing.assert_array_equal(a[key], b[key])
  tensors_1, tensors_2 = _export_tensors(first), _export_tensors(second)
  assert tensors_1.keys() == tensors_2.keys()
  for name, value in tensors_1.items():
    np.testing.assert_array_equal(value, tensors_2[name], err_msg=name)
  losses_1, losses_2 = ([point["loss"] for point in train_log.read_history(str(run))] for run in (first, second))
  assert losses_1 == losses_2 and len(losses_1) == NUM_STEPS


def test_sigterm_saves_a_checkpoint_and_says_where(runs):
  term_at, (code, stderr), saved = runs["term"]
  interrupted = runs["interrupted"]
  assert code == 128 + signal.SIGTERM, f"seed {SEED}:\n{stderr[-3000:]}"
  assert stderr.strip().splitlines()[-1] == (
      f"SIGTERM received: saved step {saved} to {interrupted}/ckpt-{saved}; run the same command again to resume")
  assert saved >= term_at, f"seed {SEED}"  # the step the loop was in when the signal came, saved at once


def test_sigkill_then_rerun_resumes_and_ends_like_an_uninterrupted_run(runs):
  interrupted = runs["interrupted"]
  _, _, saved_at_term = runs["term"]
  kill_at, (code, stderr), saved_at_kill = runs["kill"]
  assert code == -signal.SIGKILL, f"seed {SEED}:\n{stderr[-3000:]}"
  assert f"resuming from {interrupted}/ckpt-{saved_at_term} (step {saved_at_term})" in stderr
  # The step line comes before that step's save, so the save of the killed step may be missing.
  assert (kill_at - 1) // 4 * 4 <= saved_at_kill < NUM_STEPS and saved_at_kill % 4 == 0, f"seed {SEED}"
  assert saved_at_kill > saved_at_term, f"seed {SEED}"

  code, stderr = runs["finish"]
  assert code == 0, f"seed {SEED}:\n{stderr[-3000:]}"
  assert f"resuming from {interrupted}/ckpt-{saved_at_kill} (step {saved_at_kill})" in stderr
  history = [point["step"] for point in train_log.read_history(str(interrupted))]
  assert history == list(range(1, NUM_STEPS + 1)), f"seed {SEED}"
  assert toys_process_testlib.latest_step(interrupted) == NUM_STEPS
  uninterrupted, _ = runs["first"]
  resumed, reference = _export_tensors(interrupted), _export_tensors(uninterrupted)
  assert resumed.keys() == reference.keys()
  difference = max(float(np.abs(resumed[name] - reference[name]).max()) for name in reference)
  assert difference < 1e-5, f"seed {SEED}: max weight difference {difference}"
  # Bit-identical weights in practice on CPU, so the same answers too.
  assert json.loads((interrupted / "predictions.json").read_text()) == json.loads(
      (uninterrupted / "predictions.json").read_text())


def test_nan_loss_stops_naming_the_step_keeps_the_last_good_checkpoint_exports_nothing(tiny_checkpoint, tmp_path):
  # Warmup takes 3 steps: update 1 uses learning rate 0, update 2 a third of 1e30.
  result = subprocess.run(_command(tiny_checkpoint, tmp_path, "--learning_rate=1e30", "--save_checkpoints_steps=1"),
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 2, result.stderr[-3000:]
  error = result.stderr.strip().splitlines()[-1]
  match = re.fullmatch(r"error: (?:training loss became (?:nan|inf|-inf) at step (\d+)|the model weights became NaN "
                       r"or Inf by step (\d+)); stopped without saving, the last good checkpoint is (\S+) \(lower the "
                       r"learning rate, or use float32\)", error)
  assert match, result.stderr[-3000:]
  step = int(match.group(1) or match.group(2))
  kept = match.group(3)
  assert kept == tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / f"ckpt-{step - 1}")
  reader = tf.train.load_checkpoint(kept)
  assert all(np.all(np.isfinite(reader.get_tensor(name))) for name, dtype in
             reader.get_variable_to_dtype_map().items() if dtype.is_floating)
  assert not list(tmp_path.glob(f"ckpt-{step}*"))
  assert not (tmp_path / "export").exists() and not list(tmp_path.glob("export*"))
  assert not (tmp_path / "predictions.json").exists()


# ------------------------------------------------------------------------------------------------
# float16 with run_squad's optimizer (in-process, on the toy task of test_training).


@pytest.fixture
def float16_policy():
  loop_config.set_precision("float16")
  yield
  loop_config.set_precision("float32")


def _toy_run(records, output_dir, steps, optimizer_fn):
  """Trains the toy span model in float16; returns (TrainResult, progress log)."""
  strategy = distribution.make_strategy("one_device", num_gpus=0)
  with strategy.scope():
    model = toys.tiny_span_model()
    optimizer = optimizer_fn()
  dataset_fn = functools.partial(input_pipeline.make_dataset, records, toys.SEQ_LENGTH, 8, True, seed=1)
  config = loop_config.TrainConfig(str(output_dir), num_train_steps=steps, train_batch_size=8, steps_per_loop=1,
                                   save_checkpoints_steps=2, log_steps=1, dtype="float16", handle_signals=False)
  log = io.StringIO()
  result = loop.train(model, optimizer, toys.span_loss, dataset_fn, strategy, config, log_stream=log)
  return result, log.getvalue()


def test_float16_skips_overflowing_updates_says_so_and_resumes_with_adam_state(tmp_path, float16_policy):
  records = toys.write_records(str(tmp_path / "train.tf_record"), toys.toy_records(64, seed=0))

  def huge_loss_scale():  # every update overflows in float16 until the scale has come down
    return tf_keras.mixed_precision.LossScaleOptimizer(optimization.create_optimizer(1e-3, 6, 0),
                                                       initial_scale=2.0 ** 40)

  result, log = _toy_run(records, tmp_path / "out", 4, huge_loss_scale)
  assert [point["loss_scale"] for point in result.history] == [2.0 ** 39, 2.0 ** 38, 2.0 ** 37, 2.0 ** 36]
  assert ("step 1: float16 gradients overflowed; dynamic loss scaling skipped those updates and lowered the "
          "loss scale from 1.09951e+12 to 5.49756e+11") in log
  assert np.isfinite([point["loss"] for point in result.history]).all()
  saved = dict(tf.train.list_variables(result.checkpoint_path))
  assert "optimizer/loss_scale/current_loss_scale/.ATTRIBUTES/VARIABLE_VALUE" in saved
  assert any("/.OPTIMIZER_SLOT/optimizer/m/" in name for name in saved)  # AdamWeightDecay's slots
  reader = tf.train.load_checkpoint(result.checkpoint_path)
  slots = [reader.get_tensor(name) for name in saved if "/.OPTIMIZER_SLOT/optimizer/" in name]
  assert slots and not any(np.any(slot) for slot in slots)  # no update was applied

  # The same command again with more steps: run_squad's wrapping (default scale 2**15) resumes
  # the saved scale and Adam state.
  resumed, log = _toy_run(records, tmp_path / "out", 6, lambda: optimization.create_optimizer(1e-3, 6, 0))
  assert resumed.initial_step == 4 and resumed.final_step == 6
  assert "resuming from" in log and resumed.history[4]["loss_scale"] <= 2.0 ** 36
