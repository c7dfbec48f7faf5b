"""What the training tests share to run `training_toys.py` in its own process and read back what it did.

Runs that need a fresh process (logical CPU devices, multi-worker, being
killed) start the toy command with `start` and collect its JSON outcome with
`finish`; `final_weights` and `latest_step` read its output folder.
"""
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from tests import training_toys as toys

TOYS_SCRIPT = str(pathlib.Path(toys.__file__).resolve())
REPO_ROOT = str(pathlib.Path(__file__).resolve().parent.parent)


def free_port() -> int:
  """A local TCP port that is free now (for a multi-worker cluster spec)."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def toys_command(data: dict[str, str], output_dir, *args) -> list[str]:
  """The command that trains the toy model on data["train"] into `output_dir`, with extra flags `args`."""
  return [sys.executable, TOYS_SCRIPT, "--data", data["train"], "--output_dir", str(output_dir),
          *map(str, args)]


def start(command: list[str], env_extra: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
  """Starts `command` with this checkout on PYTHONPATH, no inherited TF_CONFIG, stdout and stderr piped."""
  env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("TF_CONFIG", None)
  env.update(env_extra or {})
  return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kwargs)


def finish(process: subprocess.Popen, expected_rc: int = 0, timeout: float = 240) -> dict:
  """Waits for `process`, asserts its exit status, and returns the JSON of its last stdout line."""
  stdout, stderr = process.communicate(timeout=timeout)
  assert process.returncode == expected_rc, stderr[-3000:]
  return json.loads(stdout.strip().splitlines()[-1])


def final_weights(run_dir) -> list[np.ndarray]:
  """The trainable weights a toy run saved in `run_dir` when it finished."""
  with np.load(pathlib.Path(run_dir) / toys.WEIGHTS_FILE) as saved:
    return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def wait_for(predicate: Callable[[], bool], process: subprocess.Popen, timeout: float = 180) -> None:
  """Polls until `predicate()` holds; fails if `process` exits first or `timeout` seconds pass."""
  deadline = time.time() + timeout
  while not predicate():
    assert process.poll() is None, process.communicate()[1][-3000:]
    assert time.time() < deadline, "timed out"
    time.sleep(0.05)


def latest_step(output_dir) -> int:
  """The step of the latest checkpoint in `output_dir`, 0 if there is none."""
  latest = tf.train.latest_checkpoint(str(output_dir))
  return int(latest.rsplit("-", 1)[1]) if latest else 0
