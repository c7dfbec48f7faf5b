"""tf.data input pipeline over the feature TFRecords.

Each record holds int64 features: `unique_ids` (scalar), `input_ids`,
`input_mask`, `segment_ids` (each [max_seq_length]) and, in training files,
`start_positions`, `end_positions`, `is_impossible` (scalars).

Every dataset element is a pair `(inputs, targets)` of dicts of int32 tensors:
  inputs:  {"input_ids", "input_mask", "segment_ids"}: [batch, seq_length],
           exactly what the span model takes;
  targets: {"unique_ids"}: [batch], and in training also
           {"start_positions", "end_positions", "is_impossible"}: [batch].
"""
import tensorflow as tf

from bert_squad.data import records
from bert_squad.training import bucketed_training
from bert_squad.training import length_buckets

# The original `input_fn_builder` shuffles with a buffer of 100 records; its
# training TFRecord is written from examples already shuffled with a fixed seed.
DEFAULT_SHUFFLE_BUFFER_SIZE = 100


def record_spec(seq_length: int, is_training: bool) -> dict[str, tf.io.FixedLenFeature]:
  """The `tf.io.parse_example` spec of one feature record."""
  spec = {"unique_ids": tf.io.FixedLenFeature([], tf.int64)}
  for key in records.INPUT_KEYS:
    spec[key] = tf.io.FixedLenFeature([seq_length], tf.int64)
  if is_training:
    for key in records.TRAINING_LABEL_KEYS:
      spec[key] = tf.io.FixedLenFeature([], tf.int64)
  return spec


def parse_records(serialized: tf.Tensor, seq_length: int,
                  is_training: bool) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
  """Parses a batch of serialized records into `(inputs, targets)`.

  Args:
    serialized: string tensor [batch].
    seq_length: the max_seq_length the records were written with.
    is_training: whether the records carry the training labels.

  Returns:
    (inputs, targets) dicts of int32 tensors, [batch, seq_length] / [batch].
    int64 is cast to int32 because TPUs do not take int64.
  """
  parsed = tf.io.parse_example(serialized, record_spec(seq_length, is_training))
  parsed = {key: tf.cast(value, tf.int32) for key, value in parsed.items()}
  inputs = {key: parsed.pop(key) for key in records.INPUT_KEYS}
  return inputs, parsed


def list_input_files(file_pattern: str | list[str]) -> list[str]:
  """Sorted files matching one glob pattern, or several (local or gs://).

  Raises:
    FileNotFoundError: nothing matches.
  """
  patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
  files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
  if not files:
    raise FileNotFoundError(f"no TFRecord file matches {file_pattern!r}")
  return files


def _pipeline_share(input_context: tf.distribute.InputContext | None) -> tuple[int, int]:
  """(number of input pipelines, this pipeline's index)."""
  if input_context is None:
    return 1, 0
  return input_context.num_input_pipelines, input_context.input_pipeline_id


def _sharded_records(files: list[str], input_context: tf.distribute.InputContext | None,
                     is_training: bool, seed: int | None,
                     shuffle_buffer_size: int) -> tf.data.Dataset:
  """This pipeline's serialized records (scalar strings): its share of `files`.

  In training they are also shuffled and repeated forever; in prediction
  they come once, in file order.
  """
  num_pipelines, pipeline = _pipeline_share(input_context)
  if num_pipelines > 1 and len(files) >= num_pipelines:
    # Enough files: each pipeline reads only its own.
    files, num_pipelines, pipeline = files[pipeline::num_pipelines], 1, 0
  records = tf.data.TFRecordDataset(files)
  # Otherwise each pipeline keeps every n-th record. With a seed, all pipelines
  # shuffle alike and shard afterwards, so together they yield exactly the
  # global batches one pipeline would; without one, shard first so that no
  # record is seen twice per epoch.
  shard_after_shuffle = is_training and seed is not None
  if num_pipelines > 1 and not shard_after_shuffle:
    records = records.shard(num_pipelines, pipeline)
  if is_training:
    records = records.shuffle(shuffle_buffer_size, seed=seed,
                              reshuffle_each_iteration=True).repeat()
  if num_pipelines > 1 and shard_after_shuffle:
    records = records.shard(num_pipelines, pipeline)
  return records


