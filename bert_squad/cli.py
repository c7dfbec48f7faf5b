"""Shared glue for the absl entry points (`run_squad.py`, `python -m bert_squad.X`).

Only entry points use this module; library code never reads flags.
"""
import logging
import signal
import sys
from typing import Callable, Sequence

from absl import app

from bert_squad.errors import InputError


def fail(message: str) -> None:
  """Prints one line to stderr and exits with `InputError.EXIT_CODE` (2)."""
  sys.stderr.write(f"error: {message}\n")
  sys.stderr.flush()
  sys.exit(InputError.EXIT_CODE)


def run(main: Callable[[Sequence[str]], None]) -> None:
  """`absl.app.run(main)`, turning `InputError` into one line and exit code 2."""

  def guarded_main(argv: Sequence[str]) -> None:
    # TensorFlow's own INFO lines (checkpoint sharding, ...) would drown the progress logs.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    try:
      main(argv)
    except InputError as e:
      fail(str(e))
    except KeyboardInterrupt as e:
      # training.TrainingInterrupted says where it saved; exit 128 + the signal, as shells do.
      sys.stderr.write(f"{str(e) or 'interrupted'}\n")
      sys.exit(128 + getattr(e, "signum", signal.SIGINT))

  app.run(guarded_main)
