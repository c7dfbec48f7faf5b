"""Logits -> SQuAD answers: the original `write_predictions`, vectorised.

Reproduces google-research/bert `run_squad.py` `write_predictions` and
`get_final_text` byte for byte (`predictions.json`, `nbest_predictions.json`,
`null_odds.json`), except where the original crashes: a SQuAD 2.0 question
whose n-best list holds no non-null answer predicts "" (see
docs/postprocess.md), and a feature without logits is an `InputError`.

Speed: the original sorts every feature's logits in Python, tries its
n_best_size**2 start/end pairs one by one and runs BasicTokenizer on every
candidate's text. Here the top-k search and the validity checks run in numpy
over all features at once (ties still keep the original's order), and each
document word is tokenized once for all the candidates that contain it.

Run as `python -m bert_squad.postprocess` to re-write the prediction files
from saved logits with other `n_best_size`, `max_answer_length` or null
threshold, without running the model; `--run_dir` finds everything in the
output folder of a `run_squad.py --do_predict` run (`find_run_inputs`).
"""
import bisect
import dataclasses
import functools
import io
import itertools
import json
import math
import operator
import os
import re
import zipfile
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

from absl import flags
from absl import logging
import numpy as np
import orjson
import tensorflow as tf

from official.nlp.tools import tokenization

from bert_squad.common import cli
from bert_squad.common import gc_utils
from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.common.io_utils import atomic_open
from bert_squad.common.io_utils import atomic_path
from bert_squad.common.io_utils import make_output_dir
from bert_squad.data import feature_files
from bert_squad.data import squad

PREDICTIONS_FILE = "predictions.json"
NBEST_FILE = "nbest_predictions.json"
NULL_ODDS_FILE = "null_odds.json"
# What run_squad.py --do_predict saves in its output_dir.
LOGITS_FILE = "predict_logits.npz"

# The original's starting value for the minimum null score ("large and
# positive"): an example whose every window scores above it keeps it.
_INITIAL_NULL_SCORE = 1000000
# Placeholder answer of the original when nothing valid was found (v1.1 only:
# v2.0 always has the null answer).
_NO_ANSWER_PLACEHOLDER = "empty"

_LOGITS_KEYS = ("unique_ids", "start_logits", "end_logits")

# Runs of ASCII letters and digits, or one other printable ASCII character.
_ASCII_WORD_PIECES = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9]")


class RawResult(NamedTuple):
  """The model's output for one feature.

  Attributes:
    unique_id: `InputFeatures.unique_id` of the feature.
    start_logits: [seq_length] floats (list or array).
    end_logits: [seq_length] floats.
  """
  unique_id: int
  start_logits: Any
  end_logits: Any


class Logits(NamedTuple):
  """The model's output for many features, as saved by `save_logits`.

  Attributes:
    unique_ids: [n] int, `InputFeatures.unique_id` of each row.
    start_logits: [n, seq_length] float.
    end_logits: [n, seq_length] float.
  """
  unique_ids: np.ndarray
  start_logits: np.ndarray
  end_logits: np.ndarray


@dataclasses.dataclass(frozen=True)
class PredictionFiles:
  """Where the three prediction files go."""
  predictions: str
  nbest: str
  null_odds: str

  @classmethod
  def in_dir(cls, output_dir: str) -> "PredictionFiles":
    """The original's names inside `output_dir`."""
    return cls(predictions=os.path.join(output_dir, PREDICTIONS_FILE),
               nbest=os.path.join(output_dir, NBEST_FILE),
               null_odds=os.path.join(output_dir, NULL_ODDS_FILE))

  def written(self, version_2_with_negative: bool) -> list[str]:
    """The files `write_prediction_files` writes: null_odds.json for SQuAD 2.0 only."""
    return [self.predictions, self.nbest, *([self.null_odds] if version_2_with_negative else [])]


# ----------------------------------------------------------------------------
# Text alignment (the original `get_final_text`).


@functools.lru_cache(maxsize=2)
def _basic_tokenizer(do_lower_case: bool) -> tokenization.BasicTokenizer:
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
  tok_text = " ".join(_basic_tokenizer(do_lower_case).tokenize(orig_text))
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


class _SpanAligner:
  """Makes `_Document`s, tokenizing each distinct word once in all."""

  def __init__(self, do_lower_case: bool, verbose_logging: bool):
    self._tokenizer = _basic_tokenizer(do_lower_case)
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


def _detokenize(wordpieces: Sequence[str]) -> str:
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


# ----------------------------------------------------------------------------
# Candidate search.


def _is_float32_array(x: Any) -> bool:
  return isinstance(x, np.ndarray) and x.dtype == np.float32


