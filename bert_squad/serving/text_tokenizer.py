r"""Exports a fine-tuned span model as a SavedModel for TF Serving and `tf.saved_model.load`.

  python -m bert_squad.export --checkpoint_dir=squad_model --max_seq_length=384 \
      --do_lower_case --export_dir=serving/bert_squad/1

`--checkpoint_dir` is a Google-format folder (`bert_model.ckpt` with the
`cls/squad/*` head, `bert_config.json`, `vocab.txt`): the `export/` folder of a
run_squad.py output_dir, or one from `python -m bert_squad.convert
--training_checkpoint=...`. Signatures:

  * `logits` (also `serving_default`): int32 `input_ids`, `input_mask`,
    `segment_ids` [batch, seq] (the TFRecord features) -> float32
    `start_logits`, `end_logits` [batch, seq]. Core TensorFlow ops only.
  * `answer`: string `question`, `context` [batch] -> `answer` string [batch],
    `score` float32 [batch] (start + end logit of the best span; 0 if none),
    `null_score` float32 [batch] (the SQuAD 2.0 no-answer score), `start_char`,
    `end_char` int32 [batch] (code-point span of the answer in the context,
    end exclusive; -1 when the answer is not a span). Tokenization, the
    original's doc-stride windows, the n-best search and the mapping back to
    the context all run in the graph; it needs `import tensorflow_text`.

The vocabulary is a SavedModel asset (`assets/vocab.txt`), so the export loads
anywhere. Flags are defined only when this module runs as a program.
"""
import dataclasses
import functools
import os
import tempfile
import uuid
from typing import NamedTuple, Sequence

from absl import flags
from absl import logging
import tensorflow as tf
import tensorflow_text as tf_text
from official.nlp.tools import tokenization as tfm_tokenization

from bert_squad.common import cli
from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.data import features
from bert_squad.data import tokenization
from bert_squad.modeling import checkpoints
from bert_squad.modeling import span_model

FLAGS = flags.FLAGS

LOGITS_SIGNATURE = "logits"
ANSWER_SIGNATURE = "answer"
# The export's settings, as JSON, in the SavedModel's `assets.extra/` (TF
# Serving's folder for files that are not part of the graph).
SETTINGS_FILE = os.path.join("assets.extra", "bert_squad_export.json")
# The original's nonce prediction when no span is valid (SQuAD 1.1 models).
NO_SPAN_TEXT = "empty"

# How the original `BasicTokenizer` treats one code point, after which the
# text is split at spaces: `_SELF` stands for the code point itself.
_SELF = -1
_SPACE = 0x20
_DROP = ()  # control characters, NUL and U+FFFD vanish
_KEEP = (_SELF,)
_SPLIT = (_SPACE,)  # whitespace
_ISOLATE = (_SPACE, _SELF, _SPACE)  # CJK ideographs and punctuation
_MAX_CODE_POINT = 0x10FFFF
_UTF8_MAX_BYTES_PER_CHAR = 4
# The original's character rules are methods of its BasicTokenizer (the port
# in tf-models-official); any instance answers.
_ORIGINAL_RULES = tfm_tokenization.BasicTokenizer()


@dataclasses.dataclass(frozen=True)
class AnswerSettings:
  """What the `answer` signature does; the original `run_squad.py` flags of the same names."""
  max_seq_length: int = 384
  doc_stride: int = 128
  max_query_length: int = 64
  do_lower_case: bool = True
  n_best_size: int = 20
  max_answer_length: int = 30
  version_2_with_negative: bool = False
  null_score_diff_threshold: float = 0.0

  def validate(self) -> None:
    """Raises `InputError` naming the flag of a setting that cannot work."""
    features.validate_window_params(self.max_seq_length, self.doc_stride, self.max_query_length)
    for name in ("n_best_size", "max_answer_length"):
      if getattr(self, name) < 1:
        raise InputError(f"--{name}={getattr(self, name)}: must be at least 1")


# --- In-graph tokenization -----------------------------------------------------


