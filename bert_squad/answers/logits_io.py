"""The model's per-feature logits: `RawResult` rows, the `Logits` table, its checks and its .npz file.

Shapes: `RawResult` is one feature's start/end logits [seq]; `Logits` is a
table of n features: unique_ids [n] int64, start/end logits [n, seq] float32
(or float64). `logits_table` stacks `RawResult`s into a `Logits`;
`save_logits` / `load_logits` write and read it as `predict_logits.npz`.
"""
import io
import zipfile
from typing import Any, Iterable, NamedTuple

import numpy as np
import tensorflow as tf

from bert_squad.common.errors import InputError
from bert_squad.common.io_utils import atomic_path

# What run_squad.py --do_predict saves in its output_dir.
LOGITS_FILE = "predict_logits.npz"

_LOGITS_KEYS = ("unique_ids", "start_logits", "end_logits")


class RawResult(NamedTuple):
  """The model's output for one feature.

  Attributes:
    unique_id: `InputFeatures.unique_id` of the feature.
    start_logits: [seq_length] floats (list or array).
    end_logits: [seq_length] floats.
  """
  unique_id: int
  start_logits: Any
  end_logits: Any


class Logits(NamedTuple):
  """The model's output for many features, as saved by `save_logits`.

  Attributes:
    unique_ids: [n] int, `InputFeatures.unique_id` of each row.
    start_logits: [n, seq_length] float.
    end_logits: [n, seq_length] float.
  """
  unique_ids: np.ndarray
  start_logits: np.ndarray
  end_logits: np.ndarray


def _is_float32_array(x: Any) -> bool:
  return isinstance(x, np.ndarray) and x.dtype == np.float32


def logits_table(results: Iterable[RawResult]) -> Logits:
  """Stacks `RawResult`s; of several with one unique_id the last counts.

  float32 where all results hold float32 arrays (the ranking is the same as
  in float64, at half the memory), else float64 (Python floats, as in the
  original's lists). Scores are summed in float64 later either way.
  """
  by_unique_id = {r.unique_id: r for r in results}
  if not by_unique_id:
    return Logits(np.zeros(0, np.int64), np.zeros((0, 1)), np.zeros((0, 1)))
  seq_length = len(next(iter(by_unique_id.values())).start_logits)
  all_float32 = all(
      _is_float32_array(r.start_logits) and _is_float32_array(r.end_logits)
      for r in by_unique_id.values())
  shape = (len(by_unique_id), seq_length)
  dtype = np.float32 if all_float32 else np.float64
  start_logits, end_logits = np.empty(shape, dtype), np.empty(shape, dtype)
  for row, result in enumerate(by_unique_id.values()):
    if (len(result.start_logits) != seq_length or
        len(result.end_logits) != seq_length):
      raise InputError(
          f"logits of feature unique_id {result.unique_id} have lengths "
          f"{len(result.start_logits)} and {len(result.end_logits)}, "
          f"expected {seq_length} like the others")
    start_logits[row] = result.start_logits
    end_logits[row] = result.end_logits
  return Logits(np.array(list(by_unique_id), dtype=np.int64), start_logits,
                end_logits)


def save_logits(path: str, unique_ids: np.ndarray, start_logits: np.ndarray,
                end_logits: np.ndarray) -> None:
  """Saves raw logits atomically as an uncompressed .npz (see docs).

  Args:
    path: destination (local or gs://).
    unique_ids: [n] int, the features' unique_id.
    start_logits, end_logits: [n, seq_length] float32 (or float64).
  """
  arrays = {"unique_ids": np.asarray(unique_ids),
            "start_logits": np.asarray(start_logits),
            "end_logits": np.asarray(end_logits)}
  problem = logits_problem(arrays)
  if problem:
    raise ValueError(f"save_logits({path!r}): {problem}")
  arrays["unique_ids"] = arrays["unique_ids"].astype(np.int64)
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  with atomic_path(path) as tmp:
    with tf.io.gfile.GFile(tmp, "wb") as f:
      f.write(buffer.getvalue())


def load_logits(path: str) -> Logits:
  """Reads a `save_logits` file: unique_ids [n] int64, start and end logits
  [n, seq] as saved.

  Raises:
    InputError: a missing or unreadable file, or arrays with the wrong names,
      dtypes or shapes, repeated unique_ids, or NaN/inf logits.
  """
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      loaded = np.load(f, allow_pickle=False)
      if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError("a single array, not an .npz archive")
      with loaded:
        arrays = {k: loaded[k] for k in loaded.files}
  except (tf.errors.NotFoundError, tf.errors.PermissionDeniedError) as e:
    raise InputError(
        f"{path}: cannot read the logits file ({e.message})") from None
  except tf.errors.OpError as e:  # e.g. seeking in a truncated archive
    raise InputError(
        f"{path}: not a logits .npz file ({e.message})") from None
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise InputError(f"{path}: not a logits .npz file ({e})") from None
  problem = logits_problem(arrays)
  if problem:
    raise InputError(f"{path}: {problem}")
  return Logits(arrays["unique_ids"].astype(np.int64), arrays["start_logits"],
                arrays["end_logits"])


def logits_problem(arrays: dict[str, Any],
                   allow_repeated_ids: bool = False) -> str | None:
  """What is wrong with a logits table's arrays, or None."""
  missing = [k for k in _LOGITS_KEYS if k not in arrays]
  if missing:
    return (f"missing array(s) {', '.join(missing)} (expected "
            f"{', '.join(_LOGITS_KEYS)})")
  unique_ids = arrays["unique_ids"]
  if unique_ids.ndim != 1 or not np.issubdtype(unique_ids.dtype, np.integer):
    return (f"unique_ids must be a 1-D integer array, got {unique_ids.dtype} "
            f"{list(unique_ids.shape)}")
  for name in ("start_logits", "end_logits"):
    logits = arrays[name]
    if not np.issubdtype(logits.dtype, np.floating):
      return f"{name} must be floating point, got {logits.dtype}"
    if logits.ndim != 2 or logits.shape[0] != unique_ids.shape[0]:
      return (f"{name} must have shape [{unique_ids.shape[0]}, seq_length] "
              f"like unique_ids, got {list(logits.shape)}")
  if arrays["start_logits"].shape != arrays["end_logits"].shape:
    return (f"start_logits {list(arrays['start_logits'].shape)} and "
            f"end_logits {list(arrays['end_logits'].shape)} differ in shape")
  if not allow_repeated_ids:
    values, counts = np.unique(unique_ids, return_counts=True)
    if (counts > 1).any():
      return f"unique_id {values[counts > 1][0]} appears more than once"
  for name in ("start_logits", "end_logits"):
    bad_rows = np.flatnonzero(~np.isfinite(arrays[name]).all(axis=1))
    if bad_rows.size:
      return (f"{name} of unique_id {unique_ids[bad_rows[0]]} are not finite "
              "(NaN or inf)")
  return None
