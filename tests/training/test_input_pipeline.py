"""make_dataset: parsing, dtypes, shuffling, batching and sharding of feature TFRecords."""
import numpy as np
import pytest
import tensorflow as tf

from bert_squad.training import input_pipeline
from tests import training_toys as toys

SEQ = toys.SEQ_LENGTH


@pytest.fixture(scope="module")
def records():
  return toys.toy_records(20, seed=3)


@pytest.fixture(scope="module")
def train_file(tmp_path_factory, records) -> str:
  return toys.write_records(str(tmp_path_factory.mktemp("train") / "train.tf_record"), records)


@pytest.fixture(scope="module")
def eval_file(tmp_path_factory, records) -> str:
  return toys.write_records(str(tmp_path_factory.mktemp("eval") / "eval.tf_record"), records,
                            is_training=False)


def _unique_ids(dataset, batches: int) -> list[int]:
  return [int(i) for _, targets in dataset.take(batches) for i in targets["unique_ids"]]


def _context(num_pipelines: int, pipeline: int, replicas: int) -> tf.distribute.InputContext:
  return tf.distribute.InputContext(num_input_pipelines=num_pipelines,
                                    input_pipeline_id=pipeline, num_replicas_in_sync=replicas)


def test_training_batches_hold_the_records_as_int32(train_file, records):
  dataset = input_pipeline.make_dataset(train_file, SEQ, 4, True, shuffle_buffer_size=1)
  inputs, targets = next(iter(dataset))
  assert set(inputs) == {"input_ids", "input_mask", "segment_ids"}
  assert set(targets) == {"unique_ids", "start_positions", "end_positions", "is_impossible"}
  for key, value in {**inputs, **targets}.items():
    assert value.dtype == tf.int32, key
    assert value.shape[0] == 4, key
    expected = [r[key] if len(r[key]) > 1 else r[key][0] for r in records[:4]]
    np.testing.assert_array_equal(value.numpy(), expected, err_msg=key)
  assert inputs["input_ids"].shape == (4, SEQ)


def test_training_repeats_with_full_static_batches(train_file):
  dataset = input_pipeline.make_dataset(train_file, SEQ, 8, True)  # 20 records: not a multiple
  assert dataset.element_spec[0]["input_ids"].shape == (8, SEQ)
  ids = _unique_ids(dataset, 10)  # 80 examples from 20 records
  assert len(ids) == 80
  first_epoch = ids[:20]
  assert sorted(first_epoch) == sorted(r["unique_ids"][0] for r in toys.toy_records(20, seed=3))


def test_seeded_shuffle_gives_the_same_order_every_time(train_file):
  def order(seed):
    return _unique_ids(input_pipeline.make_dataset(train_file, SEQ, 4, True, seed=seed), 10)
  assert order(5) == order(5)
  assert order(5) != order(6)
  assert order(5)[:20] != sorted(order(5)[:20])


def test_prediction_reads_once_in_order_and_keeps_the_partial_batch(eval_file, records):
  dataset = input_pipeline.make_dataset(eval_file, SEQ, 8, False)
  batches = list(dataset)
  assert [len(targets["unique_ids"]) for _, targets in batches] == [8, 8, 4]
  assert set(batches[0][1]) == {"unique_ids"}
  assert _unique_ids(dataset, 3) == [r["unique_ids"][0] for r in records]


def test_per_replica_batch_and_record_shards_cover_every_record_once(eval_file, records):
  shards = [input_pipeline.make_dataset(eval_file, SEQ, 8, False, _context(2, i, 4))
            for i in range(2)]
  assert [len(t["unique_ids"]) for t in (next(iter(s))[1] for s in shards)] == [2, 2]
  ids = [_unique_ids(shard, 100) for shard in shards]
  assert not set(ids[0]) & set(ids[1])
  assert sorted(ids[0] + ids[1]) == [r["unique_ids"][0] for r in records]


def test_seeded_shards_together_yield_the_single_pipeline_batches(train_file):
  """With a seed, 2 pipelines x batch 2 hold the same examples as 1 pipeline x batch 4."""
  single = input_pipeline.make_dataset(train_file, SEQ, 4, True, seed=9)
  shards = [input_pipeline.make_dataset(train_file, SEQ, 4, True, _context(2, i, 2), seed=9)
            for i in range(2)]
  single_ids = _unique_ids(single, 10)
  shard_ids = [_unique_ids(shard, 10) for shard in shards]
  for step in range(10):
    together = shard_ids[0][2 * step:2 * step + 2] + shard_ids[1][2 * step:2 * step + 2]
    assert sorted(together) == sorted(single_ids[4 * step:4 * step + 4])


def test_shards_by_file_when_every_pipeline_gets_one(tmp_path, records):
  for i in range(2):
    toys.write_records(str(tmp_path / f"part-{i}.tf_record"), records[10 * i:10 * i + 10],
                       is_training=False)
  pattern = str(tmp_path / "part-*.tf_record")
  ids = [_unique_ids(input_pipeline.make_dataset(pattern, SEQ, 2, False, _context(2, i, 2)), 100)
         for i in range(2)]
  assert ids == [[r["unique_ids"][0] for r in records[:10]],
                 [r["unique_ids"][0] for r in records[10:]]]


def test_no_matching_file_is_reported(tmp_path):
  with pytest.raises(FileNotFoundError, match="no TFRecord file matches"):
    input_pipeline.make_dataset(str(tmp_path / "missing-*.tf_record"), SEQ, 2, True)
