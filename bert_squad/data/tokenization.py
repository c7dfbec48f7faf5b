"""Text -> WordPiece tokens (list[str]) -> vocab ids (list[int]), identical to the original BERT `FullTokenizer`.

The rules are those of the original `tokenization.py` (google-research/bert,
ported to `official.nlp.tools.tokenization`): clean text, split CJK
characters, lower-case and strip accents (NFD, drop Mn) when
`do_lower_case`, split punctuation, then greedy longest-match-first
WordPiece. What this module adds:

  * `load_vocab` checks the file (empty, duplicate or blank tokens, missing
    [CLS]/[SEP]/[UNK]) and raises `InputError` naming the file and line.
  * The original's 200-character word limit (the port raised it to 400).
  * Speed with the same output: the per-character cleaning is one
    `str.translate`, and each distinct whitespace word is basic- and
    WordPiece-tokenized once per tokenizer and remembered.

The rules are written here rather than inherited from tf-models-official
because its tokenization module imports TensorFlow, and the preprocessing
worker processes (`feature_workers`) import this one: without TensorFlow a
worker starts in ~50 ms instead of seconds and hundreds of MB. Identity with
`official.nlp.tools.tokenization` is tested on every question and context of
the SQuAD and XQuAD dev sets and on random Unicode text.
"""
import collections
import dataclasses
import functools
import re
from typing import Iterable, Mapping
import unicodedata

from bert_squad.common import io_utils
from bert_squad.common.errors import located

# google-research/bert's WordpieceTokenizer maps longer words to [UNK].
MAX_INPUT_CHARS_PER_WORD = 200
UNK_TOKEN = "[UNK]"
REQUIRED_TOKENS = ("[CLS]", "[SEP]", UNK_TOKEN)
# Marks a wordpiece that continues a word ("un", "##aff", "##able").
CONTINUATION_PREFIX = "##"
# An ASCII word after cleaning holds only printable characters (33-126), each a
# letter, a digit or -- by the original's rule -- punctuation.
_ASCII_RUNS_AND_PUNCTUATION = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9]")
# The original's "Chinese characters": the CJK Unified Ideographs blocks and
# their extensions and compatibility blocks (not Hangul, Hiragana, Katakana).
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def load_vocab(vocab_file: str) -> collections.OrderedDict[str, int]:
  """Reads a WordPiece vocabulary (one token per line; id = line number - 1).

  Lines are stripped of surrounding whitespace, as in the original.

  Raises:
    InputError: the file is missing, not UTF-8, empty, has a blank line or a
      duplicate token, or lacks [CLS], [SEP] or [UNK].
  """
  raw = _read_vocab_bytes(vocab_file)
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


def _read_vocab_bytes(vocab_file: str) -> bytes:
  """The file's bytes; TensorFlow is loaded only for gs:// and other remote paths."""
  try:
    return io_utils.read_bytes(vocab_file)
  except FileNotFoundError:
    raise located(vocab_file, "", "vocab file not found") from None
  except OSError as e:
    raise located(vocab_file, "", f"cannot read it ({e.strerror or e})") from None


# A vocabulary is judged only when at least this share of its tokens hold a
# letter with case: below it a caseless script (Chinese) dominates, and the
# casing of its few Latin tokens matters little.
_MIN_CASED_SCRIPT_SHARE = 0.5
# Cased from this share of the tokens with letters that hold an upper-case one
# (Google's cased vocabularies have thousands); a few strays are left alone.
_MIN_UPPER_CASE_SHARE = 0.05
# Google's releases whose vocabulary is lower-cased although their names do
# not say "uncased" (as in the original's `validate_case_matches_checkpoint`).
_OLD_UNCASED_RELEASES = ("multilingual_L-12_H-768_A-12", "chinese_L-12_H-768_A-12")
_RELEASE_NAME = re.compile(r"^(wwm_)?(uncased|cased|multi_cased)_L-\d+_H-\d+_A-\d+$")


