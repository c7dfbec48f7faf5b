"""What training reports: the progress bar, TensorBoard scalars, train_history.json and its plot.

`Logger.after_loop(step, totals [4] float64 sums of loss/start acc/end acc/
batch width)` turns each compiled call's stats into one history point
{"step", "loss", "learning_rate", "start_accuracy", "end_accuracy",
"examples_per_second" (+ "loss_scale", + "computed_tokens_fraction" when
the config gives max_seq_length)} at log steps; `read_history(output_dir) -> list[dict]`;
`plot_history(history, path)` writes training_curves.png.
"""
import json
import os
import time
from typing import TextIO

import numpy as np
import tensorflow as tf
import tf_keras
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bert_squad.common import io_utils
from bert_squad.common import progress
from bert_squad.training import loop_config


def current_learning_rate(optimizer) -> float:
  """The learning rate of the optimizer's last update (its schedule at iterations - 1)."""
  learning_rate = optimizer.learning_rate
  if isinstance(learning_rate, tf_keras.optimizers.schedules.LearningRateSchedule):
    learning_rate = learning_rate(tf.maximum(optimizer.iterations - 1, 0))
  return float(tf_keras.backend.get_value(learning_rate))


def read_history(output_dir: str) -> list[dict]:
  """The logged points of train_history.json in `output_dir` ([] if none)."""
  path = os.path.join(output_dir, loop_config.HISTORY_FILE)
  if not tf.io.gfile.exists(path):
    return []
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def plot_history(history: list[dict], path: str) -> None:
  """Writes a PNG of training loss, learning rate and start/end accuracy against the step.

  The accuracies are the share of training examples in each log interval whose
  argmax start (end) logit is the labelled position: a quick check that the
  loss curve means learning, not just a shrinking null answer.
  """
  steps = [p["step"] for p in history]
  marker = "." if len(steps) < 50 else None
  figure = Figure(figsize=(15, 4), tight_layout=True)
  FigureCanvasAgg(figure)
  loss_axes, lr_axes, accuracy_axes = figure.subplots(1, 3)
  loss_axes.plot(steps, [p["loss"] for p in history], marker=marker)
  loss_axes.set(title="training loss", xlabel="step", ylabel="loss")
  lr_axes.plot(steps, [p["learning_rate"] for p in history], color="tab:orange")
  lr_axes.set(title="learning rate", xlabel="step", ylabel="learning rate")
  lr_axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
  for name, color in (("start", "tab:green"), ("end", "tab:red")):
    accuracy_axes.plot(steps, [p[f"{name}_accuracy"] for p in history], color=color, marker=marker,
                       label=f"{name} position")
  accuracy_axes.set(title="training accuracy (argmax = label)", xlabel="step", ylabel="accuracy",
                    ylim=(0.0, 1.0))
  accuracy_axes.legend(loc="lower right")
  for axes in (loss_axes, lr_axes, accuracy_axes):
    axes.grid(alpha=0.3)
  with io_utils.atomic_open(path, "wb") as f:
    figure.savefig(f, format="png", dpi=100)


class Logger:
  """Accumulates stats between log steps; writes bar, TensorBoard and history."""

  def __init__(self, config: loop_config.TrainConfig, optimizer, loss_scale_optimizer, chief: bool,
               initial_step: int, stream: TextIO):
    self._config = config
    self._optimizer = optimizer
    self._loss_scale_optimizer = loss_scale_optimizer
    self._chief = chief
    self._progress = progress.Progress(config.num_train_steps, "train", "steps", stream,
                                       initial=initial_step, log_every_s=None, enabled=chief)
    self._step = initial_step
    tensorboard_dir = os.path.join(config.output_dir, loop_config.TENSORBOARD_DIR)
    self._writer = (tf.summary.create_file_writer(tensorboard_dir)
                    if chief else tf.summary.create_noop_writer())
    self.history = [p for p in read_history(config.output_dir) if p["step"] <= initial_step]
    self._loss_scale = (float(loss_scale_optimizer.loss_scale) if loss_scale_optimizer is not None
                        else None)
    self._run_widths = np.zeros(2)  # summed mean widths of this run's updates, and their count
    self._reset(initial_step)

  def _reset(self, step: int) -> None:
    self._since_step = step
    self._since_time = time.time()
    self._sums = np.zeros(4)

  def message(self, text: str) -> None:
    if self._chief:
      self._progress.message(text)

  def after_loop(self, step: int, totals: np.ndarray, last: bool = False) -> None:
    """Records one loop's summed stats; logs at log steps and at the `last` loop."""
    self._sums += totals
    self._run_widths += (totals[3], step - self._step)
    done = step - self._since_step
    log_now = (step // self._config.log_steps > self._since_step // self._config.log_steps
               or step == self._config.num_train_steps or last)
    loss, start_accuracy, end_accuracy, width = self._sums / done
    point = {
        "step": step,
        "loss": float(loss),
        "learning_rate": current_learning_rate(self._optimizer),
        "start_accuracy": float(start_accuracy),
        "end_accuracy": float(end_accuracy),
        "examples_per_second": done * self._config.train_batch_size
                               / max(time.time() - self._since_time, 1e-9),
    }
    self._progress.advance(step - self._step, postfix=(
        f"loss {point['loss']:.4f} lr {point['learning_rate']:.3g} "
        f"{point['examples_per_second']:.1f} ex/s"))
    self._step = step
    self._report_loss_scale_drop(step)
    if not log_now:
      return
    self._progress.log_line()
    if self._loss_scale_optimizer is not None:
      point["loss_scale"] = float(self._loss_scale_optimizer.loss_scale)
    if self._config.max_seq_length:
      point["computed_tokens_fraction"] = float(width) / self._config.max_seq_length
    self.history.append(point)
    if self._chief:
      with self._writer.as_default(step=step):
        for name, value in point.items():
          if name != "step":
            tf.summary.scalar(name, value)
      self._writer.flush()
      io_utils.write_json(os.path.join(self._config.output_dir, loop_config.HISTORY_FILE), self.history)
    self._reset(step)

  def _report_loss_scale_drop(self, step: int) -> None:
    """float16: says when overflowing gradients made the dynamic loss scaling skip updates."""
    if self._loss_scale_optimizer is None:
      return
    loss_scale = float(self._loss_scale_optimizer.loss_scale)
    if loss_scale < self._loss_scale:
      self.message(f"step {step}: float16 gradients overflowed; dynamic loss scaling skipped those "
                   f"updates and lowered the loss scale from {self._loss_scale:g} to {loss_scale:g}")
    self._loss_scale = loss_scale

  def token_summary(self) -> str | None:
    """How many positions this run's updates computed against a padded run (None before any update)."""
    width_sum, updates = self._run_widths
    if not updates or not self._config.max_seq_length:
      return None
    examples = updates * self._config.train_batch_size
    computed = width_sum * self._config.train_batch_size
    padded = examples * self._config.max_seq_length
    return (f"train: computed {computed:,.0f} of {padded:,.0f} tokens "
            f"({padded / computed:.2f}× fewer) in {updates:.0f} updates")

  def finish(self) -> None:
    summary = self.token_summary()
    if summary:
      self.message(summary)
    self._progress.close()
    if self._chief and self.history:
      plot_history(self.history, os.path.join(self._config.output_dir, loop_config.CURVES_FILE))
    self._writer.close()
