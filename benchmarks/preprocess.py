"""Times SQuAD JSON -> TFRecord for this project and for tf-models-official's squad_lib, with peak memory.

  python benchmarks/preprocess.py                       # dev-v2.0, prediction mode
  python benchmarks/preprocess.py --is_training --repeats=5
  python benchmarks/preprocess.py --scaling             # also 1x, 2x, 4x the data (this project)

Both sides start from the same JSON and end with a TFRecord on disk, the
tokenizer's vocab load included: squad_lib as `read_squad_examples` +
`convert_examples_to_features` into its `FeatureWriter`; this project as
`build.build_feature_files` (which also writes the metadata and info
files, hashes the inputs and starts its worker processes). In training mode
both read a copy of the file that keeps the first answer per question
(squad_lib rejects several), and this project's pre-shuffle is off, like
squad_lib.

Each run is a subprocess of its own (its imports are not timed); the sides
alternate, --repeats rounds of one run each, so both see the same load on a
shared machine. Printed: the fastest run of each side and the median of the
per-round ratios; CPU time counts the workers too. Peak memory: a thread
samples every 5 ms the resident set of the side's process (RSS,
/proc/<pid>/statm) plus the private memory of its worker processes (their
anonymous resident pages, statm's resident - shared: the interpreter and
library files they map are the same page-cache pages the main process has
already counted) and keeps the largest sum. squad_lib's side holds
TensorFlow (~650 MB: squad_lib imports it); this project's preprocessing
never imports it. The process's own high-water mark (`ru_maxrss`) is printed
too. (A child that has not exec'd yet is skipped: it maps the parent's pages.)

After the timed runs the two TFRecord files are parsed and compared record by
record on every field of the original's (squad_lib adds paragraph_mask and
class_index; in training mode `is_impossible` is left out, which squad_lib
sets per window and the original, like this project, per example): the
benchmark stops at the first difference.

--scaling repeats the file's articles 2 and 4 times (question ids renamed)
and prints this project's time per example; --scale_reference adds squad_lib.
Repeated articles repeat words, which the tokenizer caches, so the copies
cost a little less than new text would.
"""
import argparse
import itertools
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # the checkout
from benchmarks import _setup  # noqa: E402  (before TensorFlow: sets its environment)

SIDES = ("squad_lib", "bert_squad")
SQUAD_LIB_EXTRA_FIELDS = {"paragraph_mask", "class_index"}  # squad_lib's own additions, not the original's


def parse_args() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--input_file", default=str(_setup.SHARED_DATA / "squad" / "dev-v2.0.rebuilt.json"))
  parser.add_argument("--vocab_file", default=str(_setup.SHARED_DATA / "bert" / "vocab-uncased.txt"))
  parser.add_argument("--is_training", action="store_true", help="training mode (default: prediction)")
  parser.add_argument("--version_2_with_negative", action=argparse.BooleanOptionalAction, default=None,
                      help="default: on when the file name contains 'v2'")
  parser.add_argument("--limit", type=int, default=0, help="only the first N questions (0: all)")
  parser.add_argument("--max_seq_length", type=int, default=384)
  parser.add_argument("--doc_stride", type=int, default=128)
  parser.add_argument("--max_query_length", type=int, default=64)
  parser.add_argument("--num_workers", type=int, default=len(os.sched_getaffinity(0)),
                      help="this project's --num_preprocess_workers (default: one per core)")
  parser.add_argument("--repeats", type=int, default=1, help="rounds (one run of each side per round)")
  parser.add_argument("--scaling", action="store_true", help="also time this project on 1x, 2x and 4x the data")
  parser.add_argument("--scale_reference", action="store_true", help="with --scaling: squad_lib too")
  parser.add_argument("--run_side", choices=SIDES, help=argparse.SUPPRESS)  # internal: one side, JSON to stdout
  parser.add_argument("--runs", type=int, default=1, help=argparse.SUPPRESS)  # internal: runs in that process
  parser.add_argument("--output_file", help=argparse.SUPPRESS)
  return parser.parse_args()


def prepare_input(input_file: str, limit: int, first_answer_only: bool, copies: int, out_path: pathlib.Path) -> int:
  """Writes the benchmark's input (first `limit` questions, first answers, `copies` times) and returns its questions."""
  data = json.loads(pathlib.Path(input_file).read_text(encoding="utf-8"))
  kept = 0
  for article in data["data"]:
    for paragraph in article["paragraphs"]:
      if limit:
        paragraph["qas"] = paragraph["qas"][:max(0, limit - kept)]
      for qa in paragraph["qas"]:
        if first_answer_only:
          qa["answers"] = qa.get("answers", [])[:1]
      kept += len(paragraph["qas"])
  articles = data["data"]
  data["data"] = []
  for copy in range(copies):
    renamed = json.loads(json.dumps(articles))
    for article in renamed:
      for paragraph in article["paragraphs"]:
        for qa in paragraph["qas"]:
          qa["id"] = f"{qa['id']}~{copy}" if copy else qa["id"]
    data["data"].extend(renamed)
  out_path.write_text(json.dumps(data), encoding="utf-8")
  return kept * copies