@dataclasses.dataclass(frozen=True)
class VocabCasing:
  """How a vocabulary's letters are cased.

  Attributes:
    with_letters: tokens holding a letter with case (bracketed special tokens
      such as [CLS] or [unused0] are not counted).
    with_upper_case: those holding an upper-case letter.
    lower_cased: True for an uncased vocabulary (no upper-case letter at all),
      False for a cased one, None where the tokens do not tell: mostly caseless
      scripts, or only a few upper-case tokens.
  """
  with_letters: int
  with_upper_case: int
  lower_cased: bool | None


def vocab_casing(tokens: Iterable[str]) -> VocabCasing:
  """Decides from its tokens whether a vocabulary was built from lower-cased text.

  Only upper-case letters tell: lower-casing never produces them. Accents do
  not (an uncased vocabulary has them stripped, a cased one keeps them, and
  lower-case accented letters say nothing of case).
  """
  words = [token for token in tokens if not (token.startswith("[") and token.endswith("]"))]
  with_letters = sum(1 for token in words if token.lower() != token.upper())
  with_upper_case = sum(1 for token in words if token.lower() != token)
  lower_cased = None
  if with_letters >= _MIN_CASED_SCRIPT_SHARE * len(words) and with_letters:
    if not with_upper_case:
      lower_cased = True
    elif with_upper_case >= _MIN_UPPER_CASE_SHARE * with_letters:
      lower_cased = False
  return VocabCasing(with_letters, with_upper_case, lower_cased)


def release_is_lower_cased(checkpoint_path: str) -> bool | None:
  """Whether the Google release named by the checkpoint's folder is uncased; None if not one."""
  release = checkpoint_path.rstrip("/").rpartition("/")[0].rpartition("/")[2]
  if release in _OLD_UNCASED_RELEASES:
    return True
  match = _RELEASE_NAME.match(release)
  return match.group(2) == "uncased" if match else None


def check_do_lower_case(do_lower_case: bool, vocab_file: str, vocab: Iterable[str],
                        checkpoint_path: str | None = None) -> None:
  """Stops a `do_lower_case` that contradicts the vocabulary, or else Google's release name.

  The vocabulary's tokens decide (`vocab_casing`); where they do not tell, a
  known Google release name in `checkpoint_path` does, as the original's
  `validate_case_matches_checkpoint`.

  Raises:
    InputError: naming the vocabulary (or checkpoint), what it is and the
      --do_lower_case value to use.
  """
  casing = vocab_casing(vocab)
  if casing.lower_cased is not None:
    if casing.lower_cased != do_lower_case:
      what = (f"an uncased vocabulary (none of its {casing.with_letters} tokens with letters has "
              "an upper-case one)" if casing.lower_cased else
              f"a cased vocabulary ({casing.with_upper_case} of its {casing.with_letters} tokens "
              "with letters have upper-case ones)")
      raise located(vocab_file, "", f"{what}, but --do_lower_case={do_lower_case}; use "
                    f"--do_lower_case={casing.lower_cased}")
    return
  lower_cased = release_is_lower_cased(checkpoint_path) if checkpoint_path else None
  if lower_cased is not None and lower_cased != do_lower_case:
    raise located(checkpoint_path, "", f"Google's {'uncased' if lower_cased else 'cased'} model, "
                  f"but --do_lower_case={do_lower_case}; use --do_lower_case={lower_cased}")


def is_cjk_character(code_point: int) -> bool:
  """Whether the original gives this code point a word of its own."""
  return any(first <= code_point <= last for first, last in _CJK_RANGES)


def is_whitespace(char: str) -> bool:
  """The original's whitespace: space, \\t, \\n, \\r and the Unicode space separators (Zs)."""
  return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
  """The original's control characters: categories Cc and Cf, except \\t, \\n, \\r."""
  return char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf")