def _basic_tokenizer_piece(char: str, do_lower_case: bool) -> tuple[int, ...]:
  """What the original `BasicTokenizer` makes of one character, as code points.

  Spaces mark where it splits; `_SELF` is the character unchanged. The rules
  are the original's, in its order: drop NUL, U+FFFD and control characters;
  whitespace splits; CJK ideographs become their own word; then (lower-case
  mode) `lower()`, NFD and removal of combining marks (Mn); whitespace and
  punctuation in the result split it.
  """
  code_point = ord(char)
  # pylint: disable=protected-access
  if code_point in (0, 0xFFFD) or tfm_tokenization._is_control(char):
    return _DROP
  if tfm_tokenization._is_whitespace(char) or char.isspace():
    return _SPLIT
  normalized = _ORIGINAL_RULES._run_strip_accents(char.lower()) if do_lower_case else char
  pieces = []
  for c in normalized:
    if c.isspace():
      pieces.append(_SPACE)
    elif tfm_tokenization._is_punctuation(c):
      pieces += [_SPACE, ord(c), _SPACE]
    else:
      pieces.append(ord(c))
  # CJK ideographs are isolated before normalization (which maps the
  # compatibility ideographs to others).
  if _ORIGINAL_RULES._is_chinese_char(code_point):
    pieces = [_SPACE, *pieces, _SPACE]
  # pylint: enable=protected-access
  piece = tuple(pieces)
  if piece == (code_point,):
    return _KEEP
  if piece == (_SPACE, code_point, _SPACE):
    return _ISOLATE
  return piece


@functools.lru_cache(maxsize=2)
def code_point_table(do_lower_case: bool) -> tuple[list[int], list[tuple[int, ...]]]:
  """The original's per-character cleaning and normalization as a range table.

  Returns:
    range_starts: ascending code points; range i covers
      [range_starts[i], range_starts[i + 1]).
    pieces: per range, the code points one of its characters becomes
      (`_SELF` = itself); ranges of `_KEEP`, `_DROP`, `_SPLIT` or `_ISOLATE`
      characters are merged, other characters get a range each (about 15k
      ranges in lower-case mode, 400 in cased mode).
  """
  range_starts, pieces = [], []
  for code_point in range(_MAX_CODE_POINT + 1):
    piece = _basic_tokenizer_piece(chr(code_point), do_lower_case)
    mergeable = piece in (_KEEP, _DROP, _SPLIT, _ISOLATE)
    if not (mergeable and pieces and pieces[-1] == piece):
      range_starts.append(code_point)
      pieces.append(piece)
  return range_starts, pieces


class TokenizedText(NamedTuple):
  """Wordpieces of a batch of texts, with their place in the original strings.

  All are ragged [batch, (tokens)] int32; char offsets count code points,
  byte offsets UTF-8 bytes; ends are exclusive.
  """
  ids: tf.RaggedTensor
  begin_char: tf.RaggedTensor
  end_char: tf.RaggedTensor
  begin_byte: tf.RaggedTensor
  end_byte: tf.RaggedTensor


def _exclusive_cumsum_by_row(values: tf.RaggedTensor) -> tf.RaggedTensor:
  """Per-row exclusive cumulative sum of a ragged [batch, (n)] int tensor."""
  flat = tf.math.cumsum(values.flat_values, exclusive=True)
  flat_with_total = tf.concat([flat, [tf.reduce_sum(values.flat_values)]], axis=0)
  row_offsets = tf.gather(flat_with_total, values.row_starts())
  return values.with_flat_values(flat - tf.repeat(row_offsets, values.row_lengths()))


def _utf8_length(code_points: tf.Tensor) -> tf.Tensor:
  """UTF-8 byte length of each code point (int32, same shape)."""
  return (1 + tf.cast(code_points >= 0x80, tf.int32) + tf.cast(code_points >= 0x800, tf.int32) +
          tf.cast(code_points >= 0x10000, tf.int32))


def _char_byte_ends(byte_starts: tf.RaggedTensor, texts: tf.Tensor) -> tf.RaggedTensor:
  """Where each character ends: the next one's start, or its text's length."""
  starts = byte_starts.flat_values
  row = byte_starts.value_rowids()
  is_last = (tf.range(tf.size(starts, out_type=tf.int64)) ==
             tf.gather(byte_starts.row_limits() - 1, row))
  return byte_starts.with_flat_values(
      tf.where(is_last, tf.gather(tf.strings.length(texts), row), tf.roll(starts, -1, axis=0)))


