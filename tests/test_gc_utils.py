"""cyclic_gc_paused: off inside the block, back to the caller's setting after it, also on errors."""
import gc

import pytest

from bert_squad.common import gc_utils


def test_pauses_and_restores_an_enabled_collector():
  assert gc.isenabled()
  with pytest.raises(RuntimeError):
    with gc_utils.cyclic_gc_paused():
      assert not gc.isenabled()
      raise RuntimeError("boom")
  assert gc.isenabled()


def test_leaves_a_disabled_collector_disabled():
  gc.disable()
  try:
    with gc_utils.cyclic_gc_paused():
      assert not gc.isenabled()
    assert not gc.isenabled()
  finally:
    gc.enable()
