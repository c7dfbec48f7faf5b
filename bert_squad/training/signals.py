"""SIGINT/SIGTERM during training: remember the signal, and agree on it across workers.

`StopRequest(enabled).signum` is the signal received (int) or None;
`stop_agreement(strategy)` -> a function (this worker's signal | None) ->
the signal every worker stops for (int | None), the same on all workers.
"""
import signal
import threading
from typing import Callable

import tensorflow as tf


class StopRequest:
  """Remembers SIGINT/SIGTERM so the loop can save and stop between tf.function calls.

  A second signal of the same kind gets the previous handler (e.g. Ctrl-C twice
  stops at once, without a checkpoint).
  """

  _SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self, enabled: bool):
    self.signum: int | None = None
    self._previous = {}
    if enabled and threading.current_thread() is threading.main_thread():
      for signum in self._SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)

  def _handle(self, signum, frame) -> None:
    del frame
    self.signum = signum
    signal.signal(signum, self._previous[signum])

  def restore_handlers(self) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


def stop_agreement(strategy: tf.distribute.Strategy) -> Callable[[int | None], int | None]:
  """A function: this worker's signal (or None) -> the signal all workers stop for.

  In a multi-worker job all workers must stop at the same step, or the others
  would wait forever in the next all-reduce: a worker that got no signal
  stops for SIGTERM when another one got a signal.
  """
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return lambda signum: signum

  @tf.function
  def workers_stopping(flag):
    return strategy.reduce(tf.distribute.ReduceOp.SUM,
                           strategy.run(lambda: tf.identity(flag)), axis=None)

  def agreed(signum: int | None) -> int | None:
    if float(workers_stopping(tf.constant(0.0 if signum is None else 1.0))) == 0:
      return None
    return signum or signal.SIGTERM

  return agreed
