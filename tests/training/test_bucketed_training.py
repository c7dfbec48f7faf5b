"""Length-bucketed training: the batches, the masked loss, and the loop's guarantees with them.

The toy task (`training_toys`: lengths 24-64 of 64, buckets of 16 -> widths
32, 48, 64) runs in-process on one device; the runs that need their own
process (2 logical CPUs, two workers, being killed) go through
`training_toys.py --length_bucketing`.
"""
import functools
import io
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from bert_squad.modeling import span_model
from bert_squad.training import distribution
from bert_squad.training import input_pipeline
from bert_squad.training import loop
from bert_squad.training import loop_config
from bert_squad.training import train_log
from bert_squad.training import update_step
from tests import toys_process_testlib as runs
from tests import training_toys as toys

GRANULARITY = toys.BUCKET_GRANULARITY


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> str:
  return toys.write_records(str(tmp_path_factory.mktemp("bucketed") / "train.tf_record"),
                            toys.toy_records(256, seed=0))


@pytest.fixture(scope="module")
def strategy():
  return distribution.make_strategy("one_device", num_gpus=0)


def _bucketed(train_file, micro_batch, accumulation=1, seed=5, input_context=None):
  return input_pipeline.make_dataset(train_file, toys.SEQ_LENGTH, micro_batch, True, input_context,
                                     seed=seed, shuffle_buffer_size=64, length_bucketing=True,
                                     accumulation_steps=accumulation, bucket_granularity=GRANULARITY)


def _sorted(train_file, micro_batch, accumulation=1, seed=5, input_context=None):
  return input_pipeline.make_dataset(train_file, toys.SEQ_LENGTH, micro_batch, True, input_context,
                                     seed=seed, shuffle_buffer_size=64, length_bucketing=True,
                                     keep_padded_updates=True, accumulation_steps=accumulation,
                                     bucket_granularity=GRANULARITY)


def _micro_batches(dataset, n):
  return [(inputs["input_mask"].numpy(), targets["unique_ids"].numpy().tolist(),
           inputs["input_ids"].numpy()) for inputs, targets in dataset.take(n)]


# ---------------------------------------------------------------- batches


def test_updates_hold_similar_lengths_trimmed_to_their_bucket(train_file):
  batches = _micro_batches(_bucketed(train_file, 2, accumulation=4), 4 * 30)
  widths = set()
  for update in range(30):
    micro = batches[4 * update:4 * update + 4]
    width = micro[0][0].shape[1]
    widths.add(width)
    assert all(mask.shape == (2, width) for mask, _, _ in micro)  # one width per update
    lengths = np.concatenate([mask.sum(1) for mask, _, _ in micro])
    assert lengths.max() <= width and lengths.max() > width - GRANULARITY  # its bucket: no wider
    assert (lengths > width - GRANULARITY).all()  # every example of that bucket
  assert widths == {32, 48, 64}


def test_micro_batches_keep_the_inputs_of_the_padded_records(train_file):
  records = {toys.FIRST_UNIQUE_ID + i: r for i, r in enumerate(toys.toy_records(256, seed=0))}
  for mask, unique_ids, ids in _micro_batches(_bucketed(train_file, 4), 20):
    for row, unique_id in enumerate(unique_ids):
      full = np.array(records[unique_id]["input_ids"])
      assert (ids[row] == full[:ids.shape[1]]).all()
      assert not full[ids.shape[1]:].any()  # nothing real was trimmed


def test_seeded_order_repeats_and_every_record_comes(train_file):
  first = _micro_batches(_bucketed(train_file, 8), 64)
  again = _micro_batches(_bucketed(train_file, 8), 64)
  other_seed = _micro_batches(_bucketed(train_file, 8, seed=6), 64)
  assert [b[1] for b in first] == [b[1] for b in again]
  assert [b[1] for b in first] != [b[1] for b in other_seed]
  seen = [u for b in first for u in b[1]]  # 512 examples: two epochs' worth
  assert len(set(seen)) > 0.95 * 256


def test_buckets_are_shuffled_across_each_other(train_file):
  widths = [b[0].shape[1] for b in _micro_batches(_bucketed(train_file, 4), 200)]
  changes = sum(a != b for a, b in zip(widths, widths[1:]))
  assert changes > len(widths) // 4  # not long runs of one bucket


