"""Benchmark: SQuAD 2.0 dev predictions from saved logits, ours vs reference.

Times, in one run on the same features and random (seeded) logits:
  reference: tf-models-official `squad_lib.write_predictions` (the port of the
             original `write_predictions`), given the logits as Python lists
             as the original's predict loop builds them;
  ours:      `load_logits` of the saved .npz + `compute_predictions` +
             `write_prediction_files`,
checks that the three files are byte-identical, and prints both times and
the speed-up. Examples and features are built with squad_lib itself (not
timed).

  python benchmarks/postprocess.py            # full dev-v2.0, seq 384
  python benchmarks/postprocess.py --articles=5

Needs ../shared/data beside the checkout (or $BERT_SQUAD_SHARED/data); says
so and exits 0 where it is absent.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before bert_squad (via _setup) defaults it to 3

import functools  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # the checkout
from benchmarks import _setup  # noqa: E402  (before TensorFlow: sets its environment)

from bert_squad.answers import logits_io  # noqa: E402
from bert_squad.answers import nbest_lists  # noqa: E402
from bert_squad.answers import prediction_files  # noqa: E402
from official.nlp.data import squad_lib  # noqa: E402
from official.nlp.tools import tokenization  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("articles", 0, "Use the first N articles (0: all).")
flags.DEFINE_integer("max_seq_length", 384, "Window length.")
flags.DEFINE_integer("doc_stride", 128, "Window stride.")
flags.DEFINE_integer("max_query_length", 64, "Question length cap.")
flags.DEFINE_integer("n_best_size", 20, "n-best size.")
flags.DEFINE_integer("max_answer_length", 30, "Longest answer.")
flags.DEFINE_float("null_score_diff_threshold", 0.0, "Null threshold.")
flags.DEFINE_integer("seed", 0, "Seed of the random logits.")
flags.DEFINE_integer("repeats", 5, "Time each side this many times "
                     "(alternating); report the fastest.")


class _MemoTokenizer:
  """FullTokenizer with `tokenize` memoised: features build in seconds, not
  minutes (squad_lib re-tokenizes each paragraph for each of its questions)."""

  def __init__(self, vocab_file: str):
    self._tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
    self._tokenize = functools.lru_cache(maxsize=None)(
        lambda text: tuple(self._tokenizer.tokenize(text)))

  def tokenize(self, text):
    return list(self._tokenize(text))

  def convert_tokens_to_ids(self, tokens):
    return self._tokenizer.convert_tokens_to_ids(tokens)


def _examples_and_features(work_dir: str):
  """dev-v2.0 (or its first articles) -> squad_lib examples and features."""
  path = _setup.SHARED_DATA / "squad" / "dev-v2.0.rebuilt.json"
  if FLAGS.articles:
    data = json.loads(path.read_text(encoding="utf-8"))
    data["data"] = data["data"][:FLAGS.articles]
    path = pathlib.Path(work_dir) / "subset.json"
    path.write_text(json.dumps(data), encoding="utf-8")
  examples = squad_lib.read_squad_examples(
      str(path), is_training=False, version_2_with_negative=True)
  features = []

  def keep(feature, is_padding):
    if not is_padding:
      features.append(feature)

  squad_lib.convert_examples_to_features(
      examples, _MemoTokenizer(str(_setup.SHARED_DATA / "bert" / "vocab-uncased.txt")),
      FLAGS.max_seq_length, FLAGS.doc_stride, FLAGS.max_query_length,
      is_training=False, output_fn=keep, batch_size=1)
  return examples, features


def _random_logits(num_features: int) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(FLAGS.seed)
  shape = (num_features, FLAGS.max_seq_length)
  return ((rng.normal(size=shape) * 3).astype(np.float32),
          (rng.normal(size=shape) * 3).astype(np.float32))


def _best_times(*runs) -> list[tuple[float, float]]:
  """Fastest wall and CPU seconds of each run over `FLAGS.repeats` rounds.

  The runs alternate within a round, so that both sides see the same load
  on this shared machine; the minimum is the least disturbed run.
  """
  wall = [[] for _ in runs]
  cpu = [[] for _ in runs]
  for _ in range(FLAGS.repeats):
    for i, run in enumerate(runs):
      start, start_cpu = time.perf_counter(), time.process_time()
      run()
      wall[i].append(time.perf_counter() - start)
      cpu[i].append(time.process_time() - start_cpu)
  return [(min(w), min(c)) for w, c in zip(wall, cpu)]


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)  # squad_lib logs every empty n-best
  if not (_setup.SHARED_DATA / "squad" / "dev-v2.0.rebuilt.json").exists():
    print(f"skipped: shared data not found at {_setup.SHARED_DATA}")
    return
  work_dir = tempfile.mkdtemp(prefix="postprocess-bench-")
  examples, features = _examples_and_features(work_dir)
  start_logits, end_logits = _random_logits(len(features))
  unique_ids = np.array([f.unique_id for f in features])
  logits_file = os.path.join(work_dir, "logits.npz")
  logits_io.save_logits(logits_file, unique_ids, start_logits, end_logits)
  reference_results = [
      logits_io.RawResult(u, s, e) for u, s, e in zip(
          unique_ids.tolist(), start_logits.tolist(), end_logits.tolist())]
  reference_files = prediction_files.PredictionFiles.in_dir(
      os.path.join(work_dir, "reference"))
  our_files = prediction_files.PredictionFiles.in_dir(os.path.join(work_dir, "ours"))
  for directory in ("reference", "ours"):
    os.makedirs(os.path.join(work_dir, directory))
  print(f"{len(examples)} questions, {len(features)} features, seq "
        f"{FLAGS.max_seq_length}, n_best {FLAGS.n_best_size}, best of "
        f"{FLAGS.repeats} runs each")

  def run_reference():
    squad_lib.write_predictions(
        examples, features, reference_results, FLAGS.n_best_size,
        FLAGS.max_answer_length, True, reference_files.predictions,
        reference_files.nbest, reference_files.null_odds,
        version_2_with_negative=True,
        null_score_diff_threshold=FLAGS.null_score_diff_threshold)

  def run_ours():
    predictions, nbest, null_odds = nbest_lists.compute_predictions(
        examples, features, logits_io.load_logits(logits_file),
        FLAGS.n_best_size,
        FLAGS.max_answer_length, do_lower_case=True,
        version_2_with_negative=True,
        null_score_diff_threshold=FLAGS.null_score_diff_threshold)
    prediction_files.write_prediction_files(our_files, predictions, nbest,
                                            null_odds)

  ((reference_seconds, reference_cpu_seconds),
   (our_seconds, our_cpu_seconds)) = _best_times(run_reference, run_ours)

  for name in ("predictions", "nbest", "null_odds"):
    reference = pathlib.Path(getattr(reference_files, name)).read_bytes()
    ours = pathlib.Path(getattr(our_files, name)).read_bytes()
    if reference != ours:
      raise SystemExit(f"{name}: files differ ({work_dir})")
  shutil.rmtree(work_dir)
  print("outputs identical (predictions.json, nbest_predictions.json, "
        "null_odds.json)")
  print(f"squad_lib.write_predictions: {reference_seconds:6.2f} s wall "
        f"{reference_cpu_seconds:6.2f} s CPU")
  print(f"bert_squad.postprocess:      {our_seconds:6.2f} s wall "
        f"{our_cpu_seconds:6.2f} s CPU")
  print(f"speed-up: {reference_seconds / our_seconds:.1f}x wall, "
        f"{reference_cpu_seconds / our_cpu_seconds:.1f}x CPU")


if __name__ == "__main__":
  app.run(main)
