"""The one map between the span model's variables and Google's TF1 checkpoint names.

`google_weight_map(model)` -> {Google name (str): `MappedWeight`}, each
holding the Keras variable, the tensor's shape in Google's layout and how to
convert a numpy array between the two layouts (a row-major reshape, or the
transpose for the SQuAD head). `plan_loading` checks a checkpoint's
{name: shape} against that map and lists every missing, wrong-shaped or
unexpected variable; `assign` writes {name: np.ndarray} into the variables.
Readers of Google's checkpoints and of Hugging Face safetensors share both.
"""
import dataclasses
from typing import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tf_keras
from absl import logging

from bert_squad.common.errors import InputError
from bert_squad.modeling import span_model

SQUAD_HEAD_SCOPE = "cls/squad/"

# Parts of a pre-training checkpoint the span model does not use.
_OPTIMIZER_SLOT_SUFFIXES = ("/adam_m", "/adam_v")
_UNUSED_PREFIXES = ("cls/predictions/", "cls/seq_relationship/")
_UNUSED_NAMES = ("global_step",)


@dataclasses.dataclass(frozen=True)
class MappedWeight:
  """One variable of the span model and where it lives in Google's checkpoint.

  Attributes:
    google_name: e.g. "bert/encoder/layer_0/attention/self/query/kernel".
    variable: the Keras variable.
    google_shape: the tensor's shape in Google's checkpoint.
    transpose: Google stores the transpose (the SQuAD head's [2, hidden]);
      otherwise the two layouts differ only by a row-major reshape (attention
      kernels split per head for `MultiHeadAttention`).
  """
  google_name: str
  variable: tf.Variable
  google_shape: tuple[int, ...]
  transpose: bool = False

  def to_keras(self, value: np.ndarray) -> np.ndarray:
    """Google layout -> the variable's layout."""
    value = value.T if self.transpose else value.reshape(self.variable.shape)
    return value.astype(self.variable.dtype.as_numpy_dtype)

  def to_google(self) -> np.ndarray:
    """The variable's current value in Google's layout."""
    value = self.variable.numpy()
    return value.T if self.transpose else value.reshape(self.google_shape)


class _VariableFinder:
  """Finds a model's variables by their Keras name (without ":0")."""

  def __init__(self, variables: Sequence[tf.Variable]):
    self._variables = {v.name.rsplit(":", 1)[0]: v for v in variables}

  def __call__(self, keras_name: str) -> tf.Variable:
    matches = [v for name, v in self._variables.items()
               if name == keras_name or name.endswith("/" + keras_name)]
    if len(matches) != 1:
      raise RuntimeError(f"expected one model variable named {keras_name}, found {len(matches)}")
    return matches[0]


def _same_layout(find: _VariableFinder, keras_name: str, google_name: str) -> MappedWeight:
  variable = find(keras_name)
  return MappedWeight(google_name, variable, tuple(variable.shape))


def _layer_norm_weights(find: _VariableFinder, keras_scope: str,
                        google_scope: str) -> list[MappedWeight]:
  return [_same_layout(find, f"{keras_scope}/{p}", f"{google_scope}/LayerNorm/{p}")
          for p in ("gamma", "beta")]


def _dense_weights(find: _VariableFinder, keras_scope: str,
                   google_scope: str) -> list[MappedWeight]:
  return [_same_layout(find, f"{keras_scope}/{p}", f"{google_scope}/{p}")
          for p in ("kernel", "bias")]


def _embedding_weights(find: _VariableFinder) -> list[MappedWeight]:
  """Word, position and token-type tables and their LayerNorm."""
  return [
      _same_layout(find, "word_embeddings/embeddings", "bert/embeddings/word_embeddings"),
      _same_layout(find, "position_embedding/embeddings", "bert/embeddings/position_embeddings"),
      _same_layout(find, "type_embeddings/embeddings", "bert/embeddings/token_type_embeddings"),
  ] + _layer_norm_weights(find, "embeddings/layer_norm", "bert/embeddings")


def _attention_weights(find: _VariableFinder, keras_scope: str,
                       google_scope: str) -> list[MappedWeight]:
  """Query/key/value/output of one self-attention.

  Keras `MultiHeadAttention` splits heads: query/key/value kernels are
  [hidden, heads, head_size] (Google [hidden, hidden]), their biases
  [heads, head_size] (Google [hidden]), the output kernel
  [heads, head_size, hidden] (Google [hidden, hidden]). Google's columns are
  head-major, so a row-major reshape converts exactly.
  """
  weights = []
  for part in ("query", "key", "value"):
    kernel = find(f"{keras_scope}/{part}/kernel")
    bias = find(f"{keras_scope}/{part}/bias")
    hidden, heads, head_size = kernel.shape
    weights += [
        MappedWeight(f"{google_scope}/self/{part}/kernel", kernel, (hidden, heads * head_size)),
        MappedWeight(f"{google_scope}/self/{part}/bias", bias, (heads * head_size,)),
    ]
  kernel = find(f"{keras_scope}/attention_output/kernel")
  heads, head_size, hidden = kernel.shape
  weights += [
      MappedWeight(f"{google_scope}/output/dense/kernel", kernel, (heads * head_size, hidden)),
      _same_layout(find, f"{keras_scope}/attention_output/bias",
                   f"{google_scope}/output/dense/bias"),
  ]
  return weights


