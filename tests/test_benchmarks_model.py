"""Smoke test of benchmarks/model.py and its runners (benchmarks/_runners.py) on a tiny size: they run and
their numbers are sane (no timing)."""
import importlib.util
import math
import pathlib

import bert_squad  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf

from benchmarks import _runners as runners
from bert_squad.training import distribution

_SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "model.py"
SEQ = 64


@pytest.fixture(scope="module")
def bench():
  spec = importlib.util.spec_from_file_location("benchmarks_model", _SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_small_bert_config():
  config = runners.small_bert_config("L4/H256")
  assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
          config.intermediate_size, config.vocab_size) == (4, 256, 4, 1024, 30522)
  with pytest.raises(ValueError, match="L<layers>/H<hidden>"):
    runners.small_bert_config("L4/H100")


def test_forward_flops_match_the_models_matmul_weights():
  config = runners.small_bert_config("L2/H128")
  model, _ = runners.build_ours(config, SEQ, tf.distribute.get_strategy())
  # Every kernel outside the embeddings and the (unused) pooler is one
  # multiply-add per token; attention adds Q K^T and P V per layer.
  kernels = [v for v in model.trainable_variables
             if "kernel" in v.name and "embedding" not in v.name and "pooler" not in v.name]
  matmul_weights = sum(int(np.prod(v.shape)) for v in kernels)
  attention = 2 * config.num_hidden_layers * SEQ * SEQ * config.hidden_size
  assert runners.forward_flops_per_example(config, SEQ) == 2 * (SEQ * matmul_weights + attention)


def test_random_batch_is_squad_like():
  inputs, targets = runners.random_batch(4, SEQ, 30522, seed=3)
  mask = inputs["input_mask"].numpy()
  lengths = mask.sum(axis=1)
  assert inputs["input_ids"].shape == (4, SEQ) and inputs["input_ids"].dtype == tf.int32
  assert np.all(lengths >= SEQ // 2)
  assert np.all((inputs["input_ids"].numpy() == 0) == (mask == 0))
  assert np.all(inputs["segment_ids"].numpy() <= mask)
  start, end = targets["start_positions"].numpy(), targets["end_positions"].numpy()
  assert np.all(start <= end) and np.all(end < lengths)


def test_runners_train_and_predict():
  config = runners.small_bert_config("L2/H128")
  strategy = distribution.make_strategy("one_device", num_gpus=0)
  batch = runners.random_batch(2, SEQ, config.vocab_size)
  model, optimizer = runners.build_ours(config, SEQ, strategy)
  ref_model, ref_optimizer = runners.build_reference(config)
  before = model.get_layer("squad_logits").kernel.numpy()
  runners.ours_train_runner(model, optimizer, strategy, batch)(2)
  runners.reference_train_runner(ref_model, ref_optimizer, batch)(2)
  assert int(optimizer.iterations) == 2 and int(ref_optimizer.iterations) == 2
  assert not np.allclose(before, model.get_layer("squad_logits").kernel.numpy())
  runners.ours_predict_runner(model, strategy, batch, jit_compile=True)(1)
  runners.reference_predict_runner(ref_model, batch)(1)


def test_benchmark_size_reports_positive_rates(bench):
  peak = runners.measure_peak_flops(size=256, repeats=1, matmuls_per_repeat=1)
  assert peak > 0
  result = bench.benchmark_size("L2/H128", SEQ, train_batch_size=2, predict_batch_size=2,
                                repeats=2, flops_per_repeat=0.0, steps=1, peak_matmul_size=256)
  for measurement, variants in ((result.train, {"ours", "ref"}),
                                (result.predict, {"ours", "ours_xla", "ref"})):
    assert set(measurement.examples_per_second) == variants
    assert set(measurement.cpu_seconds_per_example) == variants
    assert len(measurement.matmul_flops_per_second) == 2
    for value in [*measurement.examples_per_second.values(),
                  *measurement.cpu_seconds_per_example.values(),
                  *measurement.matmul_flops_per_second, measurement.matmul_flops_per_cpu_second]:
      assert math.isfinite(value) and value > 0
  assert result.train_flops_per_example == 3 * result.predict_flops_per_example
  peak = bench.best_peak_flops([result], peak)
  assert peak == max(peak, *result.train.matmul_flops_per_second,
                     *result.predict.matmul_flops_per_second)
  assert bench.format_throughput_table([result]).splitlines()[2].startswith(
      "| L2/H128 | 4.4M | 2/2 |")
  row = bench.format_utilisation_table([result], peak).splitlines()[2].split(" | ")
  train_mfu = float(row[2].rstrip("%")) / 100
  expected = (result.train.examples_per_second["ours"] * result.train_flops_per_example / peak)
  assert train_mfu == pytest.approx(expected, abs=0.006)


def test_run_sizing(bench):
  assert bench.fitting_batch_size(16, flops_per_example=1e9, max_step_flops=5e9) == 4
  assert bench.fitting_batch_size(16, 1e12, 5e9) == 1
  assert bench.fitting_batch_size(8, 1e12, 5e9, min_batch_size=4) == 4
  assert bench.fitting_batch_size(8, 1e9, 5e10, min_batch_size=4) == 8
  assert bench.steps_for(1e9, flops_per_repeat=6e9) == 6
  assert bench.steps_for(1e12, flops_per_repeat=6e9) == 1


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_mixed_precision_runners_train_both_models(dtype):
  """--dtype: both models under the Keras policy; float16 with loss scaling on both sides."""
  config = runners.small_bert_config("L2/H128")
  strategy = distribution.make_strategy("one_device", num_gpus=0)
  batch = runners.random_batch(2, SEQ, config.vocab_size)
  from bert_squad.training import loop_config  # pylint: disable=import-outside-toplevel
  loop_config.set_precision(dtype)
  try:
    model, optimizer = runners.build_ours(config, SEQ, strategy)
    ref_model, ref_optimizer = runners.build_reference(config)
  finally:
    loop_config.set_precision("float32")
  assert model.dtype_policy.compute_dtype == dtype
  assert ref_model.dtype_policy.compute_dtype == dtype
  runners.ours_train_runner(model, optimizer, strategy, batch, dtype=dtype)(3)
  runners.reference_train_runner(ref_model, ref_optimizer, batch, dtype)(3)
  # A float16 step whose scaled gradients overflow is skipped (and the scale
  # halved), so not every step counts; the learning rate starts at 0 (warm-up),
  # so the Adam moments, not the weights, show that gradients were applied.
  for opt, trained in ((optimizer, model), (ref_optimizer, ref_model)):
    assert int(opt.iterations) >= 1
    moments = [opt.get_slot(v, "m").numpy() for v in trained.trainable_variables
               if "pooler" not in v.name]
    assert all(np.all(np.isfinite(m)) for m in moments)
    assert sum(np.count_nonzero(m) for m in moments) > 0
  runners.ours_predict_runner(model, strategy, batch, jit_compile=False)(1)
  runners.reference_predict_runner(ref_model, batch)(1)


def test_peak_matmul_in_the_compute_dtype():
  assert runners.measure_peak_flops(size=128, repeats=1, matmuls_per_repeat=1,
                                    dtype="bfloat16") > 0
