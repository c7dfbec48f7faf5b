"""Tests for bert_squad/serving/ and its CLIs export.py, predict.py (small vocabulary, tiny models).

The references are the project's `FullTokenizer`/`BasicTokenizer` (proven
equal to the original in test_tokenization and the parity tests), its
`features.py` windows, and tf-models-official's `squad_lib.postprocess_output`
(the original `write_predictions`).
"""
import dataclasses
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

from bert_squad.common.errors import InputError
from bert_squad.data import features
from bert_squad.data import records
from bert_squad.data import squad
from bert_squad.data import tokenization
from bert_squad.modeling import google_format
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from bert_squad.serving import answer_requests
from bert_squad.serving import answer_settings
from bert_squad.serving import graph_windows
from bert_squad.serving import saved_model
from bert_squad.serving import serving_module
from bert_squad.serving import text_tokenizer
from tests import export_testlib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WORDS = [f"w{i}" for i in range(60)]
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + WORDS + [
    "un", "##aff", "##able", "cafe", "##s", "the", ",", ".", "!", "?", "-", "$", "(", ")", "'",
    "日", "本", "ss", "ß", "fu", "##ß", "##ss", "strasse", "stra", "##ße", "##sse", "é", "e",
    "½", "1", "##2", "fi", "ﬁ", "##nance", "nance", "σ", "ς", "##σ", "##ς", "ο", "##ο", "δ",
    "##δ", "i", "##stanbul", "istanbul", "a", "##a", "ᄒ", "##ᅡ", "##ᆫ"])

TRICKY_TEXTS = [
    "The cafés, unaffable!", "Café Ñandú naïve ÉCOLE", "日本語の文章です。", "한 한국어",
    "zero\u200bwidth soft\u00adhyphen", "nul\x00char bad\ufffdchar", "\x7f del \x85 nel \x1c",
    "nbsp\u00a0here ideographic\u3000space line\u2028sep", "İstanbul σος", "a" * 201, "a" * 200,
    "é" * 200, "é" * 201, "ﬁnance ＡＢＣ ½ ² …", "", "   ", "$5+3=8 <tag> ^~|`",
    "don't “quoted” — dash", "\u0301accent start", "Straße fuß STRASSE", "w1\tw2\r\nw3  w4",
    "e\u0301\u0327 (w5-w6).",
]

TINY_CONFIG = model_config.BertConfig(
    vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=64, hidden_act="gelu", hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1, max_position_embeddings=128, type_vocab_size=2,
    initializer_range=0.02)


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
  path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  path.write_text("".join(token + "\n" for token in VOCAB), encoding="utf-8")
  return str(path)


def _graph_tokenizer(vocab_file: str,
                     do_lower_case: bool) -> text_tokenizer.WordpieceTokenizerWithOffsets:
  return text_tokenizer.WordpieceTokenizerWithOffsets(tf.saved_model.Asset(vocab_file),
                                                      do_lower_case)


# --- Tokenization ------------------------------------------------------------------


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_basic_tokenization_equals_the_original_for_each_character(vocab_file, do_lower_case):
  """Every non-CJK assigned code point and every 97th code point, between two letters."""
  code_points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and (
      c % 97 == 0 or (unicodedata.category(chr(c)) != "Cn" and
                      not unicodedata.name(chr(c), "").startswith("CJK")))]
  texts = [f"x{chr(c)}Y" for c in code_points]
  original = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  graph = _graph_tokenizer(vocab_file, do_lower_case)
  words = graph.basic_tokenize(tf.constant([t.encode("utf-8") for t in texts]))
  graph_words = [[x.decode("utf-8") for x in row] for row in words.to_list()]
  mismatches = [(hex(c), expected, actual) for c, expected, actual in zip(
      code_points, map(original.tokenize, texts), graph_words) if expected != actual]
  assert len(texts) > 50000
  assert not mismatches[:10]


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_wordpieces_and_offsets_equal_the_full_tokenizer(vocab_file, do_lower_case):
  full = tokenization.FullTokenizer(vocab_file, do_lower_case)
  basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  tokenized = _graph_tokenizer(vocab_file, do_lower_case).tokenize_with_offsets(
      tf.constant(TRICKY_TEXTS))
  rows = zip(TRICKY_TEXTS, *(t.to_list() for t in tokenized))
  for text, ids, begin_char, end_char, begin_byte, end_byte in rows:
    tokens = full.tokenize(text)
    assert full.convert_ids_to_tokens(ids) == tokens, text
    for token, b, e, bb, eb in zip(tokens, begin_char, end_char, begin_byte, end_byte):
      assert 0 <= b < e <= len(text) and text[b:e].encode("utf-8") == text.encode("utf-8")[bb:eb]
      span_words = basic.tokenize(text[b:e])
      if token == tokenization.UNK_TOKEN:
        assert len(span_words) == 1, (text, token, text[b:e])  # the whole unknown word
      else:
        assert token.removeprefix("##") in "".join(span_words), (text, token, text[b:e])


