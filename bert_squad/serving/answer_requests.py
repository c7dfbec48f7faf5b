"""Answers from an exported SavedModel: JSON-lines requests in, JSON-lines answers out.

JSON lines (str) -> `Request`s -> the SavedModel's `answer` signature in
batches -> one `{"id"?, "answer", "score"}` (or `{"id"?, "error"}`) dict per
request, in order.
"""
import dataclasses
import json
from typing import Any, Callable, Iterable, Sequence, TextIO

import tensorflow as tf
import tensorflow_text  # noqa: F401  pylint: disable=unused-import  (registers the tokenizer ops)

from bert_squad.common.errors import InputError
from bert_squad.serving import serving_module

AnswerFn = Callable[..., dict[str, tf.Tensor]]


@dataclasses.dataclass(frozen=True)
class Request:
  """One question about one context; `id` is echoed back as given (None if absent).

  `problem` says why it cannot be answered (see `blank_text_problem`); such a
  request gets an error object instead of an answer.
  """
  question: str
  context: str
  id: Any = None
  problem: str | None = None


def blank_text_problem(question: str, context: str, question_name: str,
                       context_name: str) -> str | None:
  """"<name> is empty" (or blank) for the first empty or whitespace-only text, else None.

  The model would find no span and answer with the original's placeholder.
  """
  for name, text in ((question_name, question), (context_name, context)):
    if not text:
      return f"{name} is empty"
    if not text.strip():
      return f"{name} is blank (only whitespace)"
  return None


def load_answer_fn(model_dir: str) -> AnswerFn:
  """The `answer` signature of the SavedModel in `model_dir`.

  Raises:
    InputError: no SavedModel there, or one exported without `answer`.
  """
  if not tf.saved_model.contains_saved_model(model_dir):
    raise InputError(f"--model_dir={model_dir}: no SavedModel here (saved_model.pb); write one "
                     "with python -m bert_squad.export")
  signatures = tf.saved_model.load(model_dir).signatures
  if serving_module.ANSWER_SIGNATURE not in signatures:
    raise InputError(f"--model_dir={model_dir}: the SavedModel has no "
                     f"'{serving_module.ANSWER_SIGNATURE}' signature (only "
                     f"{', '.join(sorted(signatures))}); export it again without "
                     "--noanswer_signature")
  return signatures[serving_module.ANSWER_SIGNATURE]


def answer_batch(answer_fn: AnswerFn, requests: Sequence[Request]) -> list[dict[str, Any]]:
  """Answers of `requests` in order: `{"id"?, "answer", "score"}` each (id only if given).

  A request with a `problem` is not passed to the model: its result is
  `{"id"?, "error": problem}`.
  """
  answerable = [r for r in requests if r.problem is None]
  answers = iter(())
  if answerable:
    outputs = answer_fn(question=tf.constant([r.question for r in answerable], tf.string),
                        context=tf.constant([r.context for r in answerable], tf.string))
    answers = zip(outputs["answer"].numpy(), outputs["score"].numpy())
  results = []
  for request in requests:
    result = {} if request.id is None else {"id": request.id}
    if request.problem is None:
      answer, score = next(answers)
      result.update(answer=answer.decode("utf-8"), score=float(score))
    else:
      result.update(error=request.problem)
    results.append(result)
  return results


def parse_request_line(line: str, source: str, line_number: int) -> Request:
  """One JSON line -> `Request`; InputError naming `source` and the line number."""
  where = f"line {line_number}"
  try:
    record = json.loads(line)
  except json.JSONDecodeError as e:
    raise InputError(f"{source}: {where}: not valid JSON: {e.msg} (column {e.colno})") from None
  if not isinstance(record, dict):
    raise InputError(f"{source}: {where}: expected a JSON object with \"question\" and "
                     "\"context\"")
  for key in ("question", "context"):
    if not isinstance(record.get(key), str):
      raise InputError(f"{source}: {where}: \"{key}\" must be a string")
  problem = blank_text_problem(record["question"], record["context"], '"question"', '"context"')
  return Request(question=record["question"], context=record["context"], id=record.get("id"),
                 problem=f"{source}: {where}: {problem}" if problem else None)


def read_requests(lines: Iterable[str], source: str = "stdin") -> list[Request]:
  """All requests of a JSON-lines stream (blank lines are skipped)."""
  return [parse_request_line(line, source, number)
          for number, line in enumerate(lines, start=1) if line.strip()]


def write_answers(answer_fn: AnswerFn, requests: Sequence[Request], out: TextIO,
                  batch_size: int) -> None:
  """Answers `requests` in batches and writes one JSON line each, in order."""
  for begin in range(0, len(requests), batch_size):
    for result in answer_batch(answer_fn, requests[begin:begin + batch_size]):
      out.write(json.dumps(result, ensure_ascii=False) + "\n")
    out.flush()