def _gather_in_rows(values: tf.RaggedTensor, indices: tf.RaggedTensor) -> tf.RaggedTensor:
  """`values[b][indices[b][i]]` for ragged [batch, (n)] values and [batch, (m)] int32 indices."""
  row_starts = tf.gather(tf.cast(values.row_starts(), tf.int32), indices.value_rowids())
  return indices.with_flat_values(tf.gather(values.flat_values, row_starts + indices.flat_values))


class WordpieceTokenizerWithOffsets(tf.Module):
  """The original `FullTokenizer` in graph ops, with offsets into the raw text.

  tensorflow-text's `BertTokenizer`/`FastBertTokenizer` lower-case with ICU's
  NFKC case folding, which differs from the original's `str.lower()` + NFD
  (e.g. "ß" -> "ss", "½" -> "1⁄2", "ﬁ" -> "fi"), and `BertTokenizer`'s offsets
  point into the normalized text. So the original's basic tokenization is
  applied here per code point through a table computed at export time with the
  original's own functions, remembering for every normalized character the raw
  character it came from; tensorflow-text's `WordpieceTokenizer` then splits
  the words, with the vocabulary looked up in `vocab_file` (an asset).
  """

  def __init__(self, vocab_file: tf.saved_model.Asset, do_lower_case: bool):
    super().__init__()
    self.vocab_file = vocab_file
    range_starts, pieces = code_point_table(do_lower_case)
    self._range_starts = tf.constant(range_starts, tf.int32)
    self._range_pieces = tf.RaggedTensor.from_row_lengths(
        tf.constant([c for piece in pieces for c in piece], tf.int32),
        tf.constant([len(piece) for piece in pieces], tf.int64))
    table = tf.lookup.StaticVocabularyTable(
        tf.lookup.TextFileInitializer(vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                      tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER),
        num_oov_buckets=1)
    # Words over the original's 200-character limit are replaced by [UNK]
    # before this tokenizer sees them, so its byte limit never applies.
    self._wordpiece = tf_text.WordpieceTokenizer(
        table, token_out_type=tf.int32, unknown_token=tokenization.UNK_TOKEN,
        max_bytes_per_word=_UTF8_MAX_BYTES_PER_CHAR * tokenization.MAX_INPUT_CHARS_PER_WORD)
    self.cls_id = tf.cast(table.lookup(tf.constant("[CLS]")), tf.int32)
    self.sep_id = tf.cast(table.lookup(tf.constant("[SEP]")), tf.int32)

  def _normalize(self, code_points: tf.RaggedTensor) -> tuple[tf.Tensor, tf.RaggedTensor]:
    """Applies the code-point table.

    Args:
      code_points: ragged [batch, (chars)] int32.

    Returns:
      text: string [batch], the normalized text (words separated by spaces).
      source_char: ragged [batch, (bytes of text)] int32, for each byte of
        `text` the index of the raw character it came from.
    """
    flat = code_points.flat_values
    range_index = tf.searchsorted(self._range_starts, flat, side="right") - 1
    pieces = tf.gather(self._range_pieces, range_index)  # [chars, (piece)]
    piece_values = tf.where(pieces.flat_values == _SELF,
                            tf.repeat(flat, pieces.row_lengths()), pieces.flat_values)
    normalized = code_points.with_flat_values(
        pieces.with_flat_values(piece_values)).merge_dims(1, 2)  # [batch, (normalized chars)]
    char_index = tf.cast(tf.ragged.range(code_points.row_lengths()).flat_values, tf.int32)
    byte_lengths = _utf8_length(normalized.flat_values)
    source_char = tf.RaggedTensor.from_row_lengths(
        tf.repeat(tf.repeat(char_index, pieces.row_lengths()), byte_lengths),
        tf.cast(tf.reduce_sum(normalized.with_flat_values(byte_lengths), axis=1), tf.int64))
    return tf.strings.unicode_encode(normalized, "UTF-8"), source_char

  def _split_words(self, text: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    """Splits normalized text at spaces: words ragged [batch, (words)] and their byte starts."""
    parts = tf.strings.split(text, sep=" ")
    part_lengths = tf.strings.length(parts)
    part_starts = _exclusive_cumsum_by_row(part_lengths + 1)
    nonempty = part_lengths > 0
    return tf.ragged.boolean_mask(parts, nonempty), tf.ragged.boolean_mask(part_starts, nonempty)

  def basic_tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
    """The original `BasicTokenizer`'s tokens: string [batch] -> ragged [batch, (words)]."""
    text, _ = self._normalize(tf.strings.unicode_decode(texts, "UTF-8", errors="replace"))
    return self._split_words(text)[0]

  def _wordpieces(self, text: tf.Tensor) -> tuple[tf.RaggedTensor, ...]:
    """WordPiece of normalized text: ids, begin and end byte in `text`, each [batch, (pieces)].

    A word over the original's 200-character limit is one [UNK] spanning it.
    """
    words, word_starts = self._split_words(text)
    too_long = tf.strings.length(words, unit="UTF8_CHAR") > tokenization.MAX_INPUT_CHARS_PER_WORD
    ids, piece_begin, piece_end = self._wordpiece.tokenize_with_offsets(
        words.with_flat_values(tf.where(too_long.flat_values, tokenization.UNK_TOKEN,
                                        words.flat_values)))
    ids = ids.merge_dims(1, 2)
    pieces_per_word = piece_begin.values.row_lengths()
    word_start = tf.repeat(word_starts.flat_values, pieces_per_word)
    end_in_word = tf.where(tf.repeat(too_long.flat_values, pieces_per_word),
                           tf.repeat(tf.strings.length(words.flat_values), pieces_per_word),
                           tf.cast(piece_end.flat_values, tf.int32))
    return (ids, ids.with_flat_values(word_start + tf.cast(piece_begin.flat_values, tf.int32)),
            ids.with_flat_values(word_start + end_in_word))

  def tokenize_with_offsets(self, texts: tf.Tensor) -> TokenizedText:
    """Wordpieces of `texts` (string [batch]), exactly as the original `FullTokenizer`.

    Each wordpiece's raw span runs from the raw character of its first
    normalized byte to that of its last. Invalid UTF-8 bytes count as U+FFFD
    (which the original drops).
    """
    code_points, byte_starts = tf.strings.unicode_decode_with_offsets(
        texts, "UTF-8", errors="replace")
    byte_starts = tf.cast(byte_starts, tf.int32)
    text, source_char = self._normalize(code_points)
    ids, begin, end = self._wordpieces(text)
    first_char = _gather_in_rows(source_char, begin)
    last_char = _gather_in_rows(source_char, end - 1)
    return TokenizedText(
        ids=ids, begin_char=first_char, end_char=last_char + 1,
        begin_byte=_gather_in_rows(byte_starts, first_char),
        end_byte=_gather_in_rows(_char_byte_ends(byte_starts, texts), last_char))


# --- Doc-stride windows ------------------------------------------------------------


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


def _first_argmax(values: tf.Tensor) -> tf.Tensor:
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
  return _first_argmax(score) == windows.window_index[:, None]


# --- The original n-best search -----------------------------------------------------


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


def best_span_per_window(start_logits: tf.Tensor, end_logits: tf.Tensor, windows: Windows,
                         settings: AnswerSettings) -> BestSpans:
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
              is_max_context(windows, start_positions + to_token))
  end_ok = (end_positions >= doc_begin) & (end_positions < doc_end)
  length = end_positions[:, None, :] - start_positions[:, :, None] + 1  # [W, k, k]
  valid = (start_ok[:, :, None] & end_ok[:, None, :] & (length >= 1) &
           (length <= settings.max_answer_length))
  score = (tf.cast(start_values, tf.float64)[:, :, None] +
           tf.cast(end_values, tf.float64)[:, None, :])
  score = tf.reshape(tf.where(valid, score, -float("inf")), [-1, k * k])
  best = _first_argmax(score)
  start_rank, end_rank = best // k, best % k
  return BestSpans(
      found=tf.gather(tf.reshape(valid, [-1, k * k]), best, batch_dims=1),
      start_token=tf.gather(start_positions + to_token, start_rank, batch_dims=1),
      end_token=tf.gather(end_positions + to_token, end_rank, batch_dims=1),
      start_logit=tf.cast(tf.gather(start_values, start_rank, batch_dims=1), tf.float64),
      end_logit=tf.cast(tf.gather(end_values, end_rank, batch_dims=1), tf.float64))


