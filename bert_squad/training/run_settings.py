"""The settings that define a training run, kept beside its checkpoints in `run_settings.json`.

Checkpoints in an output_dir resume only under the same settings: a run with
another training file, model, initial checkpoint or hyperparameter is refused
with one line naming what differs, instead of being taken for a finished (or
half-finished) run of its own. `discard_training_state` removes what an
earlier run left, for `--overwrite_output_dir`.

Settings that may change on a resume (how often to log or save, how many
checkpoints to keep, prediction flags, the strategy and device count, the
precision, XLA, gradient accumulation) are not recorded: the checkpoints and
the order of the training batches do not depend on them.
"""
import json
import os
import re

import tensorflow as tf
from absl import logging

from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.training import loop_config

SETTINGS_FILE = "run_settings.json"
FORMAT_VERSION = 1
_CHECKPOINT_FILE = re.compile(r"ckpt-\d+(\.index|\.data-\d{5}-of-\d{5})|checkpoint")
_SHA256 = "_sha256"


def checkpoint_sha256(init_checkpoint: str | None) -> str | None:
  """A content fingerprint of an initial checkpoint (None without one).

  A Google checkpoint's `.index` holds a CRC32C of every tensor, so its hash
  stands for the whole checkpoint; a `.safetensors` file is hashed whole.
  """
  if not init_checkpoint:
    return None
  if init_checkpoint.endswith(".safetensors"):
    return io_utils.file_sha256(init_checkpoint)
  return io_utils.file_sha256(init_checkpoint + ".index")


def _settings_path(output_dir: str) -> str:
  return os.path.join(output_dir, SETTINGS_FILE)


def _read(path: str) -> dict:
  try:
    recorded = json.loads(io_utils.read_bytes(path))
  except (OSError, ValueError) as e:
    raise InputError(f"{path}: unreadable ({e}); delete it to resume the checkpoints beside it unchecked, "
                     "or use --overwrite_output_dir to start afresh") from None
  if not isinstance(recorded, dict) or recorded.get("format_version") != FORMAT_VERSION:
    raise InputError(f"{path}: not a run settings file of format {FORMAT_VERSION}")
  return recorded


# Settings that runs recorded before the setting existed lack: what they ran with.
_VALUES_BEFORE_RECORDED = {"length_bucketing": False, "mask_padding_in_loss": False, "trim_micro_batches": False}


def _differences(recorded: dict, settings: dict, paths: dict[str, str | None]) -> list[str]:
  """One phrase per setting whose value differs, named by its flag."""
  differences = []
  for name, value in settings.items():
    old = recorded["settings"].get(name, _VALUES_BEFORE_RECORDED.get(name))
    if old == value:
      continue
    if name.endswith(_SHA256):
      flag = name[:-len(_SHA256)]
      differences.append(f"--{flag}={paths.get(flag)} has other contents than the run's "
                         f"{recorded['paths'].get(flag)}")
    elif isinstance(value, dict):
      keys = sorted(k for k in set(value) | set(old or {}) if value.get(k) != (old or {}).get(k))
      differences.append(f"--bert_config_file differs in {', '.join(keys)}")
    else:
      differences.append(f"--{name}={value} (the run's: {old})")
  return differences


def check_resumable(output_dir: str, settings: dict, paths: dict[str, str | None]) -> None:
  """Raises InputError if output_dir holds checkpoints of a run with other `settings`.

  Args:
    output_dir: the run's folder.
    settings: what defines the run, keyed by flag name (files by `<flag>_sha256`).
    paths: flag -> the file given now, to name it in the message.
  """
  latest = tf.train.latest_checkpoint(output_dir)
  if not latest:
    return
  path = _settings_path(output_dir)
  if not tf.io.gfile.exists(path):
    logging.warning("%s has no %s (written before run settings were recorded): resuming them without "
                    "checking that they come from this run's settings; --overwrite_output_dir starts afresh",
                    output_dir, SETTINGS_FILE)
    return
  differences = _differences(_read(path), settings, paths)
  if differences:
    raise InputError(
        f"--output_dir={output_dir} holds the checkpoints of another training run ({latest}, settings in "
        f"{SETTINGS_FILE}): {'; '.join(differences)}. Use another --output_dir, or --overwrite_output_dir to "
        "discard that run's checkpoints and start afresh")


def record(output_dir: str, settings: dict, paths: dict[str, str | None]) -> None:
  """Writes run_settings.json (atomically) for a run that starts without checkpoints."""
  if tf.train.latest_checkpoint(output_dir):
    return  # the same run, checked by check_resumable, or one from before settings were recorded
  io_utils.write_json(_settings_path(output_dir),
                      {"format_version": FORMAT_VERSION, "settings": settings, "paths": paths})


def discard_training_state(output_dir: str, export_dir: str) -> list[str]:
  """Deletes what training wrote in output_dir; returns the paths deleted.

  Only files this project writes: checkpoints (`ckpt-N.*`, `checkpoint`),
  run_settings.json, train_history.json, training_curves.png, the
  TensorBoard event files and the exported model; features, predictions and
  anything else stay.
  """
  if not tf.io.gfile.isdir(output_dir):
    return []
  names = tf.io.gfile.listdir(output_dir)
  doomed = [os.path.join(output_dir, name) for name in names
            if _CHECKPOINT_FILE.fullmatch(name) or name in (SETTINGS_FILE, loop_config.HISTORY_FILE,
                                                             loop_config.CURVES_FILE)]
  doomed += tf.io.gfile.glob(os.path.join(output_dir, loop_config.TENSORBOARD_DIR, "events.out.tfevents.*"))
  for path in doomed:
    tf.io.gfile.remove(path)
  if tf.io.gfile.isdir(export_dir):
    tf.io.gfile.rmtree(export_dir)
    doomed.append(export_dir)
  return doomed
