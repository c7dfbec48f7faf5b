"""bert_squad.answers (logits -> prediction files) on small hand-made examples and logits.

The expected answers are worked out by hand from the original algorithm;
tests/parity/test_postprocess_parity.py compares whole files with
tf-models-official on the real dev sets.
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from bert_squad.answers import logits_io
from bert_squad.answers import nbest_lists
from bert_squad.answers import prediction_files
from bert_squad.answers import rewrite
from bert_squad.answers import text_alignment
from bert_squad.answers.logits_io import RawResult
from bert_squad.common.errors import InputError
from bert_squad.data import feature_files
from bert_squad.data import squad
from bert_squad.data.features import InputFeatures
from bert_squad.data.squad import SquadExample

SEQ = 16
LOW = -10.0

# "Who barked?" about "Steve Smith's dog barked loudly." (uncased WordPieces).
DOC_WORDS = ["Steve", "Smith's", "dog", "barked", "loudly."]
QUESTION = ["who", "barked", "?"]
PIECES = ["steve", "smith", "'", "s", "dog", "bark", "##ed", "loudly", "."]
PIECE_WORD = [0, 1, 1, 1, 2, 3, 3, 4, 4]
# Token positions: [CLS]=0, question 1-3, [SEP]=4, pieces 5-13, [SEP]=14,
# padding 15.
STEVE, SMITH, APOSTROPHE, S, DOG, BARK, ED, LOUDLY, PERIOD = range(5, 14)


def _feature(unique_id=1000000000, example_index=0, doc_span_index=0,
             pieces=PIECES, piece_word=PIECE_WORD, max_context=None):
  tokens = ["[CLS]", *QUESTION, "[SEP]"]
  offset = len(tokens)
  tokens += [*pieces, "[SEP]"]
  if max_context is None:
    max_context = [True] * len(pieces)
  return InputFeatures(
      unique_id=unique_id, example_index=example_index,
      doc_span_index=doc_span_index, tokens=tokens,
      token_to_orig_map={offset + i: w for i, w in enumerate(piece_word)},
      token_is_max_context={offset + i: m for i, m in enumerate(max_context)},
      input_ids=[0] * SEQ, input_mask=[1] * len(tokens) + [0] * (
          SEQ - len(tokens)), segment_ids=[0] * SEQ)


def _example(qas_id="q", words=DOC_WORDS):
  return SquadExample(qas_id=qas_id, question_text="Who barked?",
                      doc_tokens=list(words))


def _result(starts, ends, unique_id=1000000000):
  """Logits LOW everywhere but at the given {position: logit}."""
  start_logits = np.full(SEQ, LOW, np.float32)
  end_logits = np.full(SEQ, LOW, np.float32)
  for position, logit in starts.items():
    start_logits[position] = logit
  for position, logit in ends.items():
    end_logits[position] = logit
  return RawResult(unique_id, start_logits, end_logits)


def _predict(results, features=None, examples=None, n_best_size=3,
             max_answer_length=30, version_2=False, threshold=0.0,
             do_lower_case=True):
  return nbest_lists.compute_predictions(
      examples or [_example()], features or [_feature()], results,
      n_best_size=n_best_size, max_answer_length=max_answer_length,
      do_lower_case=do_lower_case, version_2_with_negative=version_2,
      null_score_diff_threshold=threshold)


def _texts(nbest, qas_id="q"):
  return [entry["text"] for entry in nbest[qas_id]]


# ----------------------------------------------------------------------------
# The span search.


def test_best_span_is_projected_onto_the_original_words():
  predictions, nbest, null_odds = _predict(
      [_result({STEVE: 5.0, DOG: 1.0}, {SMITH: 4.0, DOG: 2.0})])
  assert predictions == {"q": "Steve Smith"}
  assert null_odds == {}
  assert nbest["q"][0] == {"text": "Steve Smith",
                           "probability": nbest["q"][0]["probability"],
                           "start_logit": 5.0, "end_logit": 4.0}
  # Totals 9 ("Steve Smith"), 7 ("Steve Smith's dog"), 3 ("dog"): a softmax.
  assert _texts(nbest) == ["Steve Smith", "Steve Smith's dog", "dog"]
  exp = np.exp([9.0, 7.0, 3.0])
  np.testing.assert_allclose([e["probability"] for e in nbest["q"]],
                             exp / exp.sum(), rtol=1e-12)


def test_end_before_start_is_rejected():
  # The best end (SMITH) lies before the best start (DOG).
  predictions, _, _ = _predict(
      [_result({DOG: 5.0}, {SMITH: 5.0, BARK: 1.0})], n_best_size=2)
  # "dog bark": the original keeps a span ending inside a word as it is.
  assert predictions["q"] == "dog bark"


def test_max_answer_length_counts_wordpieces():
  results = [_result({STEVE: 5.0}, {DOG: 5.0, SMITH: 4.0})]
  # STEVE..DOG is 5 WordPieces.
  assert _predict(results, max_answer_length=5)[0]["q"] == "Steve Smith's dog"
  assert _predict(results, max_answer_length=4)[0]["q"] == "Steve Smith"


@pytest.mark.parametrize("position", [0, 2, 4, 14, 15])  # CLS, query, SEPs, pad
def test_starts_and_ends_outside_the_document_are_rejected(position):
  for starts, ends in (({position: 9.0, DOG: 1.0}, {DOG: 1.0}),
                       ({DOG: 1.0}, {position: 9.0, DOG: 1.0})):
    predictions, nbest, _ = _predict([_result(starts, ends)], n_best_size=2)
    assert predictions["q"] == "dog"
    assert _texts(nbest) == ["dog"]  # the other pairs use `position`


def test_start_needs_max_context_but_end_does_not():
  not_max = [True] * len(PIECES)
  not_max[DOG - 5] = False
  feature = _feature(max_context=not_max)
  starts_at_dog = [_result({DOG: 5.0, STEVE: 1.0}, {DOG: 5.0})]
  assert _predict(starts_at_dog, features=[feature])[0]["q"] == (
      "Steve Smith's dog")
  assert _predict(starts_at_dog)[0]["q"] == "dog"


def test_windows_of_one_question_compete():
  # Two windows; "dog" has its maximum context in the second only.
  first = _feature(unique_id=1, max_context=[True] * 4 + [False] * 5)
  second = _feature(unique_id=2, doc_span_index=1)
  results = [_result({DOG: 8.0, STEVE: -5.0}, {DOG: 8.0}, unique_id=1),
             _result({DOG: 3.0}, {DOG: 3.0}, unique_id=2)]
  predictions, nbest, _ = _predict(results, features=[first, second])
  assert predictions["q"] == "dog"
  assert nbest["q"][0]["start_logit"] == 3.0  # from the second window
  assert _texts(nbest)[1] == "Steve Smith's dog"  # first window: -5 + 8


def test_equal_scores_keep_the_original_loop_order():
  # Start ranks: STEVE before DOG (equal logits: lower position first); end
  # ranks: SMITH before DOG. All three valid pairs total 10.
  predictions, nbest, _ = _predict(
      [_result({STEVE: 5.0, DOG: 5.0}, {SMITH: 5.0, DOG: 5.0})])
  assert _texts(nbest) == ["Steve Smith", "Steve Smith's dog", "dog"]
  assert predictions["q"] == "Steve Smith"


def test_repeated_texts_appear_once():
  words = ["red", "fish", "red"]
  feature = _feature(pieces=["red", "fish", "red"], piece_word=[0, 1, 2])
  # Spans 5..5 and 7..7 are both "red".
  _, nbest, _ = _predict(
      [_result({5: 3.0, 7: 2.5, 6: 2.0}, {5: 3.0, 7: 2.5, 6: 2.0})],
      features=[feature], examples=[_example(words=words)], n_best_size=20)
  # Totals: red 6, red fish red 5.5, red fish 5, red (7..7) 5, fish red 4.5,
  # fish 4.
  assert _texts(nbest) == ["red", "red fish red", "red fish", "fish red",
                           "fish"]


def test_no_valid_span_gives_the_empty_placeholder_on_v1():
  predictions, nbest, _ = _predict(
      [_result({0: 9.0, 1: 8.0}, {0: 9.0, 1: 8.0})], n_best_size=2)
  assert predictions == {"q": "empty"}
  assert nbest == {"q": [{"text": "empty", "probability": 1.0,
                          "start_logit": 0.0, "end_logit": 0.0}]}


def test_later_results_of_one_unique_id_win():
  results = [_result({STEVE: 5.0}, {SMITH: 5.0}), _result({DOG: 5.0},
                                                          {DOG: 5.0})]
  assert _predict(results)[0]["q"] == "dog"


# ----------------------------------------------------------------------------
# SQuAD 2.0: the null answer.


def test_null_score_is_the_minimum_over_windows():
  first = _feature(unique_id=1)
  second = _feature(unique_id=2, doc_span_index=1,
                    max_context=[False] * len(PIECES))
  results = [_result({0: 1.0, STEVE: 2.0}, {0: 2.0, SMITH: 1.0}, unique_id=1),
             _result({0: 0.5}, {0: -1.5}, unique_id=2)]
  predictions, nbest, null_odds = _predict(
      results, features=[first, second], version_2=True)
  # score_null = min(1 + 2, 0.5 - 1.5) = -1; best span 2 + 1 = 3.
  assert null_odds == {"q": -4.0}
  assert predictions == {"q": "Steve Smith"}
  null_entry = [e for e in nbest["q"] if e["text"] == ""]
  assert len(null_entry) == 1
  assert (null_entry[0]["start_logit"], null_entry[0]["end_logit"]) == (0.5,
                                                                        -1.5)


@pytest.mark.parametrize("threshold,expected", [
    (0.0, ""), (1.5, ""), (2.0, "Steve Smith"), (2.5, "Steve Smith"),
    (-1.0, "")])
def test_null_threshold(threshold, expected):
  # score_null 3 + 2 = 5, best span 2 + 1 = 3: score_diff 2.
  predictions, nbest, null_odds = _predict(
      [_result({0: 3.0, STEVE: 2.0}, {0: 2.0, SMITH: 1.0})], version_2=True,
      threshold=threshold)
  assert null_odds == {"q": 2.0}
  assert predictions == {"q": expected}
  assert _texts(nbest)[0] == ""  # the null answer scores best either way


def test_null_answer_loses_ties():
  _, nbest, null_odds = _predict(
      [_result({0: 2.0, STEVE: 2.0}, {0: 1.0, SMITH: 1.0})], version_2=True)
  assert _texts(nbest)[:2] == ["Steve Smith", ""]
  assert null_odds == {"q": 0.0}


def test_null_answer_is_added_when_not_among_the_best():
  _, nbest, _ = _predict(
      [_result({0: -5.0, STEVE: 2.0, DOG: 1.0}, {0: -5.0, SMITH: 1.0,
                                                 DOG: 1.0})],
      version_2=True, n_best_size=2)
  assert _texts(nbest) == ["Steve Smith", "Steve Smith's dog", ""]
  assert nbest["q"][-1]["start_logit"] == -5.0


def test_no_non_null_answer_predicts_empty_instead_of_crashing():
  # The top-2 starts and ends are [CLS] and a question token: no valid span.
  # The original dies here on `best_non_null_entry.start_logit`.
  predictions, nbest, null_odds = _predict(
      [_result({0: 2.0, 1: 3.0}, {0: 1.0, 1: 3.0})], version_2=True,
      n_best_size=2)
  assert predictions == {"q": ""}
  assert null_odds == {"q": 3.0}  # the null score itself
  assert nbest == {"q": [{"text": "", "probability": 1.0, "start_logit": 2.0,
                          "end_logit": 1.0}]}


def test_question_without_windows():
  # A context that tokenizes to nothing has no windows: the original dies on
  # features[0] for SQuAD 2.0; v1.1 gives its "empty" placeholder.
  examples = [_example("lonely"), _example("q")]
  results = [_result({STEVE: 5.0}, {SMITH: 5.0})]
  features = [_feature(example_index=1)]
  predictions, nbest, null_odds = _predict(results, features=features,
                                           examples=examples, version_2=True)
  assert predictions == {"lonely": "", "q": "Steve Smith"}
  assert nbest["lonely"] == [{"text": "", "probability": 1.0,
                              "start_logit": 0, "end_logit": 0}]
  assert null_odds["lonely"] == 1000000  # the original's initial null score
  predictions, _, _ = _predict(results, features=features, examples=examples)
  assert predictions == {"lonely": "empty", "q": "Steve Smith"}


def test_results_keep_the_order_of_the_examples():
  examples = [_example("b"), _example("a"), _example("c")]
  features = [_feature(unique_id=3, example_index=2),
              _feature(unique_id=1, example_index=0),
              _feature(unique_id=2, example_index=1)]
  results = [_result({STEVE: 5.0}, {STEVE: 5.0}, unique_id=1),
             _result({DOG: 5.0}, {DOG: 5.0}, unique_id=2),
             _result({BARK: 5.0}, {ED: 5.0}, unique_id=3)]
  predictions, nbest, null_odds = _predict(results, features=features,
                                           examples=examples, version_2=True)
  assert list(predictions.items()) == [("b", "Steve"), ("a", "dog"),
                                       ("c", "barked")]
  assert list(nbest) == list(null_odds) == ["b", "a", "c"]


# ----------------------------------------------------------------------------
# Bad inputs.


def test_feature_without_logits_is_an_input_error():
  with pytest.raises(InputError, match="no logits for feature unique_id 7"):
    _predict([_result({}, {})], features=[_feature(unique_id=7)])


def test_feature_of_an_unknown_example_is_an_input_error():
  with pytest.raises(InputError, match="example_index 3"):
    _predict([_result({}, {})], features=[_feature(example_index=3)])


@pytest.mark.parametrize("argument", ["n_best_size", "max_answer_length"])
def test_sizes_must_be_positive(argument):
  with pytest.raises(InputError, match=argument):
    _predict([_result({}, {})], **{argument: 0})


def test_non_finite_or_ragged_logits_are_input_errors():
  nan = _result({STEVE: np.nan}, {})
  with pytest.raises(InputError, match="not finite"):
    _predict([nan])
  other = _feature(unique_id=2, example_index=0, doc_span_index=1)
  short = RawResult(2, np.zeros(SEQ - 1, np.float32),
                    np.zeros(SEQ - 1, np.float32))
  with pytest.raises(InputError, match="lengths 15 and 15"):
    _predict([_result({}, {}), short], features=[_feature(), other])


# ----------------------------------------------------------------------------
# get_final_text.


@pytest.mark.parametrize("pred_text,orig_text,do_lower_case,expected", [
    ("steve smith", "Steve Smith's", True, "Steve Smith"),
    ("cafe", "Café.", True, "Café"),            # accents come back
    ("muller", "(Müller)", True, "Müller"),
    ("smith", "Smith's", False, "Smith's"),     # cased: not found -> all
    ("Smith", "Smith's", False, "Smith"),
    ("eclair", "e\u0301clair", True, "e\u0301clair"),  # lengths differ
    ("foobar", "foo\u200bbar", True, "foo\u200bbar"),  # lengths differ
    (" b", "a b", True, "a b"),                 # start on a space
    ("", "abc", True, "abc"),                   # end before the start
    ("dog bark", "dog barked", True, "dog bark"),
])
def test_get_final_text(pred_text, orig_text, do_lower_case, expected):
  assert text_alignment.get_final_text(pred_text, orig_text,
                                       do_lower_case) == expected


TRICKY_WORDS = [
    "\u200b", "Steve", "Smith's", "Café", "e\u0301clair", "foo\u200bbar",
    "(Müller)",
    "naïve", "U.S.", "100,000", "北京大学", "Straße", "ﬁne", "x\u00a0y",
    "İstanbul", "ΟΔΟΣ", "\u00adsoft", "tab\x0bbed", "a--b", "[UNK]", "#1",
    "$5.00)", "\ufffd", "\u0301", "Ａｂｃ", "\u2028z", "ok", "\x00",
]


@pytest.mark.parametrize("words", [
    TRICKY_WORDS,
    ["Odd", "a b", "", "Café", " x", "end "],  # not from the reader's split
])
@pytest.mark.parametrize("do_lower_case", [True, False])
def test_span_aligner_equals_get_final_text(words, do_lower_case):
  """The per-word tokenization shortcut gives get_final_text's answers."""
  aligner = text_alignment.SpanAligner(do_lower_case, verbose_logging=False)
  document = aligner.document(words)
  tokenizer = text_alignment.basic_tokenizer(do_lower_case)
  checked = 0
  for first in range(len(words)):
    for last in range(first, min(first + 4, len(words))):
      orig_text = " ".join(words[first:last + 1])
      tok_text = " ".join(tokenizer.tokenize(orig_text))
      for pred_text in {tok_text, tok_text[1:], tok_text[:-1], tok_text[2:-2],
                        tok_text.upper(), tok_text.split(" ")[-1], ""}:
        assert document.final_text(pred_text, first, last) == (
            text_alignment.get_final_text(pred_text, orig_text, do_lower_case)), (
                pred_text, orig_text)
        checked += 1
  assert checked > 5 * len(words)


