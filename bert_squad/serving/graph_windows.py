"""The original's doc-stride windows of a batch of tokenized examples, in graph ops.

query and context wordpiece ids ragged [batch, (n)] int32 -> `Windows`: model
inputs [W, max_seq_length] int32 plus per-window bookkeeping [W] and
per-example counts [batch]; `is_max_context` answers [W, k] bool.
"""
from typing import NamedTuple

import tensorflow as tf


class Windows(NamedTuple):
  """The original's doc-stride windows of a batch of examples, flattened.

  W is the number of windows of the whole batch; the windows of one example
  are consecutive, in the original's order.

  Attributes:
    inputs: int32 `input_ids`, `input_mask`, `segment_ids` [W, max_seq_length],
      `[CLS] query [SEP] doc-window [SEP]` + padding, as `features.py` builds.
    example_index: int32 [W], the example each window belongs to.
    window_index: int32 [W], the window's index within its example.
    doc_start: int32 [W], the window's first context token.
    doc_length: int32 [W], its number of context tokens.
    doc_offset: int32 [W], the position of its first context token in the
      sequence (query length + 2).
    num_windows: int32 [batch], windows per example (0 for an empty context).
    context_length: int32 [batch], context tokens per example.
    max_tokens_for_doc: int32 [batch], context tokens a window of that
      example can hold.
    window_step: int32 [batch], tokens between the starts of that example's
      windows: min(doc_stride, max_tokens_for_doc), as the original's loop.
  """
  inputs: dict[str, tf.Tensor]
  example_index: tf.Tensor
  window_index: tf.Tensor
  doc_start: tf.Tensor
  doc_length: tf.Tensor
  doc_offset: tf.Tensor
  num_windows: tf.Tensor
  context_length: tf.Tensor
  max_tokens_for_doc: tf.Tensor
  window_step: tf.Tensor


def _ceil_div(numerator: tf.Tensor, denominator: tf.Tensor) -> tf.Tensor:
  """ceil(numerator / denominator) of int tensors, elementwise."""
  return -tf.math.floordiv(-numerator, denominator)


def build_windows(query_ids: tf.RaggedTensor, context_ids: tf.RaggedTensor, cls_id: tf.Tensor,
                  sep_id: tf.Tensor, max_seq_length: int, doc_stride: int) -> Windows:
  """The original `convert_examples_to_features` windows, in graph ops.

  Args:
    query_ids: ragged [batch, (q)] int32, the question's wordpieces already
      cut to max_query_length.
    context_ids: ragged [batch, (n)] int32, the context's wordpieces.
    cls_id, sep_id: int32 scalars.
    max_seq_length, doc_stride: as the original (`doc_stride` is the step
      between window starts, at most a window's context tokens).
  """
  batch_size = tf.cast(query_ids.nrows(), tf.int32)
  query_length = tf.cast(query_ids.row_lengths(), tf.int32)
  context_length = tf.cast(context_ids.row_lengths(), tf.int32)
  max_tokens_for_doc = max_seq_length - query_length - 3  # [CLS] and two [SEP]
  # Windows start every window_step tokens until one reaches the last token.
  window_step = tf.minimum(doc_stride, max_tokens_for_doc)
  num_windows = tf.where(
      context_length > 0,
      1 + tf.maximum(0, _ceil_div(context_length - max_tokens_for_doc, window_step)), 0)
  example_index = tf.repeat(tf.range(batch_size), num_windows)
  window_index = tf.ragged.range(num_windows).flat_values
  doc_start = window_index * tf.gather(window_step, example_index)
  doc_length = tf.minimum(tf.gather(context_length, example_index) - doc_start,
                          tf.gather(max_tokens_for_doc, example_index))
  first_token = tf.gather(tf.cast(context_ids.row_starts(), tf.int32), example_index) + doc_start
  doc_ids = tf.gather(context_ids.flat_values,
                      tf.ragged.range(first_token, first_token + doc_length))
  query = tf.gather(query_ids, example_index)
  num_windows_total = tf.shape(example_index)[0]
  cls = tf.RaggedTensor.from_tensor(tf.fill([num_windows_total, 1], cls_id))
  sep = tf.RaggedTensor.from_tensor(tf.fill([num_windows_total, 1], sep_id))
  tokens = tf.concat([cls, query, sep, doc_ids, sep], axis=1)
  segments = tf.concat([tf.zeros_like(cls), tf.zeros_like(query), tf.zeros_like(sep),
                        tf.ones_like(doc_ids), tf.ones_like(sep)], axis=1)
  shape = [None, max_seq_length]
  inputs = {"input_ids": tokens.to_tensor(0, shape=shape),
            "input_mask": tf.ones_like(tokens).to_tensor(0, shape=shape),
            "segment_ids": segments.to_tensor(0, shape=shape)}
  return Windows(inputs=inputs, example_index=example_index, window_index=window_index,
                 doc_start=doc_start, doc_length=doc_length,
                 doc_offset=tf.gather(query_length, example_index) + 2,
                 num_windows=num_windows, context_length=context_length,
                 max_tokens_for_doc=max_tokens_for_doc, window_step=window_step)


def first_argmax(values: tf.Tensor) -> tf.Tensor:
  """Index of the first maximum along the last axis (`tf.argmax` leaves ties open)."""
  is_max = values >= tf.reduce_max(values, axis=-1, keepdims=True)
  positions = tf.range(tf.shape(values)[-1])
  return tf.reduce_min(tf.where(is_max, positions, tf.shape(values)[-1]), axis=-1)


def is_max_context(windows: Windows, token_index: tf.Tensor) -> tf.Tensor:
  """The original `_check_is_max_context` for context tokens of each window.

  A token's score in a window is min(left, right context) + 0.01 * window
  length, computed in float64 as the original's Python floats; the first
  window with the highest score wins.

  Args:
    windows: from `build_windows`.
    token_index: int32 [W, k], context-token indices inside window w.

  Returns:
    bool [W, k]: whether window w is the token's max-context window.
  """
  num_windows = tf.gather(windows.num_windows, windows.example_index)  # [W]
  candidate = tf.range(tf.reduce_max(tf.concat([windows.num_windows, [0]], 0)))  # [J]
  span_start = candidate[None, :] * tf.gather(windows.window_step, windows.example_index)[:, None]  # [W, J]
  span_length = tf.minimum(
      tf.gather(windows.context_length, windows.example_index)[:, None] - span_start,
      tf.gather(windows.max_tokens_for_doc, windows.example_index)[:, None])  # [W, J]
  token = token_index[:, :, None]  # [W, k, 1]
  start = span_start[:, None, :]
  length = span_length[:, None, :]
  contains = ((candidate[None, :] < num_windows[:, None])[:, None, :] &
              (token >= start) & (token < start + length))
  context = tf.minimum(token - start, start + length - 1 - token)
  score = tf.cast(context, tf.float64) + 0.01 * tf.cast(length, tf.float64)
  score = tf.where(contains, score, tf.constant(-float("inf"), tf.float64))
  return first_argmax(score) == windows.window_index[:, None]

