"""Per-question v2.0 scores and no-answer probabilities -> the best null thresholds and precision-recall curves.

`find_best_thresholds` gives best_exact(_thresh) and best_f1(_thresh) as the
official `evaluate-v2.0.py` computes them (answering in rising na_prob
order); `precision_recall_curves` gives its exact, F1 and oracle curves
(`PrecisionRecallCurve`: precisions / recalls [points], AP in %).
"""
import collections
import dataclasses
from typing import Mapping

from bert_squad.answers import metrics
from bert_squad.common.errors import located


def check_na_probs_cover(na_probs: Mapping[str, float], scored: Mapping[str, metrics.Score],
                         na_probs_name: str) -> None:
  """Raises `InputError` when a na_prob is not a number or a scored question has none."""
  metrics.check_numbers(na_probs, na_probs_name)
  uncovered = [qid for qid in scored if qid not in na_probs]
  if uncovered:
    raise located(na_probs_name, "",
                  f"no no-answer probability for {len(uncovered)} predicted "
                  f"question(s), e.g. '{uncovered[0]}'")


def _ranked_by_na_prob(na_probs: Mapping[str, float]) -> list[str]:
  """All ids by rising na_prob, ties in file order (a stable sort of every id)."""
  return sorted(na_probs, key=na_probs.__getitem__)


def _best_threshold(scores: Mapping[str, metrics.Score], predictions: Mapping[str, str],
                    na_probs: Mapping[str, float],
                    has_answer: Mapping[str, bool]) -> tuple[float, float]:
  """Best score over "answer only where na_prob <= t", and that t.

  Starts from "no answer everywhere" (the unanswerable questions are right)
  and lets the questions in rising na_prob answer one by one. An answered
  unanswerable question costs 1 whenever its prediction is a non-empty
  string, even one that normalizes to "" (the official rule).
  """
  current = sum(1 for qid in scores if not has_answer[qid])
  best, best_thresh = current, 0.0
  for qid in _ranked_by_na_prob(na_probs):
    if qid not in scores:
      continue
    if has_answer[qid]:
      current += scores[qid]
    elif predictions[qid]:
      current += -1
    if current > best:
      best, best_thresh = current, na_probs[qid]
  return 100.0 * best / len(scores), best_thresh


def best_thresholds(raw: metrics.RawScores, predictions: Mapping[str, str],
                    na_probs: Mapping[str, float]) -> list[tuple[str, metrics.Score]]:
  """best_exact, best_exact_thresh, best_f1, best_f1_thresh as (key, value), the official order."""
  best_exact, exact_thresh = _best_threshold(raw.exact, predictions, na_probs, raw.has_answer)
  best_f1, f1_thresh = _best_threshold(raw.f1, predictions, na_probs, raw.has_answer)
  return [("best_exact", best_exact), ("best_exact_thresh", exact_thresh),
          ("best_f1", best_f1), ("best_f1_thresh", f1_thresh)]


def find_best_thresholds(dataset: metrics.Dataset, predictions: Mapping[str, str],
                         na_probs: Mapping[str, float],
                         predictions_name: str = "predictions",
                         na_probs_name: str = "na_probs") -> "collections.OrderedDict[str, metrics.Score]":
  """`best_exact`, `best_exact_thresh`, `best_f1`, `best_f1_thresh`.

  For `run_squad.py`: `na_probs` is the null-odds dict (score_null minus the
  best non-null score per id, as written to null_odds.json); the best F1
  threshold is the `null_score_diff_threshold` to predict with.
  """
  raw = metrics.raw_scores_v2(dataset, predictions, predictions_name)
  check_na_probs_cover(na_probs, raw.exact, na_probs_name)
  return collections.OrderedDict(best_thresholds(raw, predictions, na_probs))


@dataclasses.dataclass
class PrecisionRecallCurve:
  """Points of a precision-recall curve (start at precision 1, recall 0) and its AP in %."""
  precisions: list[float]
  recalls: list[float]
  average_precision: float


def precision_recall_curve(scores: Mapping[str, metrics.Score], na_probs: Mapping[str, float],
                           has_answer: Mapping[str, bool]) -> PrecisionRecallCurve:
  """Answering in rising na_prob order: a point wherever a threshold fits.

  Args:
    scores: question id -> score of its answer (counts for answerable ids).
    na_probs: question id -> no-answer probability; ids without a score skipped.
    has_answer: question id -> whether it is answerable, for every scored id.
  """
  num_answerable = sum(1 for qid in scores if has_answer[qid])
  ranked = [qid for qid in _ranked_by_na_prob(na_probs) if qid in scores]
  true_positives = 0.0
  precisions, recalls = [1.0], [0.0]
  average_precision = 0.0
  for i, qid in enumerate(ranked):
    if has_answer[qid]:
      true_positives += scores[qid]
    precision = true_positives / float(i + 1)
    recall = true_positives / float(num_answerable)
    if i == len(ranked) - 1 or na_probs[qid] != na_probs[ranked[i + 1]]:
      average_precision += precision * (recall - recalls[-1])
      precisions.append(precision)
      recalls.append(recall)
  return PrecisionRecallCurve(precisions, recalls, 100.0 * average_precision)


def precision_recall_curves(raw: metrics.RawScores,
                            na_probs: Mapping[str, float]) -> dict[str, PrecisionRecallCurve]:
  """The exact, F1 and oracle (answerable or not) curves; {} if nothing is answerable."""
  if not any(raw.has_answer.values()):
    return {}
  oracle = {qid: float(v) for qid, v in raw.has_answer.items()}
  return {name: precision_recall_curve(scores, na_probs, raw.has_answer)
          for name, scores in (("exact", raw.exact), ("f1", raw.f1), ("oracle", oracle))}