# ----------------------------------------------------------------------------
# Files.


NBEST_SAMPLE = {
    "id-1": [
        {"text": "Caf\u00e9 \"quoted\" \\ \u2028 \U0001F600", "probability":
             0.8, "start_logit": -1.25, "end_logit": 3.000000119},
        {"text": "", "probability": 1e-300, "start_logit": 0,
         "end_logit": 12345678901234.5},
    ],
    "id\u00e9-2": [{"text": "empty", "probability": 1.0, "start_logit": 0.0,
                    "end_logit": -0.0}],
}


def _json_bytes(obj):
  """The original's file format."""
  return (json.dumps(obj, indent=4) + "\n").encode("utf-8")


def test_prediction_files_are_written_as_the_original(tmp_path):
  predictions = {"id-1": "Caf\u00e9", "id\u00e9-2": ""}
  null_odds = {"id-1": -3.5, "id\u00e9-2": 1000000}
  files = prediction_files.write_prediction_files(str(tmp_path), predictions,
                                                  NBEST_SAMPLE, null_odds)
  assert files == prediction_files.PredictionFiles.in_dir(str(tmp_path))
  assert pathlib.Path(files.predictions).read_bytes() == _json_bytes(
      predictions)
  assert pathlib.Path(files.nbest).read_bytes() == _json_bytes(NBEST_SAMPLE)
  assert pathlib.Path(files.null_odds).read_bytes() == _json_bytes(null_odds)
  assert sorted(os.listdir(tmp_path)) == [
      "nbest_predictions.json", "null_odds.json", "predictions.json"]