def test_an_update_splits_alike_over_micro_batches(train_file):
  whole = _micro_batches(_bucketed(train_file, 8), 10)
  split = _micro_batches(_bucketed(train_file, 2, accumulation=4), 40)
  for update, (mask, unique_ids, _) in enumerate(whole):
    parts = split[4 * update:4 * update + 4]
    assert [u for p in parts for u in p[1]] == unique_ids
    assert all(p[0].shape[1] == mask.shape[1] for p in parts)


def test_sorted_micro_batches_hold_the_padded_updates_trimmed_each_to_its_longest(train_file):
  padded = _micro_batches(input_pipeline.make_dataset(train_file, toys.SEQ_LENGTH, 8, True, seed=5,
                                                      shuffle_buffer_size=64), 20)
  split = _micro_batches(_sorted(train_file, 2, accumulation=4), 80)
  widths_per_update = set()
  for update, (padded_mask, unique_ids, _) in enumerate(padded):
    parts = split[4 * update:4 * update + 4]
    assert sorted(u for p in parts for u in p[1]) == sorted(unique_ids)  # the padded run's update
    lengths = [mask.sum(1) for mask, _, _ in parts]
    assert (np.diff(np.concatenate(lengths)) >= 0).all()  # shortest first, across its micro-batches
    for (mask, _, _), length in zip(parts, lengths):
      assert length.max() <= mask.shape[1] < length.max() + GRANULARITY  # trimmed to its longest
    widths_per_update.add(len({mask.shape[1] for mask, _, _ in parts}))
    assert padded_mask.sum() == sum(length.sum() for length in lengths)
  assert max(widths_per_update) > 1  # the micro-batches of an update differ in width


def test_sorted_micro_batches_keep_the_inputs_of_the_padded_records(train_file):
  records = {toys.FIRST_UNIQUE_ID + i: r for i, r in enumerate(toys.toy_records(256, seed=0))}
  for mask, unique_ids, ids in _micro_batches(_sorted(train_file, 2, accumulation=4), 40):
    for row, unique_id in enumerate(unique_ids):
      full = np.array(records[unique_id]["input_ids"])
      assert (ids[row] == full[:ids.shape[1]]).all()
      assert not full[ids.shape[1]:].any()


def _context(num_pipelines: int, pipeline: int, replicas: int) -> tf.distribute.InputContext:
  return tf.distribute.InputContext(num_input_pipelines=num_pipelines, input_pipeline_id=pipeline,
                                    num_replicas_in_sync=replicas)


def test_seeded_pipelines_together_yield_the_one_pipeline_updates(train_file):
  # 2 workers x 1 replica, 2 micro-batches: worker p feeds replica p in each micro-step.
  one = _micro_batches(_bucketed(train_file, 4, accumulation=2, input_context=_context(1, 0, 2)), 16)
  shares = [_micro_batches(_bucketed(train_file, 4, accumulation=2, input_context=_context(2, p, 2)), 8)
            for p in range(2)]
  for step in range(8):  # micro-step m of update u is one[2 * step + replica]
    assert shares[0][step][1] == one[2 * step][1]
    assert shares[1][step][1] == one[2 * step + 1][1]


def test_seeded_pipelines_together_yield_the_one_pipeline_sorted_micro_batches(train_file):
  one = _micro_batches(_sorted(train_file, 4, accumulation=2, input_context=_context(1, 0, 2)), 16)
  shares = [_micro_batches(_sorted(train_file, 4, accumulation=2, input_context=_context(2, p, 2)), 8)
            for p in range(2)]
  for step in range(8):
    assert shares[0][step][1] == one[2 * step][1]
    assert shares[1][step][1] == one[2 * step + 1][1]
    assert shares[1][step][0].shape == one[2 * step + 1][0].shape


def test_unseeded_pipelines_each_bucket_their_own_share(train_file):
  shares = [_micro_batches(_bucketed(train_file, 4, seed=None, input_context=_context(2, p, 2)), 40)
            for p in range(2)]
  seen = [set(u for b in share for u in b[1]) for share in shares]
  assert not seen[0] & seen[1]  # record shards
  assert all(mask.shape[0] == 2 for share in shares for mask, _, _ in share)


# ------------------------------------------------------------ the loss


