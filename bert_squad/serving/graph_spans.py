"""The original n-best span search, in graph ops.

start/end logits [W, max_seq_length] float32 + `Windows` -> `BestSpans` [W]
(best valid span per window) -> `BestSpans` [batch] (best per example); the
SQuAD 2.0 null score float64 [batch].
"""
from typing import NamedTuple

import tensorflow as tf

from bert_squad.serving import answer_settings
from bert_squad.serving import graph_windows


class BestSpans(NamedTuple):
  """The best valid answer span of each window (or example).

  Attributes:
    found: bool [n], whether any span was valid.
    start_token, end_token: int32 [n], the span's first and last context token.
    start_logit, end_logit: float64 [n], their logits.
  """
  found: tf.Tensor
  start_token: tf.Tensor
  end_token: tf.Tensor
  start_logit: tf.Tensor
  end_logit: tf.Tensor


def best_span_per_window(start_logits: tf.Tensor, end_logits: tf.Tensor,
                         windows: graph_windows.Windows,
                         settings: answer_settings.AnswerSettings) -> BestSpans:
  """The original n-best rule within each window, keeping its best span.

  As the original: the n_best_size highest start and end logits (`top_k`
  lists equal logits by position, as the original's stable sort); a span is
  valid if both ends lie in the window's context, the start is at its
  max-context window, end >= start and it has at most max_answer_length
  tokens; spans rank by start + end logit in float64, ties by start rank, then
  end rank.

  Args:
    start_logits, end_logits: float32 [W, max_seq_length].
    windows: from `build_windows`.
    settings: n_best_size, max_answer_length.
  """
  k = min(settings.n_best_size, settings.max_seq_length)
  start_values, start_positions = tf.math.top_k(start_logits, k)
  end_values, end_positions = tf.math.top_k(end_logits, k)
  doc_begin = windows.doc_offset[:, None]
  doc_end = doc_begin + windows.doc_length[:, None]
  to_token = windows.doc_start[:, None] - doc_begin  # sequence position -> context token
  start_ok = ((start_positions >= doc_begin) & (start_positions < doc_end) &
              graph_windows.is_max_context(windows, start_positions + to_token))
  end_ok = (end_positions >= doc_begin) & (end_positions < doc_end)
  length = end_positions[:, None, :] - start_positions[:, :, None] + 1  # [W, k, k]
  valid = (start_ok[:, :, None] & end_ok[:, None, :] & (length >= 1) &
           (length <= settings.max_answer_length))
  score = (tf.cast(start_values, tf.float64)[:, :, None] +
           tf.cast(end_values, tf.float64)[:, None, :])
  score = tf.reshape(tf.where(valid, score, -float("inf")), [-1, k * k])
  best = graph_windows.first_argmax(score)
  start_rank, end_rank = best // k, best % k
  return BestSpans(
      found=tf.gather(tf.reshape(valid, [-1, k * k]), best, batch_dims=1),
      start_token=tf.gather(start_positions + to_token, start_rank, batch_dims=1),
      end_token=tf.gather(end_positions + to_token, end_rank, batch_dims=1),
      start_logit=tf.cast(tf.gather(start_values, start_rank, batch_dims=1), tf.float64),
      end_logit=tf.cast(tf.gather(end_values, end_rank, batch_dims=1), tf.float64))


def gather_or_default(values: tf.Tensor, indices: tf.Tensor, present: tf.Tensor,
                       default) -> tf.Tensor:
  """`values[indices]` where `present`, else `default` (also when `values` is empty)."""
  padded = tf.concat([values, tf.fill([1], tf.cast(default, values.dtype))], axis=0)
  return tf.gather(padded, tf.where(present, indices, tf.shape(values)[0]))


def best_span_per_example(spans: BestSpans, num_windows: tf.Tensor) -> BestSpans:
  """The best of each example's windows; ties go to the earlier window (the original's stable sort).

  Args:
    spans: per window, the windows of each example consecutive.
    num_windows: int32 [batch].
  """
  score = tf.where(spans.found, spans.start_logit + spans.end_logit, -float("inf"))
  by_example = tf.RaggedTensor.from_row_lengths(score, tf.cast(num_windows, tf.int64))
  best_window = graph_windows.first_argmax(by_example.to_tensor(-float("inf")))
  window = tf.cast(by_example.row_starts(), tf.int32) + best_window
  found = (num_windows > 0) & gather_or_default(spans.found, window, num_windows > 0, False)
  return BestSpans(found=found, **{
      name: gather_or_default(getattr(spans, name), window, found, 0)
      for name in ("start_token", "end_token", "start_logit", "end_logit")})


def null_score_per_example(start_logits: tf.Tensor, end_logits: tf.Tensor,
                           num_windows: tf.Tensor) -> tf.Tensor:
  """The original SQuAD 2.0 null score: min over windows of the [CLS] start + end logit.

  float64 [batch]; +inf for an example without windows.
  """
  null = tf.cast(start_logits[:, 0], tf.float64) + tf.cast(end_logits[:, 0], tf.float64)
  by_example = tf.RaggedTensor.from_row_lengths(null, tf.cast(num_windows, tf.int64))
  return tf.reduce_min(by_example, axis=1)