@pytest.mark.parametrize("nbest", [
    {},
    {"q": [{"text": "a", "probability": np.float64(0.5), "start_logit": 1.0,
            "end_logit": 2.0}]},
    {"q": [{"probability": 0.5, "text": "a", "start_logit": 1.0,
            "end_logit": 2.0}]},
    {"q": [{"text": "a", "probability": 0.5, "start_logit": 1.0,
            "end_logit": 2.0, "extra": True}]},
    {"q": [{"text": "a", "probability": float("nan"), "start_logit": 1.0,
            "end_logit": float("-inf")}]},
    {"q": []},
])
def test_nbest_file_of_any_shape_is_plain_json(tmp_path, nbest):
  files = prediction_files.PredictionFiles(
      predictions=str(tmp_path / "p.json"), nbest=str(tmp_path / "n.json"),
      null_odds=str(tmp_path / "o.json"))
  prediction_files.write_prediction_files(files, {}, nbest, None)
  assert pathlib.Path(files.nbest).read_bytes() == _json_bytes(nbest)
  assert not (tmp_path / "o.json").exists()  # SQuAD 1.1: no null odds


@pytest.mark.parametrize("numbers", [
    [0.0, -0.0, 0, 1, -7, 1.0, 0.5, 1e-4, 9.999999999999999e-05, -1e-4,
     1.5e-07, 5e-324, 1e16, 9999999999999998.0, -1e16, 1e15, 123456.789,
     1.7976931348623157e308, 2**63 - 1, -2**63, 2**53 + 1],
    [2**64, 0.25, -2**70, 1e-05],  # past orjson's ints: repr for all
    [],
])
def test_json_numbers_are_reprs(numbers):
  assert prediction_files.json_numbers(numbers) == list(map(repr, numbers))


