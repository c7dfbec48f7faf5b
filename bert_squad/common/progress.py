"""The one progress display (features, training steps, prediction batches, downloads).

A tqdm bar redrawn in place on a terminal; elsewhere (a log file, CI) the same
numbers as a whole line now and then and one at the end. tqdm is imported
when the first bar starts, so importing this module stays cheap (the feature
worker processes import it).
"""
import functools
import math
from typing import Callable, Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")

# A log line: the numbers without the bar (tqdm adds ", " before a postfix).
_LOG_FORMAT = ("{desc}: {n_fmt}/{total_fmt} {unit} {percentage:3.0f}% "
               "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")


@functools.cache
def _bar_class() -> type:
  from tqdm import std  # pylint: disable=import-outside-toplevel

  class Bar(std.tqdm):
    monitor_interval = 0  # no monitor thread: every update checks the time itself

  return Bar


class _LogLines:
  """A file for tqdm that turns its "\\r"-redraws into whole lines on `stream`."""

  def __init__(self, stream: TextIO):
    self._stream = stream

  def write(self, text: str) -> None:
    for piece in text.replace("\r", "\n").split("\n"):
      if piece.strip():
        self._stream.write(piece.rstrip() + "\n")

  def flush(self) -> None:
    self._stream.flush()


class Progress:
  """One bar: redrawn in place on a terminal, a line every `log_every_s` in a log.

  With `log_every_s=None` a log gets lines only from `log_line` (training
  writes one per log step). `enabled=False` shows nothing; so does the
  environment variable TQDM_DISABLE=1.
  """

  def __init__(self, total: int | None, desc: str, unit: str, stream: TextIO, *, initial: int = 0,
               unit_scale: bool = False, log_every_s: float | None = 30.0, enabled: bool = True):
    self._stream = stream
    self._terminal = hasattr(stream, "isatty") and stream.isatty()
    self._logged_n = initial
    options = dict(total=total, initial=initial, desc=desc, unit=unit, unit_scale=unit_scale,
                   unit_divisor=1000, miniters=1)
    if not enabled:
      options["disable"] = True
    if self._terminal:
      options.update(file=stream, mininterval=0.1, dynamic_ncols=True, leave=True)
    else:
      interval = math.inf if log_every_s is None else log_every_s
      options.update(file=_LogLines(stream), mininterval=interval, delay=interval, leave=False,
                     bar_format=_LOG_FORMAT if total else None)
    self._bar = _bar_class()(**options)

  def advance(self, n: int = 1, postfix: str | None = None) -> None:
    """Counts `n` more; redraws (terminal) or writes a line if the interval is up (log)."""
    if postfix is not None:
      self._bar.set_postfix_str(postfix, refresh=False)
    self._bar.update(n)

  def log_line(self) -> None:
    """Writes a line now in a log (redraws on a terminal)."""
    self._bar.refresh()
    self._logged_n = self._bar.n

  def message(self, text: str) -> None:
    """Writes `text` as its own line, above the bar on a terminal."""
    if self._terminal and not self._bar.disable:
      self._bar.write(text, file=self._stream)
    else:
      self._stream.write(text + "\n")
      self._stream.flush()

  def close(self) -> None:
    """Shows the final count (unless the last line did) and ends the bar."""
    bar = self._bar
    if not (self._terminal or bar.disable or bar.n in (bar.last_print_n, self._logged_n)):
      self.log_line()
    self._bar.close()

  def __enter__(self) -> "Progress":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def iterate(items: Iterable[T], total: int, desc: str, unit: str, stream: TextIO,
            count: Callable[[T], int] = lambda item: 1, **options) -> Iterator[T]:
  """Yields `items`, advancing a `Progress` by `count(item)` after each."""
  with Progress(total, desc, unit, stream, **options) as progress:
    for item in items:
      yield item
      progress.advance(count(item))