def _gradients(model, inputs, targets, mask: bool):
  # Traced for any width, as the training loop traces it (the model's inputs are static [None, 64]).
  forward = tf.function(lambda x: model(x, training=False),
                        input_signature=[{name: tf.TensorSpec([None, None], tf.int32) for name in inputs}])
  with tf.GradientTape() as tape:
    outputs = forward(inputs)
    start, end = outputs["start_logits"], outputs["end_logits"]
    if mask:
      start = span_model.mask_padding_logits(start, inputs["input_mask"])
      end = span_model.mask_padding_logits(end, inputs["input_mask"])
    loss = tf.reduce_mean(toys.span_loss(targets["start_positions"], targets["end_positions"], start, end))
  return loss, tape.gradient(loss, model.trainable_variables)


def test_masked_loss_and_gradients_do_not_depend_on_the_width(train_file, strategy):
  with strategy.scope():
    model = toys.tiny_span_model()
  trimmed, targets = next(iter(_bucketed(train_file, 16).filter(
      lambda inputs, _: tf.shape(inputs["input_ids"])[1] < toys.SEQ_LENGTH)))
  width = trimmed["input_ids"].shape[1]
  # The padded run's batch: the same records at full width (zeros past each one's length).
  inputs = {name: tf.pad(value, [[0, 0], [0, toys.SEQ_LENGTH - width]]) for name, value in trimmed.items()}
  for mask in (True, False):
    full_loss, full_gradients = _gradients(model, inputs, targets, mask)
    trimmed_loss, trimmed_gradients = _gradients(model, trimmed, targets, mask)
    difference = max(float(tf.reduce_max(tf.abs(tf.convert_to_tensor(a) - tf.convert_to_tensor(b))))
                     for a, b in zip(full_gradients, trimmed_gradients) if a is not None)
    if mask:  # the softmax runs over the real positions only, at any width
      assert abs(float(full_loss) - float(trimmed_loss)) < 1e-6
      assert difference < 1e-6
    else:  # the original's softmax also counts the padding positions that trimming drops
      assert float(full_loss) - float(trimmed_loss) > 1e-3
      assert difference > 1e-4


def test_masked_logits_never_win_the_accuracy(strategy):
  logits = tf.constant([[0.0, 1.0, 5.0, 9.0]])
  masked = span_model.mask_padding_logits(logits, tf.constant([[1, 1, 1, 0]]))
  assert int(tf.argmax(masked, axis=-1)[0]) == 2
  stats = update_step.span_stats(tf.constant([0.0]), masked, masked,
                                 {"start_positions": tf.constant([2]), "end_positions": tf.constant([2])}, 1)
  assert stats.numpy().tolist() == [0.0, 1.0, 1.0, 4.0]  # the last: positions computed


# ------------------------------------------------------------- the loop


def _padded(train_file, micro_batch, accumulation=1, input_context=None):
  del accumulation  # the padded updates are k consecutive batches
  return input_pipeline.make_dataset(train_file, toys.SEQ_LENGTH, micro_batch, True, input_context,
                                     seed=5, shuffle_buffer_size=64)


