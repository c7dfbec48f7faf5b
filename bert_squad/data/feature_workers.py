"""`ExampleChunk`s -> `EncodedChunk`s (record + metadata bytes per window), in order, in this and worker processes.

The main process reads and validates the SQuAD file, cuts the examples into
chunks (`example_chunks`: at paragraph boundaries where the order allows, so
a context is tokenized once), deals them round-robin to itself and to the
workers, and numbers and writes what comes back in chunk order: the output is
byte-identical for any number of workers. Each encoder tokenizes, windows
(`windows`) and encodes (`records.WindowEncoder`) its chunks; the main
process streams them to disk as they arrive, and a worker runs a chunk or two
ahead of the writer at most (its pipe is full then), so memory stays bounded.
The main process encodes a share itself: one worker process fewer to start
and feed, which on two cores is most of the cost of going parallel.

Why own processes rather than `multiprocessing`: its 'spawn' and 'forkserver'
start methods re-import the parent's `__main__` in each worker (run_squad.py
or bert_squad.preprocess: TensorFlow, seconds and hundreds of MB per worker),
and 'fork' after TensorFlow has started its threads can deadlock. A worker here
is a fresh `python -S` running `feature_workers.main`, which imports no
TensorFlow; the settings, chunks and results travel as pickles over its stdin
and stdout.
"""
import contextlib
import fcntl
import gc
import itertools
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import traceback
from typing import Any, BinaryIO, Callable, Iterable, Iterator, NamedTuple, Sequence

from bert_squad.data import records
from bert_squad.data import tokenization
from bert_squad.data import windows
import bert_squad

# Examples per chunk (more to finish a paragraph): large enough that the
# per-chunk overhead is small, small enough that writing starts early.
CHUNK_EXAMPLES = 128
# Pipe capacity asked for (Linux's default maximum): more than a chunk's results.
PIPE_BYTES = 1 << 20
# What a worker process runs (imported by name, so that pickles name this module, not __main__).
_WORKER_MAIN = "from bert_squad.data import feature_workers; feature_workers.main()"


class EncodingSettings(NamedTuple):
  """What every worker needs besides the chunks.

  Attributes:
    vocab_tokens: the vocabulary in id order (`list(tokenization.load_vocab(...))`).
    do_lower_case: the tokenizer's casing.
    max_seq_length, doc_stride, max_query_length: window geometry (validated).
    is_training: encode the training labels.
    with_metadata: also encode the metadata lines.
  """
  vocab_tokens: list[str]
  do_lower_case: bool
  max_seq_length: int
  doc_stride: int
  max_query_length: int
  is_training: bool
  with_metadata: bool


class ExampleChunk(NamedTuple):
  """Consecutive examples, as compact as pickling allows.

  Attributes:
    first_example_index: the `example_index` of the first one.
    contexts: paragraph key -> its whitespace words joined by single spaces
      (words never hold a space: `squad.split_context`).
    examples: (paragraph key, question_text, training answer or None) each.
  """
  first_example_index: int
  contexts: dict[int, str]
  examples: list[tuple[int, str, windows.TrainingAnswer | None]]


class EncodedChunk(NamedTuple):
  """The windows of one `ExampleChunk`.

  Attributes:
    num_examples: examples in the chunk.
    windows: (record entries without the unique id, metadata tail or None)
      of each window, in order (see `records.WindowEncoder`).
    cut_questions: (example index, wordpieces) of each question longer than
      max_query_length, which was cut to it.
  """
  num_examples: int
  windows: list[tuple[bytes, bytes | None]]
  cut_questions: list[tuple[int, int]] = []


