"""Atomic file output on local disks and on `gs://` and other `tf.io.gfile` schemes.

Every output a long job produces (TFRecords, metadata, predictions, eval
results, exported checkpoints) is written to a temporary name beside the
target and renamed when complete, so a crash leaves the old file or the new
one, never a half-written file that looks complete.

Local paths use `os` directly; TensorFlow is imported only for `scheme://`
paths, so light tools (the evaluator) start in milliseconds.
"""
import contextlib
import errno
import hashlib
import json
import os
import shutil
import uuid
from typing import Any, Iterator

from bert_squad.common.errors import InputError


def is_remote(path: str) -> bool:
  """True for `gs://...`, `ram://...` and other paths that need `tf.io.gfile`."""
  return "://" in path


@contextlib.contextmanager
def open_for_reading(path: str, mode: str = "r") -> Iterator[Any]:
  """`open(path, mode)` for local paths (text as UTF-8), tf.io.gfile for `scheme://` ones.

  Raises:
    FileNotFoundError: no such file (either kind of path).
    OSError: any other failure to open or read, with the filesystem's message.
  """
  if not is_remote(path):
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
      yield f
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    with tf.io.gfile.GFile(path, mode) as f:
      yield f
  except tf.errors.NotFoundError:
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path) from None
  except tf.errors.OpError as e:
    raise OSError(e.message) from None


def read_bytes(path: str) -> bytes:
  """The whole file (see `open_for_reading` for paths and errors)."""
  with open_for_reading(path, "rb") as f:
    return f.read()


def file_sha256(path: str) -> str:
  """Hex sha256 of a file's bytes (local or gs://), read in 1 MiB blocks.

  Raises:
    InputError: "<path>: file not found".
  """
  digest = hashlib.sha256()
  try:
    with open_for_reading(path, "rb") as f:
      while block := f.read(1 << 20):
        digest.update(block)
  except FileNotFoundError:
    raise InputError(f"{path}: file not found") from None
  return digest.hexdigest()


def make_output_dir(folder: str, flag: str, flag_value: str | None = None) -> None:
  """Creates an output folder and its parents, and checks that a file can be written there.

  On object stores (gs://) creating a folder is a no-op where folders are implicit.

  Args:
    folder: the folder to create (local or `scheme://`).
    flag: the flag that names it, e.g. "--output_dir", for the error message.
    flag_value: the flag's value when `folder` is only the parent of an output
      file (default: `folder`).

  Raises:
    InputError: "<flag>=<value>: not writable (<why>)", e.g. "/data/x is a
      file, not a folder" when a parent is a regular file.
  """
  probe = _temporary_name(os.path.join(folder, "write-test"))
  try:
    if is_remote(folder):
      _write_remote_probe(folder, probe)
    else:
      os.makedirs(folder, exist_ok=True)
      open(probe, "w", encoding="utf-8").close()  # pylint: disable=consider-using-with
      os.remove(probe)
  except OSError as e:
    blocker = _file_in_the_way(folder)
    why = f"{blocker} is a file, not a folder" if blocker else (e.strerror or str(e)).splitlines()[0]
    raise InputError(f"{flag}={flag_value or folder}: not writable ({why})") from None


def _write_remote_probe(folder: str, probe: str) -> None:
  """Creates `folder` and writes a test file through tf.io.gfile; its errors as `OSError`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(probe, "w") as f:
      f.write("")
    tf.io.gfile.remove(probe)
  except tf.errors.OpError as e:
    raise OSError(e.message) from None


def _file_in_the_way(folder: str) -> str | None:
  """The nearest existing one of a local `folder` and its parents if it is not a folder, else None."""
  if is_remote(folder):
    return None
  path = folder
  while path and not os.path.exists(path):
    path = os.path.dirname(path)
  return path if path and not os.path.isdir(path) else None


def _temporary_name(path: str) -> str:
  head, tail = os.path.split(path)
  return os.path.join(head, f".{tail}.tmp-{uuid.uuid4().hex[:8]}")


def remove_if_exists(path: str) -> None:
  """Deletes a file; nothing happens if there is none."""
  if is_remote(path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if tf.io.gfile.exists(path):
      tf.io.gfile.remove(path)
  else:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # NotADirectory: a parent is a file
      os.remove(path)


def _rename(src: str, dst: str) -> None:
  if is_remote(dst):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.io.gfile.rename(src, dst, overwrite=True)
  else:
    os.replace(src, dst)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path; renames it onto `path` if the block succeeds.

  Use for writers that want a file name (e.g. `tf.io.TFRecordWriter`). On an
  exception the temporary file is removed and `path` is left untouched; an
  OS error that names no file (a failed `write`, e.g. a full disk) is
  given `path` as its `filename`.
  """
  tmp = _temporary_name(path)
  try:
    yield tmp
    _rename(tmp, path)
  except BaseException as e:
    remove_if_exists(tmp)
    if isinstance(e, OSError) and e.errno is not None and e.filename is None:
      e.filename = path
    raise


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w") -> Iterator[Any]:
  """Like `open(path, mode)` for writing, but the file appears only when complete.

  An `OSError` on opening names `path`, not the temporary file.
  """
  with atomic_path(path) as tmp:
    if is_remote(path):
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      f = tf.io.gfile.GFile(tmp, mode)
    else:
      try:
        f = open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
      except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None
    with f:
      yield f


def write_json(path: str, obj: Any, indent: int | None = 4) -> None:
  """Writes `obj` as JSON to `path` atomically (UTF-8, non-ASCII kept)."""
  with atomic_open(path, "w") as f:
    f.write(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def human_bytes(count: float) -> str:
  """A byte count for people: 999 -> `999 B`, 307200 -> `307.2 kB` (powers of 1000, up to GB)."""
  for unit in ("B", "kB", "MB", "GB"):
    if count < 1000 or unit == "GB":
      return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
    count /= 1000
  raise AssertionError("unreachable")


def check_free_space(folder: str, needed: int, what: str) -> None:
  """Raises `InputError` (`disk full: ...`) unless `folder`'s disk has `needed` bytes free."""
  free = shutil.disk_usage(folder).free
  if needed > free:
    raise InputError(f"disk full: {what} needs {human_bytes(needed)} more in {folder}, "
                     f"only {human_bytes(free)} free")
