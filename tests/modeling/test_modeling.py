"""Tests for bert_squad/modeling/{model_config,span_model}.py: config reading and checks, span model, loss."""
import json
import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.nlp.modeling import networks

from bert_squad.common.errors import InputError
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model

# Google's released BERT-Medium uncased bert_config.json, as shipped.
GOOGLE_MEDIUM_CONFIG = {
    "hidden_size": 512, "hidden_act": "gelu", "initializer_range": 0.02,
    "vocab_size": 30522, "hidden_dropout_prob": 0.1, "num_attention_heads": 8,
    "type_vocab_size": 2, "max_position_embeddings": 512, "num_hidden_layers": 8,
    "intermediate_size": 2048, "attention_probs_dropout_prob": 0.1,
}

TINY = model_config.BertConfig(
    vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=48, hidden_act="gelu", hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1, max_position_embeddings=24, type_vocab_size=2,
    initializer_range=0.02)


def _write(path, text):
  path.write_text(text, encoding="utf-8")
  return str(path)


def _features(ids, mask, segments):
  return {"input_ids": tf.constant(ids, tf.int32), "input_mask": tf.constant(mask, tf.int32),
          "segment_ids": tf.constant(segments, tf.int32)}


def test_from_json_file_reads_google_config(tmp_path):
  path = _write(tmp_path / "bert_config.json", json.dumps(GOOGLE_MEDIUM_CONFIG))
  config = model_config.BertConfig.from_json_file(path)
  assert config.hidden_size == 512 and config.num_hidden_layers == 8
  assert config.hidden_act == "gelu"
  assert config.to_dict() == GOOGLE_MEDIUM_CONFIG


def test_from_json_file_ignores_extra_keys(tmp_path):
  values = dict(GOOGLE_MEDIUM_CONFIG, directionality="bidi", pooler_type="first_token_transform")
  path = _write(tmp_path / "bert_config.json", json.dumps(values))
  assert model_config.BertConfig.from_json_file(path).to_dict() == GOOGLE_MEDIUM_CONFIG


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({k: v for k, v in GOOGLE_MEDIUM_CONFIG.items() if k != "intermediate_size"}),
     "missing key 'intermediate_size'"),
    (json.dumps(dict(GOOGLE_MEDIUM_CONFIG, hidden_size="512")), "key 'hidden_size'"),
    (json.dumps(dict(GOOGLE_MEDIUM_CONFIG, hidden_act="swish")), "unsupported activation 'swish'"),
    (json.dumps(dict(GOOGLE_MEDIUM_CONFIG, num_attention_heads=7)), "not a multiple"),
    (json.dumps(dict(GOOGLE_MEDIUM_CONFIG, hidden_dropout_prob=1.5)), "hidden_dropout_prob"),
])
def test_bad_bert_config_names_file_and_problem(tmp_path, text, message):
  path = _write(tmp_path / "bert_config.json", text)
  with pytest.raises(InputError, match=message) as error:
    model_config.BertConfig.from_json_file(path)
  assert str(error.value).startswith(path)


def test_missing_bert_config_file(tmp_path):
  path = str(tmp_path / "nowhere" / "bert_config.json")
  with pytest.raises(InputError, match="file not found") as error:
    model_config.BertConfig.from_json_file(path)
  assert path in str(error.value)


def test_hf_config_keeps_exact_gelu(tmp_path):
  hf = {"model_type": "bert", "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        "position_embedding_type": "absolute", "architectures": ["BertModel"],
        **{k: v for k, v in GOOGLE_MEDIUM_CONFIG.items() if k != "hidden_act"}}
  path = _write(tmp_path / "config.json", json.dumps(hf))
  config = model_config.BertConfig.from_hf_config_file(path)
  assert config.hidden_act == "gelu_exact"
  assert config.to_dict() == dict(GOOGLE_MEDIUM_CONFIG, hidden_act="gelu_exact")
  hf["hidden_act"] = "gelu_new"
  path = _write(tmp_path / "config.json", json.dumps(hf))
  assert model_config.BertConfig.from_hf_config_file(path).hidden_act == "gelu"


