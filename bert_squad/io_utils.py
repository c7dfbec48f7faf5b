"""Atomic file output on local disks and `gs://` (through `tf.io.gfile`).

Every output a long job produces (TFRecords, metadata, predictions, eval
results, exported checkpoints) is written to a temporary name beside the
target and renamed when complete, so a crash leaves the old file or the new
one, never a half-written file that looks complete.
"""
import contextlib
import json
import os
import uuid
from typing import Any, Iterator

import tensorflow as tf


def _temporary_name(path: str) -> str:
  head, tail = os.path.split(path)
  return os.path.join(head, f".{tail}.tmp-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path; renames it onto `path` if the block succeeds.

  Use for writers that want a file name (e.g. `tf.io.TFRecordWriter`). On an
  exception the temporary file is removed and `path` is left untouched.
  """
  tmp = _temporary_name(path)
  try:
    yield tmp
    tf.io.gfile.rename(tmp, path, overwrite=True)
  except BaseException:
    if tf.io.gfile.exists(tmp):
      tf.io.gfile.remove(tmp)
    raise


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w") -> Iterator[Any]:
  """Like `open(path, mode)` for writing, but the file appears only when complete."""
  with atomic_path(path) as tmp:
    with tf.io.gfile.GFile(tmp, mode) as f:
      yield f


def write_json(path: str, obj: Any, indent: int | None = 4) -> None:
  """Writes `obj` as JSON to `path` atomically (UTF-8, non-ASCII kept)."""
  with atomic_open(path, "w") as f:
    f.write(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")
