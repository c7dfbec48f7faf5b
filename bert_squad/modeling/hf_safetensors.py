"""Hugging Face BERT `model.safetensors` -> the span model (numpy API, no torch).

`load_safetensors(model, path)` maps each tensor name of `BertModel` /
`BertForQuestionAnswering` to its Google name (`weight_map`), transposes the
`nn.Linear` weights ([out, in] -> Google's [in, out]), checks names and shapes
like a Google checkpoint and returns the Google names (list[str]) it assigned.
`verify_sha256` checks a file against a published hash first.
"""
from typing import Mapping

import safetensors
import tensorflow as tf

from bert_squad.common import errors
from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.modeling import span_model
from bert_squad.modeling import weight_map

# Google name ending -> Hugging Face name ending, and whether HF stores the
# transpose (`nn.Linear.weight` is [out, in]).
_HF_SUFFIXES = ((".kernel", ".weight", True),
                (".LayerNorm.gamma", ".LayerNorm.weight", False),
                (".LayerNorm.beta", ".LayerNorm.bias", False),
                ("_embeddings", "_embeddings.weight", False))

# Hugging Face tensors the span model does not use: a buffer and the
# pre-training heads.
_HF_UNUSED = ("embeddings.position_ids", "cls.")


def _hf_name(google_name: str) -> tuple[str, bool]:
  """Google name -> (Hugging Face `BertModel` name, whether HF stores the transpose).

  The SQuAD head is `BertForQuestionAnswering`'s `qa_outputs`, whose weight
  [2, hidden] is Google's layout.
  """
  if google_name.startswith(weight_map.SQUAD_HEAD_SCOPE):
    return "qa_outputs." + ("weight" if google_name.endswith("weights") else "bias"), False
  path = google_name.removeprefix("bert/").replace("/layer_", "/layer/").replace("/", ".")
  for google_suffix, hf_suffix, transposed in _HF_SUFFIXES:
    if path.endswith(google_suffix):
      return path.removesuffix(google_suffix) + hf_suffix, transposed
  return path, False


def verify_sha256(path: str, expected_sha256: str) -> None:
  """InputError unless the file's sha256 is `expected_sha256`."""
  if not tf.io.gfile.exists(path):
    raise InputError(f"{path}: file not found")
  actual = io_utils.file_sha256(path)
  if actual != expected_sha256.lower():
    raise InputError(f"{path}: sha256 {actual} is not the expected {expected_sha256}; "
                     "the file is corrupt or not the published one")


def _scan_file_names(f, hf_names: Mapping[str, tuple[str, bool]]
                     ) -> tuple[dict[str, list[int]], dict[str, str], list[str]]:
  """Matches an open safetensors file's tensor names to the model's Google names.

  Args:
    f: the file opened with `safetensors.safe_open(..., framework="np")`.
    hf_names: Google name -> (Hugging Face name, whether HF stores the transpose).

  Returns:
    (shapes, file_names, unexpected): Google name -> shape in Google's layout,
    Google name -> the name as the file spells it, and the file's names that
    are neither the model's nor known unused ones.
  """
  google_names = {hf_name: name for name, (hf_name, _) in hf_names.items()}
  shapes, file_names, unexpected = {}, {}, []
  for file_name in f.keys():
    name = file_name.removeprefix("bert.")
    if name in google_names:
      google_name = google_names[name]
      shape = f.get_slice(file_name).get_shape()
      shapes[google_name] = shape[::-1] if hf_names[google_name][1] else shape
      file_names[google_name] = file_name
    elif not name.startswith(_HF_UNUSED):
      unexpected.append(file_name)
  return shapes, file_names, unexpected


def load_safetensors(model: span_model.BertSpanModel, path: str,
                     expected_sha256: str | None = None) -> list[str]:
  """Loads a Hugging Face BERT `model.safetensors` (numpy API, no torch).

  Names may carry the `bert.` prefix (BertFor... models) or not (BertModel).

  Args:
    model: the span model, built from the matching config
      (`BertConfig.from_hf_config_file`).
    path: the `.safetensors` file (local; the safetensors reader needs a file).
    expected_sha256: if given, the file is checked before it is read.

  Returns:
    The Google names loaded.

  Raises:
    InputError: wrong hash, unreadable file, or names and shapes that do not
      fit the model (all listed, with the file's names).
  """
  if expected_sha256 is not None:
    verify_sha256(path, expected_sha256)
  if not tf.io.gfile.exists(path):
    raise InputError(f"{path}: file not found")
  weights = weight_map.google_weight_map(model)
  hf_names = {name: _hf_name(name) for name in weights}  # -> (HF name, transposed)
  try:
    with safetensors.safe_open(path, framework="np") as f:
      shapes, file_names, unexpected = _scan_file_names(f, hf_names)
      names = weight_map.plan_loading(weights, shapes, unexpected, path,
                                      source_name=lambda n: file_names.get(n, hf_names[n][0]))
      values = {}
      for name in names:
        value = f.get_tensor(file_names[name])
        values[name] = value.T if hf_names[name][1] else value
  except safetensors.SafetensorError as e:
    raise InputError(f"{path}: unreadable safetensors file: {errors.first_line(e)}") from None
  weight_map.assign(weights, values)
  return names