def test_json_numbers_equal_repr_on_logits_and_probabilities():
  """The n-best file's values: float32 logits widened, softmax outputs."""
  rng = np.random.default_rng(0)
  logits = (rng.normal(size=50000) * 4).astype(np.float32).astype(np.float64)
  probabilities = np.exp(rng.normal(size=50000) * 10 - 8)
  numbers = logits.tolist() + probabilities.tolist() + (-probabilities).tolist()
  assert prediction_files.json_numbers(numbers) == list(map(repr, numbers))


def test_logits_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  unique_ids = np.arange(1000000000, 1000000005)
  start = rng.normal(size=(5, SEQ)).astype(np.float32)
  end = rng.normal(size=(5, SEQ)).astype(np.float32)
  path = str(tmp_path / "logits.npz")
  logits_io.save_logits(path, unique_ids, start, end)
  assert os.listdir(tmp_path) == ["logits.npz"]  # no temporary left behind
  loaded_ids, loaded_start, loaded_end = logits_io.load_logits(path)
  assert loaded_ids.dtype == np.int64 and loaded_start.dtype == np.float32
  np.testing.assert_array_equal(loaded_ids, unique_ids)
  np.testing.assert_array_equal(loaded_start, start)
  np.testing.assert_array_equal(loaded_end, end)
  with np.load(path) as npz:  # a plain .npz, as documented
    assert sorted(npz.files) == ["end_logits", "start_logits", "unique_ids"]
  assert isinstance(logits_io.load_logits(path), logits_io.Logits)