def _gather_or_default(values: tf.Tensor, indices: tf.Tensor, present: tf.Tensor,
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
  best_window = _first_argmax(by_example.to_tensor(-float("inf")))
  window = tf.cast(by_example.row_starts(), tf.int32) + best_window
  found = (num_windows > 0) & _gather_or_default(spans.found, window, num_windows > 0, False)
  return BestSpans(found=found, **{
      name: _gather_or_default(getattr(spans, name), window, found, 0)
      for name in ("start_token", "end_token", "start_logit", "end_logit")})


def null_score_per_example(start_logits: tf.Tensor, end_logits: tf.Tensor,
                           num_windows: tf.Tensor) -> tf.Tensor:
  """The original SQuAD 2.0 null score: min over windows of the [CLS] start + end logit.

  float64 [batch]; +inf for an example without windows.
  """
  null = tf.cast(start_logits[:, 0], tf.float64) + tf.cast(end_logits[:, 0], tf.float64)
  by_example = tf.RaggedTensor.from_row_lengths(null, tf.cast(num_windows, tf.int64))
  return tf.reduce_min(by_example, axis=1)


# --- The SavedModel ------------------------------------------------------------------


class SquadServingModule(tf.Module):
  """The span model with the `logits` and `answer` functions (see the module docstring)."""

  def __init__(self, model: span_model.BertSpanModel, vocab_file: str, settings: AnswerSettings,
               answer_signature: bool = True):
    super().__init__()
    self._settings = settings
    # The Keras model is only called, never tracked: the SavedModel holds its
    # variables and the traced graphs, not Keras objects, so loading needs
    # neither Keras nor this project.
    self._call_model = lambda inputs: model(inputs, training=False)
    self.model_variables = list(model.variables)
    self.vocab_file = tf.saved_model.Asset(vocab_file)
    ids_spec = tf.TensorSpec([None, None], tf.int32)
    self.logits = tf.function(
        self._logits, input_signature=[ids_spec] * len(span_model.INPUT_KEYS))
    if answer_signature:
      self.tokenizer = WordpieceTokenizerWithOffsets(self.vocab_file, settings.do_lower_case)
      text_spec = [tf.TensorSpec([None], tf.string, name="question"),
                   tf.TensorSpec([None], tf.string, name="context")]
      self.answer = tf.function(self._answer, input_signature=text_spec)

  def serving_signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """Signature name -> concrete function, for `tf.saved_model.save`."""
    logits = self.logits.get_concrete_function()
    signatures = {tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: logits,
                  LOGITS_SIGNATURE: logits}
    if hasattr(self, "answer"):
      signatures[ANSWER_SIGNATURE] = self.answer.get_concrete_function()
    return signatures

  def _logits(self, input_ids: tf.Tensor, input_mask: tf.Tensor,
              segment_ids: tf.Tensor) -> dict[str, tf.Tensor]:
    """int32 [batch, seq] each -> float32 `start_logits`, `end_logits` [batch, seq]."""
    return self._call_model({"input_ids": input_ids, "input_mask": input_mask,
                             "segment_ids": segment_ids})

  def _answer(self, question: tf.Tensor, context: tf.Tensor) -> dict[str, tf.Tensor]:
    """string [batch] each -> answer, score, null_score, start_char, end_char [batch]."""
    settings = self._settings
    tf.debugging.assert_equal(tf.size(question), tf.size(context),
                              message="question and context must have the same length")
    query = self.tokenizer.tokenize_with_offsets(question).ids[:, :settings.max_query_length]
    doc = self.tokenizer.tokenize_with_offsets(context)
    windows = build_windows(query, doc.ids, self.tokenizer.cls_id, self.tokenizer.sep_id,
                            settings.max_seq_length, settings.doc_stride)
    logits = self._call_model(windows.inputs)
    spans = best_span_per_example(
        best_span_per_window(logits["start_logits"], logits["end_logits"], windows, settings),
        windows.num_windows)
    null_score = null_score_per_example(logits["start_logits"], logits["end_logits"],
                                        windows.num_windows)
    is_span = spans.found
    if settings.version_2_with_negative:
      # The original compares (null - start) - end, in this order.
      is_span &= (null_score - spans.start_logit - spans.end_logit <=
                  settings.null_score_diff_threshold)
    first = tf.cast(doc.ids.row_starts(), tf.int32)
    start = first + spans.start_token
    end = first + spans.end_token
    begin_byte = _gather_or_default(doc.begin_byte.flat_values, start, is_span, 0)
    end_byte = _gather_or_default(doc.end_byte.flat_values, end, is_span, 0)
    no_answer = "" if settings.version_2_with_negative else NO_SPAN_TEXT
    return {
        "answer": tf.where(is_span, tf.strings.substr(context, begin_byte, end_byte - begin_byte),
                           no_answer),
        "score": tf.cast(spans.start_logit + spans.end_logit, tf.float32),
        "null_score": tf.cast(null_score, tf.float32),
        "start_char": _gather_or_default(doc.begin_char.flat_values, start, is_span, -1),
        "end_char": _gather_or_default(doc.end_char.flat_values, end, is_span, -1),
    }


def _write_clean_vocab(vocab_file: str, folder: str) -> str:
  """Copies a checked vocabulary with each token stripped, as the original reads it.

  The lookup table reads whole lines, so stray spaces or "\\r" would
  otherwise change the ids.
  """
  vocab = tokenization.load_vocab(vocab_file)
  path = os.path.join(folder, "vocab.txt")
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(token + "\n" for token in vocab))
  return path