def test_final_sigma_is_the_one_known_difference(vocab_file):
  """Python's str.lower() makes a word-final capital sigma "ς"; per character it is "σ"."""
  text = "ΟΔΟΣ"
  assert tokenization.BasicTokenizer(do_lower_case=True).tokenize(text) == ["οδος"]
  words = _graph_tokenizer(vocab_file, True).basic_tokenize(tf.constant([text]))
  assert words.to_list() == [["οδοσ".encode("utf-8")]]


def test_vocab_with_stray_whitespace_gives_the_original_ids(tmp_path, vocab_file):
  messy = tmp_path / "messy.txt"
  messy.write_bytes("".join(f" {token}\r\n" for token in VOCAB).encode("utf-8"))
  clean_dir = tmp_path / "clean"
  clean_dir.mkdir()
  clean = saved_model.write_clean_vocab(str(messy), str(clean_dir))
  ids = _graph_tokenizer(clean, True).tokenize_with_offsets(tf.constant(["w3 cafés"])).ids
  full = tokenization.FullTokenizer(str(messy), True)
  assert ids.to_list() == [full.convert_tokens_to_ids(full.tokenize("w3 cafés"))]


# --- Windows -------------------------------------------------------------------------


def _random_examples(seed: int, count: int) -> list[squad.SquadExample]:
  """Questions and single-spaced contexts (0-120 words) of known, split and unknown words."""
  rng = random.Random(seed)
  extra = ["unaffable", "cafés", "zzz", "w1,", "(w2)", "the", "fuß", "日本"]
  examples = []
  for index in range(count):
    doc = [rng.choice(WORDS + extra) for _ in range(rng.choice([0, 3, 20, 60, 120]))]
    question = [rng.choice(WORDS + extra) for _ in range(rng.randint(1, 20))]
    examples.append(squad.SquadExample(qas_id=f"q{index}", question_text=" ".join(question),
                                       doc_tokens=doc))
  return examples


@pytest.mark.parametrize("max_seq_length,doc_stride,max_query_length",
                         [(32, 8, 8), (64, 20, 16), (48, 7, 12), (32, 30, 8), (48, 33, 12)])
def test_windows_equal_the_python_features(vocab_file, max_seq_length, doc_stride,
                                           max_query_length):
  examples = _random_examples(seed=max_seq_length, count=40)
  full = tokenization.FullTokenizer(vocab_file, True)
  expected = features.convert_examples_to_features(examples, full, max_seq_length, doc_stride,
                                                   max_query_length)
  tokenizer = _graph_tokenizer(vocab_file, True)
  query = tokenizer.tokenize_with_offsets(
      tf.constant([e.question_text for e in examples])).ids[:, :max_query_length]
  doc = tokenizer.tokenize_with_offsets(tf.constant([" ".join(e.doc_tokens) for e in examples]))
  windows = graph_windows.build_windows(query, doc.ids, tokenizer.cls_id, tokenizer.sep_id,
                                        max_seq_length, doc_stride)
  assert windows.example_index.numpy().tolist() == [f.example_index for f in expected]
  assert windows.window_index.numpy().tolist() == [f.doc_span_index for f in expected]
  for key in records.INPUT_KEYS:
    np.testing.assert_array_equal(windows.inputs[key], [getattr(f, key) for f in expected])
  positions = tf.range(max_seq_length)[None, :]
  token_index = positions - windows.doc_offset[:, None] + windows.doc_start[:, None]
  max_context = graph_windows.is_max_context(windows, token_index).numpy()
  for row, feature in zip(max_context, expected):
    assert {p: bool(row[p]) for p in feature.token_is_max_context} == feature.token_is_max_context
  assert max(f.doc_span_index for f in expected) >= 3  # long contexts took several windows


