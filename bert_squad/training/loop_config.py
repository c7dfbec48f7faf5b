"""How a fine-tuning run is configured and what it returns: TrainConfig in, TrainResult out.

`TrainConfig` (validated flag values: step counts int, dtype str) -> `loop.train`
-> `TrainResult` (initial/final step int, last checkpoint path, history
[dict]). Also the names of the files training writes, the loss and dataset
function types `train` takes, its two errors, and `set_precision`, which sets
the Keras dtype policy for "float32" / "float16" / "bfloat16".
"""
import dataclasses
import signal
from typing import Callable

import tensorflow as tf
import tf_keras

from bert_squad.common.errors import InputError

HISTORY_FILE = "train_history.json"
CURVES_FILE = "training_curves.png"
TENSORBOARD_DIR = "tensorboard"

PRECISION_POLICIES = {
    "float32": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}

# loss_fn(start_positions [b], end_positions [b], start_logits [b, s],
#         end_logits [b, s]) -> per-example loss [b]
LossFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]
# dataset_fn(input_context) -> tf.data.Dataset of (inputs, targets) per-replica batches
DatasetFn = Callable[[tf.distribute.InputContext], tf.data.Dataset]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How long and how to train; the `run_squad.py` flag of each field in brackets.

  Attributes:
    output_dir: checkpoints, TensorBoard logs, history and plot [--output_dir].
    num_train_steps: optimizer updates in the whole run.
    train_batch_size: examples per optimizer update, over all replicas and
      micro-batches [--train_batch_size].
    steps_per_loop: the most updates per `tf.function` call; signals, logs
      and checkpoints are handled between calls. On a TPU this is the host
      loop; elsewhere a call also ends at the next log step (see
      `update_step.steps_in_next_call`) [--iterations_per_loop].
    save_checkpoints_steps: save every this many updates [--save_checkpoints_steps].
    keep_checkpoint_max: checkpoints kept, 0 for all [--keep_checkpoint_max].
    log_steps: progress line, TensorBoard and history every this many
      updates (on a TPU rounded up to the end of a host loop) [--log_steps].
    gradient_accumulation_steps: micro-batches of `train_batch_size / k`
      whose averaged gradients make one update [--gradient_accumulation_steps].
    dtype: "float32", "float16" (dynamic loss scaling) or "bfloat16"; set
      the matching Keras policy with `set_precision` BEFORE building the model.
    use_xla: compile each replica's forward and backward pass with XLA.
    handle_signals: on SIGINT/SIGTERM save a checkpoint after the current
      loop and raise `TrainingInterrupted` (main thread only).
    mask_padding_logits: the loss and accuracies ignore padding positions
      (`span_model.mask_padding_logits`): what length-bucketed batches need
      for a loss that does not depend on their width [--length_bucketing].
    max_seq_length: the width of a padded batch; when given, the history
      reports the share of its positions the batches computed
      ("computed_tokens_fraction") and the run's log the padding saved.
  """
  output_dir: str
  num_train_steps: int
  train_batch_size: int
  steps_per_loop: int = 1000
  save_checkpoints_steps: int = 1000
  keep_checkpoint_max: int = 5
  log_steps: int = 100
  gradient_accumulation_steps: int = 1
  dtype: str = "float32"
  use_xla: bool = False
  handle_signals: bool = True
  mask_padding_logits: bool = False
  max_seq_length: int | None = None

  def __post_init__(self):
    positive = {
        "--num_train_steps": self.num_train_steps,
        "--train_batch_size": self.train_batch_size,
        "--iterations_per_loop": self.steps_per_loop,
        "--save_checkpoints_steps": self.save_checkpoints_steps,
        "--log_steps": self.log_steps,
        "--gradient_accumulation_steps": self.gradient_accumulation_steps,
    }
    for flag, value in positive.items():
      if value <= 0:
        raise InputError(f"{flag}={value}: must be positive")
    if self.keep_checkpoint_max < 0:
      raise InputError(f"--keep_checkpoint_max={self.keep_checkpoint_max}: must be 0 (keep all) or positive")
    if self.dtype not in PRECISION_POLICIES:
      raise InputError(f"--dtype={self.dtype}: expected one of {', '.join(PRECISION_POLICIES)}")


@dataclasses.dataclass
class TrainResult:
  """What `train()` did.

  Attributes:
    initial_step: the step restored from `output_dir` (0 on a fresh start).
    final_step: the step of the last update (== num_train_steps).
    checkpoint_path: the last checkpoint written (None on a non-chief worker).
    history: the logged points, as in train_history.json.
  """
  initial_step: int
  final_step: int
  checkpoint_path: str | None
  history: list[dict]


class NonFiniteLossError(InputError):
  """The training loss became NaN or Inf; nothing was saved after the last good checkpoint.

  An `InputError` so that the entry point prints the one-line message: the
  usual cause is a learning rate or loss scale the user can change.
  """


class TrainingInterrupted(KeyboardInterrupt):
  """SIGINT/SIGTERM arrived; a checkpoint of the current step was saved.

  Attributes:
    signum: the signal received.
    step: the step saved.
    checkpoint_path: the checkpoint written (None on a non-chief worker).
  """

  def __init__(self, signum: int, step: int, checkpoint_path: str | None):
    super().__init__(f"{signal.Signals(signum).name} received: saved step {step} to "
                     f"{checkpoint_path}; run the same command again to resume")
    self.signum, self.step, self.checkpoint_path = signum, step, checkpoint_path


def set_precision(dtype: str) -> None:
  """Sets the Keras global dtype policy for `dtype`; call before building the model.

  float16 and bfloat16 compute in that type and keep float32 variables
  ("mixed_float16" / "mixed_bfloat16"); float32 restores the default.
  """
  if dtype not in PRECISION_POLICIES:
    raise InputError(f"--dtype={dtype}: expected one of {', '.join(PRECISION_POLICIES)}")
  tf_keras.mixed_precision.set_global_policy(PRECISION_POLICIES[dtype])