def _check_new_export_dir(export_dir: str) -> None:
  """InputError unless `export_dir` is new and its parent folder (created here) is writable."""
  if tf.io.gfile.exists(export_dir):
    raise InputError(f"--export_dir={export_dir}: already exists; remove it or choose a new "
                     "version folder")
  io_utils.make_output_dir(os.path.dirname(export_dir) or ".", "--export_dir", export_dir)


def save_serving_model(model: span_model.BertSpanModel, vocab_file: str, settings: AnswerSettings,
                       export_dir: str, answer_signature: bool = True) -> str:
  """Writes the SavedModel of a span model to `export_dir` (which must not exist).

  Written to a temporary folder beside `export_dir` and renamed into place, so
  TF Serving never sees a half-written version.

  Args:
    model: the fine-tuned span model.
    vocab_file: its vocabulary (becomes `assets/vocab.txt`).
    settings: the `answer` signature's settings.
    export_dir: the SavedModel folder, e.g. `models/bert_squad/1`.
    answer_signature: also export `answer` (needs tensorflow-text ops to
      load); without it the SavedModel holds core TensorFlow ops only.

  Returns:
    `export_dir`.
  """
  settings.validate()
  span_model.validate_config(model.bert_config, settings.max_seq_length, vocab_file)
  tokenization.check_do_lower_case(settings.do_lower_case, vocab_file,
                                   tokenization.load_vocab(vocab_file))
  export_dir = export_dir.rstrip("/")
  _check_new_export_dir(export_dir)
  staging_dir = f"{export_dir}.tmp-{uuid.uuid4().hex[:8]}"
  with tempfile.TemporaryDirectory() as vocab_folder:
    module = SquadServingModule(model, _write_clean_vocab(vocab_file, vocab_folder), settings,
                                answer_signature)
    try:
      tf.saved_model.save(module, staging_dir, signatures=module.serving_signatures())
      tf.io.gfile.makedirs(os.path.dirname(os.path.join(staging_dir, SETTINGS_FILE)))
      io_utils.write_json(os.path.join(staging_dir, SETTINGS_FILE),
                          dict(dataclasses.asdict(settings), answer_signature=answer_signature),
                          indent=2)
      tf.io.gfile.rename(staging_dir, export_dir)
    finally:
      if tf.io.gfile.exists(staging_dir):
        tf.io.gfile.rmtree(staging_dir)
  return export_dir