def make_dataset(file_pattern: str | list[str],
                 seq_length: int,
                 batch_size: int,
                 is_training: bool,
                 input_context: tf.distribute.InputContext | None = None,
                 *,
                 seed: int | None = None,
                 shuffle_buffer_size: int = DEFAULT_SHUFFLE_BUFFER_SIZE,
                 drop_remainder: bool | None = None,
                 length_bucketing: bool = False,
                 keep_padded_updates: bool = False,
                 accumulation_steps: int = 1,
                 bucket_granularity: int = length_buckets.DEFAULT_GRANULARITY) -> tf.data.Dataset:
  """The dataset of `(inputs, targets)` batches read from feature TFRecords.

  Training: shard, shuffle (seeded when `seed` is given, so the batch order is
  the same on every run), repeat forever, batch with `drop_remainder=True`.
  Prediction: records in file order, read once, last batch kept partial
  unless `drop_remainder` is True.

  Args:
    file_pattern: glob (or list of globs) of TFRecord files; gs:// works.
    seq_length: max_seq_length of the records.
    batch_size: the GLOBAL batch size; with `input_context` each pipeline
      yields per-replica batches of `batch_size / num_replicas_in_sync`
      (the `tf.distribute` convention for `distribute_datasets_from_function`).
    is_training: training records (with labels, shuffled, repeated) or not.
    input_context: from `strategy.distribute_datasets_from_function`; this
      pipeline then yields only its share: its files when there are at least
      as many files as pipelines, else every n-th record.
    seed: shuffle seed (training only); None draws a fresh order each run.
    shuffle_buffer_size: records in the shuffle buffer (training only).
    drop_remainder: defaults to True in training, False in prediction.
    length_bucketing: training only: each update of `batch_size x
      accumulation_steps` examples holds examples of similar length and is
      trimmed to a multiple of `bucket_granularity`; its micro-batches are
      [per-replica batch, width] (`_bucketed_training_dataset`). Prediction
      buckets in `prediction.predict_logits` instead.
    keep_padded_updates: with length_bucketing, each update holds the
      padded run's examples instead, sorted by length into micro-batches
      that are each trimmed (`bucketed_training.length_sorted_micro_batches`).
    accumulation_steps: with length_bucketing, the micro-batches per update.
    bucket_granularity: with length_bucketing, widths are its multiples.

  Returns:
    A `tf.data.Dataset` of `(inputs, targets)`; see the module docstring.

  Raises:
    FileNotFoundError: no file matches `file_pattern`.
  """
  files = list_input_files(file_pattern)
  if is_training and length_bucketing:
    return _bucketed_training_dataset(files, seq_length, batch_size, input_context, seed,
                                      shuffle_buffer_size, accumulation_steps, bucket_granularity,
                                      keep_padded_updates)
  if input_context is not None:
    batch_size = input_context.get_per_replica_batch_size(batch_size)
  if drop_remainder is None:
    drop_remainder = is_training
  records = _sharded_records(files, input_context, is_training, seed, shuffle_buffer_size)
  dataset = records.batch(batch_size, drop_remainder=drop_remainder)
  dataset = dataset.map(lambda serialized: parse_records(serialized, seq_length, is_training),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(tf.data.AUTOTUNE)


def _bucketed_training_dataset(files: list[str], seq_length: int, micro_batch_size: int,
                               input_context: tf.distribute.InputContext | None, seed: int | None,
                               shuffle_buffer_size: int, accumulation_steps: int,
                               granularity: int, keep_padded_updates: bool) -> tf.data.Dataset:
  """This pipeline's per-replica micro-batches of length-bucketed (or length-sorted) updates.

  With a seed and several pipelines, every pipeline reads, shuffles and
  buckets all the records alike and keeps its replicas' share of each
  update, so together they train on exactly the updates one pipeline would.
  Without a seed each pipeline buckets its own shard of the records into its
  share of each update.
  """
  num_pipelines, pipeline = _pipeline_share(input_context)
  num_replicas = input_context.num_replicas_in_sync if input_context is not None else 1
  per_pipeline = num_replicas // num_pipelines
  update_batch_size = micro_batch_size * accumulation_steps
  if num_pipelines > 1 and seed is not None:
    serialized = _sharded_records(files, None, True, seed, shuffle_buffer_size)
    replicas = slice(pipeline * per_pipeline, (pipeline + 1) * per_pipeline)
  else:
    serialized = _sharded_records(files, input_context, True, seed, shuffle_buffer_size)
    update_batch_size //= num_pipelines
    num_replicas, replicas = per_pipeline, slice(None)
  examples = (serialized.batch(256)
              .map(lambda batch: parse_records(batch, seq_length, True),
                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
              .unbatch())
  if keep_padded_updates:
    dataset = bucketed_training.length_sorted_micro_batches(
        examples, update_batch_size, accumulation_steps, num_replicas, replicas, granularity)
  else:
    dataset = bucketed_training.bucketed_micro_batches(
        examples, update_batch_size, accumulation_steps, num_replicas, replicas, granularity, seed)
  return dataset.prefetch(tf.data.AUTOTUNE)
