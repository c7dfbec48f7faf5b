"""SQuAD scores, identical to the official `evaluate-v2.0.py` / `evaluate-v1.1.py`.

"Identical" means the same numbers to the last digit: every score is built
from the same Python values (ints where the official scripts have ints,
floats where they have floats), summed in the same order with the same
operations, and scaled by `100.0` at the same point. The official scripts'
quirks are kept on purpose (see `docs/evaluation.md`); where they crash
(missing predictions in v2.0, bad files) this module raises `InputError`
or follows the documented rule instead.

No TensorFlow here: local files are read with `open`, and `tf.io.gfile` is
imported only for `gs://` paths, so scoring the v2.0 dev set takes well under
a second. matplotlib is imported only when images are asked for.
"""
import collections
import dataclasses
import json
import numbers
import os
import re
import string
from typing import Any, Mapping, Sequence

from bert_squad.common import io_utils
from bert_squad.common.errors import located

Score = int | float  # the official scripts mix both; keeping the type keeps sums identical

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


# ---------------------------------------------------------------------------
# Reading and checking the input files.


@dataclasses.dataclass(frozen=True)
class GoldQuestion:
  """One question of a SQuAD file: its id and gold answer texts, in file order."""
  qid: str
  answers: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A SQuAD v1.1 / v2.0 file reduced to what scoring needs.

  Attributes:
    path: where it was read from (names the file in error messages).
    version: the file's "version" value, None when absent.
    questions: every question in file order (duplicate ids kept, as the
      official scripts iterate them).
  """
  path: str
  version: Any
  questions: list[GoldQuestion]


def _read_text(path: str) -> str:
  """The whole file as text; `gs://` (any `scheme://`) goes through tf.io.gfile."""
  try:
    return io_utils.read_bytes(path).decode("utf-8-sig")
  except OSError as e:
    raise located(path, "", f"cannot read it ({e.strerror or e})") from None
  except UnicodeDecodeError:
    raise located(path, "", "not UTF-8 text") from None


def read_json(path: str) -> Any:
  """Parses a JSON file; an unreadable, empty or malformed file raises `InputError`."""
  text = _read_text(path)
  if not text.strip():
    raise located(path, "", "the file is empty, expected JSON")
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise located(path, "", f"not valid JSON ({e})") from None


def _expect(value: Any, kind: type, path: str, where: str, what: str) -> Any:
  if not isinstance(value, kind):
    raise located(path, where, f"{what} must be a JSON {_json_type_name(kind)}, "
                  f"got {_json_type_name(type(value))}")
  return value


def _json_type_name(kind: type) -> str:
  names = {dict: "object", list: "array", str: "string", bool: "boolean",
           int: "number", float: "number", type(None): "null"}
  return names.get(kind, kind.__name__)


def parse_dataset(dataset_json: Any, path: str = "dataset") -> Dataset:
  """Checks the structure the scorers read (data/paragraphs/qas/id/answers/text).

  Args:
    dataset_json: the parsed SQuAD JSON.
    path: names the file in error messages.
  """
  _expect(dataset_json, dict, path, "", "the top level")
  articles = _expect(dataset_json.get("data"), list, path, "", "'data'")
  questions = []
  for a, article in enumerate(articles):
    where = f"article {a}"
    _expect(article, dict, path, where, "an article")
    paragraphs = _expect(article.get("paragraphs"), list, path, where, "'paragraphs'")
    for p, paragraph in enumerate(paragraphs):
      where = f"article {a}, paragraph {p}"
      _expect(paragraph, dict, path, where, "a paragraph")
      qas = _expect(paragraph.get("qas"), list, path, where, "'qas'")
      for q, qa in enumerate(qas):
        questions.append(_parse_question(qa, path, f"{where}, question {q}"))
  if not questions:
    raise located(path, "", "the file holds no questions")
  return Dataset(path=path, version=dataset_json.get("version"), questions=questions)


def _parse_question(qa: Any, path: str, where: str) -> GoldQuestion:
  _expect(qa, dict, path, where, "a question")
  qid = _expect(qa.get("id"), str, path, where, "'id'")
  where = f"{where} ('{qid}')"
  answers = _expect(qa.get("answers"), list, path, where, "'answers'")
  texts = []
  for i, answer in enumerate(answers):
    _expect(answer, dict, path, f"{where}, answer {i}", "an answer")
    texts.append(_expect(answer.get("text"), str, path, f"{where}, answer {i}", "'text'"))
  return GoldQuestion(qid=qid, answers=tuple(texts))


def load_dataset(path: str) -> Dataset:
  """Reads and checks a SQuAD v1.1 or v2.0 JSON file."""
  return parse_dataset(read_json(path), path)


def load_predictions(path: str) -> dict[str, str]:
  """Reads `{question id: answer text}`; "" means "no answer" (v2.0).

  Raises:
    InputError: the file is not a non-empty JSON object of strings.
  """
  predictions = _expect(read_json(path), dict, path, "",
                        "predictions (question id -> answer text)")
  if not predictions:
    raise located(path, "", "holds no predictions (an empty JSON object)")
  for qid, answer in predictions.items():
    _expect(answer, str, path, f"question '{qid}'", "the predicted answer")
  return predictions


def load_na_probs(path: str) -> dict[str, float]:
  """Reads `{question id: no-answer probability or score}` (any real numbers)."""
  na_probs = _expect(read_json(path), dict, path, "",
                     "no-answer probabilities (question id -> number)")
  _check_numbers(na_probs, path)
  return na_probs


def _check_numbers(na_probs: Mapping[str, Any], name: str) -> None:
  # JSON booleans are not numbers, although Python would compare them as 0 / 1.
  for qid, value in na_probs.items():
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
      raise located(name, f"question '{qid}'",
                    f"the no-answer probability must be a number, got "
                    f"{_json_type_name(type(value))} {json.dumps(value)[:40]}")


def check_predictions_match(dataset: Dataset, predictions: Mapping[str, str],
                            predictions_name: str = "predictions") -> None:
  """Raises `InputError` when no prediction is for a question of `dataset` (another dataset's file)."""
  if not any(question.qid in predictions for question in dataset.questions):
    raise located(predictions_name, "",
                  f"none of its {len(predictions)} predictions is for a question "
                  f"of {dataset.path} (predictions for another dataset?)")


def missing_predictions(dataset: Dataset, predictions: Mapping[str, str]) -> list[str]:
  """Ids of the dataset's questions without a prediction, in file order."""
  return [q.qid for q in dataset.questions if q.qid not in predictions]


# ---------------------------------------------------------------------------
# Answer normalization and per-question scores.


def normalize_answer(text: str) -> str:
  """Lower-cases, drops ASCII punctuation, then a/an/the, then extra whitespace.

  The steps run in the official order, so punctuation is deleted, not spaced:
  "an-apple" becomes the one word "anapple" and keeps its article.
  """
  without_punctuation = text.lower().translate(_PUNCTUATION)
  return " ".join(_ARTICLES.sub(" ", without_punctuation).split())


def token_f1(prediction_tokens: Sequence[str], gold_tokens: Sequence[str]) -> Score:
  """Bag-of-words F1 of two normalized token lists (v1.1 rule: no overlap -> int 0)."""
  num_same = sum((collections.Counter(prediction_tokens)
                  & collections.Counter(gold_tokens)).values())
  if num_same == 0:
    return 0
  precision = 1.0 * num_same / len(prediction_tokens)
  recall = 1.0 * num_same / len(gold_tokens)
  return (2 * precision * recall) / (precision + recall)


def token_f1_v2(prediction_tokens: Sequence[str], gold_tokens: Sequence[str]) -> Score:
  """v2.0 F1: when either side is empty ("no answer"), int 1 if both are, else 0."""
  if not prediction_tokens or not gold_tokens:
    return int(prediction_tokens == gold_tokens)
  return token_f1(prediction_tokens, gold_tokens)


def score_v1(prediction: str, gold_answers: Sequence[str]) -> tuple[bool, Score]:
  """(exact match, F1) of one v1.1 prediction: the max over all gold answers."""
  normalized_prediction = normalize_answer(prediction)
  prediction_tokens = normalized_prediction.split()
  normalized_golds = [normalize_answer(a) for a in gold_answers]
  exact = max(normalized_prediction == g for g in normalized_golds)
  f1 = max(token_f1(prediction_tokens, g.split()) for g in normalized_golds)
  return exact, f1


def _v2_gold_answers(gold_answers: Sequence[str]) -> list[str]:
  """Normalized gold answers; ones that normalize to "" are dropped, none left -> [""]."""
  return [g for g in map(normalize_answer, gold_answers) if g] or [""]


def score_v2(prediction: str, gold_answers: Sequence[str]) -> tuple[int, Score]:
  """(exact, F1) of one v2.0 prediction; no gold answers means "" is the answer."""
  normalized_prediction = normalize_answer(prediction)
  prediction_tokens = normalized_prediction.split()
  normalized_golds = _v2_gold_answers(gold_answers)
  exact = max(int(normalized_prediction == g) for g in normalized_golds)
  f1 = max(token_f1_v2(prediction_tokens, g.split()) for g in normalized_golds)
  return exact, f1


# ---------------------------------------------------------------------------
# SQuAD v1.1.


def evaluate_v1(dataset: Dataset, predictions: Mapping[str, str]) -> dict[str, float]:
  """`{"exact_match", "f1"}` as `evaluate-v1.1.py` prints them.

  Every question counts (duplicates too); one without a prediction scores 0.

  Raises:
    InputError: a predicted question has no gold answer (a v2.0 file?).
  """
  exact_match = f1 = total = 0
  for question in dataset.questions:
    total += 1
    if question.qid not in predictions:
      continue
    if not question.answers:
      raise located(dataset.path, f"question '{question.qid}'",
                    "has no gold answer, which SQuAD v1.1 scoring cannot handle "
                    "(a v2.0 file? use --squad-version 2.0)")
    exact, f1_score = score_v1(predictions[question.qid], question.answers)
    # Running `+=` in file order, as the official loop accumulates.
    exact_match += exact
    f1 += f1_score
  return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def version_warning(dataset: Dataset, expected_version: str = "1.1") -> str | None:
  """The v1.1 script's stderr warning when the file's "version" differs."""
  if dataset.version == expected_version:
    return None
  got = "no version" if dataset.version is None else f"v-{dataset.version}"
  return f"Evaluation expects v-{expected_version}, but got dataset with {got}"


# ---------------------------------------------------------------------------
# SQuAD v2.0.


@dataclasses.dataclass
class RawScores:
  """Per-question v2.0 scores before any no-answer threshold.

  Attributes:
    exact, f1: question id -> score, for the questions that have a prediction,
      in file order (a duplicated id keeps its first place, its last score).
    has_answer: question id -> whether the question has a gold answer, for
      the same ids in the same order.
  """
  exact: dict[str, Score]
  f1: dict[str, Score]
  has_answer: dict[str, bool]


def raw_scores_v2(dataset: Dataset, predictions: Mapping[str, str],
                  predictions_name: str = "predictions") -> RawScores:
  """Scores every question that has a prediction; the others are left out.

  Raises:
    InputError: no prediction matches a question of the dataset.
  """
  check_predictions_match(dataset, predictions, predictions_name)
  exact, f1, has_answer = {}, {}, {}
  for question in dataset.questions:
    if question.qid not in predictions:
      continue
    has_answer[question.qid] = bool(question.answers)
    exact[question.qid], f1[question.qid] = score_v2(
        predictions[question.qid], question.answers)
  return RawScores(exact=exact, f1=f1, has_answer=has_answer)


def apply_no_answer_threshold(scores: Mapping[str, Score], na_probs: Mapping[str, float],
                              has_answer: Mapping[str, bool],
                              na_prob_thresh: float) -> dict[str, Score]:
  """Where na_prob > threshold, the prediction becomes "no answer": 1.0 if right."""
  return {qid: float(not has_answer[qid]) if na_probs[qid] > na_prob_thresh else score
          for qid, score in scores.items()}


def _summary(exact: Mapping[str, Score], f1: Mapping[str, Score],
             qids: Sequence[str]) -> list[tuple[str, Score]]:
  total = len(qids)
  return [("exact", 100.0 * sum(exact[k] for k in qids) / total),
          ("f1", 100.0 * sum(f1[k] for k in qids) / total),
          ("total", total)]


def _check_na_probs_cover(na_probs: Mapping[str, float], scored: Mapping[str, Score],
                          na_probs_name: str) -> None:
  _check_numbers(na_probs, na_probs_name)
  uncovered = [qid for qid in scored if qid not in na_probs]
  if uncovered:
    raise located(na_probs_name, "",
                  f"no no-answer probability for {len(uncovered)} predicted "
                  f"question(s), e.g. '{uncovered[0]}'")


def _ranked_by_na_prob(na_probs: Mapping[str, float]) -> list[str]:
  """All ids by rising na_prob, ties in file order (a stable sort of every id)."""
  return sorted(na_probs, key=na_probs.__getitem__)


def _best_threshold(scores: Mapping[str, Score], predictions: Mapping[str, str],
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


def _best_thresholds(raw: RawScores, predictions: Mapping[str, str],
                     na_probs: Mapping[str, float]) -> list[tuple[str, Score]]:
  best_exact, exact_thresh = _best_threshold(raw.exact, predictions, na_probs, raw.has_answer)
  best_f1, f1_thresh = _best_threshold(raw.f1, predictions, na_probs, raw.has_answer)
  return [("best_exact", best_exact), ("best_exact_thresh", exact_thresh),
          ("best_f1", best_f1), ("best_f1_thresh", f1_thresh)]


def find_best_thresholds(dataset: Dataset, predictions: Mapping[str, str],
                         na_probs: Mapping[str, float],
                         predictions_name: str = "predictions",
                         na_probs_name: str = "na_probs") -> "collections.OrderedDict[str, Score]":
  """`best_exact`, `best_exact_thresh`, `best_f1`, `best_f1_thresh`.

  For `run_squad.py`: `na_probs` is the null-odds dict (score_null minus the
  best non-null score per id, as written to null_odds.json); the best F1
  threshold is the `null_score_diff_threshold` to predict with.
  """
  raw = raw_scores_v2(dataset, predictions, predictions_name)
  _check_na_probs_cover(na_probs, raw.exact, na_probs_name)
  return collections.OrderedDict(_best_thresholds(raw, predictions, na_probs))


@dataclasses.dataclass
class PrecisionRecallCurve:
  """Points of a precision-recall curve (start at precision 1, recall 0) and its AP in %."""
  precisions: list[float]
  recalls: list[float]
  average_precision: float


def precision_recall_curve(scores: Mapping[str, Score], na_probs: Mapping[str, float],
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


def precision_recall_curves(raw: RawScores,
                            na_probs: Mapping[str, float]) -> dict[str, PrecisionRecallCurve]:
  """The exact, F1 and oracle (answerable or not) curves; {} if nothing is answerable."""
  if not any(raw.has_answer.values()):
    return {}
  oracle = {qid: float(v) for qid, v in raw.has_answer.items()}
  return {name: precision_recall_curve(scores, na_probs, raw.has_answer)
          for name, scores in (("exact", raw.exact), ("f1", raw.f1), ("oracle", oracle))}


_CURVE_TITLES = {
    "exact": "Precision-Recall curve for Exact Match score",
    "f1": "Precision-Recall curve for F1 score",
    "oracle": "Oracle Precision-Recall curve (binary task of HasAns vs. NoAns)",
}


def evaluate_v2(dataset: Dataset, predictions: Mapping[str, str],
                na_probs: Mapping[str, float] | None = None, na_prob_thresh: float = 1.0,
                out_image_dir: str | None = None, predictions_name: str = "predictions",
                na_probs_name: str = "na_probs") -> "collections.OrderedDict[str, Score]":
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
  raw = raw_scores_v2(dataset, predictions, predictions_name)
  if na_probs is None:
    thresholded_probs = {qid: 0.0 for qid in predictions}
  else:
    _check_na_probs_cover(na_probs, raw.exact, na_probs_name)
    thresholded_probs = na_probs
  exact = apply_no_answer_threshold(raw.exact, thresholded_probs, raw.has_answer, na_prob_thresh)
  f1 = apply_no_answer_threshold(raw.f1, thresholded_probs, raw.has_answer, na_prob_thresh)
  result = collections.OrderedDict(_summary(exact, f1, list(exact)))
  for prefix, answerable in (("HasAns", True), ("NoAns", False)):
    qids = [qid for qid, has in raw.has_answer.items() if has == answerable]
    if qids:
      result.update((f"{prefix}_{key}", value) for key, value in _summary(exact, f1, qids))
  if na_probs is not None:
    result.update(_best_thresholds(raw, predictions, na_probs))
    if out_image_dir:
      io_utils.make_output_dir(out_image_dir, "--out-image-dir")
      curves = precision_recall_curves(raw, na_probs)
      plot_pr_curves(curves, out_image_dir)
      result.update((f"pr_{name}_ap", curve.average_precision) for name, curve in curves.items())
      plot_na_prob_histograms(raw, na_probs, out_image_dir)
  return result


# ---------------------------------------------------------------------------
# Images (matplotlib, Agg) and output files.


def _new_axes() -> tuple[Any, Any]:
  """A pyplot-free Agg figure (no global state, no display needed) and its axes."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  figure = Figure()
  FigureCanvasAgg(figure)
  return figure, figure.add_subplot()


def plot_pr_curves(curves: Mapping[str, PrecisionRecallCurve], out_dir: str) -> None:
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


def plot_na_prob_histograms(raw: RawScores, na_probs: Mapping[str, float],
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
