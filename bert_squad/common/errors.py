"""The one exception type for user mistakes (bad files, bad flags).

Entry points catch `InputError`, print its message as one line to stderr and
exit with code 2 -- no traceback. Library code raises it with a message that
names the file and the place (article index, question id, flag, variable).
A write that fails because the disk is full (or the file size limit,
RLIMIT_FSIZE, is reached) is reported the same way (`disk_full_message`).
"""
import errno
import re


class InputError(ValueError):
  """A problem with the user's input that the user can fix.

  Attributes:
    message: one line, e.g. "dev.json: article 3, question 'abc': answer_start
      -1 is out of range".
  """

  EXIT_CODE = 2


def first_line(error: BaseException) -> str:
  """The first line of an error's message, without TensorFlow's "{{function_node ...}}" and "[Op:...]"."""
  text = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*$", "", getattr(error, "message", None) or str(error))
  return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def located(path: str, where: str, problem: str) -> InputError:
  """Builds an `InputError` that reads "<path>: <where>: <problem>"."""
  parts = [p for p in (path, where, problem) if p]
  return InputError(": ".join(parts))


_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
# TensorFlow's file errors carry the C library's text after "<path>; ".
_TF_DISK_FULL = re.compile(r"(\S+); (No space left on device|File too large|Disk quota exceeded)")
# `io_utils` writes to ".<name>.tmp-<8 hex>" (files) or "<name>.tmp-<8 hex>" (folders).
_TEMPORARY_NAME = re.compile(r"(^|/)\.?([^/]+)\.tmp-[0-9a-f]{8}(?=/|$)")


def disk_full_message(error: BaseException) -> str | None:
  """"<file>: disk full / file too large (<reason>)" for a failed write, else None.

  Understands `OSError` (ENOSPC, EFBIG, EDQUOT) and TensorFlow's `OpError`s,
  whose messages name the file. A temporary name of `io_utils` is given as
  the file it would have become.
  """
  if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
    path, reason = error.filename, error.strerror
  elif any(cls.__name__ == "OpError" for cls in type(error).__mro__):
    match = _TF_DISK_FULL.search(str(error))
    if not match:
      return None
    path, reason = match.groups()
    # TensorFlow's own temporary checkpoint files: "<prefix>_temp/part-00000-of-00001<suffix>.tempstate<n>".
    path = re.sub(r"_temp/part-\d+-of-\d+|\.tempstate\d+$", "", path)
  else:
    return None
  path = _TEMPORARY_NAME.sub(r"\1\2", str(path)) if path else "output"
  return f"{path}: disk full / file too large ({reason})"