# --- The answer: n-best search and text --------------------------------------------


def _official_answers(examples, vocab_file, model, settings):
  full = tokenization.FullTokenizer(vocab_file, settings.do_lower_case)
  feats = features.convert_examples_to_features(examples, full, settings.max_seq_length,
                                                settings.doc_stride, settings.max_query_length)
  logits = [model.numpy_logits(f.input_ids, f.segment_ids) for f in feats]
  return export_testlib.official_predictions(examples, feats, logits, settings)


@pytest.fixture
def eager_functions():
  """Runs `tf.function`s eagerly: same ops, without the seconds of tracing ragged graphs."""
  tf.config.run_functions_eagerly(True)
  yield
  tf.config.run_functions_eagerly(False)


@pytest.mark.parametrize("levels,settings", [
    (3, answer_settings.AnswerSettings(max_seq_length=48, doc_stride=10, max_query_length=12,
                                       max_answer_length=6)),
    (101, answer_settings.AnswerSettings(max_seq_length=64, doc_stride=16, max_query_length=16,
                                         n_best_size=5)),
    (3, answer_settings.AnswerSettings(max_seq_length=64, doc_stride=16, max_query_length=16,
                                       version_2_with_negative=True)),
    (101, answer_settings.AnswerSettings(max_seq_length=48, doc_stride=10, max_query_length=12,
                                         version_2_with_negative=True,
                                         null_score_diff_threshold=-2.0)),
    (101, answer_settings.AnswerSettings(max_seq_length=48, doc_stride=10, max_query_length=12,
                                         version_2_with_negative=True,
                                         null_score_diff_threshold=1.5)),
])
def test_answers_equal_the_official_postprocessing(vocab_file, eager_functions, levels, settings):
  """Ties (3 logit levels), several windows, empty contexts, SQuAD 2.0 thresholds."""
  examples = _random_examples(seed=levels, count=60)
  if settings.version_2_with_negative:
    # squad_lib (and the original) crash on a SQuAD 2.0 example without
    # windows; the in-graph answer for it is "" (below).
    examples = [e for e in examples if e.doc_tokens]
  model = export_testlib.HashLogitsModel(levels)
  official, nbest = _official_answers(examples, vocab_file, model, settings)
  contexts = [" ".join(e.doc_tokens) for e in examples]
  module = serving_module.SquadServingModule(model, vocab_file, settings)
  outputs = module.answer(tf.constant([e.question_text for e in examples]), tf.constant(contexts))
  answers = [a.decode("utf-8") for a in outputs["answer"].numpy()]
  assert answers == [official[e.qas_id] for e in examples]
  for example, context, answer, score, start, end in zip(
      examples, contexts, answers, outputs["score"].numpy(), outputs["start_char"].numpy(),
      outputs["end_char"].numpy()):
    if start >= 0:
      assert context[start:end] == answer
      best = next(entry for entry in nbest[example.qas_id] if entry["text"])
      assert score == pytest.approx(best["start_logit"] + best["end_logit"], abs=1e-5)
  assert len(set(answers)) > 10
  assert "" in answers or not settings.version_2_with_negative  # the null answer won sometimes
  empty_context = module.answer(tf.constant(["w1"]), tf.constant([""]))
  assert empty_context["answer"].numpy().tolist() == [
      b"" if settings.version_2_with_negative else serving_module.NO_SPAN_TEXT.encode()]
  assert empty_context["start_char"].numpy().tolist() == [-1]


class _WidthSpy:
  """A span model that records the sequence width of every call."""

  def __init__(self, model):
    self.model, self.variables, self.widths = model, model.variables, []

  def __call__(self, inputs, training=False):
    self.widths.append(int(inputs["input_ids"].shape[1]))
    return self.model(inputs, training=training)


