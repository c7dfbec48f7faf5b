"""Length-bucketed prediction batches: features of similar length, trimmed padding, then back in order.

`bucketed_batches(dataset of (inputs {name: [seq] or [b, seq] int32},
targets {"unique_ids"}), batch_size, granularity)` -> full batches of inputs
[batch_size, width] (width a multiple of `granularity`, or max_seq_length),
targets + `FEATURE_INDEX` [batch_size] int64 and `IS_REAL` [batch_size] int32;
`restore_order(per-batch results, max_seq_length)` -> unique_ids [n] int64,
start/end logits [n, max_seq_length] float32 in the dataset's order, with
`FILL_LOGIT` where nothing was computed; `TokenCounts` says how much padding
that saved.

Why buckets of `granularity` (64 at seq 384): each batch is trimmed to the
bucket of its longest member, so a run compiles at most
ceil(max_seq_length / granularity) shapes (6 at 384): a bounded set for XLA
(each shape is one compilation) and for TPUs (static shapes, multiples of
the 8 x 128 tiles), while a batch of lengths 100-128 still computes 128
positions, not 384. A finer grain saves a little more padding for more
compilations.

Why `group_by_window` on a bucket key rather than a sort by length: it
streams (memory holds at most one unfinished batch per bucket, not the whole
file) and keeps the file's order within a bucket, so the batches, and the
logits, are the same on every run. Its cost is one partial batch per bucket
at the end, padded with unreal rows (copies of the batch's first row) like
the padded run's last batch, so every batch is full and static and splits
evenly over replicas.

Within a trimmed batch every real row has the inputs it has in the padded
run up to the batch's width (positions past a feature's length are padding
there too: token 0, mask 0, segment 0), and the attention mask hides the
same positions, so the logits computed equal the padded run's up to float
rounding. Positions at or past the width were never computed: they get
`FILL_LOGIT`, which no real logit reaches, so they never rank among a
feature's best start/end positions, while the saved table stays finite (as
`answers.logits_io.logits_problem` requires).
"""
import dataclasses

import numpy as np
import tensorflow as tf

IS_REAL = "_is_real"  # marks the real rows of a padded prediction batch
FEATURE_INDEX = "_feature_index"  # a feature's place in the dataset's order
DEFAULT_GRANULARITY = 64

# -1e30: finite in float32 (and in float64 sums of two, start + end), far
# below any logit a model gives, and not so near float32's limit (3.4e38)
# that a difference or a sum of a few of them overflows to -inf.
FILL_LOGIT = np.float32(-1e30)


@dataclasses.dataclass(frozen=True)
class TokenCounts:
  """Positions a bucketed run computed against those a padded run computes.

  Both count every row of every batch, the unreal rows that fill the last
  batch(es) included, since those are computed too: the padded run computes
  ceil(n / batch) * batch rows of max_seq_length positions.
  """
  computed: int
  padded: int

  @property
  def ratio(self) -> float:
    """padded / computed: how many times fewer positions the bucketed run computed."""
    return self.padded / self.computed if self.computed else 1.0

  def summary(self) -> str:
    return (f"predict: computed {self.computed:,} of {self.padded:,} tokens "
            f"({self.ratio:.2f}× fewer)")


def bucket_widths(max_seq_length: int, granularity: int = DEFAULT_GRANULARITY) -> list[int]:
  """The batch widths a run may use: multiples of `granularity` below max_seq_length, then max_seq_length."""
  if granularity <= 0:
    raise ValueError(f"bucket granularity {granularity}: must be positive")
  return list(range(granularity, max_seq_length, granularity)) + [max_seq_length]


def row_lengths(input_mask: tf.Tensor) -> tf.Tensor:
  """[b, seq] int mask -> [b] int32: one past the last real position of each row.

  That is `sum(input_mask)` for the features this project writes (the mask
  is a prefix of ones); for any other mask it still covers every real
  position, so trimming past it never drops one.
  """
  positions = tf.range(1, tf.shape(input_mask)[1] + 1, dtype=tf.int32)
  return tf.reduce_max(tf.where(input_mask > 0, positions[None, :], 0), axis=1)


def feature_length(input_mask: tf.Tensor) -> tf.Tensor:
  """[seq] int mask -> scalar int32: `row_lengths` of one feature."""
  return row_lengths(input_mask[None, :])[0]


def batch_width(input_mask: tf.Tensor, max_seq_length: int,
                granularity: int = DEFAULT_GRANULARITY) -> tf.Tensor:
  """[b, seq] int mask -> int32 scalar: the smallest width of `bucket_widths` that holds every row.

  At least the first bucket's width, so that a batch without rows (or
  without real positions) still has a shape the model accepts.
  """
  longest = tf.reduce_max(row_lengths(input_mask))
  rounded = (tf.maximum(longest, 1) + granularity - 1) // granularity * granularity
  return tf.minimum(rounded, max_seq_length)


