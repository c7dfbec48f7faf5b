"""Start/end logits [F, seq] float32 -> the answer spans the original keeps, as `Candidates` arrays [C].

The top-k search and the validity checks run in numpy over all features at
once (ties keep the original's order); `null_answers` gives each example's
minimum null score (SQuAD 2.0) from the position-0 logits [F].
"""
import dataclasses
from typing import Any, Sequence

import numpy as np

from bert_squad.answers import logits_io
from bert_squad.common.errors import InputError

# The original's starting value for the minimum null score ("large and
# positive"): an example whose every window scores above it keeps it.
_INITIAL_NULL_SCORE = 1000000


def feature_rows(features: Sequence[Any], logits: logits_io.Logits) -> np.ndarray:
  """[F] row of `logits` holding each feature's (the last of equal ids)."""
  problem = logits_io.logits_problem(logits._asdict(), allow_repeated_ids=True)
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
class Candidates:
  """Answer candidates: one entry per span (or per example's null answer)."""
  example: np.ndarray      # [C] example index
  row: np.ndarray          # [C] feature row (-1 for the null answer)
  start: np.ndarray        # [C] start token position in that feature
  end: np.ndarray          # [C] end token position
  start_logit: np.ndarray  # [C] float64
  end_logit: np.ndarray    # [C] float64

  def arrays(self) -> list[np.ndarray]:
    return [getattr(self, f.name) for f in dataclasses.fields(self)]

  def take(self, order: np.ndarray) -> "Candidates":
    return Candidates(*(a[order] for a in self.arrays()))


def find_spans(features: Sequence[Any], logits: logits_io.Logits, rows: np.ndarray,
               n_best_size: int, max_answer_length: int) -> Candidates:
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
  return Candidates(
      example=example[feature], row=feature, start=start, end=end,
      start_logit=logits.start_logits[rows[feature], start].astype(np.float64),
      end_logit=logits.end_logits[rows[feature], end].astype(np.float64))


def null_answers(start_logits: np.ndarray, end_logits: np.ndarray,
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
