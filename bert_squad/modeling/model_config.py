"""Google's `bert_config.json` (and Hugging Face's `config.json`) -> a checked `BertConfig`.

Reads a JSON file (str path, local or gs://) into a frozen `BertConfig` of
eleven fields, each checked (ints positive, rates in [0, 1), activation
known); `validate_config` checks a `max_seq_length` (int) and a vocabulary
file (its line count) against it. Errors are `InputError`s naming the file
and the key.

Activations: Google's `modeling.py` computes "gelu" with the tanh
approximation, and so does tf-models-official's `tf_utils.get_activation`
("gelu" -> `gelu(x, approximate=True)`), so `hidden_act: "gelu"` means the tanh
approximation here too. Hugging Face's "gelu" is the exact erf form; a config
converted from Hugging Face carries it as `hidden_act: "gelu_exact"`, so a
converted model computes exactly what it was trained with.
"""
import dataclasses
import json
from typing import Any, Callable, Mapping

import tensorflow as tf
import tf_keras
from official.modeling import tf_utils

from bert_squad.common.errors import InputError
from bert_squad.common.errors import located


def _exact_gelu(x: tf.Tensor) -> tf.Tensor:
  """GELU with the exact erf form (Hugging Face's "gelu")."""
  return tf_keras.activations.gelu(x, approximate=False)


ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "gelu": tf_utils.get_activation("gelu"),  # tanh approximation, as Google.
    "gelu_exact": _exact_gelu,
    "relu": tf_keras.activations.relu,
    "tanh": tf_keras.activations.tanh,
    "linear": tf_keras.activations.linear,
}

# Hugging Face `hidden_act` -> the name used here.
_HF_ACTIVATIONS = {
    "gelu": "gelu_exact",
    "gelu_new": "gelu",
    "gelu_pytorch_tanh": "gelu",
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
}


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """The fields of Google's `bert_config.json` (all required)."""
  vocab_size: int
  hidden_size: int
  num_hidden_layers: int
  num_attention_heads: int
  intermediate_size: int
  hidden_act: str
  hidden_dropout_prob: float
  attention_probs_dropout_prob: float
  max_position_embeddings: int
  type_vocab_size: int
  initializer_range: float

  @classmethod
  def from_dict(cls, values: Mapping[str, Any], source: str = "") -> "BertConfig":
    """Builds and checks a config; errors name `source` and the key.

    Keys other than the fields are ignored (some releases add e.g.
    "directionality").
    """
    kwargs = {}
    for field in dataclasses.fields(cls):
      if field.name not in values:
        raise located(source, "", f"missing key '{field.name}'")
      kwargs[field.name] = _checked_value(field, values[field.name], source)
    config = cls(**kwargs)
    _check_consistency(config, source)
    return config

  @classmethod
  def from_json_file(cls, path: str) -> "BertConfig":
    """Reads Google's `bert_config.json`."""
    return cls.from_dict(_read_json_object(path), source=path)

  @classmethod
  def from_hf_config_file(cls, path: str) -> "BertConfig":
    """Reads a Hugging Face BERT `config.json` (e.g. MiniLM's).

    HF "gelu" (erf) becomes "gelu_exact"; HF's tanh forms become "gelu".
    Settings the `BertEncoder` cannot express (another LayerNorm epsilon,
    relative positions) raise `InputError` instead of converting silently.
    """
    values = dict(_read_json_object(path))
    model_type = values.get("model_type", "bert")
    if model_type != "bert":
      raise located(path, "", f"key 'model_type': '{model_type}' is not a BERT model")
    if values.get("layer_norm_eps", 1e-12) != 1e-12:
      raise located(
          path, "", f"key 'layer_norm_eps': {values['layer_norm_eps']} is not "
          "supported (BertEncoder uses 1e-12)")
    position_type = values.get("position_embedding_type", "absolute")
    if position_type != "absolute":
      raise located(
          path, "", f"key 'position_embedding_type': '{position_type}' is not supported")
    hf_act = values.get("hidden_act")
    if hf_act is not None:
      if hf_act not in _HF_ACTIVATIONS:
        raise located(path, "", f"key 'hidden_act': unsupported activation '{hf_act}' "
                      f"(supported: {', '.join(sorted(_HF_ACTIVATIONS))})")
      values["hidden_act"] = _HF_ACTIVATIONS[hf_act]
    return cls.from_dict(values, source=path)

  def to_dict(self) -> dict[str, Any]:
    """The fields as Google's `bert_config.json` holds them (keys sorted, as Google writes)."""
    return dict(sorted(dataclasses.asdict(self).items()))