def _write_npz(path, **arrays):
  with open(path, "wb") as f:
    np.savez(f, **arrays)


GOOD = {"unique_ids": np.arange(3),
        "start_logits": np.zeros((3, 4), np.float32),
        "end_logits": np.zeros((3, 4), np.float32)}


@pytest.mark.parametrize("content,problem", [
    (b"not a zip file at all", "not a logits .npz file"),
    (b"PK\x03\x04truncated", "not a logits .npz file"),
    ({"unique_ids": GOOD["unique_ids"]}, "missing array"),
    (dict(GOOD, start_logits=np.zeros((3, 4), np.int32)), "floating point"),
    (dict(GOOD, unique_ids=np.zeros(3, np.float32)), "integer"),
    (dict(GOOD, end_logits=np.zeros((2, 4), np.float32)), "shape"),
    (dict(GOOD, end_logits=np.zeros((3, 5), np.float32)), "differ in shape"),
    (dict(GOOD, unique_ids=np.array([1, 2, 1])), "unique_id 1 appears"),
    (dict(GOOD, start_logits=np.full((3, 4), np.inf, np.float32)),
     "not finite"),
    ("single-array", "single array"),
])
def test_bad_logits_file_is_an_input_error(tmp_path, content, problem):
  path = tmp_path / "logits.npz"
  if isinstance(content, bytes):
    path.write_bytes(content)
  elif content == "single-array":
    with open(path, "wb") as f:
      np.save(f, np.zeros(3))
  else:
    _write_npz(path, **content)
  with pytest.raises(InputError, match=problem) as raised:
    logits_io.load_logits(str(path))
  assert str(raised.value).startswith(str(path) + ": ")


