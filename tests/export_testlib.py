"""Test helpers for the SavedModel export: a stand-in span model and the official postprocessing.

`HashLogitsModel` computes logits from the inputs alone (no weights), with
as many ties as wanted, in TensorFlow and identically in numpy, so the
in-graph n-best search can be compared with tf-models-official's
`squad_lib.postprocess_output` (the original `write_predictions`) on any
number of questions at no model cost.
"""
import collections
import re
from typing import Sequence

import numpy as np
import tensorflow as tf
from official.nlp.data import squad_lib

from bert_squad.data import tokenization
from bert_squad.serving import answer_settings

# The SQuAD reader's whitespace (`bert_squad.squad`): the original joins the
# words of an answer span with one space.
_READER_WORD = re.compile("[^ \t\r\n\u202f]+")
_READER_WHITESPACE = re.compile("[ \t\r\n\u202f]+")

RawResult = collections.namedtuple("RawResult", ["unique_id", "start_logits", "end_logits"])


class HashLogitsModel:
  """Logits that are a hash of (token id, position, segment), in `levels` steps.

  Few levels give many equal logits (tie-breaking), many levels few. Padding
  positions get logits too, as a real model's do.
  """

  variables = ()

  def __init__(self, levels: int):
    self.levels = levels

  def _logits(self, ids, segments, positions, modulo):
    start = modulo(ids * 31 + positions * 17 + segments * 7, self.levels)
    end = modulo(ids * 13 + positions * 29 + 5, self.levels)
    return start, end

  def __call__(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
    del training
    ids = inputs["input_ids"]
    positions = tf.range(tf.shape(ids)[1])[None, :]
    start, end = self._logits(ids, inputs["segment_ids"], positions, tf.math.floormod)
    return {"start_logits": tf.cast(start, tf.float32) / 4.0,
            "end_logits": tf.cast(end, tf.float32) / 4.0}

  def numpy_logits(self, input_ids: Sequence[int],
                   segment_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The same logits for one feature, float32 [seq] each."""
    ids, segments = np.asarray(input_ids, np.int64), np.asarray(segment_ids, np.int64)
    start, end = self._logits(ids, segments, np.arange(len(ids)), np.mod)
    return start.astype(np.float32) / 4.0, end.astype(np.float32) / 4.0


def official_predictions(examples, feats, logits: Sequence[tuple[np.ndarray, np.ndarray]],
                         settings: answer_settings.AnswerSettings) -> tuple[dict, dict]:
  """`squad_lib.postprocess_output` on per-feature logits, fed as the original feeds it.

  Returns:
    qas_id -> answer text, and qas_id -> n-best list.
  """
  results = [RawResult(f.unique_id, [float(x) for x in start], [float(x) for x in end])
             for f, (start, end) in zip(feats, logits)]
  predictions, nbest, _ = squad_lib.postprocess_output(
      examples, feats, results, settings.n_best_size, settings.max_answer_length,
      settings.do_lower_case, settings.version_2_with_negative,
      settings.null_score_diff_threshold)
  return predictions, nbest


def covering_words(context: str, start_char: int, end_char: int) -> str:
  """The whitespace words of `context` that hold [start_char, end_char), joined by one space.

  What the original's `get_final_text` returns when its alignment fails.
  """
  words = [m for m in _READER_WORD.finditer(context)
           if m.start() < end_char and m.end() > start_char]
  return " ".join(m.group() for m in words)


def classify(answer: str, official: str, context: str, start_char: int, end_char: int,
             do_lower_case: bool = True) -> str:
  """How the in-graph answer relates to the official one.

  "same"; "whitespace" (the original joins words with one space, the offsets
  keep the context's own whitespace); "whole words" (get_final_text's
  fallback to the whole whitespace words); "earlier match" (get_final_text
  finds the predicted text at its first occurrence in those words, e.g. the
  "g" of "Tage" for the "G" of "7-Tage-EPG"); else "different".
  """
  if answer == official:
    return "same"
  if _READER_WHITESPACE.sub(" ", answer) == official:
    return "whitespace"
  if start_char < 0:
    return "different"
  words = covering_words(context, start_char, end_char)
  if words == official:
    return "whole words"
  basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  if official in words and basic.tokenize(official) == basic.tokenize(answer):
    return "earlier match"
  return "different"
