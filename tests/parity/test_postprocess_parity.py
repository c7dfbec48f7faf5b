"""Prediction files equal tf-models-official's on the real dev sets.

The reference is `official.nlp.data.squad_lib.write_predictions`, the port of
google-research/bert's `write_predictions`. Both get the same examples and
features (built by squad_lib itself from the shared dev sets with Google's
uncased vocabulary) and the same seeded random logits, shaped to hit the
corner cases: ties (integer logits), long peaked answers beyond
max_answer_length, windows whose best positions all lie in the question (no
valid span: the "empty" placeholder on v1.1, no non-null answer on v2.0,
where the original crashes and squad_lib and we predict ""), and strong null
scores. The three files must be byte-identical.

squad_lib differs from the original in two places, neither exercised here:
it skips features without logits (the original raises KeyError, we raise
InputError) and it survives the no-non-null case the same way we do.
"""
import functools
import json
import pathlib

from absl import logging
import numpy as np
import pytest

from bert_squad.answers import logits_io
from bert_squad.answers import nbest_lists
from bert_squad.answers import prediction_files

squad_lib = pytest.importorskip("official.nlp.data.squad_lib")
tokenization = pytest.importorskip("official.nlp.tools.tokenization")

MAX_SEQ_LENGTH = 128  # short windows: many questions span several
DOC_STRIDE = 48
MAX_QUERY_LENGTH = 32


class _MemoTokenizer:
  """squad_lib's FullTokenizer, memoised (it re-tokenizes each paragraph for
  every question)."""

  def __init__(self, vocab_file):
    self._tokenizer = tokenization.FullTokenizer(str(vocab_file),
                                                 do_lower_case=True)
    self._tokenize = functools.lru_cache(maxsize=None)(
        lambda text: tuple(self._tokenizer.tokenize(text)))

  def tokenize(self, text):
    return list(self._tokenize(text))

  def convert_tokens_to_ids(self, tokens):
    return self._tokenizer.convert_tokens_to_ids(tokens)


def _build(shared_data, uncased_vocab, tmp_dir, file_name, num_articles,
           version_2):
  """The first articles of a dev set -> squad_lib examples and features."""
  data = json.loads((shared_data / "squad" / file_name).read_text("utf-8"))
  data["data"] = data["data"][:num_articles]
  subset = tmp_dir / file_name
  subset.write_text(json.dumps(data), encoding="utf-8")
  examples = squad_lib.read_squad_examples(
      str(subset), is_training=False, version_2_with_negative=version_2)
  features = []

  def keep(feature, is_padding):
    if not is_padding:  # prediction mode pads with copies of the last one
      features.append(feature)

  squad_lib.convert_examples_to_features(
      examples, _MemoTokenizer(uncased_vocab), MAX_SEQ_LENGTH, DOC_STRIDE,
      MAX_QUERY_LENGTH, is_training=False, output_fn=keep, batch_size=1)
  return examples, features


def _logits(features, seed):
  """[F, seq] float32 start and end logits with the corner cases."""
  rng = np.random.default_rng(seed)
  shape = (len(features), MAX_SEQ_LENGTH)
  start = rng.normal(size=shape) * 2
  end = rng.normal(size=shape) * 2
  for row, feature in enumerate(features):
    num_tokens = len(feature.tokens)
    if row % 3 == 0:  # ties everywhere
      start[row] = np.round(start[row])
      end[row] = np.round(end[row])
    if row % 5 == 1:  # a peaked answer, often longer than max_answer_length
      first = rng.integers(1, num_tokens)
      last = min(first + rng.integers(0, 40), num_tokens - 1)
      start[row, first] += 8
      end[row, last] += 8
    if row % 7 == 2:  # the best positions are all in [CLS] question [SEP]
      question = np.arange(min(feature.token_to_orig_map))
      start[row, question] += 20
      end[row, question] += 20
    if row % 4 == 3:  # a strong null answer
      start[row, 0] += 5
      end[row, 0] += 5
  return start.astype(np.float32), end.astype(np.float32)


