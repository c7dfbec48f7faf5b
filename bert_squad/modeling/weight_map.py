"""Checkpoints: Google's TF1 names in and out, Hugging Face safetensors in, resume state.

Google's `bert_model.ckpt` is read with `tf.train.load_checkpoint` and written
with the `SaveV2` op, through one explicit map from each variable of the span
model to its Google name and layout (`google_weight_map`). Loading fails
loudly: every missing, wrong-shaped or unexpected variable is listed, and no
layer is ever left silently random (the original silently skips them).

Training state for resuming (model, optimizer slots, step) lives in TF2
object checkpoints written by `training.train`, apart from the Google export;
`load_training_checkpoint` reads the model out of them.
"""
import dataclasses
import uuid
from typing import Callable, Mapping, Sequence

import numpy as np
import safetensors
import tensorflow as tf
import tf_keras
from absl import logging

from bert_squad.common import errors
from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.modeling import span_model

CHECKPOINT_NAME = "bert_model.ckpt"
# Where run_squad.py writes the fine-tuned model, in Google's format, inside its output_dir.
RUN_EXPORT_DIR = "export"
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


def _is_unused(name: str) -> bool:
  """Optimizer slots, the step and the pre-training heads."""
  return (name.endswith(_OPTIMIZER_SLOT_SUFFIXES) or name in _UNUSED_NAMES or
          name.startswith(_UNUSED_PREFIXES))


def _plan_loading(weights: Mapping[str, MappedWeight],
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


def _assign(weights: Mapping[str, MappedWeight], values: Mapping[str, np.ndarray]) -> None:
  for name, value in values.items():
    weights[name].variable.assign(weights[name].to_keras(value))


def _open_google_checkpoint(checkpoint_path: str):
  """The reader of `tf.train.load_checkpoint`; one clear error for a bad path or index."""
  if not tf.io.gfile.exists(checkpoint_path + ".index"):
    raise InputError(
        f"{checkpoint_path}: no checkpoint with this prefix ({checkpoint_path}.index "
        f"does not exist; give the prefix, e.g. .../{CHECKPOINT_NAME})")
  try:
    return tf.train.load_checkpoint(checkpoint_path)
  except (tf.errors.OpError, ValueError) as e:
    raise InputError(f"{checkpoint_path}: unreadable checkpoint: {errors.first_line(e)}") from None


def checkpoint_in_folder(folder: str, flag: str) -> str:
  """The `bert_model.ckpt` prefix of a Google-format folder given as `flag`=folder.

  Raises:
    InputError: no such checkpoint there; for the output_dir of a
      run_squad.py run (training checkpoints ckpt-N), naming its export/.
  """
  folder = folder.rstrip("/")
  prefix = f"{folder}/{CHECKPOINT_NAME}"
  if tf.io.gfile.exists(prefix + ".index"):
    return prefix
  if not tf.io.gfile.isdir(folder):
    raise InputError(f"{flag}={folder}: folder not found")
  export_dir = f"{folder}/{RUN_EXPORT_DIR}"
  if tf.io.gfile.exists(f"{export_dir}/{CHECKPOINT_NAME}.index"):
    raise InputError(f"{flag}={folder}: the output_dir of a run_squad.py run; its fine-tuned model "
                     f"in Google's format is {export_dir}: use {flag}={export_dir}")
  if tf.train.latest_checkpoint(folder):
    raise InputError(f"{flag}={folder}: holds only training checkpoints (ckpt-N) of an unfinished "
                     f"run, no {CHECKPOINT_NAME}; write one with python -m bert_squad.convert "
                     f"--training_checkpoint={folder} --bert_config_file=... --vocab_file=... "
                     "--output_dir=...")
  raise InputError(f"{flag}={folder}: no {CHECKPOINT_NAME} in this folder ({prefix}.index "
                   "does not exist)")


def _read_google_tensor(reader, name: str, checkpoint_path: str) -> np.ndarray:
  """One tensor; a truncated or corrupt data file is an InputError."""
  try:
    return reader.get_tensor(name)
  except (tf.errors.OpError, IndexError, ValueError) as e:
    raise InputError(f"{checkpoint_path}: cannot read variable {name} (truncated or corrupt "
                     f"data file?): {errors.first_line(e)}") from None


def load_google_checkpoint(model: span_model.BertSpanModel, checkpoint_path: str) -> list[str]:
  """Loads Google's original `bert_model.ckpt` (pre-trained or SQuAD-fine-tuned).

  Args:
    model: the span model; its variables are assigned only if every check
      passes.
    checkpoint_path: the checkpoint prefix, e.g. ".../bert_model.ckpt".

  Returns:
    The Google names loaded (the encoder's, plus `cls/squad/*` if present).

  Raises:
    InputError: a missing prefix, an unreadable or truncated file, or names
      and shapes that do not fit the model (all listed).
  """
  reader = _open_google_checkpoint(checkpoint_path)
  weights = google_weight_map(model)
  all_shapes = reader.get_variable_to_shape_map()
  shapes = {n: shape for n, shape in all_shapes.items() if n in weights}
  unexpected = [n for n in all_shapes if n not in weights and not _is_unused(n) and
                n.startswith(("bert/", SQUAD_HEAD_SCOPE))]
  names = _plan_loading(weights, shapes, unexpected, checkpoint_path, source_name=lambda n: n)
  ignored = sorted(n for n in all_shapes if n not in weights)
  if ignored:
    logging.info("%s: skipped %d tensors the span model does not use (e.g. %s)",
                 checkpoint_path, len(ignored), ", ".join(ignored[:3]))
  _assign(weights, {n: _read_google_tensor(reader, n, checkpoint_path) for n in names})
  return names


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
  if google_name.startswith(SQUAD_HEAD_SCOPE):
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
  weights = google_weight_map(model)
  hf_names = {name: _hf_name(name) for name in weights}  # -> (HF name, transposed)
  google_names = {hf_name: name for name, (hf_name, _) in hf_names.items()}
  try:
    with safetensors.safe_open(path, framework="np") as f:
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
      names = _plan_loading(weights, shapes, unexpected, path,
                            source_name=lambda n: file_names.get(n, hf_names[n][0]))
      values = {}
      for name in names:
        value = f.get_tensor(file_names[name])
        values[name] = value.T if hf_names[name][1] else value
  except safetensors.SafetensorError as e:
    raise InputError(f"{path}: unreadable safetensors file: {errors.first_line(e)}") from None
  _assign(weights, values)
  return names


def _write_google_checkpoint(prefix: str, tensors: Mapping[str, np.ndarray]) -> None:
  """Writes tensors under their raw names as a TF1 `Saver` would.

  `tf.train.Checkpoint` names tensors by object path
  (".../.ATTRIBUTES/VARIABLE_VALUE"), and `tf.compat.v1.train.Saver` needs
  graph-era machinery; `SaveV2` is the op the TF1 Saver itself runs, so
  calling it eagerly writes exactly Google's format (`prefix.index` +
  `prefix.data-00000-of-00001`) with the names given.
  """
  names = sorted(tensors)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                    tensors=[tensors[n] for n in names])


