"""Examples [E], features [F] and their logits [F, seq] -> predictions, n-best lists and null odds.

The original google-research/bert `run_squad.py` `write_predictions`,
vectorised and without the writing: `compute_predictions` returns the dicts
that become predictions.json, nbest_predictions.json and null_odds.json, byte
for byte the original's, except where the original crashes: a SQuAD 2.0
question whose n-best list holds no non-null answer predicts "" (see
docs/postprocess.md), and a feature without logits is an `InputError`.

Speed: the original sorts every feature's logits in Python, tries its
n_best_size**2 start/end pairs one by one and runs BasicTokenizer on every
candidate's text. Here the top-k search and the validity checks run in numpy
over all features at once (`span_search`; ties still keep the original's
order), and each document word is tokenized once for all the candidates that
contain it (`text_alignment`).
"""
import math
from typing import Any, Iterable, Sequence

import numpy as np

from bert_squad.answers import logits_io
from bert_squad.answers import span_search
from bert_squad.answers import text_alignment
from bert_squad.common import gc_utils
from bert_squad.common.errors import InputError

# Placeholder answer of the original when nothing valid was found (v1.1 only:
# v2.0 always has the null answer).
_NO_ANSWER_PLACEHOLDER = "empty"


def _rank(spans: span_search.Candidates, nulls: list[tuple[Any, Any, Any]] | None
          ) -> span_search.Candidates:
  """Adds the null answers and sorts by example, then score, best first.

  The sort is stable and each null answer comes after its example's spans,
  so equal scores keep the original's order (the null answer losing ties).
  """
  if nulls:
    null_logits = np.array([n[1:] for n in nulls], dtype=np.float64)
    num_examples = len(nulls)
    spans = span_search.Candidates(*(np.concatenate([a, b]) for a, b in zip(
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

  def __init__(self, ranked: span_search.Candidates, num_examples: int):
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
                       aligner: text_alignment.SpanAligner) -> list[tuple[str, Any, Any]]:
  """The original's n-best list of one example.

  Args:
    example: the example.
    example_index: its index in the examples.
    features: all features (rows of `ranked.row`).
    ranked: all candidates, best first per example.
    null: `span_search.null_answers(...)[example_index]` for v2.0, None for v1.1.

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
    text = final_text(text_alignment.detokenize(feature.tokens[start:end + 1]),
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


def _check_prediction_args(examples: Sequence[Any], features: Sequence[Any],
                           n_best_size: int, max_answer_length: int) -> None:
  """Raises InputError for sizes below 1 or a feature whose example_index is outside `examples`."""
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


def _example_answers(examples: Sequence[Any], features: Sequence[Any],
                     ranked: _RankedCandidates,
                     nulls: list[tuple[Any, Any, Any]] | None, n_best_size: int,
                     aligner: text_alignment.SpanAligner,
                     null_score_diff_threshold: float
                     ) -> tuple[dict[str, str],
                                dict[str, list[dict[str, Any]]],
                                dict[str, Any]]:
  """(predictions, nbest, null_odds) of every example, in the order of `examples`.

  Args:
    features: all features, grouped by example (rows of `ranked.row`).
    ranked: all candidates, best first per example.
    nulls: `span_search.null_answers(...)` for v2.0 ([E]), None for v1.1.
  """
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


@gc_utils.cyclic_gc_paused()
def compute_predictions(examples: Sequence[Any], features: Sequence[Any],
                        results: Iterable[logits_io.RawResult] | logits_io.Logits,
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
  _check_prediction_args(examples, features, n_best_size, max_answer_length)
  # Each example's features together, in their relative order (the
  # original's example_index -> [features] lists).
  features = sorted(features, key=lambda f: f.example_index)
  if isinstance(results, logits_io.Logits):
    logits = logits_io.Logits(*(np.asarray(a) for a in results))
  else:
    logits = logits_io.logits_table(results)
  rows = span_search.feature_rows(features, logits)
  spans = span_search.find_spans(features, logits, rows, n_best_size, max_answer_length)
  nulls = None
  if version_2_with_negative:
    feature_rows = np.searchsorted([f.example_index for f in features],
                                   np.arange(len(examples) + 1)).tolist()
    nulls = span_search.null_answers(logits.start_logits[rows, 0],
                                     logits.end_logits[rows, 0], feature_rows)
  ranked = _RankedCandidates(_rank(spans, nulls), len(examples))
  aligner = text_alignment.SpanAligner(do_lower_case, verbose_logging)
  return _example_answers(examples, features, ranked, nulls, n_best_size,
                          aligner, null_score_diff_threshold)