def usable_cpus() -> int:
  """CPU cores this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def example_chunks(examples: list[Any], is_training: bool,
                   chunk_examples: int = CHUNK_EXAMPLES) -> Iterator[ExampleChunk]:
  """Cuts `squad.SquadExample`s into chunks of about `chunk_examples`, ending where a paragraph ends.

  Consumes `examples`: each entry is set to None once it is in a chunk, so
  the examples' memory is freed while the rest are still being encoded.
  """
  start = 0
  while start < len(examples):
    end = min(start + chunk_examples, len(examples))
    while (end < len(examples) and examples[end].paragraph_index >= 0 and
           examples[end].paragraph_index == examples[end - 1].paragraph_index):
      end += 1
    chunk = _make_chunk(examples, start, end, is_training)
    examples[start:end] = [None] * (end - start)
    yield chunk
    start = end


def _make_chunk(examples: Sequence[Any], start: int, end: int, is_training: bool) -> ExampleChunk:
  contexts = {}
  compact = []
  for example_index in range(start, end):
    example = examples[example_index]
    # Examples without a paragraph index share nothing: a key of their own.
    key = example.paragraph_index if example.paragraph_index >= 0 else -1 - example_index
    if key not in contexts:
      contexts[key] = " ".join(example.doc_tokens)
    compact.append((key, example.question_text, windows.training_answer(example) if is_training else None))
  return ExampleChunk(first_example_index=start, contexts=contexts, examples=compact)


class ChunkEncoder:
  """Tokenizes, windows and encodes chunks; the per-word caches live as long as it does.

  A context is tokenized once per chunk: chunks end where a paragraph ends
  (`example_chunks`), so that is once in all unless the examples are shuffled.
  """

  def __init__(self, settings: EncodingSettings):
    self._settings = settings
    # A plain dict (not load_vocab's OrderedDict): a worker keeps one per process.
    vocab = dict(zip(settings.vocab_tokens, range(len(settings.vocab_tokens))))
    self._tokenizer = tokenization.FullTokenizer.from_vocab(vocab, settings.do_lower_case)
    self._word_pieces: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}
    self._encoder = records.WindowEncoder(vocab["[CLS]"], vocab["[SEP]"], settings.max_seq_length,
                                          settings.is_training, settings.with_metadata)

  def encode(self, chunk: ExampleChunk) -> EncodedChunk:
    settings = self._settings
    docs: dict[int, tuple[windows.TokenizedDoc, records.EncodedDoc]] = {}
    encoded = []
    cut_questions = []
    for offset, (key, question_text, answer) in enumerate(chunk.examples):
      doc_and_encoded = docs.get(key)
      if doc_and_encoded is None:
        doc = windows.tokenize_doc(chunk.contexts[key].split(" "), self._tokenizer, self._word_pieces)
        doc_and_encoded = docs[key] = (doc, records.EncodedDoc(doc))
      doc, encoded_doc = doc_and_encoded
      plan = windows.plan_example_windows(question_text, doc, self._tokenizer, settings.max_seq_length,
                                          settings.doc_stride, settings.max_query_length, answer)
      if plan.num_question_tokens > settings.max_query_length:
        cut_questions.append((chunk.first_example_index + offset, plan.num_question_tokens))
      encoded.extend(self._encoder.encode_windows(plan, encoded_doc, chunk.first_example_index + offset,
                                                  answer.is_impossible if answer else None))
    return EncodedChunk(num_examples=len(chunk.examples), windows=encoded, cut_questions=cut_questions)


@contextlib.contextmanager
def chunk_encoding(settings: EncodingSettings,
                   num_workers: int) -> Iterator[Callable[[Iterable[ExampleChunk]], Iterator[EncodedChunk]]]:
  """Yields `encode(chunks) -> encoded chunks in order` (call it once).

  Args:
    settings: the vocabulary and window settings.
    num_workers: processes that encode, this one included. The other
      num_workers - 1 are worker processes, started at once (so they get
      ready while the caller reads its input); they take two chunks for each
      one this process encodes, which also reads the input and writes the
      output.
  """
  encoder = ChunkEncoder(settings)
  if num_workers <= 1:
    yield lambda chunks: map(encoder.encode, chunks)
    return
  pool = _WorkerPool(settings, num_workers - 1)
  try:
    yield lambda chunks: pool.encode(chunks, encoder)
  finally:
    pool.close()


class _WorkerPool:
  """Worker processes that, with this process, encode the chunks in turn; results come back in chunk order.

  The turns repeat [this process, worker 1, ..., worker n, worker 1, ...,
  worker n]. A worker that finished a chunk blocks on its pipe until this
  process has read it, so only a chunk or two per worker are in flight.
  """

  def __init__(self, settings: EncodingSettings, num_processes: int):
    self._settings = pickle.dumps(settings, protocol=pickle.HIGHEST_PROTOCOL)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(bert_squad.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    self._finished = False
    self._feeder: _Feeder | None = None
    self._processes: list[subprocess.Popen] = []
    try:
      for _ in range(num_processes):
        # -S: a worker needs only the standard library and bert_squad (on PYTHONPATH); skipping
        # site-packages start-up saves tens of ms per worker.
        process = subprocess.Popen([sys.executable, "-S", "-c", _WORKER_MAIN], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, env=env)
        self._processes.append(process)
        for pipe in (process.stdin, process.stdout):
          _enlarge_pipe(pipe)
    except BaseException:
      self.close()
      raise

  def encode(self, chunks: Iterable[ExampleChunk], own_encoder: ChunkEncoder) -> Iterator[EncodedChunk]:
    """The encoded chunks in order; this process's turns go to `own_encoder`."""
    turns = [None] + self._processes * 2
    feeder = self._feeder = _Feeder(self._settings, chunks, [p.stdin if p else None for p in turns])
    feeder.start()
    for chunk_index in itertools.count():
      process = turns[chunk_index % len(turns)]
      if process is None:
        chunk = feeder.own_chunks.get()
        if chunk is None:  # no more chunks
          self._finish(feeder, chunk_index)
          return
        yield own_encoder.encode(chunk)
        continue
      try:
        status, payload = pickle.load(process.stdout)
      except EOFError:
        exit_code = process.wait()
        if exit_code != 0:
          raise RuntimeError(f"preprocessing worker {process.pid} exited with code {exit_code}") from None
        # A worker ends cleanly only after the feeder closed its input.
        self._finish(feeder, chunk_index)
        return
      if status != "ok":
        raise RuntimeError(f"preprocessing worker {process.pid} failed:\n{payload}")
      yield payload

  def _finish(self, feeder: "_Feeder", num_received: int) -> None:
    """Checks, at the end of the results, that the feeder sent exactly these chunks."""
    feeder.join()
    if feeder.error is not None:
      raise feeder.error
    if feeder.num_sent != num_received:
      raise RuntimeError(f"preprocessing workers returned {num_received} of {feeder.num_sent} chunks")
    self._finished = True

  def close(self) -> None:
    """Reaps the workers; stops them first unless every result was read (e.g. after an error)."""
    if not self._finished:
      for process in self._processes:
        if process.poll() is None:
          process.kill()
    if self._feeder is not None:
      self._feeder.stop()
    for process in self._processes:
      for pipe in (process.stdin, process.stdout):
        with contextlib.suppress(OSError):
          pipe.close()
      process.wait()


