"""What every benchmark script sets up first: the checkout's paths, and TensorFlow's environment before it loads.

TensorFlow reads TF_USE_LEGACY_KERAS (Keras 2, which tf-models-official
builds) and TF_ENABLE_ONEDNN_OPTS once, when it is first imported; set after
that, they are silently ignored. So a script imports this module before
anything that may import TensorFlow (tensorflow, tf_keras, official, bert_squad
modules), and calls `set_onednn` there too if it runs TensorFlow itself. It
cannot import this module before the checkout is on sys.path, so its first
lines are:

  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # the checkout
  from benchmarks import _setup  # noqa: E402  (before TensorFlow: sets its environment)

Importing it sets TF_USE_LEGACY_KERAS=1 (and TF_CPP_MIN_LOG_LEVEL, unless
set) through `import bert_squad`, which loads no TensorFlow itself.
"""
import os
import pathlib
from typing import MutableMapping

import bert_squad  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
# The shared SQuAD files, Google's vocab: ../shared/data beside the checkout, or $BERT_SQUAD_SHARED/data.
SHARED_DATA = pathlib.Path(os.environ.get("BERT_SQUAD_SHARED", REPO_ROOT.parent / "shared")) / "data"


def shared_files(*names: str) -> list[pathlib.Path] | None:
  """The files `names` (relative to SHARED_DATA), or None after printing which is missing.

  A benchmark on the real data says "skipped" and exits 0 on a machine
  without ../shared, such as a user's fresh checkout.
  """
  paths = [SHARED_DATA / name for name in names]
  missing = [str(path) for path in paths if not path.exists()]
  if missing:
    print(f"skipped: {', '.join(missing)} not found (../shared is absent; or set $BERT_SQUAD_SHARED)")
    return None
  return paths


def set_onednn(enabled: bool | None = None, env: MutableMapping[str, str] = os.environ) -> None:
  """TF_ENABLE_ONEDNN_OPTS in `env`: "1" or "0" as `enabled` says, else "1" unless it is already set.

  The benchmarks' numbers are measured with oneDNN on. A script calls this
  before it imports TensorFlow and only when run as __main__ (a script that
  imports it has chosen already); for a child process, pass the child's `env`.
  """
  if enabled is None:
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
  else:
    env["TF_ENABLE_ONEDNN_OPTS"] = "1" if enabled else "0"