def test_missing_logits_file_is_an_input_error(tmp_path):
  with pytest.raises(InputError, match="cannot read"):
    logits_io.load_logits(str(tmp_path / "absent.npz"))


def test_save_logits_refuses_mismatched_arrays(tmp_path):
  with pytest.raises(ValueError, match="shape"):
    logits_io.save_logits(str(tmp_path / "x.npz"), np.arange(2),
                          np.zeros((3, 4)), np.zeros((3, 4)))
  assert not os.listdir(tmp_path)


# ----------------------------------------------------------------------------
# Re-writing from saved logits.


@pytest.fixture
def saved_run(tmp_path, monkeypatch):
  """Logits of two questions saved to a file; the readers return the
  matching examples and features (whichever reader module is installed)."""
  examples = [_example("q1"), _example("q2")]
  features = [_feature(unique_id=11, example_index=0),
              _feature(unique_id=12, example_index=1)]
  results = [_result({STEVE: 5.0, DOG: 4.5, 0: 1.0}, {SMITH: 5.0, DOG: 4.0},
                     unique_id=11),
             _result({DOG: 1.0, 0: 4.0}, {DOG: 1.0, 0: 4.0}, unique_id=12)]
  logits_file = str(tmp_path / "logits.npz")
  logits_io.save_logits(
      logits_file, np.array([r.unique_id for r in results]),
      np.stack([r.start_logits for r in results]),
      np.stack([r.end_logits for r in results]))
  monkeypatch.setattr(
      squad, "read_squad_examples",
      lambda path, is_training, version_2_with_negative: (examples, squad.ReadStats()),
      raising=False)
  monkeypatch.setattr(feature_files, "read_feature_metadata",
                      lambda path: features, raising=False)
  return examples, features, results, logits_file


