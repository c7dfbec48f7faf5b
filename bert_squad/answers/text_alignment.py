"""WordPiece span -> answer text in the original context: the original `get_final_text`, faster.

`detokenize` joins a span's WordPieces ([k] str -> str); `get_final_text`
projects that text back onto the original words (their casing, accents and
punctuation); `SpanAligner` makes a `_Document` per example's `doc_tokens`
whose `final_text(pred_text, first_word, last_word) -> str` gives the same
result while basic-tokenizing each distinct word once for all candidates.
"""
import bisect
import functools
import itertools
import operator
import re
from typing import Callable, Sequence

from absl import logging

from official.nlp.tools import tokenization

# Runs of ASCII letters and digits, or one other printable ASCII character.
_ASCII_WORD_PIECES = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9]")


@functools.lru_cache(maxsize=2)
def basic_tokenizer(do_lower_case: bool) -> tokenization.BasicTokenizer:
  """The BasicTokenizer of this casing (one instance each)."""
  return tokenization.BasicTokenizer(do_lower_case=do_lower_case)


def _project_to_original(pred_text: str, orig_text: str, tok_text: str,
                         orig_position: Callable[[int], int],
                         verbose_logging: bool) -> str:
  """Maps `pred_text`, found in `tok_text`, back onto `orig_text`.

  `tok_text` is `orig_text` after basic tokenization, tokens joined by single
  spaces. The two are assumed aligned character for character once spaces
  are removed; where that fails the whole `orig_text` is returned, as in the
  original.

  Args:
    orig_position: n -> index in `orig_text` of its n-th non-space character.
  """
  start = tok_text.find(pred_text)
  if start == -1:
    if verbose_logging:
      logging.info("Unable to find text: '%s' in '%s'", pred_text, orig_text)
    return orig_text
  end = start + len(pred_text) - 1

  if (len(orig_text) - orig_text.count(" ") !=
      len(tok_text) - tok_text.count(" ")):
    if verbose_logging:
      logging.info("Length not equal after stripping spaces: '%s' vs '%s'",
                   orig_text.replace(" ", ""), tok_text.replace(" ", ""))
    return orig_text

  # A position maps where it holds a character, not a space; its index
  # among the non-space characters is the same in orig_text.
  if start >= len(tok_text) or tok_text[start] == " ":
    if verbose_logging:
      logging.info("Couldn't map start position")
    return orig_text
  if end < 0 or tok_text[end] == " ":
    if verbose_logging:
      logging.info("Couldn't map end position")
    return orig_text
  return orig_text[orig_position(start - tok_text.count(" ", 0, start)):
                   orig_position(end - tok_text.count(" ", 0, end)) + 1]


def get_final_text(pred_text: str, orig_text: str, do_lower_case: bool,
                   verbose_logging: bool = False) -> str:
  """Projects a detokenized prediction back onto the original text.

  E.g. pred_text "steve smith", orig_text "Steve Smith's" -> "Steve Smith":
  the casing and accents of the original, without the extra "'s". Falls back
  to `orig_text` where the heuristic alignment fails (as the original).
  """
  tok_text = " ".join(basic_tokenizer(do_lower_case).tokenize(orig_text))
  non_space_positions = [i for i, c in enumerate(orig_text) if c != " "]
  return _project_to_original(pred_text, orig_text, tok_text,
                              non_space_positions.__getitem__,
                              verbose_logging)