def _logits_table(results: Iterable[RawResult]) -> Logits:
  """Stacks `RawResult`s; of several with one unique_id the last counts.

  float32 where all results hold float32 arrays (the ranking is the same as
  in float64, at half the memory), else float64 (Python floats, as in the
  original's lists). Scores are summed in float64 later either way.
  """
  by_unique_id = {r.unique_id: r for r in results}
  if not by_unique_id:
    return Logits(np.zeros(0, np.int64), np.zeros((0, 1)), np.zeros((0, 1)))
  seq_length = len(next(iter(by_unique_id.values())).start_logits)
  all_float32 = all(
      _is_float32_array(r.start_logits) and _is_float32_array(r.end_logits)
      for r in by_unique_id.values())
  shape = (len(by_unique_id), seq_length)
  dtype = np.float32 if all_float32 else np.float64
  start_logits, end_logits = np.empty(shape, dtype), np.empty(shape, dtype)
  for row, result in enumerate(by_unique_id.values()):
    if (len(result.start_logits) != seq_length or
        len(result.end_logits) != seq_length):
      raise InputError(
          f"logits of feature unique_id {result.unique_id} have lengths "
          f"{len(result.start_logits)} and {len(result.end_logits)}, "
          f"expected {seq_length} like the others")
    start_logits[row] = result.start_logits
    end_logits[row] = result.end_logits
  return Logits(np.array(list(by_unique_id), dtype=np.int64), start_logits,
                end_logits)


def _feature_rows(features: Sequence[Any], logits: Logits) -> np.ndarray:
  """[F] row of `logits` holding each feature's (the last of equal ids)."""
  problem = _logits_problem(logits._asdict(), allow_repeated_ids=True)
  if problem:
    raise InputError(problem)
  row_of_unique_id = {u: row for row, u in
                      enumerate(logits.unique_ids.tolist())}
  rows = []
  for feature in features:
    row = row_of_unique_id.get(feature.unique_id)
    if row is None:
      raise InputError(
          f"no logits for feature unique_id {feature.unique_id} "
          f"(example_index {feature.example_index})")
    rows.append(row)
  return np.array(rows, dtype=np.int64)


def _top_indexes(logits: np.ndarray, n_best_size: int) -> np.ndarray:
  """[F, seq] -> [F, k] positions of the k largest logits, largest first.

  Ordered as the original's stable `sorted(..., reverse=True)`: equal logits
  keep the lower position first, also when they straddle the k-th place. A
  partition finds the k-th largest value, then only the k chosen positions
  are sorted (a stable argsort of all positions costs several times more).
  """
  num_positions = logits.shape[1]
  if n_best_size >= num_positions:
    return np.argsort(-logits, axis=1, kind="stable")
  kth = num_positions - n_best_size
  kth_largest = np.partition(logits, kth, axis=1)[:, kth:kth + 1]
  chosen = logits >= kth_largest
  # Where values tie with the k-th largest, the lowest positions fill up.
  for row in np.flatnonzero(chosen.sum(axis=1) > n_best_size):
    tied = logits[row] == kth_largest[row]
    places_left = n_best_size - (logits[row] > kth_largest[row]).sum()
    chosen[row] &= ~tied | (np.cumsum(tied) <= places_left)
  positions = np.nonzero(chosen)[1].reshape(-1, n_best_size)  # ascending
  order = np.argsort(-np.take_along_axis(logits, positions, axis=1), axis=1,
                     kind="stable")
  return np.take_along_axis(positions, order, axis=1)


