"""Trimmed training input: updates cut into micro-batches that skip most of the padding.

Two ways, each taking an endless stream of training examples (inputs
{name: [seq] int32}, targets {name: [] int32}) and yielding, update by
update, the per-replica micro-batches (inputs [b, width], targets [b]) that
`loop.train` consumes, where width is a multiple of `granularity` (or
max_seq_length) and b = update_batch_size / (k x replicas):

- `bucketed_micro_batches` [--length_bucketing]: each update's examples are
  of similar length (one bucket), so nearly all padding goes, but which
  examples share an update differs from the padded run.
- `length_sorted_micro_batches` [--trim_micro_batches]: each update holds
  the padded run's examples, in its order; they are sorted by length and
  cut into the micro-batches, each trimmed to its own longest example. The
  update is the padded one (with the masked loss), and less padding goes.

Why an update, not a micro-batch, is the unit that is bucketed: the examples
of one optimizer update and their width are then the same however the
update is split into gradient-accumulation micro-batches and replicas, so
`--gradient_accumulation_steps=4 --train_batch_size=8` still gives the update
of one batch of 8, and 2 mirrored replicas that of one device. A micro-batch
that ran narrower than its neighbours would save a little more padding but
make the update depend on the split.

Why `group_by_window` on the length bucket after the record shuffle, and a
seeded shuffle of the bucketed batches after it: the records are shuffled
as in the padded run (a buffer over a file that is already shuffled), so
each bucket fills with a random sample of its lengths (shuffled within
buckets); the batch shuffle then mixes which bucket comes next, so that a
run does not see, say, five short batches in a row whenever short windows
cluster in the file (shuffled across buckets). Both are seeded, and the
stream is endless, so every batch is full and the same on every run: a
resumed run skips the micro-batches of the restored updates and continues
bit-identically (`loop._skipping_dataset_fn`).

A trimmed batch changes what the loss normalises over: see
`modeling.span_model.mask_padding_logits`, which the training step applies
with bucketing so that a bucketed and a padded run optimise the same loss.
"""
import tensorflow as tf

from bert_squad.training import length_buckets

# Update batches held for the shuffle across buckets: enough to break runs of
# one bucket, few enough to keep memory trivial (16 x 32 x 384 int32 x 3).
DEFAULT_BATCH_SHUFFLE_BUFFER = 16


def _trim(widths: tf.Tensor, key: tf.Tensor):
  """(inputs [B, seq], targets [B]) -> inputs trimmed to widths[key] positions."""
  def trim(inputs, targets):
    return {name: value[:, :widths[key]] for name, value in inputs.items()}, targets
  return trim


def _take_pieces(accumulation_steps: int, num_replicas: int, replicas: slice):
  """(inputs [B, w], targets [B]) -> this pipeline's micro-batches [k * len(replicas), B / (k * R), ...].

  The update is cut into k x R equal micro-batches, micro-step major; this
  pipeline keeps those of its `replicas`, in the order they consume them.
  """
  def split(value):
    shape = tf.shape(value)
    micro_batch = shape[0] // (accumulation_steps * num_replicas)
    pieced = tf.reshape(value, tf.concat([[accumulation_steps, num_replicas, micro_batch], shape[1:]], 0))
    kept = pieced[:, replicas]
    return tf.reshape(kept, tf.concat([[-1, micro_batch], shape[1:]], 0))

  def take(inputs, targets):
    return tf.nest.map_structure(split, (inputs, targets))

  return take


def _static_batch(micro_batch: int):
  """Gives every tensor of a micro-batch its static batch dimension."""
  def static(inputs, targets):
    return tf.nest.map_structure(
        lambda value: tf.ensure_shape(value, [micro_batch] + [None] * (value.shape.rank - 1)),
        (inputs, targets))
  return static


def _check_split(examples: tf.data.Dataset, update_batch_size: int, num_pieces: int) -> int:
  """max_seq_length of `examples`; raises ValueError if the update does not split evenly."""
  if update_batch_size % num_pieces:
    raise ValueError(f"an update of {update_batch_size} does not split into {num_pieces} micro-batches")
  max_seq_length = examples.element_spec[0]["input_ids"].shape[0]
  if max_seq_length is None:
    raise ValueError("length bucketing needs a static sequence length (max_seq_length)")
  return max_seq_length


