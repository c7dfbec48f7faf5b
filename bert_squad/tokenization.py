"""WordPiece tokenization identical to the original BERT `FullTokenizer`.

The algorithm is tf-models-official's port of the original
(`official.nlp.tools.tokenization`): clean text, split CJK characters,
lower-case and strip accents (NFD, drop Mn) when `do_lower_case`, split
punctuation, then greedy longest-match-first WordPiece. What this module adds:

  * `load_vocab` checks the file (empty, duplicate or blank tokens, missing
    [CLS]/[SEP]/[UNK]) and raises `InputError` naming the file and line.
  * The original's 200-character word limit (the port raised it to 400).
  * Speed with the same output: the per-character cleaning is one
    `str.translate`, and each distinct whitespace word is basic- and
    WordPiece-tokenized once per tokenizer and remembered. Tokenization is
    where the original spends its time on SQuAD (every context is
    re-tokenized for each of its questions).
"""
import collections
import re

import tensorflow as tf
from official.nlp.tools import tokenization as tfm_tokenization

from bert_squad.errors import located

# google-research/bert's WordpieceTokenizer maps longer words to [UNK].
MAX_INPUT_CHARS_PER_WORD = 200
UNK_TOKEN = "[UNK]"
REQUIRED_TOKENS = ("[CLS]", "[SEP]", UNK_TOKEN)
# An ASCII word after cleaning holds only printable characters (33-126), each a
# letter, a digit or -- by the original's rule -- punctuation.
_ASCII_RUNS_AND_PUNCTUATION = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9]")
# `_is_chinese_char` is a method of the port's BasicTokenizer; any instance answers.
_CJK_CHECKER = tfm_tokenization.BasicTokenizer()


def load_vocab(vocab_file: str) -> collections.OrderedDict[str, int]:
  """Reads a WordPiece vocabulary (one token per line; id = line number - 1).

  Lines are stripped of surrounding whitespace, as in the original.

  Raises:
    InputError: the file is missing, not UTF-8, empty, has a blank line or a
      duplicate token, or lacks [CLS], [SEP] or [UNK].
  """
  try:
    with tf.io.gfile.GFile(vocab_file, "rb") as f:
      raw = f.read()
  except tf.errors.NotFoundError:
    raise located(vocab_file, "", "vocab file not found") from None
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise located(vocab_file, "", f"not valid UTF-8 (byte {e.start})") from None
  lines = text.split("\n")
  if lines and lines[-1] == "":
    lines.pop()  # the newline that ends the last line
  if not lines:
    raise located(vocab_file, "", "vocab file is empty")
  vocab = collections.OrderedDict()
  for index, line in enumerate(lines):
    token = line.strip()
    if not token:
      raise located(vocab_file, f"line {index + 1}", "blank line in the vocab")
    if token in vocab:
      raise located(vocab_file, f"line {index + 1}",
                    f"duplicate token {token!r} (first on line {vocab[token] + 1})")
    vocab[token] = index
  missing = [t for t in REQUIRED_TOKENS if t not in vocab]
  if missing:
    raise located(vocab_file, "", f"vocab lacks {', '.join(missing)}")
  return vocab


class _CleanTextTable(dict):
  """`str.translate` table for the original's `_clean_text` + `_tokenize_chinese_chars`.

  Filled lazily, one code point at a time, with the original's own
  predicates: control characters, NUL and U+FFFD are dropped, whitespace
  becomes a space, CJK ideographs get a space on each side.
  """

  def __missing__(self, code_point: int) -> str | None:
    char = chr(code_point)
    if code_point == 0 or code_point == 0xFFFD or tfm_tokenization._is_control(char):  # pylint: disable=protected-access
      replacement = None
    elif tfm_tokenization._is_whitespace(char):  # pylint: disable=protected-access
      replacement = " "
    elif _CJK_CHECKER._is_chinese_char(code_point):  # pylint: disable=protected-access
      replacement = f" {char} "
    else:
      replacement = char
    self[code_point] = replacement
    return replacement


class BasicTokenizer(tfm_tokenization.BasicTokenizer):
  """The original `BasicTokenizer` (punctuation split, lower-casing, accent stripping).

  Same output as `official.nlp.tools.tokenization.BasicTokenizer`; the
  per-character cleaning runs as one `str.translate` and each distinct
  whitespace word is processed once and remembered.
  """

  def __init__(self, do_lower_case: bool = True):
    super().__init__(do_lower_case=do_lower_case, split_on_punc=True)
    self._clean_text_table = _CleanTextTable()
    self._word_tokens: dict[str, tuple[str, ...]] = {}

  def tokenize(self, text: str) -> list[str]:
    """Text -> basic tokens, e.g. "Héllo, World!" -> ["hello", ",", "world", "!"] (lower-cased)."""
    tokens = []
    for word in self.split_words(text):
      tokens.extend(self.tokenize_word(word))
    return tokens

  def split_words(self, text: str) -> list[str]:
    """Cleans the text, isolates CJK characters and splits on whitespace."""
    return tfm_tokenization.convert_to_unicode(text).translate(self._clean_text_table).split()

  def tokenize_word(self, word: str) -> tuple[str, ...]:
    """Basic tokens of one `split_words` word (lower-case, strip accents, split punctuation)."""
    tokens = self._word_tokens.get(word)
    if tokens is None:
      if word.isascii():
        # Same result as below: NFD changes no ASCII, and a regex splits off
        # each punctuation character.
        tokens = tuple(_ASCII_RUNS_AND_PUNCTUATION.findall(word.lower() if self.do_lower_case else word))
      else:
        normalized = self._run_strip_accents(word.lower()) if self.do_lower_case else word
        # Joined and split again, as the original does for the whole text.
        tokens = tuple(" ".join(self._run_split_on_punc(normalized)).split())
      self._word_tokens[word] = tokens
    return tokens


class FullTokenizer:
  """Basic tokenization then WordPiece, as the original `FullTokenizer`.

  Attributes:
    vocab: token -> id, in file order.
    inv_vocab: id -> token.
    basic_tokenizer: the original `BasicTokenizer`.
    wordpiece_tokenizer: the original `WordpieceTokenizer` (200-char limit).
  """

  def __init__(self, vocab_file: str, do_lower_case: bool = True):
    self.vocab = load_vocab(vocab_file)
    self.inv_vocab = {index: token for token, index in self.vocab.items()}
    self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
    self.wordpiece_tokenizer = tfm_tokenization.WordpieceTokenizer(
        vocab=self.vocab, unk_token=UNK_TOKEN, max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD)
    self._wordpieces: dict[str, tuple[str, ...]] = {}

  def tokenize(self, text: str) -> list[str]:
    """Text -> wordpieces, e.g. "Unaffable!" -> ["una", "##ffa", "##ble", "!"] (Google's uncased vocab)."""
    pieces = []
    for word in self.basic_tokenizer.split_words(text):
      word_pieces = self._wordpieces.get(word)
      if word_pieces is None:
        word_pieces = tuple(piece for token in self.basic_tokenizer.tokenize_word(word)
                            for piece in self.wordpiece_tokenizer.tokenize(token))
        self._wordpieces[word] = word_pieces
      pieces.extend(word_pieces)
    return pieces

  def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
    return [self.vocab[token] for token in tokens]

  def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
    return [self.inv_vocab[index] for index in ids]
