"""Answers from an exported SavedModel: JSON-lines requests in, JSON-lines answers out.

JSON lines (str) -> `Request`s -> the SavedModel's `answer` signature in
batches -> one `{"id"?, "answer", "score"}` (or `{"id"?, "error"}`) dict per
request, in order. With length bucketing, the `answer_trimmed` signature gets
batches of requests of similar length (`batches_by_length`), and the
answers are put back in the requests' order.
"""
import dataclasses
import json
import os
import sys
from typing import Any, Callable, Iterable, Sequence, TextIO

import tensorflow as tf
import tensorflow_text  # noqa: F401  pylint: disable=unused-import  (registers the tokenizer ops)

from bert_squad.common import progress
from bert_squad.common.errors import InputError
from bert_squad.serving import saved_model
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


def load_answer_fn(model_dir: str, length_bucketing: bool = False) -> AnswerFn:
  """The `answer` (or, with `length_bucketing`, `answer_trimmed`) signature of the SavedModel in `model_dir`.

  Raises:
    InputError: no SavedModel there, or one exported without that signature.
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
  if not length_bucketing:
    return signatures[serving_module.ANSWER_SIGNATURE]
  if serving_module.ANSWER_TRIMMED_SIGNATURE not in signatures:
    raise InputError(f"--model_dir={model_dir}: the SavedModel has no "
                     f"'{serving_module.ANSWER_TRIMMED_SIGNATURE}' signature that "
                     "--length_bucketing needs (it was exported by an older bert_squad); export "
                     "it again, or leave out --length_bucketing")
  return signatures[serving_module.ANSWER_TRIMMED_SIGNATURE]


@dataclasses.dataclass
class Work:
  """What the model computed: doc-stride windows, and positions (each window x the width it ran at)."""
  windows: int = 0
  positions: int = 0


def export_settings(model_dir: str) -> dict[str, Any]:
  """The settings `bert_squad.export` wrote beside the SavedModel ({} if there are none)."""
  path = os.path.join(model_dir, saved_model.SETTINGS_FILE)
  if not tf.io.gfile.exists(path):
    return {}
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def answer_batch(answer_fn: AnswerFn, requests: Sequence[Request],
                 work: Work | None = None) -> list[dict[str, Any]]:
  """Answers of `requests` in order: `{"id"?, "answer", "score"}` each (id only if given).

  A request with a `problem` is not passed to the model: its result is
  `{"id"?, "error": problem}`. `work`, if given, is increased by what the
  model computed (from the signature's `num_windows` and `window_width`).
  """
  answerable = [r for r in requests if r.problem is None]
  answers = iter(())
  if answerable:
    outputs = answer_fn(question=tf.constant([r.question for r in answerable], tf.string),
                        context=tf.constant([r.context for r in answerable], tf.string))
    answers = zip(outputs["answer"].numpy(), outputs["score"].numpy())
    if work is not None and "num_windows" in outputs:
      windows = outputs["num_windows"].numpy()
      work.windows += int(windows.sum())
      work.positions += int((windows * outputs["window_width"].numpy()).sum())
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


def batches_by_length(requests: Sequence[Request], batch_size: int) -> list[list[int]]:
  """Request indices in batches of `batch_size`, from the shortest request to the longest.

  Length is the characters of question + context: a cheap stand-in for the
  wordpieces that decides the batch's window width. Equal lengths keep the
  input order, so the batches are the same on every run.
  """
  order = sorted(range(len(requests)),
                 key=lambda i: len(requests[i].question) + len(requests[i].context))
  return [order[begin:begin + batch_size] for begin in range(0, len(order), batch_size)]


def _write(results: Iterable[dict[str, Any]], out: TextIO) -> None:
  for result in results:
    out.write(json.dumps(result, ensure_ascii=False) + "\n")
  out.flush()


def write_answers(answer_fn: AnswerFn, requests: Sequence[Request], out: TextIO,
                  batch_size: int, length_bucketing: bool = False,
                  progress_stream: TextIO | None = None) -> Work:
  """Answers `requests` in batches and writes one JSON line each, in order; returns what the model computed.

  Without length bucketing each batch is written as soon as it is answered;
  with it the batches follow `batches_by_length`, and the lines are written
  once all are answered, in the requests' order. With `progress_stream` a
  progress bar (questions answered, rate, ETA) goes there.
  """
  work = Work()
  with progress.Progress(len(requests), "answer", "questions", progress_stream or sys.stderr,
                         enabled=progress_stream is not None) as bar:
    if not length_bucketing:
      for begin in range(0, len(requests), batch_size):
        batch = requests[begin:begin + batch_size]
        _write(answer_batch(answer_fn, batch, work), out)
        bar.advance(len(batch))
      return work
    results: list[dict[str, Any]] = [{}] * len(requests)
    for batch in batches_by_length(requests, batch_size):
      for index, result in zip(batch, answer_batch(answer_fn, [requests[i] for i in batch], work)):
        results[index] = result
      bar.advance(len(batch))
  _write(results, out)
  return work