def export_checkpoint(checkpoint_dir: str, export_dir: str, settings: AnswerSettings,
                      answer_signature: bool = True) -> str:
  """Loads a fine-tuned Google-format folder and writes its SavedModel (`save_serving_model`).

  Raises:
    InputError: a missing file (for a run_squad.py output_dir, naming its
      export/), a `do_lower_case` that contradicts the vocabulary or the
      checkpoint's name, a checkpoint that does not fit its config, or one
      without the SQuAD head (a pre-trained model is not fine-tuned).
  """
  settings.validate()
  _check_new_export_dir(export_dir.rstrip("/"))
  prefix = checkpoints.checkpoint_in_folder(checkpoint_dir, "--checkpoint_dir")
  folder = os.path.dirname(prefix)
  vocab_file = os.path.join(folder, "vocab.txt")
  config_file = os.path.join(folder, "bert_config.json")
  config = span_model.BertConfig.from_json_file(config_file)
  tokenization.check_do_lower_case(settings.do_lower_case, vocab_file,
                                   tokenization.load_vocab(vocab_file), prefix)
  logging.info("exporting %s with %s and %s", prefix, config_file, vocab_file)
  model = span_model.build_span_model(config)
  loaded = checkpoints.load_google_checkpoint(model, prefix)
  if not any(name.startswith(checkpoints.SQUAD_HEAD_SCOPE) for name in loaded):
    raise InputError(f"{prefix}: no SQuAD head ({checkpoints.SQUAD_HEAD_SCOPE}*); export a "
                     "fine-tuned model, not a pre-trained one")
  return save_serving_model(model, vocab_file, settings, export_dir, answer_signature)


