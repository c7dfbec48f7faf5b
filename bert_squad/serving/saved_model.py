"""Writes the SavedModel: span model (or fine-tuned Google-format folder) -> export_dir path (str).

The folder holds the `serving_module` signatures, `assets/vocab.txt` and the
settings as JSON in `SETTINGS_FILE`; it appears complete or not at all.
"""
import dataclasses
import os
import tempfile
import uuid

from absl import logging
import tensorflow as tf

from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.data import tokenization
from bert_squad.modeling import google_format
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from bert_squad.modeling import weight_map
from bert_squad.serving import answer_settings
from bert_squad.serving import serving_module

# The export's settings, as JSON, in the SavedModel's `assets.extra/` (TF
# Serving's folder for files that are not part of the graph).
SETTINGS_FILE = os.path.join("assets.extra", "bert_squad_export.json")


def write_clean_vocab(vocab_file: str, folder: str) -> str:
  """Copies a checked vocabulary with each token stripped, as the original reads it.

  The lookup table reads whole lines, so stray spaces or "\\r" would
  otherwise change the ids.
  """
  vocab = tokenization.load_vocab(vocab_file)
  path = os.path.join(folder, "vocab.txt")
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(token + "\n" for token in vocab))
  return path


def _check_new_export_dir(export_dir: str) -> None:
  """InputError unless `export_dir` is new and its parent folder (created here) is writable."""
  if tf.io.gfile.exists(export_dir):
    raise InputError(f"--export_dir={export_dir}: already exists; remove it or choose a new "
                     "version folder")
  io_utils.make_output_dir(os.path.dirname(export_dir) or ".", "--export_dir", export_dir)


def save_serving_model(model: span_model.BertSpanModel, vocab_file: str,
                       settings: answer_settings.AnswerSettings, export_dir: str,
                       answer_signature: bool = True) -> str:
  """Writes the SavedModel of a span model to `export_dir` (which must not exist).

  Written to a temporary folder beside `export_dir` and renamed into place, so
  TF Serving never sees a half-written version.

  Args:
    model: the fine-tuned span model.
    vocab_file: its vocabulary (becomes `assets/vocab.txt`).
    settings: the `answer` signature's settings.
    export_dir: the SavedModel folder, e.g. `models/bert_squad/1`.
    answer_signature: also export `answer` (needs tensorflow-text ops to
      load); without it the SavedModel holds core TensorFlow ops only.

  Returns:
    `export_dir`.
  """
  settings.validate()
  model_config.validate_config(model.bert_config, settings.max_seq_length, vocab_file)
  tokenization.check_do_lower_case(settings.do_lower_case, vocab_file,
                                   tokenization.load_vocab(vocab_file))
  export_dir = export_dir.rstrip("/")
  _check_new_export_dir(export_dir)
  staging_dir = f"{export_dir}.tmp-{uuid.uuid4().hex[:8]}"
  with tempfile.TemporaryDirectory() as vocab_folder:
    module = serving_module.SquadServingModule(
        model, write_clean_vocab(vocab_file, vocab_folder), settings, answer_signature)
    try:
      tf.saved_model.save(module, staging_dir, signatures=module.serving_signatures())
      tf.io.gfile.makedirs(os.path.dirname(os.path.join(staging_dir, SETTINGS_FILE)))
      io_utils.write_json(os.path.join(staging_dir, SETTINGS_FILE),
                          dict(dataclasses.asdict(settings), answer_signature=answer_signature),
                          indent=2)
      tf.io.gfile.rename(staging_dir, export_dir)
    finally:
      if tf.io.gfile.exists(staging_dir):
        tf.io.gfile.rmtree(staging_dir)
  return export_dir


def export_checkpoint(checkpoint_dir: str, export_dir: str,
                      settings: answer_settings.AnswerSettings,
                      answer_signature: bool = True) -> str:
  """Loads a fine-tuned Google-format folder and writes its SavedModel (`save_serving_model`).

  Raises:
    InputError: a missing file (for a run_squad.py output_dir, naming its
      export/), a `do_lower_case` that contradicts the vocabulary or the
      checkpoint's name, a checkpoint that does not fit its config, or one
      without the SQuAD head (a pre-trained model is not fine-tuned).
  """
  settings.validate()
  _check_new_export_dir(export_dir.rstrip("/"))
  prefix = google_format.checkpoint_in_folder(checkpoint_dir, "--checkpoint_dir")
  folder = os.path.dirname(prefix)
  vocab_file = os.path.join(folder, "vocab.txt")
  config_file = os.path.join(folder, "bert_config.json")
  config = model_config.BertConfig.from_json_file(config_file)
  tokenization.check_do_lower_case(settings.do_lower_case, vocab_file,
                                   tokenization.load_vocab(vocab_file), prefix)
  logging.info("exporting %s with %s and %s", prefix, config_file, vocab_file)
  model = span_model.build_span_model(config)
  loaded = google_format.load_google_checkpoint(model, prefix)
  if not any(name.startswith(weight_map.SQUAD_HEAD_SCOPE) for name in loaded):
    raise InputError(f"{prefix}: no SQuAD head ({weight_map.SQUAD_HEAD_SCOPE}*); export a "
                     "fine-tuned model, not a pre-trained one")
  return save_serving_model(model, vocab_file, settings, export_dir, answer_signature)
