"""Pausing Python's cyclic garbage collector around bulk object creation.

Reading a SQuAD file, building its features and assembling n-best lists each
allocate hundreds of thousands to millions of small acyclic objects (tuples,
dicts, strings). Reference counting frees them; the cyclic collector only
reacts to the allocation count, and in a process that also holds TensorFlow's
objects each of its full passes walks all of those (up to 0.2 s a pass here,
a third of postprocessing's time in `benchmarks/postprocess.py`).
"""
import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
  """Disables the cyclic collector for the block; restores it only if it was enabled."""
  was_enabled = gc.isenabled()
  gc.disable()
  try:
    yield
  finally:
    if was_enabled:
      gc.enable()