def _train(strategy, train_file, initial_weights, output_dir, *, batch=8, accumulation=1, steps=4,
           optimizer=None, log_stream=None, batches=_bucketed, **config):
  with strategy.scope():
    model = toys.tiny_span_model()
    model.set_weights(initial_weights)
    optimizer = optimizer() if optimizer else tf_keras.optimizers.legacy.SGD(0.05)
  dataset_fn = functools.partial(batches, train_file, batch // accumulation, accumulation)
  config = loop_config.TrainConfig(
      output_dir=str(output_dir), num_train_steps=steps, train_batch_size=batch,
      gradient_accumulation_steps=accumulation, steps_per_loop=1, log_steps=1, handle_signals=False,
      mask_padding_logits=True, max_seq_length=toys.SEQ_LENGTH, **config)
  result = loop.train(model, optimizer, toys.span_loss, lambda ctx: dataset_fn(input_context=ctx),
                      strategy, config, log_stream=log_stream or io.StringIO())
  return toys.model_weights(model), result


@pytest.fixture(scope="module")
def initial_weights(strategy):
  with strategy.scope():
    return toys.model_weights(toys.tiny_span_model())


@pytest.mark.parametrize("optimizer", [None, toys.clipped_adam], ids=["sgd", "clipped_adam"])
def test_accumulating_4_micro_batches_of_2_equals_one_batch_of_8(tmp_path, strategy, train_file,
                                                                 initial_weights, optimizer):
  whole, whole_result = _train(strategy, train_file, initial_weights, tmp_path / "whole", optimizer=optimizer)
  split, split_result = _train(strategy, train_file, initial_weights, tmp_path / "split", accumulation=4,
                               optimizer=optimizer)
  assert toys.max_difference(whole, split) < 1e-5
  assert toys.max_difference(whole, initial_weights) > 1e-3
  for key in ("loss", "computed_tokens_fraction"):
    np.testing.assert_allclose([p[key] for p in split_result.history],
                               [p[key] for p in whole_result.history], rtol=1e-5)


@pytest.mark.parametrize("optimizer", [None, toys.clipped_adam], ids=["sgd", "clipped_adam"])
def test_sorted_micro_batches_make_the_padded_masked_updates(tmp_path, strategy, train_file, initial_weights,
                                                              optimizer):
  padded, padded_result = _train(strategy, train_file, initial_weights, tmp_path / "padded",
                                 optimizer=optimizer, batches=_padded)
  for accumulation in (1, 4):
    trimmed, result = _train(strategy, train_file, initial_weights, tmp_path / f"sorted{accumulation}",
                             accumulation=accumulation, optimizer=optimizer, batches=_sorted)
    assert toys.max_difference(trimmed, padded) < 1e-5
    np.testing.assert_allclose([p["loss"] for p in result.history],
                               [p["loss"] for p in padded_result.history], rtol=1e-5)
    fractions = [p["computed_tokens_fraction"] for p in result.history]
    assert max(fractions) <= 1.0 and (accumulation == 1 or min(fractions) < 1.0)
  assert toys.max_difference(padded, initial_weights) > 1e-3


def test_xla_compiles_each_width_of_the_sorted_micro_batches(tmp_path, strategy, train_file, initial_weights):
  plain, plain_result = _train(strategy, train_file, initial_weights, tmp_path / "plain", accumulation=4,
                               batches=_sorted)
  xla, xla_result = _train(strategy, train_file, initial_weights, tmp_path / "xla", accumulation=4,
                           batches=_sorted, use_xla=True)
  assert toys.max_difference(xla, plain) < 1e-5
  assert [p["computed_tokens_fraction"] for p in xla_result.history] == [
      p["computed_tokens_fraction"] for p in plain_result.history]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, strategy, train_file, initial_weights):
  """4 bucketed SGD updates of 8 in float32 without XLA: (weights, history)."""
  weights, result = _train(strategy, train_file, initial_weights, tmp_path_factory.mktemp("reference"))
  return weights, result.history


def test_xla_compiles_each_width_and_gives_the_same_updates(tmp_path, strategy, train_file, initial_weights,
                                                            reference_run):
  weights, result = _train(strategy, train_file, initial_weights, tmp_path, use_xla=True)
  assert toys.max_difference(weights, reference_run[0]) < 1e-5
  assert [p["computed_tokens_fraction"] for p in result.history] == [
      p["computed_tokens_fraction"] for p in reference_run[1]]
  assert len({p["computed_tokens_fraction"] for p in result.history}) > 1  # more than one shape met


@pytest.fixture
def float16_policy():
  loop_config.set_precision("float16")
  yield
  loop_config.set_precision("float32")


def test_float16_trains_the_bucketed_updates_with_loss_scaling(tmp_path, strategy, train_file, initial_weights,
                                                               reference_run, float16_policy):
  weights, result = _train(strategy, train_file, initial_weights, tmp_path, dtype="float16")
  assert all("loss_scale" in point for point in result.history)
  np.testing.assert_allclose([p["loss"] for p in result.history], [p["loss"] for p in reference_run[1]],
                             rtol=1e-2)
  assert toys.max_difference(weights, reference_run[0]) < 1e-2


def test_history_and_log_report_the_tokens_computed(tmp_path, strategy, train_file, initial_weights):
  stream = io.StringIO()
  _, result = _train(strategy, train_file, initial_weights, tmp_path, steps=6, log_stream=stream)
  fractions = [p["computed_tokens_fraction"] for p in result.history]
  assert all(f in (32 / 64, 48 / 64, 1.0) for f in fractions) and min(fractions) < 1.0
  saved = json.loads((tmp_path / loop_config.HISTORY_FILE).read_text())
  assert [p["computed_tokens_fraction"] for p in saved] == fractions
  computed = sum(fractions) * 8 * 64
  assert f"train: computed {computed:,.0f} of {6 * 8 * 64:,} tokens" in stream.getvalue()


# ----------------------------------------------- separate processes


TRIMMINGS = {"bucketed": ["--length_bucketing"], "sorted": ["--length_bucketing", "--keep_padded_updates"]}