@pytest.mark.parametrize("version_2_with_negative", [False, True])
def test_trimmed_answers_equal_the_padded_ones(vocab_file, eager_functions,
                                               version_2_with_negative):
  """A real (tiny, random) BERT: windows trimmed to the batch's longest give the padded answers.

  n_best_size = max_seq_length, so that no padding position can take a
  candidate slot in the padded run (the one documented difference).
  """
  settings = answer_settings.AnswerSettings(max_seq_length=128, doc_stride=32, max_query_length=16,
                                            n_best_size=128,
                                            version_2_with_negative=version_2_with_negative)
  examples = _random_examples(seed=7, count=40)
  by_length = sorted(examples, key=lambda e: len(e.doc_tokens))
  spy = _WidthSpy(_tiny_model(seed=4))
  module = serving_module.SquadServingModule(spy, vocab_file, settings, trim_granularity=16)
  for batch in (by_length[:10], by_length[10:25], by_length[25:], examples):
    questions = tf.constant([e.question_text for e in batch])
    contexts = tf.constant([" ".join(e.doc_tokens) for e in batch])
    padded = module.answer(questions, contexts)
    spy.widths.clear()
    trimmed = module.answer_trimmed(questions, contexts)
    assert spy.widths and all(w % 16 == 0 and w <= 128 for w in spy.widths)
    assert trimmed["answer"].numpy().tolist() == padded["answer"].numpy().tolist()
    for key in ("start_char", "end_char"):
      np.testing.assert_array_equal(trimmed[key], padded[key])
    for key in ("score", "null_score"):
      np.testing.assert_allclose(trimmed[key], padded[key], atol=1e-5)
    if batch is by_length[:10]:
      assert spy.widths[0] < 64  # short contexts: a fraction of the 128 positions computed


def test_answer_text_is_the_context_span_where_the_original_differs(vocab_file, eager_functions):
  """The two documented differences from get_final_text, and a span inside a word."""
  settings = answer_settings.AnswerSettings(max_seq_length=32, doc_stride=8, max_query_length=8,
                                            max_answer_length=2)
  contexts = ["w1  w2\nw3", "w4 zzz,w5 w6", "w6 unaffable w7"]
  questions = ["w9", "w9", "w9"]
  examples = [squad.SquadExample(qas_id=str(i), question_text=q, doc_tokens=c.split())
              for i, (q, c) in enumerate(zip(questions, contexts))]

  class PickSpan(export_testlib.HashLogitsModel):
    """Start logit 9 at the 2nd context token, end logit 9 at the 3rd, 0 elsewhere."""

    def __call__(self, inputs, training=False):
      batch, seq = tf.shape(inputs["input_ids"])[0], tf.shape(inputs["input_ids"])[1]
      return {"start_logits": 9.0 * tf.one_hot(tf.fill([batch], 4), seq),
              "end_logits": 9.0 * tf.one_hot(tf.fill([batch], 5), seq)}

    def numpy_logits(self, input_ids, segment_ids):
      start, end = np.zeros(len(input_ids), np.float32), np.zeros(len(input_ids), np.float32)
      start[4], end[5] = 9.0, 9.0
      return start, end

  official, _ = _official_answers(examples, vocab_file, PickSpan(1), settings)
  outputs = serving_module.SquadServingModule(PickSpan(1), vocab_file, settings).answer(
      tf.constant(questions), tf.constant(contexts))
  answers = [a.decode("utf-8") for a in outputs["answer"].numpy()]
  # [CLS] w9 [SEP] then the context: positions 4-5 are its 2nd and 3rd wordpieces.
  assert answers == ["w2\nw3", "zzz,", "unaff"]
  assert [official[e.qas_id] for e in examples] == ["w2 w3", "zzz,w5", "unaff"]
  kinds = [export_testlib.classify(a, official[e.qas_id], c, s, t) for a, e, c, s, t in zip(
      answers, examples, contexts, outputs["start_char"].numpy(), outputs["end_char"].numpy())]
  assert kinds == ["whitespace", "whole words", "same"]


def test_settings_are_checked():
  with pytest.raises(InputError, match="--doc_stride=0"):
    answer_settings.AnswerSettings(max_seq_length=64, doc_stride=0, max_query_length=24).validate()
  answer_settings.AnswerSettings(max_seq_length=64, doc_stride=40, max_query_length=24).validate()  # as the original
  with pytest.raises(InputError, match="--n_best_size=0"):
    answer_settings.AnswerSettings(n_best_size=0).validate()