def _valid_starts_and_ends(features: Sequence[Any], best_starts: np.ndarray,
                           best_ends: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
  """Which of the best positions may start or end an answer.

  Args:
    features: F features.
    best_starts, best_ends: [F, k] token positions.

  Returns:
    [F, k] bool each: the position is a document token of its feature; a
    start must also be in the window where it has its maximum context.
  """
  num_tokens = np.array([len(f.tokens) for f in features],
                        dtype=np.int64)[:, None]
  to_orig = [f.token_to_orig_map for f in features]
  is_max_context = [f.token_is_max_context for f in features]
  # Positions past the tokens (padding: about half of them) fail in numpy;
  # the dict lookups run only for the others.
  start_ok = best_starts < num_tokens
  feature_of, positions = _rows_and_values(start_ok, best_starts)
  start_ok[start_ok] = np.array(
      [is_max_context[f].get(p) and p in to_orig[f]
       for f, p in zip(feature_of, positions)], dtype=bool)
  end_ok = best_ends < num_tokens
  feature_of, positions = _rows_and_values(end_ok, best_ends)
  end_ok[end_ok] = np.array(
      [p in to_orig[f] for f, p in zip(feature_of, positions)], dtype=bool)
  return start_ok, end_ok


def _rows_and_values(mask: np.ndarray, values: np.ndarray
                     ) -> tuple[list[int], list[int]]:
  """Row index and value of each True entry of the [F, k] `mask`."""
  return np.nonzero(mask)[0].tolist(), values[mask].tolist()


@dataclasses.dataclass
class _Candidates:
  """Answer candidates: one entry per span (or per example's null answer)."""
  example: np.ndarray      # [C] example index
  row: np.ndarray          # [C] feature row (-1 for the null answer)
  start: np.ndarray        # [C] start token position in that feature
  end: np.ndarray          # [C] end token position
  start_logit: np.ndarray  # [C] float64
  end_logit: np.ndarray    # [C] float64

  def arrays(self) -> list[np.ndarray]:
    return [getattr(self, f.name) for f in dataclasses.fields(self)]

  def take(self, order: np.ndarray) -> "_Candidates":
    return _Candidates(*(a[order] for a in self.arrays()))


def _find_spans(features: Sequence[Any], logits: Logits, rows: np.ndarray,
                n_best_size: int, max_answer_length: int) -> _Candidates:
  """The (start, end) pairs among each feature's top-n that the original keeps.

  Args:
    features: F features.
    logits: the logits table.
    rows: [F] the table row of each feature.

  Returns:
    the spans in the original's loop order: by feature, then rank of start,
    then rank of end.
  """
  best_starts = _top_indexes(logits.start_logits, n_best_size)[rows]  # [F, k]
  best_ends = _top_indexes(logits.end_logits, n_best_size)[rows]      # [F, k]
  start_ok, end_ok = _valid_starts_and_ends(features, best_starts, best_ends)
  starts = best_starts[:, :, None]
  ends = best_ends[:, None, :]
  keep = (start_ok[:, :, None] & end_ok[:, None, :] & (ends >= starts) &
          (ends - starts + 1 <= max_answer_length))  # [F, k, k]
  feature, start_rank, end_rank = np.nonzero(keep)
  start = best_starts[feature, start_rank]
  end = best_ends[feature, end_rank]
  example = np.array([f.example_index for f in features], dtype=np.int64)
  return _Candidates(
      example=example[feature], row=feature, start=start, end=end,
      start_logit=logits.start_logits[rows[feature], start].astype(np.float64),
      end_logit=logits.end_logits[rows[feature], end].astype(np.float64))


def _null_answers(start_logits: np.ndarray, end_logits: np.ndarray,
                  feature_rows: Sequence[int]) -> list[tuple[Any, Any, Any]]:
  """Each example's minimum null score over its windows.

  Args:
    start_logits, end_logits: [F] position-0 logits of the features, grouped
      by example.
    feature_rows: [E + 1]; example e has features [feature_rows[e],
      feature_rows[e + 1]).

  Returns:
    E tuples (score_null, start_logit, end_logit) as Python numbers: start[0]
    + end[0] of the first window with the lowest sum, or the original's
    initial values (ints) where no window scores below them.
  """
  start_0 = start_logits.astype(np.float64)
  end_0 = end_logits.astype(np.float64)
  scores = (start_0 + end_0).tolist()
  start_0, end_0 = start_0.tolist(), end_0.tolist()
  nulls = []
  for lo, hi in zip(feature_rows[:-1], feature_rows[1:]):
    null = (_INITIAL_NULL_SCORE, 0, 0)
    for row in range(lo, hi):
      if scores[row] < null[0]:
        null = (scores[row], start_0[row], end_0[row])
    nulls.append(null)
  return nulls


def _rank(spans: _Candidates, nulls: list[tuple[Any, Any, Any]] | None
          ) -> _Candidates:
  """Adds the null answers and sorts by example, then score, best first.

  The sort is stable and each null answer comes after its example's spans,
  so equal scores keep the original's order (the null answer losing ties).
  """
  if nulls:
    null_logits = np.array([n[1:] for n in nulls], dtype=np.float64)
    num_examples = len(nulls)
    spans = _Candidates(*(np.concatenate([a, b]) for a, b in zip(
        spans.arrays(),
        (np.arange(num_examples), np.full(num_examples, -1),
         np.zeros(num_examples, np.int64), np.zeros(num_examples, np.int64),
         null_logits[:, 0], null_logits[:, 1]))))
  order = np.lexsort((-(spans.start_logit + spans.end_logit), spans.example))
  return spans.take(order)


def _softmax(scores: Sequence[float]) -> list[float]:
  """The original's softmax, in Python floats so the digits match exactly."""
  max_score = max(scores)
  exp_scores = [math.exp(s - max_score) for s in scores]
  total = 0.0
  for x in exp_scores:  # not sum(): Python 3.12's compensates rounding
    total += x
  return [x / total for x in exp_scores]


class _RankedCandidates:
  """`_rank` output as Python lists, sliced per example."""

  def __init__(self, ranked: _Candidates, num_examples: int):
    self.row = ranked.row.tolist()
    self.start = ranked.start.tolist()
    self.end = ranked.end.tolist()
    self.start_logit = ranked.start_logit.tolist()
    self.end_logit = ranked.end_logit.tolist()
    self.bounds = np.searchsorted(ranked.example,
                                  np.arange(num_examples + 1)).tolist()


def _nbest_for_example(example: Any, example_index: int,
                       features: Sequence[Any], ranked: _RankedCandidates,
                       null: tuple[Any, Any, Any] | None, n_best_size: int,
                       aligner: _SpanAligner) -> list[tuple[str, Any, Any]]:
  """The original's n-best list of one example.

  Args:
    example: the example.
    example_index: its index in the examples.
    features: all features (rows of `ranked.row`).
    ranked: all candidates, best first per example.
    null: `_null_answers(...)[example_index]` for v2.0, None for v1.1.

  Returns:
    (text, start_logit, end_logit) per entry, best first.
  """
  final_text = aligner.document(example.doc_tokens).final_text
  rows, starts, ends = ranked.row, ranked.start, ranked.end
  start_logits, end_logits = ranked.start_logit, ranked.end_logit
  nbest = []
  seen_texts = set()
  for k in range(ranked.bounds[example_index],
                 ranked.bounds[example_index + 1]):
    if len(nbest) >= n_best_size:
      break
    row = rows[k]
    if row < 0:  # the null answer, with its logits as the original's numbers
      nbest.append(("", null[1], null[2]))
      seen_texts.add("")
      continue
    feature = features[row]
    start, end = starts[k], ends[k]
    to_orig = feature.token_to_orig_map
    text = final_text(_detokenize(feature.tokens[start:end + 1]),
                      to_orig[start], to_orig[end])
    if text not in seen_texts:
      seen_texts.add(text)
      nbest.append((text, start_logits[k], end_logits[k]))

  if null is not None and "" not in seen_texts:
    nbest.append(("", null[1], null[2]))
  if not nbest:
    nbest.append((_NO_ANSWER_PLACEHOLDER, 0.0, 0.0))
  return nbest


def _nbest_json(nbest: list[tuple[str, Any, Any]]) -> list[dict[str, Any]]:
  """The n-best entries as the original's JSON records, with "probability"
  (softmax of start + end logits)."""
  probabilities = _softmax([start + end for _, start, end in nbest])
  return [{"text": text, "probability": p, "start_logit": start,
           "end_logit": end}
          for (text, start, end), p in zip(nbest, probabilities)]


def _null_decision(nbest: list[tuple[str, Any, Any]], score_null: Any,
                   null_score_diff_threshold: float) -> tuple[str, Any]:
  """(prediction, null odds) of a SQuAD 2.0 example.

  Predicts "" when score_null - best non-null score exceeds the threshold.
  Where the n-best holds no non-null answer the original crashes
  (`None.start_logit`); this predicts "" with odds score_null, as
  tf-models-official does.
  """
  best_non_null = next((e for e in nbest if e[0]), None)
  if best_non_null is None:
    return "", score_null
  text, start_logit, end_logit = best_non_null
  score_diff = score_null - start_logit - end_logit
  if score_diff > null_score_diff_threshold:
    return "", score_diff
  return text, score_diff


@gc_utils.cyclic_gc_paused()
def compute_predictions(examples: Sequence[Any], features: Sequence[Any],
                        results: Iterable[RawResult] | Logits,
                        n_best_size: int,
                        max_answer_length: int, do_lower_case: bool,
                        version_2_with_negative: bool,
                        null_score_diff_threshold: float = 0.0,
                        verbose_logging: bool = False
                        ) -> tuple[dict[str, str],
                                   dict[str, list[dict[str, Any]]],
                                   dict[str, Any]]:
  """The original `write_predictions` without the writing.

  Args:
    examples: `SquadExample`s (anything with `qas_id`, `doc_tokens`).
    features: `InputFeatures` of those examples (`unique_id`,
      `example_index`, `tokens`, `token_to_orig_map`, `token_is_max_context`).
    results: a `RawResult` for every feature, or a `Logits` table (faster:
      no per-feature rows to stack); extra ones are ignored, and of several
      with one unique_id the last counts (as the original).
    n_best_size: how many start and end positions per window to combine, and
      the length of the n-best list.
    max_answer_length: longest answer in WordPieces.
    do_lower_case: how the model's vocabulary was tokenized.
    version_2_with_negative: SQuAD 2.0: add the null answer; predict "" when
      score_null - best_non_null > `null_score_diff_threshold`.
    verbose_logging: log where `get_final_text` falls back.

  Returns:
    (predictions {qas_id: text}, nbest {qas_id: [{"text", "probability",
    "start_logit", "end_logit"}]}, null_odds {qas_id: score_null -
    best_non_null}, empty for v1.1), in the order of `examples`.

  Raises:
    InputError: bad sizes, a feature without logits, an example_index
      outside `examples`, or non-finite logits.
  """
  if n_best_size < 1:
    raise InputError(f"n_best_size must be at least 1, got {n_best_size}")
  if max_answer_length < 1:
    raise InputError(
        f"max_answer_length must be at least 1, got {max_answer_length}")
  for feature in features:
    if not 0 <= feature.example_index < len(examples):
      raise InputError(
          f"feature unique_id {feature.unique_id} belongs to example_index "
          f"{feature.example_index}, but there are {len(examples)} examples "
          "(features and examples from different files?)")

  # Each example's features together, in their relative order (the
  # original's example_index -> [features] lists).
  features = sorted(features, key=lambda f: f.example_index)
  if isinstance(results, Logits):
    logits = Logits(*(np.asarray(a) for a in results))
  else:
    logits = _logits_table(results)
  rows = _feature_rows(features, logits)
  spans = _find_spans(features, logits, rows, n_best_size, max_answer_length)
  nulls = None
  if version_2_with_negative:
    feature_rows = np.searchsorted([f.example_index for f in features],
                                   np.arange(len(examples) + 1)).tolist()
    nulls = _null_answers(logits.start_logits[rows, 0],
                          logits.end_logits[rows, 0], feature_rows)
  ranked = _RankedCandidates(_rank(spans, nulls), len(examples))
  aligner = _SpanAligner(do_lower_case, verbose_logging)

  predictions, all_nbest, null_odds = {}, {}, {}
  for example_index, example in enumerate(examples):
    null = nulls[example_index] if nulls else None
    nbest = _nbest_for_example(example, example_index, features, ranked,
                               null, n_best_size, aligner)
    all_nbest[example.qas_id] = _nbest_json(nbest)
    if null is None:
      predictions[example.qas_id] = nbest[0][0]
    else:
      predictions[example.qas_id], null_odds[example.qas_id] = (
          _null_decision(nbest, null[0], null_score_diff_threshold))
  return predictions, all_nbest, null_odds


# ----------------------------------------------------------------------------
# Files.


def _json_text(obj: Any) -> str:
  """The original's file content: `json.dumps(obj, indent=4)` + newline.

  ASCII-escaped (json's default), unlike `io_utils.write_json`, so the bytes
  equal the original's.
  """
  return json.dumps(obj, indent=4) + "\n"


_NBEST_KEYS = ("text", "probability", "start_logit", "end_logit")


def _json_numbers(numbers: list[float | int]) -> list[str]:
  """`[repr(x) for x in numbers]` (json's form of finite numbers), 3x faster.

  repr of the n-best file's ~440 000 floats was its largest cost. orjson
  writes the same shortest round-trip digits in C; only its exponent form
  differs (1e-05 is "0.00001" or "1e-5" there), so numbers that repr writes
  with an exponent (0 < |x| < 1e-4 or |x| >= 1e16) keep repr. Ints past
  64 bits, which orjson refuses, take repr for all.
  """
  if not numbers:
    return []
  try:
    texts = orjson.dumps(numbers).decode("ascii")[1:-1].split(",")
  except orjson.JSONEncodeError:
    return list(map(repr, numbers))
  magnitudes = np.abs(np.array(numbers, dtype=np.float64))
  for i in np.flatnonzero((magnitudes != 0) & (
      (magnitudes < 1e-4) | (magnitudes >= 1e16))).tolist():
    texts[i] = repr(numbers[i])
  return texts


def _nbest_json_text(nbest: dict[str, list[dict[str, Any]]]) -> str:
  """`_json_text(nbest)`, about four times as fast.

  json.dumps with `indent` runs json's pure-Python encoder, which took about
  as long as computing the predictions. The n-best file has one fixed shape,
  so it is assembled from its pieces instead: the texts escaped by json's own
  C escaper, the numbers as json writes them (`_json_numbers`), the fixed
  layout in between. Anything of another shape goes to json.dumps. The tests
  compare both on tricky values.
  """
  if not nbest or not all(isinstance(k, str) and isinstance(v, list) and v
                          for k, v in nbest.items()):
    return _json_text(nbest)
  records = list(itertools.chain.from_iterable(nbest.values()))
  if (set(map(type, records)) != {dict} or
      set(map(tuple, records)) != {_NBEST_KEYS}):
    return _json_text(nbest)
  # Every record's values, in _NBEST_KEYS order.
  values = list(itertools.chain.from_iterable(map(dict.values, records)))
  texts = values[0::4]
  numbers = values[1::4] + values[2::4] + values[3::4]
  if (set(map(type, texts)) != {str} or
      not set(map(type, numbers)) <= {float, int} or
      not all(map(math.isfinite, numbers))):
    return _json_text(nbest)

  escape = json.encoder.encode_basestring_ascii
  count = len(records)
  # What precedes each record's text: the end of the previous record, and at
  # a question's first record the end of the previous question and the key.
  openings = ['\n        },\n        {\n            "text": '] * count
  first_record = 0
  for qas_id, question_records in nbest.items():
    openings[first_record] = (
        ("\n        }\n    ],\n" if first_record else "{\n") +
        f'    {escape(qas_id)}: [\n        {{\n            "text": ')
    first_record += len(question_records)
  number_texts = _json_numbers(numbers)
  pieces = [""] * (8 * count)
  pieces[0::8] = openings
  pieces[1::8] = map(escape, texts)
  pieces[2::8] = [',\n            "probability": '] * count
  pieces[3::8] = number_texts[:count]
  pieces[4::8] = [',\n            "start_logit": '] * count
  pieces[5::8] = number_texts[count:2 * count]
  pieces[6::8] = [',\n            "end_logit": '] * count
  pieces[7::8] = number_texts[2 * count:]
  pieces.append("\n        }\n    ]\n}\n")
  return "".join(pieces)


def _write_text(path: str, text: str) -> None:
  with atomic_open(path, "w") as f:
    f.write(text)


@gc_utils.cyclic_gc_paused()
def write_prediction_files(output: str | PredictionFiles,
                           predictions: dict[str, str],
                           nbest: dict[str, list[dict[str, Any]]],
                           null_odds: dict[str, float] | None
                           ) -> PredictionFiles:
  """Writes predictions.json, nbest_predictions.json and null_odds.json.

  Args:
    output: a directory (the original's file names) or explicit paths.
    predictions, nbest, null_odds: from `compute_predictions`; pass
      null_odds=None for SQuAD 1.1 (no null_odds.json, as the original).

  Returns:
    the paths (null_odds is written only when given).
  """
  files = PredictionFiles.in_dir(output) if isinstance(output, str) else output
  _write_text(files.predictions, _json_text(predictions))
  _write_text(files.nbest, _nbest_json_text(nbest))
  if null_odds is not None:
    _write_text(files.null_odds, _json_text(null_odds))
  return files


def save_logits(path: str, unique_ids: np.ndarray, start_logits: np.ndarray,
                end_logits: np.ndarray) -> None:
  """Saves raw logits atomically as an uncompressed .npz (see docs).

  Args:
    path: destination (local or gs://).
    unique_ids: [n] int, the features' unique_id.
    start_logits, end_logits: [n, seq_length] float32 (or float64).
  """
  arrays = {"unique_ids": np.asarray(unique_ids),
            "start_logits": np.asarray(start_logits),
            "end_logits": np.asarray(end_logits)}
  problem = _logits_problem(arrays)
  if problem:
    raise ValueError(f"save_logits({path!r}): {problem}")
  arrays["unique_ids"] = arrays["unique_ids"].astype(np.int64)
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  with atomic_path(path) as tmp:
    with tf.io.gfile.GFile(tmp, "wb") as f:
      f.write(buffer.getvalue())


def load_logits(path: str) -> Logits:
  """Reads a `save_logits` file: unique_ids [n] int64, start and end logits
  [n, seq] as saved.

  Raises:
    InputError: a missing or unreadable file, or arrays with the wrong names,
      dtypes or shapes, repeated unique_ids, or NaN/inf logits.
  """
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      loaded = np.load(f, allow_pickle=False)
      if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError("a single array, not an .npz archive")
      with loaded:
        arrays = {k: loaded[k] for k in loaded.files}
  except (tf.errors.NotFoundError, tf.errors.PermissionDeniedError) as e:
    raise InputError(
        f"{path}: cannot read the logits file ({e.message})") from None
  except tf.errors.OpError as e:  # e.g. seeking in a truncated archive
    raise InputError(
        f"{path}: not a logits .npz file ({e.message})") from None
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise InputError(f"{path}: not a logits .npz file ({e})") from None
  problem = _logits_problem(arrays)
  if problem:
    raise InputError(f"{path}: {problem}")
  return Logits(arrays["unique_ids"].astype(np.int64), arrays["start_logits"],
                arrays["end_logits"])


def _logits_problem(arrays: dict[str, Any],
                    allow_repeated_ids: bool = False) -> str | None:
  """What is wrong with a logits table's arrays, or None."""
  missing = [k for k in _LOGITS_KEYS if k not in arrays]
  if missing:
    return (f"missing array(s) {', '.join(missing)} (expected "
            f"{', '.join(_LOGITS_KEYS)})")
  unique_ids = arrays["unique_ids"]
  if unique_ids.ndim != 1 or not np.issubdtype(unique_ids.dtype, np.integer):
    return (f"unique_ids must be a 1-D integer array, got {unique_ids.dtype} "
            f"{list(unique_ids.shape)}")
  for name in ("start_logits", "end_logits"):
    logits = arrays[name]
    if not np.issubdtype(logits.dtype, np.floating):
      return f"{name} must be floating point, got {logits.dtype}"
    if logits.ndim != 2 or logits.shape[0] != unique_ids.shape[0]:
      return (f"{name} must have shape [{unique_ids.shape[0]}, seq_length] "
              f"like unique_ids, got {list(logits.shape)}")
  if arrays["start_logits"].shape != arrays["end_logits"].shape:
    return (f"start_logits {list(arrays['start_logits'].shape)} and "
            f"end_logits {list(arrays['end_logits'].shape)} differ in shape")
  if not allow_repeated_ids:
    values, counts = np.unique(unique_ids, return_counts=True)
    if (counts > 1).any():
      return f"unique_id {values[counts > 1][0]} appears more than once"
  for name in ("start_logits", "end_logits"):
    bad_rows = np.flatnonzero(~np.isfinite(arrays[name]).all(axis=1))
    if bad_rows.size:
      return (f"{name} of unique_id {unique_ids[bad_rows[0]]} are not finite "
              "(NaN or inf)")
  return None


# ----------------------------------------------------------------------------
# Re-writing predictions from saved logits (`python -m bert_squad.postprocess`).


def _check_inputs_match(examples: Sequence[Any], features: Sequence[Any],
                        unique_ids: np.ndarray, seq_length: int,
                        paths: dict[str, str]) -> None:
  """Raises InputError naming the files when the three inputs disagree."""
  num_examples = len(examples)
  for feature in features:
    if not 0 <= feature.example_index < num_examples:
      raise InputError(
          f"{paths['features']}: feature unique_id {feature.unique_id} "
          f"belongs to example_index {feature.example_index}, but "
          f"{paths['examples']} has {num_examples} questions (built from "
          "another file?)")
  known = set(unique_ids.tolist())
  for feature in features:
    if feature.unique_id not in known:
      raise InputError(
          f"{paths['logits']}: no logits for feature unique_id "
          f"{feature.unique_id} of {paths['features']} (saved from other "
          "features?)")
    if len(feature.tokens) > seq_length:
      raise InputError(
          f"{paths['logits']}: logits have seq_length {seq_length}, but "
          f"feature unique_id {feature.unique_id} of {paths['features']} has "
          f"{len(feature.tokens)} tokens")


def _check_features_source(predict_file: str, feature_metadata_file: str) -> None:
  """Raises InputError when the features' info file (beside a `<tfrecord>.metadata.jsonl`)
  says they were built from other bytes than `predict_file`.

  Without it, features of another dataset with no more questions would be
  aligned to the wrong contexts without any error.
  """
  suffix = ".metadata.jsonl"
  if not feature_metadata_file.endswith(suffix):
    return
  info_file = feature_files.features_info_path(feature_metadata_file[:-len(suffix)])
  if not tf.io.gfile.exists(info_file):
    return
  info = feature_files.read_features_info(info_file)
  if io_utils.file_sha256(predict_file) != info.input_sha256:
    raise InputError(
        f"{predict_file}: not the file the features of {feature_metadata_file} were built from "
        f"(their {info_file} names {info.input_file}, with other content)")


def rewrite_predictions(predict_file: str, feature_metadata_file: str,
                        logits_file: str, output_dir: str, *,
                        do_lower_case: bool, version_2_with_negative: bool,
                        n_best_size: int, max_answer_length: int,
                        null_score_diff_threshold: float,
                        verbose_logging: bool = False) -> PredictionFiles:
  """Prediction files from saved logits, without running the model.

  Args:
    predict_file: the SQuAD JSON the features were built from.
    feature_metadata_file: the features' metadata (JSON lines) written
      beside the prediction TFRecord.
    logits_file: a `save_logits` file of those features.
    output_dir: where the three files go (created when the inputs have been
      checked, so that a bad input leaves no folder behind).

  Returns:
    the files written.
  """
  _check_features_source(predict_file, feature_metadata_file)
  logits = load_logits(logits_file)
  examples, _ = squad.read_squad_examples(
      predict_file, is_training=False,
      version_2_with_negative=version_2_with_negative)
  features = feature_files.read_feature_metadata(feature_metadata_file)
  _check_inputs_match(examples, features, logits.unique_ids,
                      logits.start_logits.shape[1],
                      {"examples": predict_file,
                       "features": feature_metadata_file,
                       "logits": logits_file})
  predictions, nbest, null_odds = compute_predictions(
      examples, features, logits, n_best_size=n_best_size,
      max_answer_length=max_answer_length, do_lower_case=do_lower_case,
      version_2_with_negative=version_2_with_negative,
      null_score_diff_threshold=null_score_diff_threshold,
      verbose_logging=verbose_logging)
  make_output_dir(output_dir, "--output_dir")
  return write_prediction_files(
      output_dir, predictions, nbest,
      null_odds if version_2_with_negative else None)


@dataclasses.dataclass(frozen=True)
class RunInputs:
  """What `rewrite_predictions` needs, as a `run_squad.py --do_predict` run left it."""
  predict_file: str
  feature_metadata_file: str
  logits_file: str
  do_lower_case: bool
  version_2_with_negative: bool


def find_run_inputs(run_dir: str) -> RunInputs:
  """The logits, features and settings of the last prediction in a run's output_dir.

  The logits are `run_dir/predict_logits.npz`; their features are the one
  `features/predict-*.tf_record` set whose info file counts as many features
  of the same length; the SQuAD file and the casing and version flags come
  from that info file (the SQuAD path as the run gave it).

  Raises:
    InputError: no logits, or not exactly one matching feature set (then
      `--feature_metadata_file` must say which).
  """
  logits_file = os.path.join(run_dir, LOGITS_FILE)
  if not tf.io.gfile.exists(logits_file):
    raise InputError(f"--run_dir={run_dir}: no {LOGITS_FILE} there (the output_dir of a "
                     "run_squad.py --do_predict run holds one)")
  shape = load_logits(logits_file).start_logits.shape
  suffix = ".info.json"
  pattern = os.path.join(run_dir, feature_files.RUN_FEATURES_DIR, f"predict-*.tf_record{suffix}")
  matches = []
  for info_file in sorted(tf.io.gfile.glob(pattern)):
    info = feature_files.read_features_info(info_file)
    if (info.num_features, info.max_seq_length) == shape:
      matches.append((info_file, info))
  if len(matches) != 1:
    found = ", ".join(m[0] for m in matches) or f"none in {os.path.dirname(pattern)}"
    raise InputError(f"--run_dir={run_dir}: {len(matches)} prediction feature sets have {shape[0]} features of "
                     f"length {shape[1]} like {LOGITS_FILE} ({found}): pass --feature_metadata_file")
  info_file, info = matches[0]
  return RunInputs(
      predict_file=info.input_file,
      feature_metadata_file=feature_files.feature_metadata_path(info_file[:-len(suffix)]),
      logits_file=logits_file, do_lower_case=info.do_lower_case,
      version_2_with_negative=info.version_2_with_negative)


def _define_flags() -> None:
  """The entry point's flags (defined only when run as a program, so that
  importing this module defines none)."""
  flags.DEFINE_string("run_dir", None,
                      "The output_dir of a run_squad.py --do_predict run: supplies --predict_file, "
                      "--feature_metadata_file, --logits_file, --do_lower_case, "
                      "--version_2_with_negative and --output_dir (the files are rewritten in place) "
                      "unless they are given.")
  flags.DEFINE_string("predict_file", None,
                      "SQuAD JSON the prediction features were built from.")
  flags.DEFINE_string("feature_metadata_file", None,
                      "Metadata (JSON lines) of those features.")
  flags.DEFINE_string("logits_file", None,
                      "Raw logits saved by do_predict (.npz).")
  flags.DEFINE_string("output_dir", None,
                      "Where predictions.json, nbest_predictions.json and "
                      "null_odds.json are written.")
  flags.DEFINE_bool("do_lower_case", True,
                    "Whether the model's vocabulary is uncased.")
  flags.DEFINE_bool("version_2_with_negative", False,
                    "SQuAD 2.0: questions may have no answer.")
  flags.DEFINE_integer("n_best_size", 20,
                       "n-best predictions per question.")
  flags.DEFINE_integer("max_answer_length", 30,
                       "Longest answer, in WordPieces.")
  flags.DEFINE_float("null_score_diff_threshold", 0.0,
                     "Predict no answer if score_null - best_non_null is "
                     "above this.")
  flags.DEFINE_bool("verbose_logging", False,
                    "Log where answers cannot be aligned to the text.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise InputError(f"unexpected arguments: {' '.join(argv[1:])}")
  flag_values = flags.FLAGS
  settings = {name: flag_values[name].value for name in (
      "predict_file", "feature_metadata_file", "logits_file", "output_dir", "do_lower_case",
      "version_2_with_negative")}
  if flag_values.run_dir:
    found = dataclasses.asdict(find_run_inputs(flag_values.run_dir))
    found["output_dir"] = flag_values.run_dir
    settings.update((name, value) for name, value in found.items() if not flag_values[name].present)
  for name in ("predict_file", "feature_metadata_file", "logits_file", "output_dir"):
    if not settings[name]:
      raise InputError(f"--{name} is required (or --run_dir)")
  files = rewrite_predictions(
      settings["predict_file"], settings["feature_metadata_file"],
      settings["logits_file"], settings["output_dir"],
      do_lower_case=settings["do_lower_case"],
      version_2_with_negative=settings["version_2_with_negative"],
      n_best_size=flag_values.n_best_size,
      max_answer_length=flag_values.max_answer_length,
      null_score_diff_threshold=flag_values.null_score_diff_threshold,
      verbose_logging=flag_values.verbose_logging)
  logging.info("wrote %s", ", ".join(files.written(settings["version_2_with_negative"])))


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
