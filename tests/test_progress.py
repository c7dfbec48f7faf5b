"""The one progress display: in place on a terminal, whole lines in a log."""
import io
from unittest import mock

from tqdm import std

from bert_squad.common import progress


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_a_terminal_redraws_one_line_in_place_and_ends_it():
  terminal = _Terminal()
  with progress.Progress(100, "train", "steps", terminal) as bar:
    bar.advance(10, postfix="loss 1.5000")
    bar.message("resuming")
    bar.advance(90)
  text = terminal.getvalue()
  assert text.count("\r") >= 3 and text.endswith("\n")
  assert "\rresuming\n" in text  # the bar is cleared for the message, then redrawn
  assert text.rsplit("\r", 1)[1].startswith("train: 100%|") and "100/100" in text


def test_a_log_gets_a_whole_line_per_interval_and_a_final_one():
  now = [0.0]
  log = io.StringIO()
  with mock.patch.object(std, "time", lambda: now[0]):
    bar = progress.Progress(40, "features", "examples", log, log_every_s=30)
    for _ in range(4):
      now[0] += 10
      bar.advance(5)  # a line at 30 s only
    assert log.getvalue() == "features: 15/40 examples  38% [00:30<00:50,  2.00s/examples]\n"
    bar.advance(20)
    bar.close()
  lines = log.getvalue().splitlines()
  assert "\r" not in log.getvalue() and len(lines) == 2
  assert lines[1].startswith("features: 40/40 examples 100% [00:40<00:00, ")


def test_log_lines_come_from_log_line_only_without_an_interval():
  log = io.StringIO()
  with progress.Progress(20, "train", "steps", log, initial=10, log_every_s=None) as bar:
    bar.advance(5, postfix="loss 1.5000 lr 3e-05 80.0 ex/s")
    bar.advance(5)
    bar.log_line()
    bar.message("done")
  assert [line.split(",")[-1] for line in log.getvalue().splitlines()] == [" loss 1.5000 lr 3e-05 80.0 ex/s]",
                                                                           "done"]
  assert log.getvalue().startswith("train: 20/20 steps 100% [")


def test_iterate_counts_each_item_and_a_disabled_bar_writes_nothing():
  log = io.StringIO()
  assert list(progress.iterate([2, 3], 5, "features", "examples", log, count=lambda n: n)) == [2, 3]
  assert log.getvalue().startswith("features: 5/5 examples 100% [")
  quiet = _Terminal()
  assert list(progress.iterate([1], 1, "x", "y", quiet, enabled=False)) == [1]
  assert quiet.getvalue() == ""