# --- The SavedModel ------------------------------------------------------------------

SETTINGS = answer_settings.AnswerSettings(max_seq_length=64, doc_stride=16, max_query_length=16)
QUESTIONS = ["w1 w2 ?", "the cafés w3", "w9", "w4 w5"]
CONTEXTS = ["w3 w4 (w5) unaffable w6 w7, w8 w9. " * 6, "Café w1 w2 fuß w3 日本 w4", "",
            "w5\tw6  w7"]


def _tiny_model(seed: int = 1) -> span_model.BertSpanModel:
  model = span_model.build_span_model(TINY_CONFIG)
  rng = np.random.default_rng(seed)
  for variable in model.variables:
    variable.assign(rng.normal(0, 0.3, variable.shape).astype(np.float32))
  return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory, vocab_file):
  """(model, in-memory module, export dir) of a tiny random model."""
  model = _tiny_model()
  export_dir = str(tmp_path_factory.mktemp("export") / "bert_squad" / "1")
  saved_model.save_serving_model(model, vocab_file, SETTINGS, export_dir)
  return model, serving_module.SquadServingModule(model, vocab_file, SETTINGS), export_dir


def _expected_answers(module) -> dict[str, list]:
  """The in-memory module's answers (run eagerly), answer texts decoded."""
  tf.config.run_functions_eagerly(True)
  try:
    outputs = module.answer(tf.constant(QUESTIONS), tf.constant(CONTEXTS))
  finally:
    tf.config.run_functions_eagerly(False)
  expected = {key: value.numpy().tolist() for key, value in outputs.items()}
  expected["answer"] = [answer.decode("utf-8") for answer in expected["answer"]]
  return expected


def _assert_same_answers(actual: dict[str, list], expected: dict[str, list]) -> None:
  assert sorted(actual) == sorted(expected)
  for key in ("answer", "start_char", "end_char"):
    assert actual[key] == expected[key], key
  for key in ("score", "null_score"):
    np.testing.assert_allclose(actual[key], expected[key], atol=1e-5)


def _window_inputs():
  full_inputs = {key: np.zeros([3, SETTINGS.max_seq_length], np.int32)
                 for key in records.INPUT_KEYS}
  full_inputs["input_ids"][:, :7] = [[2, 5, 6, 3, 7, 8, 3]] * 3
  full_inputs["input_mask"][:, :7] = 1
  full_inputs["segment_ids"][:, 4:7] = 1
  full_inputs["input_ids"][1, 7:40] = np.arange(4, 37)
  full_inputs["input_mask"][1, 7:40] = 1
  return full_inputs


def test_saved_model_signatures(exported):
  model, module, export_dir = exported
  loaded = tf.saved_model.load(export_dir)
  assert set(loaded.signatures) == {"serving_default", "logits", "answer", "answer_trimmed"}
  inputs = _window_inputs()
  expected = model({k: tf.constant(v) for k, v in inputs.items()})
  for name in ("serving_default", "logits"):
    outputs = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
    for key in ("start_logits", "end_logits"):
      np.testing.assert_allclose(outputs[key], expected[key], atol=1e-5)
  answers = loaded.signatures["answer"](question=tf.constant(QUESTIONS),
                                        context=tf.constant(CONTEXTS))
  answers = {k: v.numpy().tolist() for k, v in answers.items()}
  answers["answer"] = [answer.decode("utf-8") for answer in answers["answer"]]
  _assert_same_answers(answers, _expected_answers(module))
  trimmed = loaded.signatures["answer_trimmed"](question=tf.constant(QUESTIONS),
                                                context=tf.constant(CONTEXTS))
  trimmed = {k: v.numpy().tolist() for k, v in trimmed.items()}
  trimmed["answer"] = [answer.decode("utf-8") for answer in trimmed["answer"]]
  _assert_same_answers(trimmed, _expected_answers(module))
  with open(os.path.join(export_dir, "assets", "vocab.txt"), encoding="utf-8") as f:
    assert f.read().split("\n")[:-1] == VOCAB
  with open(os.path.join(export_dir, saved_model.SETTINGS_FILE), encoding="utf-8") as f:
    assert json.load(f)["max_seq_length"] == SETTINGS.max_seq_length