def _define_flags() -> None:
  defaults = AnswerSettings()
  flags.DEFINE_string("checkpoint_dir", None, "Google-format folder of the fine-tuned model "
                      "(bert_model.ckpt with cls/squad/*, bert_config.json, vocab.txt), e.g. "
                      "OUTPUT_DIR/export of a run_squad.py run.")
  flags.DEFINE_string("export_dir", None, "SavedModel folder to create, e.g. models/bert_squad/1 "
                      "for TF Serving; must not exist.")
  flags.DEFINE_integer("max_seq_length", defaults.max_seq_length, "Tokens per window.")
  flags.DEFINE_integer("doc_stride", defaults.doc_stride, "Step between window starts.")
  flags.DEFINE_integer("max_query_length", defaults.max_query_length, "Question wordpieces kept.")
  flags.DEFINE_bool("do_lower_case", defaults.do_lower_case, "Lower-case and strip accents "
                    "(uncased models); checked against the vocabulary.")
  flags.DEFINE_integer("n_best_size", defaults.n_best_size, "Start/end candidates per window.")
  flags.DEFINE_integer("max_answer_length", defaults.max_answer_length, "Longest answer in tokens.")
  flags.DEFINE_bool("version_2_with_negative", defaults.version_2_with_negative,
                    "SQuAD 2.0 model: answer '' when the null score wins.")
  flags.DEFINE_float("null_score_diff_threshold", defaults.null_score_diff_threshold,
                     "SQuAD 2.0: answer '' if null_score - score > this.")
  flags.DEFINE_bool("answer_signature", True, "Also export the 'answer' signature (raw strings; "
                    "needs tensorflow-text ops where it is loaded).")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise InputError(f"unexpected arguments: {' '.join(argv[1:])}")
  for name in ("checkpoint_dir", "export_dir"):
    if not FLAGS[name].value:
      raise InputError(f"--{name} is required")
  settings = AnswerSettings(**{field.name: FLAGS[field.name].value
                               for field in dataclasses.fields(AnswerSettings)})
  export_dir = export_checkpoint(FLAGS.checkpoint_dir, FLAGS.export_dir, settings,
                                 FLAGS.answer_signature)
  logging.info("wrote %s", export_dir)
  print(export_dir)


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