@pytest.fixture(scope="module")
def datasets(shared_data, uncased_vocab, tmp_path_factory):
  logging.set_verbosity(logging.ERROR)  # squad_lib logs every example
  tmp_dir = tmp_path_factory.mktemp("parity-data")
  built = {
      "v1.1": _build(shared_data, uncased_vocab, tmp_dir, "dev-v1.1.json", 2,
                     version_2=False),
      "v2.0": _build(shared_data, uncased_vocab, tmp_dir,
                     "dev-v2.0.rebuilt.json", 3, version_2=True),
      "xquad.de": _build(shared_data, uncased_vocab, tmp_dir,
                         "xquad.de.json", 10, version_2=False),
  }
  return {name: (examples, features, _logits(features, seed))
          for seed, (name, (examples, features)) in enumerate(built.items())}


def _reference_files(out_dir, examples, features, logits, options):
  unique_ids = [f.unique_id for f in features]
  # As the original's predict loop: Python floats.
  results = [logits_io.RawResult(u, s, e) for u, s, e in zip(
      unique_ids, logits[0].tolist(), logits[1].tolist())]
  out_dir.mkdir()
  files = prediction_files.PredictionFiles.in_dir(str(out_dir))
  squad_lib.write_predictions(
      examples, features, results, options["n_best_size"],
      options["max_answer_length"], True, files.predictions, files.nbest,
      files.null_odds,
      version_2_with_negative=options["version_2_with_negative"],
      null_score_diff_threshold=options["null_score_diff_threshold"])
  return files


@pytest.mark.parametrize("name,n_best_size,max_answer_length,threshold,path", [
    ("v1.1", 20, 30, 0.0, "file"),
    ("v1.1", 3, 5, 0.0, "raw_results"),
    ("xquad.de", 20, 30, 0.0, "raw_results"),
    ("v2.0", 20, 30, 0.0, "file"),
    ("v2.0", 20, 30, -1.0, "raw_results"),
    ("v2.0", 20, 30, 2.5, "file"),
    ("v2.0", 3, 5, 0.0, "file"),
])
def test_prediction_files_equal_squad_lib(datasets, tmp_path, name,
                                          n_best_size, max_answer_length,
                                          threshold, path):
  examples, features, (start, end) = datasets[name]
  version_2 = name == "v2.0"
  options = dict(n_best_size=n_best_size, max_answer_length=max_answer_length,
                 version_2_with_negative=version_2,
                 null_score_diff_threshold=threshold)
  reference = _reference_files(tmp_path / "reference", examples, features,
                               (start, end), options)
  unique_ids = np.array([f.unique_id for f in features])
  if path == "file":  # as `python -m bert_squad.postprocess` does
    logits_file = str(tmp_path / "logits.npz")
    logits_io.save_logits(logits_file, unique_ids, start, end)
    results = logits_io.load_logits(logits_file)
  else:  # in memory, one RawResult (numpy rows) per feature
    results = [logits_io.RawResult(u, s, e)
               for u, s, e in zip(unique_ids.tolist(), start, end)]
  predictions, nbest, null_odds = nbest_lists.compute_predictions(
      examples, features, results, do_lower_case=True, **options)
  ours = prediction_files.write_prediction_files(
      str(tmp_path), predictions, nbest, null_odds if version_2 else None)

  for kind in ("predictions", "nbest") + (("null_odds",) if version_2 else ()):
    assert (pathlib.Path(getattr(ours, kind)).read_bytes() ==
            pathlib.Path(getattr(reference, kind)).read_bytes()), kind
  assert not pathlib.Path(ours.null_odds).exists() or version_2

  # The corner cases did occur.
  texts = [e["text"] for entries in nbest.values() for e in entries]
  assert len(predictions) == len(examples) > 200
  if version_2:
    assert "" in predictions.values()
    assert any(v != "" for v in predictions.values())
  if n_best_size == 3 and not version_2:
    assert "empty" in predictions.values()
  assert len(set(texts)) > 200


def test_no_non_null_answer_case_is_covered(datasets):
  """Some v2.0 questions have only the null answer in their n-best (the
  original's crash), so the comparison above covers the fix."""
  examples, features, (start, end) = datasets["v2.0"]
  _, nbest, _ = nbest_lists.compute_predictions(
      examples, features, logits_io.Logits(
          np.array([f.unique_id for f in features]), start, end),
      n_best_size=3, max_answer_length=5, do_lower_case=True,
      version_2_with_negative=True)
  only_null = [q for q, entries in nbest.items()
               if [e["text"] for e in entries] == [""]]
  assert len(only_null) >= 5
