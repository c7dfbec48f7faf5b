"""SQuAD files and answers -> per-question and total scores, identical to the official evaluators.

Reads the gold file (`Dataset` of `GoldQuestion`s), predictions ({id: text})
and no-answer probabilities ({id: number}); scores one answer (`score_v1`,
`score_v2`: (exact, F1)), all of v1.1 (`evaluate_v1`) or every predicted
question of v2.0 (`raw_scores_v2`), and totals them (`summary`).

"Identical" means the same numbers to the last digit as the official
`evaluate-v2.0.py` / `evaluate-v1.1.py`: every score is built from the same
Python values (ints where the official scripts have ints, floats where they
have floats), summed in the same order with the same operations, and scaled
by `100.0` at the same point. The official scripts' quirks are kept on
purpose (see `docs/evaluation.md`); where they crash (missing predictions in
v2.0, bad files) this module raises `InputError` or follows the documented
rule instead.

No TensorFlow here: local files are read with `open`, and `tf.io.gfile` is
imported only for `gs://` paths, so scoring the v2.0 dev set takes well under
a second.
"""
import collections
import dataclasses
import json
import numbers
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
  check_numbers(na_probs, path)
  return na_probs


def check_numbers(na_probs: Mapping[str, Any], name: str) -> None:
  """Raises `InputError` naming `name` and the question whose value is not a real number."""
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


def summary(exact: Mapping[str, Score], f1: Mapping[str, Score],
            qids: Sequence[str]) -> list[tuple[str, Score]]:
  """[("exact", %), ("f1", %), ("total", count)] over `qids`, summed in their order."""
  total = len(qids)
  return [("exact", 100.0 * sum(exact[k] for k in qids) / total),
          ("f1", 100.0 * sum(f1[k] for k in qids) / total),
          ("total", total)]