def _read_json_object(path: str) -> Mapping[str, Any]:
  """Reads a JSON object from `path`; InputError if missing or malformed."""
  if not tf.io.gfile.exists(path):
    raise located(path, "", "file not found")
  with tf.io.gfile.GFile(path, "rb") as f:
    raw = f.read()
  try:
    values = json.loads(raw.decode("utf-8-sig"))
  except UnicodeDecodeError as e:
    raise located(path, "", f"not valid UTF-8 (byte {e.start})") from None
  except json.JSONDecodeError as e:
    raise located(path, "", f"not valid JSON: {e}") from None
  if not isinstance(values, dict):
    raise located(path, "", "expected a JSON object")
  return values


def _checked_value(field: dataclasses.Field, value: Any, source: str) -> Any:
  """Checks one config value's type (ints must be ints, rates numbers)."""
  where = f"key '{field.name}'"
  if field.type is int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
      raise located(source, "", f"{where}: expected a positive integer, got {value!r}")
  elif field.type is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise located(source, "", f"{where}: expected a number, got {value!r}")
    value = float(value)
  elif not isinstance(value, str) or value not in ACTIVATIONS:
    raise located(source, "", f"{where}: unsupported activation {value!r} "
                  f"(supported: {', '.join(sorted(ACTIVATIONS))})")
  return value


def _check_consistency(config: BertConfig, source: str) -> None:
  """Checks the relations between fields."""
  if config.hidden_size % config.num_attention_heads:
    raise located(
        source, "", f"key 'hidden_size': {config.hidden_size} is not a multiple of "
        f"num_attention_heads {config.num_attention_heads}")
  for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
    if not 0.0 <= getattr(config, name) < 1.0:
      raise located(source, "", f"key '{name}': {getattr(config, name)} is not in [0, 1)")
  if config.initializer_range <= 0:
    raise located(source, "", f"key 'initializer_range': {config.initializer_range} is not > 0")


def count_vocab_lines(vocab_file: str) -> int:
  """Number of lines of a WordPiece vocabulary (one token per line)."""
  if not tf.io.gfile.exists(vocab_file):
    raise InputError(f"{vocab_file}: vocabulary file not found")
  with tf.io.gfile.GFile(vocab_file, "r") as f:
    return sum(1 for _ in f)


def validate_config(config: BertConfig, max_seq_length: int | None,
                    vocab_file: str | None) -> None:
  """Checks that the features and the vocabulary fit the model.

  Raises:
    InputError: `max_seq_length` exceeds `max_position_embeddings` (the
      original's check), or the vocabulary's line count is not `vocab_size`.
  """
  if max_seq_length is not None and max_seq_length > config.max_position_embeddings:
    raise InputError(
        f"max_seq_length {max_seq_length}: the BERT model was only trained up to "
        f"sequence length {config.max_position_embeddings} (max_position_embeddings)")
  if vocab_file is not None:
    lines = count_vocab_lines(vocab_file)
    if lines != config.vocab_size:
      raise InputError(
          f"{vocab_file}: {lines} lines, but the model's vocab_size is "
          f"{config.vocab_size}: vocabulary and bert_config.json do not belong together")