@pytest.mark.parametrize("n_best_size,max_answer_length,threshold", [
    (20, 30, 0.0), (1, 2, -1.0), (5, 1, 2.5)])
def test_rewrite_predictions_equals_a_fresh_computation(
    tmp_path, saved_run, n_best_size, max_answer_length, threshold):
  examples, features, results, logits_file = saved_run
  options = dict(n_best_size=n_best_size, max_answer_length=max_answer_length,
                 do_lower_case=True, version_2_with_negative=True,
                 null_score_diff_threshold=threshold)
  files = rewrite.rewrite_predictions(
      "dev.json", "dev.features.jsonl", logits_file, str(tmp_path / "out"),
      **options)
  predictions, nbest, null_odds = nbest_lists.compute_predictions(
      examples, features, results, **options)
  assert pathlib.Path(files.predictions).read_bytes() == _json_bytes(
      predictions)
  assert pathlib.Path(files.nbest).read_bytes() == _json_bytes(nbest)
  assert pathlib.Path(files.null_odds).read_bytes() == _json_bytes(null_odds)


def test_rewrite_predictions_names_the_file_that_does_not_match(
    tmp_path, saved_run, monkeypatch):
  examples, features, _, logits_file = saved_run
  options = dict(do_lower_case=True, version_2_with_negative=False,
                 n_best_size=20, max_answer_length=30,
                 null_score_diff_threshold=0.0)
  monkeypatch.setattr(feature_files, "read_feature_metadata",
                      lambda path: features + [_feature(unique_id=13,
                                                        example_index=1)])
  with pytest.raises(InputError,
                     match="no logits for feature unique_id 13") as raised:
    rewrite.rewrite_predictions("dev.json", "meta.jsonl", logits_file,
                                str(tmp_path), **options)
  assert str(raised.value).startswith(logits_file)
  monkeypatch.setattr(feature_files, "read_feature_metadata",
                      lambda path: [_feature(unique_id=11, example_index=2)])
  with pytest.raises(InputError, match="^meta.jsonl: .*example_index 2"):
    rewrite.rewrite_predictions("dev.json", "meta.jsonl", logits_file,
                                str(tmp_path), **options)


