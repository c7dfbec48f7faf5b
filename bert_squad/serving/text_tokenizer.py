"""The original `FullTokenizer` in graph ops, with offsets into the raw text.

string texts [batch] -> `TokenizedText`: wordpiece ids and their raw char/byte
spans, each ragged [batch, (pieces)] int32. The original's per-character rules
become a code-point range table at export time (`code_point_table`).
"""
import functools
from typing import NamedTuple

import tensorflow as tf
import tensorflow_text as tf_text
from official.nlp.tools import tokenization as tfm_tokenization

from bert_squad.data import tokenization

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