@pytest.mark.parametrize("change, message", [
    ({"model_type": "roberta"}, "not a BERT model"),
    ({"layer_norm_eps": 1e-5}, "layer_norm_eps"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
    ({"hidden_act": "silu"}, "unsupported activation 'silu'"),
])
def test_hf_config_refuses_what_bert_encoder_cannot_express(tmp_path, change, message):
  path = _write(tmp_path / "config.json", json.dumps(dict(GOOGLE_MEDIUM_CONFIG, **change)))
  with pytest.raises(InputError, match=message):
    model_config.BertConfig.from_hf_config_file(path)


def test_validate_config_max_seq_length(tmp_path):
  model_config.validate_config(TINY, 24, None)
  with pytest.raises(InputError, match="max_seq_length 25.*24"):
    model_config.validate_config(TINY, 25, None)
  with pytest.raises(InputError, match="max_seq_length 32"):
    span_model.build_span_model(TINY, max_seq_length=32)


def test_validate_config_vocab_size(tmp_path):
  vocab = _write(tmp_path / "vocab.txt", "".join(f"w{i}\n" for i in range(50)))
  model_config.validate_config(TINY, 16, vocab)
  short = _write(tmp_path / "short.txt", "".join(f"w{i}\n" for i in range(49)))
  with pytest.raises(InputError, match="49 lines.*vocab_size is 50") as error:
    model_config.validate_config(TINY, 16, short)
  assert str(error.value).startswith(short)
  with pytest.raises(InputError, match="not found"):
    model_config.validate_config(TINY, 16, str(tmp_path / "missing.txt"))


def test_activations_match_their_formulas():
  x = np.linspace(-5, 5, 41).astype(np.float32)
  tanh_gelu = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
  erf_gelu = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
  np.testing.assert_allclose(model_config.ACTIVATIONS["gelu"](tf.constant(x)).numpy(), tanh_gelu,
                             atol=1e-6)
  np.testing.assert_allclose(model_config.ACTIVATIONS["gelu_exact"](tf.constant(x)).numpy(), erf_gelu,
                             atol=1e-6)
  assert np.abs(tanh_gelu - erf_gelu).max() > 1e-4  # the two are really different


def test_span_model_outputs_and_parts():
  model = span_model.build_span_model(TINY)
  assert isinstance(model, tf_keras.Model)
  assert isinstance(model.encoder, networks.BertEncoder)
  assert model.span_head.kernel.shape == (32, 2)
  assert model.span_head.bias.shape == (2,)
  outputs = model(_features([[1, 4, 5, 2, 0]] * 3, [[1, 1, 1, 1, 0]] * 3, [[0, 0, 1, 1, 0]] * 3))
  assert set(outputs) == {"start_logits", "end_logits"}
  for logits in outputs.values():
    assert logits.shape == (3, 5) and logits.dtype == tf.float32
  assert not np.allclose(outputs["start_logits"], outputs["end_logits"])


def test_span_model_static_length():
  model = span_model.build_span_model(TINY, max_seq_length=8)
  assert model.inputs[0].shape.as_list() == [None, 8]


def test_padding_is_masked_and_segments_matter():
  model = span_model.build_span_model(TINY)
  base = model(_features([[1, 4, 5, 2, 0, 0]], [[1, 1, 1, 1, 0, 0]], [[0, 0, 1, 1, 0, 0]]))
  other_padding = model(_features([[1, 4, 5, 2, 9, 7]], [[1, 1, 1, 1, 0, 0]], [[0, 0, 1, 1, 1, 0]]))
  np.testing.assert_allclose(base["start_logits"][:, :4], other_padding["start_logits"][:, :4],
                             atol=1e-5)
  other_segments = model(
      _features([[1, 4, 5, 2, 0, 0]], [[1, 1, 1, 1, 0, 0]], [[0, 0, 0, 1, 0, 0]]))
  assert not np.allclose(base["start_logits"][:, :4], other_segments["start_logits"][:, :4])


def test_span_model_logits_are_float32_under_mixed_precision():
  tf_keras.mixed_precision.set_global_policy("mixed_float16")
  try:
    model = span_model.build_span_model(TINY)
    outputs = model(_features([[1, 4, 5, 2]], [[1, 1, 1, 1]], [[0, 0, 1, 1]]))
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
  assert outputs["start_logits"].dtype == tf.float32
  assert outputs["end_logits"].dtype == tf.float32


def _original_loss(positions, logits):
  """The original `compute_loss`: -mean(sum(one_hot * log_softmax))."""
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  one_hot = np.eye(logits.shape[-1])[positions]
  return -(one_hot * log_probs).sum(-1)


def test_span_loss_is_the_originals():
  rng = np.random.default_rng(0)
  start_logits = rng.normal(size=(4, 7)).astype(np.float32)
  end_logits = rng.normal(size=(4, 7)).astype(np.float32)
  starts, ends = np.array([0, 3, 6, 2]), np.array([0, 4, 6, 5])
  expected = (_original_loss(starts, start_logits) + _original_loss(ends, end_logits)) / 2
  per_example = span_model.span_loss(starts, ends, start_logits, end_logits)
  assert per_example.shape == (4,)
  np.testing.assert_allclose(per_example, expected, rtol=1e-5)
  np.testing.assert_allclose(span_model.span_loss_mean(starts, ends, start_logits, end_logits),
                             expected.mean(), rtol=1e-5)