def _enlarge_pipe(pipe: BinaryIO) -> None:
  """Lets a pipe hold a whole chunk (Linux): each hand-over between processes costs a scheduling round."""
  if hasattr(fcntl, "F_SETPIPE_SZ"):
    with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size
      fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


class _Feeder(threading.Thread):
  """Deals the chunks in turns: None in `pipes` is this process (`own_chunks`), the others are workers' stdins.

  Ends with None in `own_chunks` and every pipe closed.

  Attributes:
    own_chunks: the chunks this process encodes itself (a short queue, so the
      feeder runs only a few chunks ahead).
    num_sent: chunks dealt so far.
    error: what stopped the chunk iterator, if anything (re-raised by the reader).
  """

  def __init__(self, settings: bytes, chunks: Iterable[ExampleChunk], turns: list[BinaryIO | None]):
    super().__init__(name="preprocessing-feeder", daemon=True)
    self._settings = settings
    self._chunks = chunks
    self._turns = turns
    self._pipes = list(dict.fromkeys(pipe for pipe in turns if pipe))
    self._stopped = threading.Event()
    self.own_chunks: queue.Queue[ExampleChunk | None] = queue.Queue(maxsize=2)
    self.num_sent = 0
    self.error: BaseException | None = None

  def stop(self) -> None:
    """Makes the feeder end soon (the reader has stopped) and waits for it."""
    self._stopped.set()
    self.join()

  def run(self) -> None:
    try:
      self._feed()
    except BaseException as e:  # pylint: disable=broad-except  # the chunk iterator or pickling failed
      self.error = e
    finally:
      for pipe in self._pipes:
        with contextlib.suppress(OSError, ValueError):
          pipe.close()
      self._put_own(None)

  def _feed(self) -> None:
    for pipe in self._pipes:
      if not _send(pipe, self._settings):
        return
    for chunk in self._chunks:
      pipe = self._turns[self.num_sent % len(self._turns)]
      if pipe is None:
        if not self._put_own(chunk):
          return
      elif not _send(pipe, pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)):
        return
      self.num_sent += 1

  def _put_own(self, chunk: ExampleChunk | None) -> bool:
    """Queues a chunk for this process; False once the reader has stopped."""
    while not self._stopped.is_set():
      with contextlib.suppress(queue.Full):
        self.own_chunks.put(chunk, timeout=0.1)
        return True
    return False


def _send(pipe: BinaryIO, data: bytes) -> bool:
  """Writes to a worker; False if it is gone or the pool is closing (the reader reports why)."""
  try:
    pipe.write(data)
    pipe.flush()
  except (OSError, ValueError):  # BrokenPipeError; ValueError: the pool closed the pipe
    return False
  return True


def _serve(tasks: BinaryIO, results: BinaryIO) -> int:
  """The worker loop: settings, then chunk after chunk until EOF; returns the exit code."""
  try:
    settings = pickle.load(tasks)
  except EOFError:
    return 0  # closed before any work, e.g. the input file was bad
  encoder = ChunkEncoder(settings)
  while True:
    try:
      chunk = pickle.load(tasks)
    except EOFError:
      return 0
    try:
      message = ("ok", encoder.encode(chunk))
    except Exception:  # pylint: disable=broad-except
      pickle.dump(("error", traceback.format_exc()), results)
      results.flush()
      return 1
    pickle.dump(message, results, protocol=pickle.HIGHEST_PROTOCOL)
    results.flush()


def main() -> None:
  """A worker process: reads settings and chunks from stdin, writes results to stdout."""
  # Ctrl-C reaches the whole process group: the parent stops the workers.
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  # Everything a worker builds is acyclic; reference counting frees it, and
  # the cyclic collector would only scan the growing caches again and again.
  gc.disable()
  results = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
  sys.stdout = sys.stderr  # a stray print must not corrupt the result stream
  sys.exit(_serve(sys.stdin.buffer, results))