# Loads a SavedModel with nothing of this project (nor tf-models-official, nor
# tf_keras) importable, runs the signatures and writes their outputs as JSON.
_CLEAN_PROCESS = r"""
import importlib.abc, json, sys

class Forbid(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in ("bert_squad", "official", "tf_keras", "tests"):
      raise ImportError(name + " must not be needed to load the SavedModel")

sys.meta_path.insert(0, Forbid())
model_dir, request_file, use_text = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
import tensorflow as tf
if use_text:
  import tensorflow_text  # registers the tokenizer ops of the 'answer' signature
request = json.load(open(request_file, encoding="utf-8"))
model = tf.saved_model.load(model_dir)
result = {"signatures": sorted(model.signatures)}
inputs = {k: tf.constant(v, tf.int32) for k, v in request["inputs"].items()}
logits = model.signatures["logits"](**inputs)
result["logits"] = {k: v.numpy().tolist() for k, v in logits.items()}
if use_text:
  answers = model.signatures["answer"](question=tf.constant(request["questions"]),
                                       context=tf.constant(request["contexts"]))
  result["answers"] = {k: v.numpy().tolist() for k, v in answers.items()}
result["tensorflow_text_loaded"] = "tensorflow_text" in sys.modules
print(json.dumps(result, default=lambda b: b.decode("utf-8")))
"""


def _run_in_clean_process(model_dir: str, work_dir, use_text: bool) -> dict:
  request = work_dir / "request.json"
  request.write_text(json.dumps({"inputs": {k: v.tolist() for k, v in _window_inputs().items()},
                                 "questions": QUESTIONS, "contexts": CONTEXTS}), encoding="utf-8")
  env = {"PATH": os.environ.get("PATH", ""), "TF_CPP_MIN_LOG_LEVEL": "2"}
  result = subprocess.run(
      [sys.executable, "-I", "-c", _CLEAN_PROCESS, model_dir, str(request), str(int(use_text))],
      cwd=work_dir, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_saved_model_works_in_a_fresh_process_without_the_project(exported, tmp_path):
  model, module, export_dir = exported
  moved = tmp_path / "elsewhere" / "1"
  shutil.copytree(export_dir, moved)  # assets travel with the folder
  result = _run_in_clean_process(str(moved), tmp_path, use_text=True)
  expected_logits = model({k: tf.constant(v) for k, v in _window_inputs().items()})
  for key in ("start_logits", "end_logits"):
    np.testing.assert_allclose(result["logits"][key], expected_logits[key], atol=1e-5)
  _assert_same_answers(result["answers"], _expected_answers(module))


def test_logits_only_export_needs_no_tensorflow_text(vocab_file, tmp_path):
  model = _tiny_model(seed=2)
  export_dir = str(tmp_path / "logits_only")
  saved_model.save_serving_model(model, vocab_file, SETTINGS, export_dir, answer_signature=False)
  result = _run_in_clean_process(export_dir, tmp_path, use_text=False)
  assert result["signatures"] == ["logits", "serving_default"]
  assert not result["tensorflow_text_loaded"]
  expected = model({k: tf.constant(v) for k, v in _window_inputs().items()})
  np.testing.assert_allclose(result["logits"]["start_logits"], expected["start_logits"], atol=1e-5)
  assert os.path.exists(os.path.join(export_dir, "assets", "vocab.txt"))


def test_export_refuses_an_existing_folder(exported, vocab_file):
  model, _, export_dir = exported
  with pytest.raises(InputError, match="already exists"):
    saved_model.save_serving_model(model, vocab_file, SETTINGS, export_dir)


def test_export_refuses_a_checkpoint_without_squad_head(vocab_file, tmp_path):
  folder = str(tmp_path / "pretrained")
  google_format.export_google_checkpoint(_tiny_model(), vocab_file, folder, include_squad_head=False)
  with pytest.raises(InputError, match="no SQuAD head"):
    saved_model.export_checkpoint(folder, str(tmp_path / "out"), SETTINGS)
  assert not os.path.exists(tmp_path / "out")


# --- Command lines ---------------------------------------------------------------------


def _run_module(module: str, *args: str, stdin: str | None = None):
  result = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, input=stdin,
                          capture_output=True, text=True, timeout=300)
  return result.returncode, result.stdout, result.stderr