def bucket_key(input_mask: tf.Tensor, granularity: int) -> tf.Tensor:
  """[seq] mask -> int64 bucket index: the smallest width (multiple of granularity) that holds the example."""
  length = feature_length(input_mask)
  return tf.cast(tf.maximum(length - 1, 0) // granularity, tf.int64)


def _fill_batch(batch_size: int):
  """(inputs, targets) of up to `batch_size` rows -> exactly `batch_size` rows.

  Missing rows are copies of row 0 with targets[IS_REAL] = 0; every tensor
  gets the static batch dimension.
  """
  def fill(inputs, targets):
    missing = batch_size - tf.shape(targets[IS_REAL])[0]

    def pad(value, unreal=False):
      extra = tf.repeat(value[:1], missing, axis=0)
      filled = tf.concat([value, tf.zeros_like(extra) if unreal else extra], axis=0)
      return tf.ensure_shape(filled, [batch_size] + [None] * (value.shape.rank - 1))

    targets = {key: pad(value, unreal=key == IS_REAL) for key, value in targets.items()}
    return {key: pad(value) for key, value in inputs.items()}, targets

  return fill


def bucketed_batches(dataset: tf.data.Dataset, batch_size: int,
                     granularity: int = DEFAULT_GRANULARITY) -> tf.data.Dataset:
  """Full batches of features of similar length, each trimmed to its bucket's width.

  Args:
    dataset: (inputs {name: [seq]}, targets {"unique_ids"}), batched ([b, seq])
      or not; seq must be static (max_seq_length).
    batch_size: rows per batch (global).
    granularity: widths are multiples of it (see `bucket_widths`).

  Returns:
    (inputs {name: [batch_size, width] int32}, targets + {FEATURE_INDEX:
    [batch_size] int64, IS_REAL: [batch_size] int32}); width differs between
    batches, rows within a batch are in the dataset's order.
  """
  if dataset.element_spec[0]["input_ids"].shape.rank == 2:
    dataset = dataset.unbatch()
  max_seq_length = dataset.element_spec[0]["input_ids"].shape[0]
  if max_seq_length is None:
    raise ValueError("length bucketing needs a static sequence length (max_seq_length)")
  widths = tf.constant(bucket_widths(max_seq_length, granularity), tf.int32)

  def number(index, element):
    inputs, targets = element
    return inputs, dict(targets, **{FEATURE_INDEX: index, IS_REAL: tf.constant(1, tf.int32)})

  def trimmed_batches(key, window):
    width = widths[key]
    return window.batch(batch_size).map(
        lambda inputs, targets: ({name: value[:, :width] for name, value in inputs.items()}, targets))

  return (dataset.enumerate().map(number)
          .group_by_window(lambda inputs, _: bucket_key(inputs["input_mask"], granularity),
                           trimmed_batches, window_size=batch_size)
          .map(_fill_batch(batch_size)))


def restore_order(batches: list[dict[str, np.ndarray]], max_seq_length: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, TokenCounts]:
  """The bucketed run's results as the padded run returns them.

  Args:
    batches: per batch {"unique_ids", FEATURE_INDEX, IS_REAL: [batch],
      "start_logits", "end_logits": [batch, width]}.
    max_seq_length: the features' full length.

  Returns:
    unique_ids [n] int64, start_logits and end_logits [n, max_seq_length]
    float32 in the dataset's order (FILL_LOGIT at positions >= the width of
    the feature's batch), and the TokenCounts of the run.
  """
  computed = sum(batch["start_logits"].size for batch in batches)
  real = [batch[IS_REAL].astype(bool) for batch in batches]
  num_features = int(sum(r.sum() for r in real))
  batch_size = len(batches[0][IS_REAL]) if batches else 1
  padded = -(-num_features // batch_size) * batch_size * max_seq_length
  unique_ids = np.zeros([num_features], np.int64)
  start_logits = np.full([num_features, max_seq_length], FILL_LOGIT, np.float32)
  end_logits = np.full([num_features, max_seq_length], FILL_LOGIT, np.float32)
  seen = np.zeros([num_features], bool)
  for batch, is_real in zip(batches, real):
    index = batch[FEATURE_INDEX][is_real]
    width = batch["start_logits"].shape[1]
    unique_ids[index] = batch["unique_ids"][is_real]
    start_logits[index, :width] = batch["start_logits"][is_real]
    end_logits[index, :width] = batch["end_logits"][is_real]
    seen[index] = True
  if not seen.all():
    raise ValueError(f"length bucketing lost {int((~seen).sum())} of {num_features} features")
  return unique_ids, start_logits, end_logits, TokenCounts(computed, padded)
