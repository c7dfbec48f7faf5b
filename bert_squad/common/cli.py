"""Shared glue for the absl entry points (`run_squad.py`, `python -m bert_squad.X`).

Only entry points use this module; library code never reads flags.
"""
import logging
import os
import signal
import sys
from typing import Callable, NoReturn, Sequence

from absl import app
from absl import logging as absl_logging

from bert_squad.common.errors import disk_full_message
from bert_squad.common.errors import InputError


def fail(message: str) -> None:
  """Prints one line to stderr and exits with `InputError.EXIT_CODE` (2)."""
  sys.stderr.write(f"error: {message}\n")
  sys.stderr.flush()
  sys.exit(InputError.EXIT_CODE)


# A closed stdout (`... | head -1`) is no error: Unix tools die of SIGPIPE there, which the shell reports
# as 128 + 13. The same status, rather than 0, keeps `set -o pipefail` and ${PIPESTATUS[0]} telling
# "cut short by the reader" from "wrote everything" as they do for `cat`, and it is not the 2 of a mistake.
BROKEN_PIPE_EXIT_CODE = 128 + signal.SIGPIPE


def exit_on_closed_stdout() -> NoReturn:
  """Exits quietly, with `BROKEN_PIPE_EXIT_CODE`, after the reader of stdout went away."""
  # Python flushes stdout once more on exit; into the closed pipe that would print "Exception ignored".
  os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
  sys.exit(BROKEN_PIPE_EXIT_CODE)


class Terminated(KeyboardInterrupt):
  """SIGTERM arrived outside training (which saves a checkpoint first, see `training`).

  Raised like Ctrl-C's `KeyboardInterrupt`, so that files being written are
  removed (`io_utils.atomic_path`) before the process exits with 128 + 15.
  """
  signum = signal.SIGTERM


def _raise_terminated(signum, frame) -> None:
  del signum, frame
  raise Terminated("SIGTERM received: stopped")


def _drop_tensorflow_info(record: logging.LogRecord) -> bool:
  """False (drop) for INFO and DEBUG records logged from TensorFlow's own files."""
  return record.levelno >= logging.WARNING or f"{os.sep}tensorflow{os.sep}" not in record.pathname


def run(main: Callable[[Sequence[str]], None]) -> None:
  """`absl.app.run(main)`, turning `InputError` and a full disk into one line and exit code 2.

  Output into a closed pipe ends quietly (`exit_on_closed_stdout`).
  """

  def guarded_main(argv: Sequence[str]) -> None:
    # TensorFlow's own INFO lines (checkpoint sharding, ...) would drown the progress logs. Some go
    # through the "tensorflow" logger, newer ones straight through absl's: filter those by their file.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    absl_logging.get_absl_handler().addFilter(_drop_tensorflow_info)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
      main(argv)
      sys.stdout.flush()  # here, not at exit, so that a closed pipe is seen below
    except BrokenPipeError:  # only stdout can raise it here: network and worker pipes are handled where used
      exit_on_closed_stdout()
    except InputError as e:
      fail(str(e))
    except Exception as e:  # pylint: disable=broad-except
      message = disk_full_message(e)
      if message is None:
        raise
      fail(message)
    except KeyboardInterrupt as e:
      # training.TrainingInterrupted says where it saved; exit 128 + the signal, as shells do.
      sys.stderr.write(f"{str(e) or 'interrupted'}\n")
      sys.exit(128 + getattr(e, "signum", signal.SIGINT))

  app.run(guarded_main)
