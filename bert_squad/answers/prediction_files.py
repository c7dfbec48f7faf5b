"""Predictions, n-best lists and null odds (dicts) -> predictions.json, nbest_predictions.json, null_odds.json.

The bytes are the original's `json.dumps(obj, indent=4)`; the n-best file,
the largest, is assembled from its pieces about four times as fast
(`_nbest_json_text`). Each file is written atomically.
"""
import dataclasses
import itertools
import json
import math
import os
from typing import Any

import numpy as np
import orjson

from bert_squad.common import gc_utils
from bert_squad.common.io_utils import atomic_open

PREDICTIONS_FILE = "predictions.json"
NBEST_FILE = "nbest_predictions.json"
NULL_ODDS_FILE = "null_odds.json"


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


def _json_text(obj: Any) -> str:
  """The original's file content: `json.dumps(obj, indent=4)` + newline.

  ASCII-escaped (json's default), unlike `io_utils.write_json`, so the bytes
  equal the original's.
  """
  return json.dumps(obj, indent=4) + "\n"


_NBEST_KEYS = ("text", "probability", "start_logit", "end_logit")


def json_numbers(numbers: list[float | int]) -> list[str]:
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
  C escaper, the numbers as json writes them (`json_numbers`), the fixed
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
  number_texts = json_numbers(numbers)
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
