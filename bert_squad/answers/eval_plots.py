"""Precision-recall curves and na_prob histograms -> the official script's PNG images.

matplotlib (Agg, no pyplot state) is imported only when images are asked for.
"""
import os
from typing import Any, Mapping

from bert_squad.answers import metrics
from bert_squad.answers import thresholds
from bert_squad.common import io_utils

_CURVE_TITLES = {
    "exact": "Precision-Recall curve for Exact Match score",
    "f1": "Precision-Recall curve for F1 score",
    "oracle": "Oracle Precision-Recall curve (binary task of HasAns vs. NoAns)",
}


def _new_axes() -> tuple[Any, Any]:
  """A pyplot-free Agg figure (no global state, no display needed) and its axes."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  figure = Figure()
  FigureCanvasAgg(figure)
  return figure, figure.add_subplot()


def plot_pr_curves(curves: Mapping[str, thresholds.PrecisionRecallCurve], out_dir: str) -> None:
  """Writes pr_<name>.png per curve: a step plot with the area under it shaded."""
  for name, curve in curves.items():
    figure, axes = _new_axes()
    axes.step(curve.recalls, curve.precisions, color="b", alpha=0.2, where="post")
    axes.fill_between(curve.recalls, curve.precisions, step="post", alpha=0.2, color="b")
    axes.set_xlabel("Recall")
    axes.set_ylabel("Precision")
    axes.set_xlim([0.0, 1.05])
    axes.set_ylim([0.0, 1.05])
    axes.set_title(_CURVE_TITLES[name])
    _save_png(figure, os.path.join(out_dir, f"pr_{name}.png"))


def plot_na_prob_histograms(raw: metrics.RawScores, na_probs: Mapping[str, float],
                            out_dir: str) -> None:
  """Writes na_prob_hist_hasAns.png / _noAns.png: share of questions per na_prob bin."""
  for name, answerable in (("hasAns", True), ("noAns", False)):
    values = [na_probs[qid] for qid, has in raw.has_answer.items() if has == answerable]
    if not values:
      continue
    figure, axes = _new_axes()
    axes.hist(values, weights=[1.0 / len(values)] * len(values), bins=20, range=(0.0, 1.0))
    axes.set_xlabel("Model probability of no-answer")
    axes.set_ylabel("Proportion of dataset")
    axes.set_title(f"Histogram of no-answer probability: {name}")
    _save_png(figure, os.path.join(out_dir, f"na_prob_hist_{name}.png"))


def _save_png(figure: Any, path: str) -> None:
  with io_utils.atomic_open(path, "wb") as f:
    figure.savefig(f, format="png")