def test_export_and_predict_command_lines(vocab_file, tmp_path):
  model = _tiny_model(seed=3)
  checkpoint_dir = str(tmp_path / "fine_tuned")
  google_format.export_google_checkpoint(model, vocab_file, checkpoint_dir)
  export_dir = str(tmp_path / "serving" / "1")
  code, out, err = _run_module(
      "bert_squad.export", f"--checkpoint_dir={checkpoint_dir}", f"--export_dir={export_dir}",
      "--max_seq_length=64", "--doc_stride=16", "--max_query_length=16", "--do_lower_case")
  assert code == 0, err[-3000:]
  assert out.strip() == export_dir
  expected = _expected_answers(serving_module.SquadServingModule(model, vocab_file, SETTINGS))

  code, out, err = _run_module("bert_squad.predict", f"--model_dir={export_dir}",
                               f"--question={QUESTIONS[0]}", f"--context={CONTEXTS[0]}")
  assert code == 0, err[-3000:]
  assert json.loads(out) == {"answer": expected["answer"][0],
                             "score": pytest.approx(expected["score"][0], abs=1e-5)}

  lines = [json.dumps({"id": i, "question": q, "context": c})
           for i, (q, c) in enumerate(zip(QUESTIONS, CONTEXTS))]
  code, out, err = _run_module("bert_squad.predict", f"--model_dir={export_dir}",
                               "--batch_size=3", stdin="\n".join(lines) + "\n\n")
  assert code == 0, err[-3000:]
  assert CONTEXTS[2] == ""  # an error object in its place, never the original's "empty" placeholder
  assert re.search(rf"^answer: {len(lines)}/{len(lines)} questions 100% \[", err, re.M), err[-3000:]
  assert [json.loads(line) for line in out.splitlines()] == [
      {"id": i, "error": 'stdin: line 3: "context" is empty'} if i == 2 else
      {"id": i, "answer": a, "score": pytest.approx(s, abs=1e-5)}
      for i, (a, s) in enumerate(zip(expected["answer"], expected["score"]))]

  code, bucketed_out, err = _run_module("bert_squad.predict", f"--model_dir={export_dir}",
                                        "--batch_size=2", "--length_bucketing",
                                        stdin="\n".join(lines) + "\n")
  assert code == 0, err[-3000:]
  assert ([json.loads(line) for line in bucketed_out.splitlines()] ==
          [json.loads(line) for line in out.splitlines()])
  computed = re.search(r"predict: computed (\d+) of (\d+) tokens", err)
  assert computed and int(computed.group(1)) <= int(computed.group(2)), err[-3000:]
  assert int(computed.group(2)) % SETTINGS.max_seq_length == 0

  code, out, err = _run_module("bert_squad.predict", f"--model_dir={export_dir}",
                               f"--question={QUESTIONS[0]}", "--context= ")
  assert code == 2 and out == ""
  assert err.strip().splitlines()[-1] == "error: --context is blank (only whitespace)"

  code, out, err = _run_module("bert_squad.predict", f"--model_dir={export_dir}",
                               stdin=lines[0] + "\n{\"question\": \"w1\"\n")
  assert code == 2 and out == ""
  assert err.strip().splitlines()[-1].startswith("error: stdin: line 2: not valid JSON")


def test_export_names_a_missing_folder_or_file(tmp_path, vocab_file):
  with pytest.raises(InputError, match=f"^--checkpoint_dir={tmp_path}/missing: folder not found$"):
    saved_model.export_checkpoint(f"{tmp_path}/missing", f"{tmp_path}/out", SETTINGS)
  folder = tmp_path / "fine_tuned"
  google_format.export_google_checkpoint(_tiny_model(), vocab_file, str(folder))
  (folder / "bert_config.json").unlink()
  with pytest.raises(InputError, match=f"^{folder}/bert_config.json: file not found"):
    saved_model.export_checkpoint(str(folder), f"{tmp_path}/out", SETTINGS)