@pytest.mark.parametrize("trimming", TRIMMINGS)
def test_one_device_mirrored_and_multi_worker_make_the_same_updates(tmp_path, train_file, trimming):
  common = ["--steps", 4, "--batch", 8, "--accumulation", 2, "--optimizer", "sgd", "--learning_rate", 0.5,
            "--clipnorm", 0.5, "--shuffle_buffer", 64, *TRIMMINGS[trimming]]
  data = {"train": train_file}
  local = runs.start(runs.toys_command(data, tmp_path, *common, "--strategy", "one_device,mirrored",
                                       "--logical_cpus", 2))
  workers = [f"127.0.0.1:{runs.free_port()}" for _ in range(2)]
  multi_worker = [runs.start(
      runs.toys_command(data, tmp_path / "multi_worker", *common, "--strategy", "auto"),
      env_extra={"TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                          "task": {"type": "worker", "index": index}})})
      for index in range(2)]
  assert runs.finish(local)["mirrored"]["replicas"] == 2
  assert [runs.finish(p)["replicas"] for p in multi_worker] == [2, 2]
  reference = runs.final_weights(tmp_path / "one_device")
  history = train_log.read_history(str(tmp_path / "one_device"))
  assert min(p["computed_tokens_fraction"] for p in history) < 1.0
  for name in ("mirrored", "multi_worker"):
    assert toys.max_difference(runs.final_weights(tmp_path / name), reference) < 1e-5, name
    other = train_log.read_history(str(tmp_path / name))
    np.testing.assert_allclose([p["loss"] for p in other], [p["loss"] for p in history], rtol=1e-5)
    same_widths = [p["computed_tokens_fraction"] for p in other] == [p["computed_tokens_fraction"] for p in history]
    # One bucket per update: the same widths however it is split. Sorted: 2 replicas cut it finer.
    assert same_widths if trimming == "bucketed" else all(
        a["computed_tokens_fraction"] <= b["computed_tokens_fraction"] for a, b in zip(other, history))


@pytest.mark.parametrize("trimming", TRIMMINGS)
def test_deterministic_runs_are_bit_identical_and_a_killed_run_resumes_exactly(tmp_path, train_file, trimming):
  common = ["--steps", 12, "--batch", 8, "--accumulation", 2, "--optimizer", "adam", "--learning_rate", 1e-3,
            "--dropout", 0.1, "--shuffle_buffer", 64, "--save_steps", 3, "--steps_per_loop", 2,
            *TRIMMINGS[trimming]]
  data = {"train": train_file}
  first = runs.start(runs.toys_command(data, tmp_path / "first", *common))
  second = runs.start(runs.toys_command(data, tmp_path / "second", *common))
  interrupted = tmp_path / "interrupted"
  run = runs.start(runs.toys_command(data, interrupted, *common, "--slow_seconds", 0.3))
  runs.wait_for(lambda: runs.latest_step(interrupted) > 0, run)
  run.send_signal(9)
  run.wait()
  killed_at = runs.latest_step(interrupted)
  assert 3 <= killed_at < 12
  resumed = runs.finish(runs.start(runs.toys_command(data, interrupted, *common)))
  assert resumed["initial_step"] == killed_at and resumed["final_step"] == 12
  assert runs.finish(first)["final_step"] == runs.finish(second)["final_step"] == 12
  reference = runs.final_weights(tmp_path / "first")
  for name in ("second", "interrupted"):
    assert all((a == b).all() for a, b in zip(runs.final_weights(tmp_path / name), reference)), name
  widths = [p["computed_tokens_fraction"] for p in train_log.read_history(str(interrupted))]
  assert widths == [p["computed_tokens_fraction"] for p in train_log.read_history(str(tmp_path / "first"))]
  assert len(set(widths)) > 1


def test_on_a_tpu_training_keeps_static_padded_batches():
  from bert_squad import pipeline  # pylint: disable=import-outside-toplevel
  from bert_squad import run_config  # pylint: disable=import-outside-toplevel
  tpu = object.__new__(tf.distribute.TPUStrategy)  # only its type is looked at
  one_device = distribution.make_strategy("one_device", num_gpus=0)
  for config in (run_config.RunConfig(length_bucketing=True), run_config.RunConfig(trim_micro_batches=True)):
    assert not pipeline._trims_training(config, tpu)  # pylint: disable=protected-access
    assert pipeline._trims_training(config, one_device)  # pylint: disable=protected-access
  assert not pipeline._trims_training(run_config.RunConfig(), one_device)  # pylint: disable=protected-access