def is_punctuation(char: str) -> bool:
  """Unicode punctuation (P*), and every ASCII character that is not a letter, digit or space."""
  code_point = ord(char)
  if 33 <= code_point <= 47 or 58 <= code_point <= 64 or 91 <= code_point <= 96 or 123 <= code_point <= 126:
    return True
  return unicodedata.category(char).startswith("P")


def strip_accents(text: str) -> str:
  """NFD-decomposes the text and drops the nonspacing marks (Mn): "Café" -> "Cafe"."""
  return "".join(char for char in unicodedata.normalize("NFD", text) if unicodedata.category(char) != "Mn")


def split_on_punctuation(text: str) -> list[str]:
  """Each punctuation character alone, the runs between kept: "a,b!" -> ["a", ",", "b", "!"]."""
  pieces = []
  run_start = 0
  for position, char in enumerate(text):
    if is_punctuation(char):
      if run_start < position:
        pieces.append(text[run_start:position])
      pieces.append(char)
      run_start = position + 1
  if run_start < len(text):
    pieces.append(text[run_start:])
  return pieces


class _CleanTextTable(dict):
  """`str.translate` table for the original's `_clean_text` + `_tokenize_chinese_chars`.

  Filled lazily, one code point at a time: control characters, NUL and
  U+FFFD are dropped, whitespace becomes a space, CJK ideographs get a space
  on each side.
  """

  def __missing__(self, code_point: int) -> str | None:
    char = chr(code_point)
    if code_point == 0 or code_point == 0xFFFD or is_control(char):
      replacement = None
    elif is_whitespace(char):
      replacement = " "
    elif is_cjk_character(code_point):
      replacement = f" {char} "
    else:
      replacement = char
    self[code_point] = replacement
    return replacement


def _to_text(text: str | bytes) -> str:
  """The original's `convert_to_unicode`: bytes are decoded as UTF-8, bad bytes dropped."""
  return text.decode("utf-8", "ignore") if isinstance(text, bytes) else text


class BasicTokenizer:
  """The original `BasicTokenizer` (punctuation split, lower-casing, accent stripping).

  Same output as `official.nlp.tools.tokenization.BasicTokenizer`; the
  per-character cleaning runs as one `str.translate` and each distinct
  whitespace word is processed once and remembered.
  """

  def __init__(self, do_lower_case: bool = True):
    self.do_lower_case = do_lower_case
    self._clean_text_table = _CleanTextTable()
    self._word_tokens: dict[str, tuple[str, ...]] = {}

  def tokenize(self, text: str | bytes) -> list[str]:
    """Text -> basic tokens, e.g. "Héllo, World!" -> ["hello", ",", "world", "!"] (lower-cased)."""
    tokens = []
    for word in self.split_words(text):
      tokens.extend(self.tokenize_word(word))
    return tokens

  def split_words(self, text: str | bytes) -> list[str]:
    """Cleans the text, isolates CJK characters and splits on whitespace."""
    return _to_text(text).translate(self._clean_text_table).split()

  def tokenize_word(self, word: str) -> tuple[str, ...]:
    """Basic tokens of one `split_words` word (lower-case, strip accents, split punctuation), remembered."""
    tokens = self._word_tokens.get(word)
    if tokens is None:
      tokens = self._word_tokens[word] = self.split_word(word)
    return tokens

  def split_word(self, word: str) -> tuple[str, ...]:
    """`tokenize_word` without remembering (for callers that remember the result themselves)."""
    if word.isascii():
      # Same result as below: NFD changes no ASCII, and a regex splits off
      # each punctuation character.
      return tuple(_ASCII_RUNS_AND_PUNCTUATION.findall(word.lower() if self.do_lower_case else word))
    normalized = strip_accents(word.lower()) if self.do_lower_case else word
    # Joined and split again, as the original does for the whole text
    # (lower-casing and NFD can produce characters that str.split splits on).
    return tuple(" ".join(split_on_punctuation(normalized)).split())