def bucketed_micro_batches(examples: tf.data.Dataset, update_batch_size: int, accumulation_steps: int,
                           num_replicas: int, replicas: slice, granularity: int = length_buckets.DEFAULT_GRANULARITY,
                           seed: int | None = None,
                           batch_shuffle_buffer: int = DEFAULT_BATCH_SHUFFLE_BUFFER) -> tf.data.Dataset:
  """Per-replica micro-batches of length-bucketed updates.

  Args:
    examples: endless (inputs {name: [seq] int32}, targets {name: [] int32}),
      already shuffled; seq must be static (max_seq_length).
    update_batch_size: examples per update that this stream buckets
      together (the global batch when every pipeline reads the same stream).
    accumulation_steps: k, the micro-batches of one update.
    num_replicas: R, the replicas that share each micro-batch.
    replicas: the replicas this pipeline feeds; it yields their micro-batches
      in the order they consume them: micro-step by micro-step, replica by
      replica.
    granularity: widths are multiples of it, then max_seq_length
      (`length_buckets.bucket_widths`); one XLA compilation per width.
    seed: seeds the shuffle of the update batches; None: a fresh order.
    batch_shuffle_buffer: update batches held by that shuffle.

  Returns:
    (inputs {name: [b, width] int32}, targets {name: [b] int32}) with
    b = update_batch_size / (k * R) static; k x len(replicas) consecutive
    elements make this pipeline's share of one update, all of one width.
  """
  num_pieces = accumulation_steps * num_replicas
  max_seq_length = _check_split(examples, update_batch_size, num_pieces)
  widths = tf.constant(length_buckets.bucket_widths(max_seq_length, granularity), tf.int32)

  def update_batches(key, window):
    return window.batch(update_batch_size, drop_remainder=True).map(_trim(widths, key))

  return (examples
          .group_by_window(lambda inputs, _: length_buckets.bucket_key(inputs["input_mask"], granularity),
                           update_batches, window_size=update_batch_size)
          .shuffle(batch_shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
          .map(_take_pieces(accumulation_steps, num_replicas, replicas))
          .unbatch()
          .map(_static_batch(update_batch_size // num_pieces)))


def _sort_by_length(inputs, targets):
  """(inputs [B, seq], targets [B]) -> the same rows, shortest first (a stable sort)."""
  order = tf.argsort(length_buckets.row_lengths(inputs["input_mask"]), stable=True)
  return tf.nest.map_structure(lambda value: tf.gather(value, order), (inputs, targets))


def _trim_to_longest(max_seq_length: int, granularity: int):
  """(inputs [b, seq], targets [b]) -> inputs trimmed to `length_buckets.batch_width`."""
  def trim(inputs, targets):
    width = length_buckets.batch_width(inputs["input_mask"], max_seq_length, granularity)
    return {name: value[:, :width] for name, value in inputs.items()}, targets
  return trim


def length_sorted_micro_batches(examples: tf.data.Dataset, update_batch_size: int, accumulation_steps: int,
                                num_replicas: int, replicas: slice,
                                granularity: int = length_buckets.DEFAULT_GRANULARITY) -> tf.data.Dataset:
  """Per-replica micro-batches of the padded run's updates, sorted by length and each trimmed.

  Each run of `update_batch_size` consecutive examples (the padded run's
  update: the same examples in the same order) is sorted by length and cut
  into k x R micro-batches, micro-step major, so that the replicas of one
  micro-step get neighbouring lengths; each micro-batch is trimmed to the
  smallest width of `length_buckets.bucket_widths` that holds its longest
  example. With the masked loss the update's gradient is then the padded
  update's (a sum over the same examples, each independent of the width)
  up to float rounding; dropout draws differ, as they would for any other
  shape. The saving is smaller than `bucketed_micro_batches`': a random
  update holds a few long examples, and only the micro-batches without them
  shrink, so it grows with k x R.

  Args and returns: as `bucketed_micro_batches`, without its shuffle of
  update batches (the order is the stream's); the micro-batches of one
  update may have different widths.
  """
  num_pieces = accumulation_steps * num_replicas
  max_seq_length = _check_split(examples, update_batch_size, num_pieces)
  return (examples
          .batch(update_batch_size, drop_remainder=True)
          .map(_sort_by_length)
          .map(_take_pieces(accumulation_steps, num_replicas, replicas))
          .unbatch()
          .map(_trim_to_longest(max_seq_length, granularity))
          .map(_static_batch(update_batch_size // num_pieces)))