def test_command_line_reports_a_bad_logits_file_in_one_line(tmp_path):
  bad = tmp_path / "logits.npz"
  bad.write_bytes(b"garbage")
  completed = subprocess.run(
      [sys.executable, "-m", "bert_squad.postprocess",
       f"--logits_file={bad}", "--predict_file=dev.json",
       "--feature_metadata_file=dev.features.jsonl",
       f"--output_dir={tmp_path / 'out'}", "--n_best_size=5"],
      cwd=pathlib.Path(__file__).resolve().parents[2], capture_output=True,
      text=True, timeout=120,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert completed.returncode == InputError.EXIT_CODE
  assert completed.stderr.strip().splitlines()[-1].startswith(
      f"error: {bad}: not a logits .npz file")
  assert "Traceback" not in completed.stderr
  assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------
# docs/postprocess.md's command line, on the files a --do_predict run leaves.

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _doc_command(heading: str) -> str:
  """The first ```bash block after `heading` in docs/postprocess.md, as one line."""
  text = (REPO_ROOT / "docs" / "postprocess.md").read_text(encoding="utf-8")
  block = text.split(heading, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
  return " ".join(line.split("#")[0].rstrip(" \\") for line in block.splitlines())


@pytest.fixture(scope="module")
def doc_rewrite(tmp_path_factory):
  """(CompletedProcess, OUT) of the doc's re-writing command, run where a SQuAD 2.0 run left OUT."""
  work = tmp_path_factory.mktemp("doc")
  qas = [{"id": qid, "question": "Who barked?", "is_impossible": False,
          "answers": [{"text": "Steve Smith", "answer_start": 0}]} for qid in ("q1", "q2")]
  (work / "dev-v2.0.json").write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": [
      {"context": " ".join(DOC_WORDS), "qas": qas}]}]}), encoding="utf-8")
  out = work / "OUT"
  (out / "features").mkdir(parents=True)
  features = [_feature(unique_id=11, example_index=0), _feature(unique_id=12, example_index=1)]
  feature_files.write_feature_metadata(
      feature_files.feature_metadata_path(str(out / "features" / "predict-0123456789abcdef.tf_record")), features)
  results = [_result({STEVE: 5.0}, {SMITH: 5.0}, unique_id=11), _result({0: 4.0}, {0: 4.0}, unique_id=12)]
  logits_io.save_logits(str(out / logits_io.LOGITS_FILE), np.array([11, 12]),
                        np.stack([r.start_logits for r in results]), np.stack([r.end_logits for r in results]))
  command = _doc_command("## Re-writing predictions from saved logits")
  completed = subprocess.run(
      ["bash", "-c", f'python() {{ "{sys.executable}" "$@"; }}; {command}'], cwd=work, capture_output=True,
      text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3"))
  return completed, out


def test_the_docs_rewriting_command_runs_as_written(doc_rewrite):
  completed, out = doc_rewrite
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert sorted(os.listdir(out / "threshold-1.5")) == sorted(
      [prediction_files.PREDICTIONS_FILE, prediction_files.NBEST_FILE, prediction_files.NULL_ODDS_FILE])


def test_command_line_names_every_file_it_wrote(doc_rewrite):
  completed, _ = doc_rewrite
  files = prediction_files.PredictionFiles.in_dir("OUT/threshold-1.5")  # as the command names them
  assert f"wrote {files.predictions}, {files.nbest}, {files.null_odds}" in completed.stderr, completed.stderr[-3000:]


def test_written_files_have_null_odds_for_squad_2_only():
  files = prediction_files.PredictionFiles.in_dir("out")
  assert files.written(False) == ["out/predictions.json", "out/nbest_predictions.json"]
  assert files.written(True) == ["out/predictions.json", "out/nbest_predictions.json", "out/null_odds.json"]