class WordpieceTokenizer:
  """The original greedy longest-match-first WordPiece.

  A word longer than `max_input_chars_per_word`, or one whose rest matches
  no vocabulary entry at some point, becomes a single `unk_token` (no
  backtracking).
  """

  def __init__(self, vocab: Mapping[str, int], unk_token: str = UNK_TOKEN,
               max_input_chars_per_word: int = MAX_INPUT_CHARS_PER_WORD):
    self.vocab = vocab
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word
    # No candidate longer than the longest entry can match, so none is tried.
    self._longest_entry = max(map(len, vocab), default=0)

  def tokenize(self, text: str) -> list[str]:
    """Whitespace-separated basic tokens -> wordpieces, e.g. "unaffable" -> ["un", "##aff", "##able"]."""
    pieces = []
    for word in text.split():
      pieces.extend(self.tokenize_word(word))
    return pieces

  def tokenize_word(self, word: str) -> list[str]:
    """The wordpieces of one basic token."""
    if len(word) > self.max_input_chars_per_word:
      return [self.unk_token]
    pieces = []
    start = 0
    while start < len(word):
      prefix = CONTINUATION_PREFIX if start else ""
      end = min(len(word), start + self._longest_entry - len(prefix))
      while end > start and prefix + word[start:end] not in self.vocab:
        end -= 1
      if end <= start:
        return [self.unk_token]
      pieces.append(prefix + word[start:end])
      start = end
    return pieces


class FullTokenizer:
  """Basic tokenization then WordPiece, as the original `FullTokenizer`.

  Attributes:
    vocab: token -> id, in file order.
    inv_vocab: id -> token.
    basic_tokenizer: the original `BasicTokenizer`.
    wordpiece_tokenizer: the original `WordpieceTokenizer` (200-char limit).
  """

  def __init__(self, vocab_file: str, do_lower_case: bool = True):
    self._set_up(load_vocab(vocab_file), do_lower_case)

  @classmethod
  def from_vocab(cls, vocab: Mapping[str, int], do_lower_case: bool = True) -> "FullTokenizer":
    """A tokenizer over an already loaded (`load_vocab`) vocabulary, e.g. in a worker process."""
    tokenizer = cls.__new__(cls)
    tokenizer._set_up(vocab, do_lower_case)  # pylint: disable=protected-access
    return tokenizer

  def _set_up(self, vocab: Mapping[str, int], do_lower_case: bool) -> None:
    self.vocab = vocab
    self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
    self.wordpiece_tokenizer = WordpieceTokenizer(vocab)
    self._wordpieces: dict[str, tuple[str, ...]] = {}
    self._basic_token_pieces: dict[str, list[str]] = {}

  def tokenize(self, text: str | bytes) -> list[str]:
    """Text -> wordpieces, e.g. "Unaffable!" -> ["una", "##ffa", "##ble", "!"] (Google's uncased vocab)."""
    pieces = []
    for word in self.basic_tokenizer.split_words(text):
      word_pieces = self._wordpieces.get(word)
      if word_pieces is None:
        word_pieces = self._new_word_pieces(word)
      pieces.extend(word_pieces)
    return pieces

  def _new_word_pieces(self, word: str) -> tuple[str, ...]:
    """The wordpieces of a `split_words` word seen for the first time; remembered, as each basic token's."""
    pieces = []
    for token in self.basic_tokenizer.split_word(word):
      token_pieces = self._basic_token_pieces.get(token)
      if token_pieces is None:
        token_pieces = self._basic_token_pieces[token] = self.wordpiece_tokenizer.tokenize_word(token)
      pieces.extend(token_pieces)
    word_pieces = self._wordpieces[word] = tuple(pieces)
    return word_pieces

  @functools.cached_property
  def inv_vocab(self) -> dict[int, str]:
    """id -> token (built on first use: worker processes never need it)."""
    return {index: token for token, index in self.vocab.items()}

  def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
    return list(map(self.vocab.__getitem__, tokens))

  def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
    return list(map(self.inv_vocab.__getitem__, ids))