def run_side(args: argparse.Namespace) -> None:
  """In the side's own process: imports, then `--runs` timed runs; prints one JSON line (the fastest run)."""
  from absl import logging  # pylint: disable=import-outside-toplevel
  logging.set_verbosity(logging.WARNING)  # squad_lib logs its first 20 features at INFO
  if args.run_side == "squad_lib":
    run = _squad_lib_runner(args)
  else:
    run = _bert_squad_runner(args)
  times = []
  cpu = []
  with _PeakMemory() as peak_memory:
    for _ in range(args.runs):
      start, start_cpu = time.perf_counter(), _cpu_seconds()
      count = run()
      times.append(time.perf_counter() - start)
      cpu.append(_cpu_seconds() - start_cpu)
  print(json.dumps({
      "seconds": min(times), "cpu_seconds": cpu[times.index(min(times))], "features": count,
      "peak_mib": peak_memory.peak_bytes / 2**20,
      "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


class _PeakMemory(threading.Thread):
  """Samples RSS of this process + private RSS of its children every `interval_s`; `peak_bytes`: the largest sum."""

  def __init__(self, interval_s: float = 0.005):
    super().__init__(daemon=True)
    self._interval_s = interval_s
    self._done = threading.Event()
    self.peak_bytes = 0

  def __enter__(self) -> "_PeakMemory":
    self.start()
    return self

  def __exit__(self, *exc_info) -> None:
    self._done.set()
    self.join()

  def run(self) -> None:
    page_bytes = os.sysconf("SC_PAGE_SIZE")
    pid = os.getpid()
    own_command = _read(f"/proc/{pid}/cmdline")
    while not self._done.is_set():
      total = int(_read(f"/proc/{pid}/statm").split()[1]) * page_bytes
      for task in os.listdir(f"/proc/{pid}/task"):
        for child in _read(f"/proc/{pid}/task/{task}/children").split():
          try:
            # A child that has not exec'd yet still maps this process's pages.
            if _read(f"/proc/{child}/cmdline") != own_command:
              _, resident, shared = _read(f"/proc/{child}/statm").split()[:3]
              total += (int(resident) - int(shared)) * page_bytes
          except (FileNotFoundError, ProcessLookupError):
            pass  # a worker that just ended
      self.peak_bytes = max(self.peak_bytes, total)
      self._done.wait(self._interval_s)


def _read(path: str) -> str:
  with open(path, encoding="latin-1") as f:
    return f.read()


def _cpu_seconds() -> float:
  """CPU time of this process and of its finished children (the workers)."""
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _squad_lib_runner(args: argparse.Namespace):
  from official.nlp.data import squad_lib  # pylint: disable=import-outside-toplevel
  from official.nlp.tools import tokenization as tfm_tokenization  # pylint: disable=import-outside-toplevel

  def run() -> int:
    tokenizer = tfm_tokenization.FullTokenizer(args.vocab_file, do_lower_case=True)
    examples = squad_lib.read_squad_examples(args.input_file, args.is_training, args.version_2_with_negative)
    writer = squad_lib.FeatureWriter(args.output_file, args.is_training)
    if args.is_training:
      output_fn = writer.process_feature
    else:
      output_fn = lambda feature, is_padding: writer.process_feature(feature)  # noqa: E731
    squad_lib.convert_examples_to_features(examples, tokenizer, args.max_seq_length, args.doc_stride,
                                           args.max_query_length, args.is_training, output_fn, batch_size=1)
    writer.close()
    return writer.num_features

  return run


def _bert_squad_runner(args: argparse.Namespace):
  from bert_squad.data import build  # pylint: disable=import-outside-toplevel

  def run() -> int:
    info = build.build_feature_files(
        args.input_file, args.output_file, args.vocab_file, do_lower_case=True, max_seq_length=args.max_seq_length,
        doc_stride=args.doc_stride, max_query_length=args.max_query_length, is_training=args.is_training,
        version_2_with_negative=args.version_2_with_negative, shuffle=False, num_workers=args.num_workers)
    return info.num_features

  return run


def measure(args: argparse.Namespace, side: str, input_file: str, output_file: str, runs: int = 1) -> dict:
  """Runs one side in a fresh process on `input_file`; returns its JSON result."""
  command = [sys.executable, __file__, f"--run_side={side}", f"--input_file={input_file}",
             f"--output_file={output_file}", f"--vocab_file={args.vocab_file}", f"--runs={runs}",
             f"--max_seq_length={args.max_seq_length}", f"--doc_stride={args.doc_stride}",
             f"--max_query_length={args.max_query_length}", f"--num_workers={args.num_workers}",
             "--version_2_with_negative" if args.version_2_with_negative else "--no-version_2_with_negative"]
  if args.is_training:
    command.append("--is_training")
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    sys.exit(f"{side} failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def _fastest(results: list[dict]) -> dict:
  """The fastest run, with the largest peak memory of all runs."""
  fastest = dict(min(results, key=lambda r: r["seconds"]))
  fastest["peak_mib"] = max(r["peak_mib"] for r in results)
  fastest["max_rss_mib"] = max(r["max_rss_mib"] for r in results)
  return fastest


def _check_same_records(reference_file: str, our_file: str, is_training: bool) -> None:
  """Exits unless both TFRecords hold the same examples on every field squad_lib writes."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  tf.config.set_visible_devices([], "GPU")

  def examples(path: str):
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
      yield tf.train.Example.FromString(record).features.feature

  count = 0
  for theirs, ours in itertools.zip_longest(examples(reference_file), examples(our_file)):
    if theirs is None or ours is None:
      sys.exit(f"record counts differ after {count} records")
    original_names = set(theirs) - SQUAD_LIB_EXTRA_FIELDS
    if set(ours) != original_names:
      sys.exit(f"record {count}: fields {sorted(ours)} instead of {sorted(original_names)}")
    for name in original_names - ({"is_impossible"} if is_training else set()):
      # is_impossible in training: squad_lib sets it per window; the original and this project per example.
      if list(theirs[name].int64_list.value) != list(ours[name].int64_list.value):
        sys.exit(f"record {count}: {name} differs")
    count += 1


def _line(label: str, result: dict) -> str:
  return (f"{label:46s}{result['seconds']:7.2f} s  (CPU {result['cpu_seconds']:6.2f} s)  "
          f"{result['features']} features  peak memory {result['peak_mib']:5.0f} MiB "
          f"(main process max RSS {result['max_rss_mib']:.0f} MiB)")


def main() -> None:
  args = parse_args()
  if args.version_2_with_negative is None:
    args.version_2_with_negative = "v2" in pathlib.Path(args.input_file).name
  if args.run_side:
    run_side(args)
    return
  mode = "training" if args.is_training else "prediction"
  with tempfile.TemporaryDirectory() as tmp:
    tmp_dir = pathlib.Path(tmp)
    input_file = str(tmp_dir / "input.json")
    num_questions = prepare_input(args.input_file, args.limit, args.is_training, 1, pathlib.Path(input_file))
    print(f"input: {args.input_file} ({num_questions} questions, {mode} mode, v2={args.version_2_with_negative}, "
          f"max_seq_length={args.max_seq_length}, doc_stride={args.doc_stride}, "
          f"max_query_length={args.max_query_length}); {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    rounds = []
    for _ in range(args.repeats):
      rounds.append({side: measure(args, side, input_file, str(tmp_dir / f"{side}.tf_record")) for side in SIDES})
    reference = _fastest([r["squad_lib"] for r in rounds])
    ours = _fastest([r["bert_squad"] for r in rounds])
    print(_line("squad_lib (tf-models-official):", reference))
    extra = "info" if args.is_training else "metadata and info"
    print(_line(f"bert_squad ({args.num_workers} workers, + {extra}):", ours))
    if ours["features"] != reference["features"]:
      sys.exit(f"feature counts differ: {ours['features']} vs {reference['features']}")
    _check_same_records(str(tmp_dir / "squad_lib.tf_record"), str(tmp_dir / "bert_squad.tf_record"),
                        args.is_training)
    print("outputs: the same records, field by field, in the same order")
    ratios = sorted(r["squad_lib"]["seconds"] / r["bert_squad"]["seconds"] for r in rounds)
    print(f"speed-up: {reference['seconds'] / ours['seconds']:.1f}x fastest vs fastest; per round "
          f"{', '.join(f'{ratio:.1f}x' for ratio in ratios)} (median {ratios[len(ratios) // 2]:.1f}x); "
          f"CPU time {reference['cpu_seconds'] / ours['cpu_seconds']:.1f}x less; load average now "
          f"{os.getloadavg()[0]:.1f}")
    if args.scaling:
      print("scaling (articles repeated, ids renamed):")
      sides = SIDES if args.scale_reference else ("bert_squad",)
      for copies in (1, 2, 4):
        scaled = str(tmp_dir / f"x{copies}.json")
        num_examples = prepare_input(args.input_file, args.limit, args.is_training, copies, pathlib.Path(scaled))
        for side in sides:
          result = measure(args, side, scaled, str(tmp_dir / f"{side}.x{copies}.tf_record"), runs=args.repeats)
          print(f"  {copies}x {side:10s} {num_examples:6d} examples {result['seconds']:7.2f} s  "
                f"{1e6 * result['seconds'] / num_examples:6.1f} us/example  peak memory {result['peak_mib']:.0f} MiB")


if __name__ == "__main__":
  main()
