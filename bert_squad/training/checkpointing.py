"""Saving and restoring the training checkpoint `ckpt-<step>` in output_dir, on every worker.

`Checkpointer(tf.train.Checkpoint of model/optimizer/step, step counter int64,
output_dir, keep, chief)`: `restore_latest() -> path | None`, `save(step)`;
`last_saved` is the path of the newest checkpoint (None on a non-chief worker).
"""
import os
import shutil
import tempfile

import tensorflow as tf

from bert_squad.common import errors
from bert_squad.common.errors import InputError


class Checkpointer:
  """Saves to `output_dir` on the chief; other workers save to a scratch dir.

  Every worker of a multi-worker job takes part in each save (as
  `tf.distribute` asks) and all restore the chief's latest checkpoint.
  """

  def __init__(self, checkpoint: tf.train.Checkpoint, step_counter: tf.Variable,
               output_dir: str, keep: int, chief: bool):
    self._checkpoint = checkpoint
    self._output_dir = output_dir
    self._manager = (tf.train.CheckpointManager(checkpoint, output_dir, max_to_keep=keep or None,
                                                step_counter=step_counter) if chief else None)
    self.last_saved: str | None = tf.train.latest_checkpoint(output_dir) if chief else None

  def restore_latest(self) -> str | None:
    latest = tf.train.latest_checkpoint(self._output_dir)
    if latest:
      # Partial: a float32 run resumed in float16 (or the reverse) finds no
      # (or an unused) loss scale, a non-deterministic run unused generators.
      try:
        self._checkpoint.restore(latest).expect_partial()
      except (ValueError, AssertionError, tf.errors.OpError) as e:
        raise InputError(
            f"{latest}: cannot resume from this checkpoint in {self._output_dir} ({errors.first_line(e)}); it was "
            "written by another model or is damaged: use another --output_dir or delete its ckpt-* files") from None
    return latest

  def save(self, step: int) -> None:
    if self._manager is None:
      scratch = tempfile.mkdtemp(prefix="bert_squad_worker_checkpoint_")
      try:
        self._checkpoint.write(os.path.join(scratch, f"ckpt-{step}"))
      finally:
        shutil.rmtree(scratch, ignore_errors=True)
      return
    try:
      self.last_saved = self._manager.save(checkpoint_number=step)
    except BaseException:
      self._remove_partial_save(step)
      raise

  def _remove_partial_save(self, step: int) -> None:
    """Deletes what a failed save (e.g. a full disk) wrote: TensorFlow's `<prefix>_temp` folder and
    any `<prefix>.*` file. The latest recorded checkpoint is older, so it is untouched."""
    prefix = os.path.join(self._output_dir, f"ckpt-{step}")
    if tf.io.gfile.isdir(prefix + "_temp"):
      tf.io.gfile.rmtree(prefix + "_temp")
    for path in tf.io.gfile.glob(prefix + ".*"):
      tf.io.gfile.remove(path)