def export_google_checkpoint(model: span_model.BertSpanModel, vocab_file: str, output_dir: str,
                             include_squad_head: bool = True) -> str:
  """Writes the model in Google's original format, atomically.

  `output_dir` receives `bert_model.ckpt.{index,data-00000-of-00001}` (the
  names of `google_weight_map`), `bert_config.json` and `vocab.txt`; it is
  usable as the original's `--init_checkpoint`/`--bert_config_file`/
  `--vocab_file` and by `load_google_checkpoint`. Everything is written to a
  temporary folder beside `output_dir` and renamed into place, so a crash
  never leaves a half-written export; an existing `output_dir` is replaced.

  Args:
    model: the span model.
    vocab_file: its vocabulary (must have `vocab_size` lines).
    output_dir: the folder to create or replace.
    include_squad_head: also write `cls/squad/*` (leave out for a model
      whose head was never trained, e.g. a converted pre-trained encoder).

  Returns:
    The checkpoint prefix, `output_dir/bert_model.ckpt`.
  """
  config = model.bert_config
  span_model.validate_config(config, None, vocab_file)
  tensors = {name: weight.to_google() for name, weight in google_weight_map(model).items()
             if include_squad_head or not name.startswith(SQUAD_HEAD_SCOPE)}
  output_dir = output_dir.rstrip("/")
  staging_dir = f"{output_dir}.tmp-{uuid.uuid4().hex[:8]}"
  tf.io.gfile.makedirs(staging_dir)
  try:
    _write_google_checkpoint(f"{staging_dir}/{CHECKPOINT_NAME}", tensors)
    io_utils.write_json(f"{staging_dir}/bert_config.json", config.to_dict(), indent=2)
    tf.io.gfile.copy(vocab_file, f"{staging_dir}/vocab.txt")
    _replace_dir(staging_dir, output_dir)
  finally:
    if tf.io.gfile.exists(staging_dir):
      tf.io.gfile.rmtree(staging_dir)
  return f"{output_dir}/{CHECKPOINT_NAME}"


def _replace_dir(new_dir: str, target_dir: str) -> None:
  """Renames `new_dir` onto `target_dir`, moving an old one aside first.

  Object stores have no directories to rename (tf.io.gfile emulates it on
  gs:// and cannot on ram://): for every `scheme://` path the files move one
  by one, each complete, and files of an old export that the new one lacks
  are removed.
  """
  if io_utils.is_remote(target_dir):
    tf.io.gfile.makedirs(target_dir)
    new_names = set(tf.io.gfile.listdir(new_dir))
    for name in new_names:
      tf.io.gfile.rename(f"{new_dir}/{name}", f"{target_dir}/{name}", overwrite=True)
    for name in set(tf.io.gfile.listdir(target_dir)) - new_names:
      old_file = f"{target_dir}/{name}"
      # Some stores list by name prefix, so a sibling "<target_dir>.tmp-x" may show up as ".tmp-x".
      if tf.io.gfile.exists(old_file) and not tf.io.gfile.isdir(old_file):
        tf.io.gfile.remove(old_file)
    return
  if not tf.io.gfile.exists(target_dir):
    tf.io.gfile.rename(new_dir, target_dir)
    return
  old_dir = f"{target_dir}.old-{uuid.uuid4().hex[:8]}"
  tf.io.gfile.rename(target_dir, old_dir)
  tf.io.gfile.rename(new_dir, target_dir)
  tf.io.gfile.rmtree(old_dir)


def load_training_checkpoint(model: tf_keras.Model, checkpoint_path: str) -> None:
  """Restores only the model from a resumable training checkpoint (`training.train`).

  Args:
    model: a model of the same architecture.
    checkpoint_path: a checkpoint prefix (".../ckpt-N") or its directory
      (the latest one is used).
  """
  if tf.io.gfile.isdir(checkpoint_path):
    latest = tf.train.latest_checkpoint(checkpoint_path)
    if latest is None:
      raise InputError(f"{checkpoint_path}: no training checkpoint in this directory")
    checkpoint_path = latest
  if not tf.io.gfile.exists(checkpoint_path + ".index"):
    raise InputError(f"{checkpoint_path}: no checkpoint with this prefix")
  try:
    status = tf.train.Checkpoint(model=model).restore(checkpoint_path)
    status.expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError) as e:
    raise InputError(f"{checkpoint_path}: does not fit the model: {errors.first_line(e)}") from None
