"""The span model out of the resumable training state: TF2 checkpoints `ckpt-N` of `loop.train`.

Training state for resuming (model, optimizer slots, step) lives in TF2
object checkpoints, apart from the Google export; `load_training_checkpoint`
restores only the model's variables from one (a prefix or its folder, str)
and returns nothing.
"""
import tensorflow as tf
import tf_keras

from bert_squad.common import errors
from bert_squad.common.errors import InputError


def load_training_checkpoint(model: tf_keras.Model, checkpoint_path: str) -> None:
  """Restores only the model from a resumable training checkpoint (`loop.train`).

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