def _transformer_layer_weights(find: _VariableFinder, index: int) -> list[MappedWeight]:
  """One `TransformerEncoderBlock` <-> Google's `bert/encoder/layer_N`."""
  keras = f"transformer/layer_{index}"
  google = f"bert/encoder/layer_{index}"
  return (_attention_weights(find, f"{keras}/self_attention", f"{google}/attention") +
          _layer_norm_weights(find, f"{keras}/self_attention_layer_norm",
                              f"{google}/attention/output") +
          _dense_weights(find, f"{keras}/intermediate", f"{google}/intermediate/dense") +
          _dense_weights(find, f"{keras}/output", f"{google}/output/dense") +
          _layer_norm_weights(find, f"{keras}/output_layer_norm", f"{google}/output"))


def _squad_head_weights(head: tf_keras.layers.Dense) -> list[MappedWeight]:
  """The original head: Google's output_weights [2, hidden] is the kernel transposed."""
  hidden, two = head.kernel.shape
  return [MappedWeight(f"{SQUAD_HEAD_SCOPE}output_weights", head.kernel, (two, hidden),
                       transpose=True),
          MappedWeight(f"{SQUAD_HEAD_SCOPE}output_bias", head.bias, (two,))]


def google_weight_map(model: span_model.BertSpanModel) -> dict[str, MappedWeight]:
  """Google name -> `MappedWeight` for every variable of the span model."""
  encoder = model.encoder
  find = _VariableFinder(encoder.weights)
  weights = _embedding_weights(find)
  for index in range(len(encoder.transformer_layers)):
    weights += _transformer_layer_weights(find, index)
  weights += _dense_weights(find, "pooler_transform", "bert/pooler/dense")
  weights += _squad_head_weights(model.span_head)
  _check_map_covers_model(weights, encoder.weights + model.span_head.weights)
  return {w.google_name: w for w in weights}


def _check_map_covers_model(weights: Sequence[MappedWeight],
                            variables: Sequence[tf.Variable]) -> None:
  """Guards against a `BertEncoder` with variables the map does not know."""
  mapped = {id(w.variable) for w in weights}
  unmapped = [v.name for v in variables if id(v) not in mapped]
  if unmapped or len(mapped) != len(weights):
    raise RuntimeError(f"the Google name map does not cover the model: unmapped {unmapped}")


def is_unused(name: str) -> bool:
  """Optimizer slots, the step and the pre-training heads."""
  return (name.endswith(_OPTIMIZER_SLOT_SUFFIXES) or name in _UNUSED_NAMES or
          name.startswith(_UNUSED_PREFIXES))


def plan_loading(weights: Mapping[str, MappedWeight],
                 shapes: Mapping[str, Sequence[int]],
                 unexpected: Sequence[str],
                 source: str,
                 source_name: Callable[[str], str]) -> list[str]:
  """Checks a checkpoint's names and shapes against the model.

  Every encoder variable must be present with its shape; `cls/squad/*` is
  loaded when present (then complete).

  Args:
    weights: the model's `google_weight_map`.
    shapes: Google name -> shape, for the checkpoint's tensors of the model.
    unexpected: the checkpoint's names (as it spells them) that look like
      parts of the model but are not.
    source: the checkpoint's path, for messages.
    source_name: Google name -> the name as the checkpoint spells it.

  Returns:
    The Google names to load.

  Raises:
    InputError: listing every missing, wrong-shaped or unexpected variable.
  """
  has_head = any(n.startswith(SQUAD_HEAD_SCOPE) for n in shapes)
  wanted = [n for n in weights if has_head or not n.startswith(SQUAD_HEAD_SCOPE)]
  missing = [source_name(n) for n in wanted if n not in shapes]
  wrong_shape = [f"{source_name(n)} {list(shapes[n])} (model: {list(weights[n].google_shape)})"
                 for n in wanted if n in shapes and tuple(shapes[n]) != weights[n].google_shape]
  problems = [f"{label}: {', '.join(sorted(names))}"
              for label, names in (("missing", missing), ("wrong shape", wrong_shape),
                                   ("unexpected", unexpected)) if names]
  if problems:
    raise InputError(f"{source}: does not fit the model ({'; '.join(problems)})")
  if not has_head:
    logging.info("%s: no SQuAD head; the span head stays randomly initialized", source)
  return wanted


def assign(weights: Mapping[str, MappedWeight], values: Mapping[str, np.ndarray]) -> None:
  """Writes each Google-layout array of `values` into its variable of `weights`."""
  for name, value in values.items():
    weights[name].variable.assign(weights[name].to_keras(value))
