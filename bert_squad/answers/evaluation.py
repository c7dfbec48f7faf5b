"""A gold Dataset and predictions ({id: text}) -> what the official `evaluate-v2.0.py` prints (an OrderedDict).

The entry functions of the official scripts: `evaluate_v2` (totals, HasAns /
NoAns groups, best thresholds, precision-recall APs and images) and the v1.1
script's `version_warning`; `evaluate_v1` is `metrics.evaluate_v1`. The
scores are identical to the official ones (see `metrics`).
"""
import collections
from typing import Mapping

from bert_squad.answers import eval_plots
from bert_squad.answers import metrics
from bert_squad.answers import thresholds
from bert_squad.common import io_utils


def version_warning(dataset: metrics.Dataset, expected_version: str = "1.1") -> str | None:
  """The v1.1 script's stderr warning when the file's "version" differs."""
  if dataset.version == expected_version:
    return None
  got = "no version" if dataset.version is None else f"v-{dataset.version}"
  return f"Evaluation expects v-{expected_version}, but got dataset with {got}"


def evaluate_v2(dataset: metrics.Dataset, predictions: Mapping[str, str],
                na_probs: Mapping[str, float] | None = None, na_prob_thresh: float = 1.0,
                out_image_dir: str | None = None, predictions_name: str = "predictions",
                na_probs_name: str = "na_probs") -> "collections.OrderedDict[str, metrics.Score]":
  """What `evaluate-v2.0.py` prints, in its key order.

  Args:
    dataset: the gold file.
    predictions: question id -> answer text ("" = no answer). Questions
      without one are left out of every total; extra ids are ignored.
    na_probs: question id -> no-answer probability (`--na-prob-file`); None
      means 0.0 for every id. Given, the result also holds the best_* keys.
    na_prob_thresh: answers whose na_prob exceeds it become "no answer".
    out_image_dir: with `na_probs`, adds the pr_*_ap keys and writes the
      precision-recall curves and na_prob histograms there as PNG.
    predictions_name, na_probs_name: name the inputs in error messages.

  Returns:
    exact, f1, total, HasAns_{exact,f1,total}, NoAns_{exact,f1,total} (each
    group only where it has questions), then best_exact, best_exact_thresh,
    best_f1, best_f1_thresh, pr_exact_ap, pr_f1_ap, pr_oracle_ap as given.
  """
  raw = metrics.raw_scores_v2(dataset, predictions, predictions_name)
  if na_probs is None:
    thresholded_probs = {qid: 0.0 for qid in predictions}
  else:
    thresholds.check_na_probs_cover(na_probs, raw.exact, na_probs_name)
    thresholded_probs = na_probs
  exact = metrics.apply_no_answer_threshold(raw.exact, thresholded_probs, raw.has_answer, na_prob_thresh)
  f1 = metrics.apply_no_answer_threshold(raw.f1, thresholded_probs, raw.has_answer, na_prob_thresh)
  result = collections.OrderedDict(metrics.summary(exact, f1, list(exact)))
  for prefix, answerable in (("HasAns", True), ("NoAns", False)):
    qids = [qid for qid, has in raw.has_answer.items() if has == answerable]
    if qids:
      result.update((f"{prefix}_{key}", value) for key, value in metrics.summary(exact, f1, qids))
  if na_probs is not None:
    result.update(thresholds.best_thresholds(raw, predictions, na_probs))
    if out_image_dir:
      io_utils.make_output_dir(out_image_dir, "--out-image-dir")
      curves = thresholds.precision_recall_curves(raw, na_probs)
      eval_plots.plot_pr_curves(curves, out_image_dir)
      result.update((f"pr_{name}_ap", curve.average_precision) for name, curve in curves.items())
      eval_plots.plot_na_prob_histograms(raw, na_probs, out_image_dir)
  return result
