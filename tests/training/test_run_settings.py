"""run_settings: which checkpoints in an output_dir may be resumed, and what --overwrite_output_dir deletes."""
import json
import pathlib

import pytest
import tensorflow as tf

from bert_squad.common.errors import InputError
from bert_squad.training import run_settings

SETTINGS = {"train_file_sha256": "aa", "bert_config": {"hidden_size": 64, "num_hidden_layers": 2},
            "learning_rate": 3e-5, "seed": 1}
PATHS = {"train_file": "/data/train.json"}


def _checkpointed(folder: pathlib.Path, settings: dict | None = SETTINGS) -> pathlib.Path:
  """A folder with a training checkpoint (ckpt-3) and, unless None, the settings it was written with."""
  if settings is not None:
    run_settings.record(str(folder), settings, PATHS)
  tf.train.CheckpointManager(tf.train.Checkpoint(step=tf.Variable(3)), str(folder), max_to_keep=1).save(3)
  return folder


def test_a_fresh_output_dir_records_the_settings(tmp_path):
  run_settings.check_resumable(str(tmp_path), SETTINGS, PATHS)
  run_settings.record(str(tmp_path), SETTINGS, PATHS)
  recorded = json.loads((tmp_path / run_settings.SETTINGS_FILE).read_text())
  assert recorded == {"format_version": 1, "settings": SETTINGS, "paths": PATHS}


def test_the_same_settings_resume(tmp_path):
  run_settings.check_resumable(str(_checkpointed(tmp_path)), dict(SETTINGS), PATHS)


def test_other_settings_are_refused_naming_each_difference(tmp_path):
  changed = {**SETTINGS, "train_file_sha256": "bb", "learning_rate": 5e-5,
             "bert_config": {"hidden_size": 128, "num_hidden_layers": 2}}
  with pytest.raises(InputError) as raised:
    run_settings.check_resumable(str(_checkpointed(tmp_path)), changed, {"train_file": "/data/other.json"})
  assert str(raised.value) == (
      f"--output_dir={tmp_path} holds the checkpoints of another training run ({tmp_path / 'ckpt-3'}, settings "
      "in run_settings.json): --train_file=/data/other.json has other contents than the run's /data/train.json; "
      "--bert_config_file differs in hidden_size; --learning_rate=5e-05 (the run's: 3e-05). Use another "
      "--output_dir, or --overwrite_output_dir to discard that run's checkpoints and start afresh")


def test_settings_beside_no_checkpoint_are_replaced(tmp_path):
  run_settings.record(str(tmp_path), SETTINGS, PATHS)  # a run killed before its first checkpoint
  changed = {**SETTINGS, "seed": 2}
  run_settings.check_resumable(str(tmp_path), changed, PATHS)
  run_settings.record(str(tmp_path), changed, PATHS)
  assert json.loads((tmp_path / run_settings.SETTINGS_FILE).read_text())["settings"]["seed"] == 2


def test_a_damaged_settings_file_is_one_line(tmp_path):
  folder = _checkpointed(tmp_path)
  (folder / run_settings.SETTINGS_FILE).write_text("{not json")
  with pytest.raises(InputError, match=r"run_settings.json: unreadable \(.*\); delete it to resume"):
    run_settings.check_resumable(str(folder), SETTINGS, PATHS)


def test_discard_deletes_only_the_training_state(tmp_path):
  folder = _checkpointed(tmp_path)
  for name in ("train_history.json", "training_curves.png", "tensorboard/events.out.tfevents.1.host",
               "tensorboard/mine.txt", "export/bert_model.ckpt.index", "features/train-1.tf_record",
               "predictions.json", "ckpt-notes.txt", "notes.txt"):
    (folder / name).parent.mkdir(exist_ok=True)
    (folder / name).write_text("x")
  run_settings.discard_training_state(str(folder), str(folder / "export"))
  left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
  assert left == ["ckpt-notes.txt", "features/train-1.tf_record", "notes.txt", "predictions.json",
                  "tensorboard/mine.txt"]
  assert tf.train.latest_checkpoint(str(folder)) is None