def test_export_refuses_a_casing_the_vocab_contradicts_before_loading(vocab_file, tmp_path,
                                                                      monkeypatch):
  folder = str(tmp_path / "fine_tuned")
  google_format.export_google_checkpoint(_tiny_model(), vocab_file, folder)
  monkeypatch.setattr(google_format, "load_google_checkpoint", None)  # must not be reached
  cased_settings = dataclasses.replace(SETTINGS, do_lower_case=False)
  with pytest.raises(InputError, match=f"^{folder}/vocab.txt: an uncased vocabulary .*, but "
                                       "--do_lower_case=False; use --do_lower_case=True$"):
    saved_model.export_checkpoint(folder, str(tmp_path / "out"), cased_settings)
  with pytest.raises(InputError, match="an uncased vocabulary"):
    saved_model.save_serving_model(_tiny_model(), vocab_file, cased_settings, str(tmp_path / "out"))
  assert not os.path.exists(tmp_path / "out")


def test_blank_questions_and_contexts_get_an_error_instead_of_an_answer():
  lines = [json.dumps({"id": "a", "question": "q", "context": "c"}),
           json.dumps({"id": "b", "question": "q", "context": ""}),
           json.dumps({"question": " \t", "context": "c"})]
  requests = answer_requests.read_requests(lines)
  assert [r.problem for r in requests] == [None, 'stdin: line 2: "context" is empty',
                                           'stdin: line 3: "question" is blank (only whitespace)']
  asked = []

  def answer_fn(question, context):
    asked.extend(zip(question.numpy().tolist(), context.numpy().tolist()))
    return {"answer": context, "score": tf.fill(tf.shape(context), 1.5)}

  assert answer_requests.answer_batch(answer_fn, requests) == [
      {"id": "a", "answer": "c", "score": 1.5},
      {"id": "b", "error": 'stdin: line 2: "context" is empty'},
      {"error": 'stdin: line 3: "question" is blank (only whitespace)'}]
  assert asked == [(b"q", b"c")]
  assert answer_requests.answer_batch(answer_fn, requests[1:2]) == [
      {"id": "b", "error": 'stdin: line 2: "context" is empty'}]


def test_read_requests_names_the_bad_line():
  good = json.dumps({"id": "a", "question": "q", "context": "c"})
  assert answer_requests.read_requests([good, "  \n"]) == [answer_requests.Request("q", "c", "a")]
  for bad_line, problem in [("[1, 2]", "expected a JSON object"),
                            ('{"question": "q"}', '"context" must be a string'),
                            ('{"question": 3, "context": "c"}', '"question" must be a string'),
                            ("{'question': 'q'}", "not valid JSON")]:
    with pytest.raises(InputError, match=f"^stdin: line 3: {problem}"):
      answer_requests.read_requests([good, "", bad_line])


def test_length_bucketing_answers_similar_lengths_together_and_writes_in_input_order():
  texts = ["a" * 9, "b", "c" * 5, "d" * 2, "e", "f" * 7]
  requests = [answer_requests.Request(question="q", context=text, id=i)
              for i, text in enumerate(texts)]
  assert answer_requests.batches_by_length(requests, 4) == [[1, 4, 3, 2], [5, 0]]
  asked = []

  def answer_fn(question, context):
    asked.append([c.decode() for c in context.numpy().tolist()])
    length = tf.strings.length(context)
    return {"answer": context, "score": tf.cast(length, tf.float32), "num_windows": length,
            "window_width": tf.fill(tf.shape(context), 10 * len(asked))}

  out = io.StringIO()
  work = answer_requests.write_answers(answer_fn, requests, out, batch_size=4,
                                       length_bucketing=True)
  assert asked == [["b", "e", "dd", "ccccc"], ["fffffff", "aaaaaaaaa"]]
  assert work == answer_requests.Work(windows=25, positions=9 * 10 + 16 * 20)
  assert [json.loads(line) for line in out.getvalue().splitlines()] == [
      {"id": i, "answer": text, "score": len(text)} for i, text in enumerate(texts)]


def test_length_bucketing_needs_the_trimmed_signature(exported, tmp_path):
  _, module, _ = exported
  old_export = str(tmp_path / "old")
  tf.saved_model.save(module, old_export,
                      signatures={"answer": module.answer.get_concrete_function()})
  assert answer_requests.load_answer_fn(old_export) is not None
  with pytest.raises(InputError, match="no 'answer_trimmed' signature that --length_bucketing "
                                       "needs .* export it again, or leave out --length_bucketing"):
    answer_requests.load_answer_fn(old_export, length_bucketing=True)
