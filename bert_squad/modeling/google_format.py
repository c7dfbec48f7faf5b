"""Google's original checkpoint folders: find, read into the span model, write out.

A folder holds `bert_model.ckpt.{index,data-00000-of-00001}` (TF1 names and
layouts, see `weight_map`), `bert_config.json` and `vocab.txt`.
`load_google_checkpoint(model, prefix)` reads it with `tf.train.load_checkpoint`
and returns the Google names (list[str]) it assigned; loading fails loudly:
every missing, wrong-shaped or unexpected variable is listed, and no layer is
ever left silently random (the original silently skips them).
`export_google_checkpoint(model, vocab_file, output_dir)` writes such a folder
atomically with the `SaveV2` op and returns its checkpoint prefix (str).
"""
import uuid
from typing import Mapping

import numpy as np
import tensorflow as tf
from absl import logging

from bert_squad.common import errors
from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from bert_squad.modeling import weight_map

# The checkpoint prefix's file name inside a Google folder.
CHECKPOINT_NAME = "bert_model.ckpt"
# Where run_squad.py writes the fine-tuned model, in Google's format, inside its output_dir.
RUN_EXPORT_DIR = "export"


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
  weights = weight_map.google_weight_map(model)
  all_shapes = reader.get_variable_to_shape_map()
  shapes = {n: shape for n, shape in all_shapes.items() if n in weights}
  unexpected = [n for n in all_shapes if n not in weights and not weight_map.is_unused(n) and
                n.startswith(("bert/", weight_map.SQUAD_HEAD_SCOPE))]
  names = weight_map.plan_loading(weights, shapes, unexpected, checkpoint_path,
                                  source_name=lambda n: n)
  ignored = sorted(n for n in all_shapes if n not in weights)
  if ignored:
    logging.info("%s: skipped %d tensors the span model does not use (e.g. %s)",
                 checkpoint_path, len(ignored), ", ".join(ignored[:3]))
  weight_map.assign(weights, {n: _read_google_tensor(reader, n, checkpoint_path) for n in names})
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
  model_config.validate_config(config, None, vocab_file)
  tensors = {name: weight.to_google() for name, weight in weight_map.google_weight_map(model).items()
             if include_squad_head or not name.startswith(weight_map.SQUAD_HEAD_SCOPE)}
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