class _Document:
  """`get_final_text` for spans of one example's `doc_tokens` (words).

  Basic tokenization works word by word (every step either maps single
  characters or acts inside one whitespace-separated word), so the
  tokenization of `" ".join(words[a:b + 1])` is the concatenation of each
  word's. Both the words and their tokenizations are joined once per
  document; a span's texts are slices of those. The shortcuts below rely on
  words being non-empty and free of " " (the reader splits on it); other
  documents take `get_final_text` itself.
  """

  def __init__(self, words: Sequence[str], tokenized_words: Sequence[str],
               do_lower_case: bool, verbose_logging: bool):
    self._plain_words = all(words) and not any(" " in w for w in words)
    self._do_lower_case = do_lower_case
    self._verbose_logging = verbose_logging
    self._text = " ".join(words)
    self._word_ends = list(itertools.accumulate(map(len, words)))
    # Word w is text[begin:end], after w spaces.
    self._word_ends_in_text = list(map(operator.add, self._word_ends,
                                       itertools.count()))
    self._word_begins = list(map(operator.sub, self._word_ends_in_text,
                                 map(len, words)))
    # The tokenized words, empty ones dropped, joined as get_final_text does;
    # a span's tokenized text runs from the first non-empty word at or after
    # its first word to the last non-empty one at or before its last word.
    self._tok_text = " ".join(filter(None, tokenized_words))
    next_begins = list(itertools.accumulate(
        [len(t) + 1 if t else 0 for t in tokenized_words]))
    self._tok_begins = [0] + next_begins[:-1]
    self._tok_ends = [begin - 1 if begin else 0 for begin in next_begins]

  def final_text(self, pred_text: str, first: int, last: int) -> str:
    """`get_final_text(pred_text, " ".join(words[first:last + 1]), ...)`."""
    orig_text = self._text[self._word_begins[first]:
                           self._word_ends_in_text[last]]
    if not self._plain_words:
      return get_final_text(pred_text, orig_text, self._do_lower_case,
                            self._verbose_logging)
    tok_text = self._tok_text[self._tok_begins[first]:self._tok_ends[last]]
    if pred_text == tok_text:
      # The alignment maps the first and last non-space characters onto those
      # of orig_text (or fails and falls back to it): the result is orig_text.
      return orig_text
    word_ends = self._word_ends
    chars_before = word_ends[first - 1] if first else 0

    def orig_position(non_space_index: int) -> int:
      # The n-th word of the span starts after n spaces.
      word = bisect.bisect_right(word_ends, chars_before + non_space_index,
                                 first, last + 1)
      return non_space_index + word - first

    return _project_to_original(pred_text, orig_text, tok_text, orig_position,
                                self._verbose_logging)


class SpanAligner:
  """Makes `_Document`s, tokenizing each distinct word once in all."""

  def __init__(self, do_lower_case: bool, verbose_logging: bool):
    self._tokenizer = basic_tokenizer(do_lower_case)
    self._do_lower_case = do_lower_case
    self._verbose_logging = verbose_logging
    self._word_to_tokenized: dict[str, str] = {}
    # Keyed by the words: the questions of one paragraph share a document.
    self._documents: dict[tuple[str, ...], _Document] = {}
    # The same by id(words), a shortcut where examples share their list; the
    # examples keep the lists alive while this aligner is in use.
    self._documents_by_id: dict[int, _Document] = {}

  def _tokenized_word(self, word: str) -> str:
    """The word's basic tokens joined by spaces ("" if none)."""
    tokenized = self._word_to_tokenized.get(word)
    if tokenized is None:
      # Shortcuts for the common cases (BasicTokenizer loops over characters
      # in Python): printable ASCII is never cleaned or accent-stripped, so
      # BasicTokenizer only lower-cases it and splits off every punctuation
      # mark -- in this range, every character but letters and digits.
      if word.isascii() and word.isprintable() and " " not in word:
        cased = word.lower() if self._do_lower_case else word
        tokenized = (cased if cased.isalnum() else
                     " ".join(_ASCII_WORD_PIECES.findall(cased)))
      else:
        tokenized = " ".join(self._tokenizer.tokenize(word))
      self._word_to_tokenized[word] = tokenized
    return tokenized

  def document(self, words: Sequence[str]) -> _Document:
    document = self._documents_by_id.get(id(words))
    if document is None:
      key = tuple(words)
      document = self._documents.get(key)
      if document is None:
        tokenized = list(map(self._word_to_tokenized.get, words))
        if None in tokenized:
          tokenized = [self._tokenized_word(w) if t is None else t
                       for w, t in zip(words, tokenized)]
        document = _Document(words, tokenized, self._do_lower_case,
                             self._verbose_logging)
        self._documents[key] = document
      self._documents_by_id[id(words)] = document
    return document


def detokenize(wordpieces: Sequence[str]) -> str:
  """Joins WordPieces into text as the original: drops "##", one space apart.

  (The original also strips the text first, which split() does anyway.)
  """
  text = " ".join(wordpieces).replace(" ##", "")
  if "##" in text:
    text = text.replace("##", "")
  # Shortcut: " " is the only whitespace that is printable, so a printable
  # text without doubled, leading or trailing spaces is already normalised.
  if (text.isprintable() and "  " not in text and text[:1] != " " and
      text[-1:] != " "):
    return text
  return " ".join(text.split())
