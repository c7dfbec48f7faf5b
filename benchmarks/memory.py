"""Peak memory and speed of training steps vs. batch size, with and without gradient checkpointing (CPU).

  TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/memory.py                       # L2/H128, L4/H512 at seq 128, 384
  python benchmarks/memory.py --sizes=L12/H768 --seqs=384 --batches=1,2,4 --checkpointing=off,on
  python benchmarks/memory.py --table                     # docs/memory.md's table, from the estimator alone

Each (size, seq, checkpointing, batch) runs in a fresh child process: build the
span model (`--gradient_checkpointing` or not) and optimizer (benchmarks/model.py's
`build_ours`), run one update of the training loop's own step (`ours_train_runner`:
forward, span_loss, gradients, AdamWeightDecay) on a random SQuAD-like batch to
trace it, then `--steps` - 1 timed updates, exit. The parent reads the child's
peak RSS (`os.wait4`'s ru_maxrss) and the timed updates' process CPU time. The
slope of peak RSS over the batch sizes (least squares) is the measured memory
per example; the estimator's per example is `per_example_bytes` (activations,
the recomputed layer with checkpointing, the backward pass). The intercept
holds the Python/TF runtime, the weights, gradients and slots, and the traced
graphs, so only the slope is compared. Speed: examples per CPU second at the
largest batch (CPU time, as the machine may be shared), and its ratio with
checkpointing to without.
"""
import argparse
import datetime
import importlib.util
import os
import pathlib
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # the checkout
from benchmarks import _setup  # noqa: E402  (before TensorFlow: sets its environment)


def _model_benchmark():
  spec = importlib.util.spec_from_file_location("model_benchmark",
                                                pathlib.Path(__file__).resolve().with_name("model.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def child(size: str, seq: int, batch: int, steps: int, dtype: str, gradient_checkpointing: bool) -> None:
  """Runs 1 + (`steps` - 1) timed training updates of `size` at (batch, seq); prints the timed CPU seconds."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from bert_squad.training import loop_config  # pylint: disable=import-outside-toplevel
  bench = _model_benchmark()
  loop_config.set_precision(dtype)
  config = bench.small_bert_config(size)
  strategy = tf.distribute.get_strategy()
  model, optimizer = bench.build_ours(config, seq, strategy, gradient_checkpointing=gradient_checkpointing)
  run = bench.ours_train_runner(model, optimizer, strategy, bench.random_batch(batch, seq, config.vocab_size),
                                dtype=dtype)
  run(1)  # traces
  start = time.process_time()
  run(steps - 1)
  print(time.process_time() - start)


def run_child(size: str, seq: int, batch: int, steps: int, dtype: str,
              gradient_checkpointing: bool) -> tuple[int, float]:
  """(peak RSS in bytes, CPU seconds of the timed updates) of a child process running `child(...)`."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  _setup.set_onednn(env=env)
  process = subprocess.Popen(  # pylint: disable=consider-using-with
      [sys.executable, __file__, "--child", size, str(seq), str(batch), str(steps), dtype,
       str(int(gradient_checkpointing))],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  _, status, usage = os.wait4(process.pid, 0)
  if status != 0:
    raise RuntimeError(f"{size} seq {seq} batch {batch} failed: {process.stderr.read().decode()[-2000:]}")
  cpu_seconds = float(process.stdout.read().decode().split()[-1])
  return usage.ru_maxrss * 1024, cpu_seconds  # ru_maxrss: KiB on Linux


def slope(xs: list[int], ys: list[int]) -> float:
  """Least-squares slope of ys over xs."""
  mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
  return (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) /
          sum((x - mean_x) ** 2 for x in xs))


# Google's released BERT-Base and BERT-Large bert_config.json (uncased; cased differ only in vocab_size 28996).
_GOOGLE_COMMON = dict(hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                      max_position_embeddings=512, type_vocab_size=2, initializer_range=0.02)
GOOGLE_MODELS = {
    "BERT-Base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "BERT-Large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}
VOCABS = {"uncased": 30522, "cased": 28996}
TABLE_GB = (12, 16, 24, 40, 80)


def print_table() -> None:
  """The largest micro-batch per model, seq, dtype and card size, without / with checkpointing, in Markdown."""
  from bert_squad.modeling import model_config  # pylint: disable=import-outside-toplevel
  from bert_squad.training import memory_estimate  # pylint: disable=import-outside-toplevel
  print("| model | vocab | dtype | seq | " + " | ".join(f"{gb} GB" for gb in TABLE_GB) + " |")
  print("|---|---|---|---|" + "---|" * len(TABLE_GB))
  for name, shape in GOOGLE_MODELS.items():
    for vocab, vocab_size in VOCABS.items():
      config = model_config.BertConfig(vocab_size=vocab_size, **shape, **_GOOGLE_COMMON)
      for dtype in ("float32", "float16"):
        for seq in (128, 384, 512):
          estimates = [memory_estimate.estimate_memory(config, seq, dtype, checkpointing)
                       for checkpointing in (False, True)]
          fits = [" / ".join(str(e.max_train_batch_size(gb * memory_estimate.GIB)) for e in estimates)
                  for gb in TABLE_GB]
          print(f"| {name} | {vocab} | {dtype} | {seq} | " + " | ".join(fits) + " |")


def measure(args: argparse.Namespace) -> None:
  """Prints the Markdown table of peak RSS growth and speed, one row per (size, seq, checkpointing)."""
  from bert_squad.training import memory_estimate  # pylint: disable=import-outside-toplevel
  bench = _model_benchmark()
  batches = [int(b) for b in args.batches.split(",")]
  mib = 2**20
  print(f"{datetime.date.today()} dtype {args.dtype}, {args.steps} steps (the first traces), "
        f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '1')}")
  print(f"| size | seq | checkpointing | peak RSS at batch {', '.join(map(str, batches))} (MiB) "
        f"| measured MiB/example | estimated MiB/example | estimate / measured "
        f"| examples per CPU s at batch {batches[-1]} | speed / without |")
  print("|---|---|---|---|---|---|---|---|---|")
  for size in args.sizes.split(","):
    for seq in (int(s) for s in args.seqs.split(",")):
      speed_without = None
      for checkpointing in (mode == "on" for mode in args.checkpointing.split(",")):
        runs = [run_child(size, seq, b, args.steps, args.dtype, checkpointing) for b in batches]
        peaks = [peak for peak, _ in runs]
        measured = slope(batches, peaks)
        estimated = memory_estimate.estimate_memory(bench.small_bert_config(size), seq, args.dtype,
                                                    checkpointing).per_example_bytes
        speed = batches[-1] * (args.steps - 1) / runs[-1][1]
        speed_without = speed if not checkpointing else speed_without
        relative = f"{speed / speed_without:.2f}" if speed_without else "-"
        print(f"| {size} | {seq} | {'on' if checkpointing else 'off'} | {', '.join(f'{p / mib:.0f}' for p in peaks)} "
              f"| {measured / mib:.1f} | {estimated / mib:.1f} | {estimated / measured:.2f} | {speed:.2f} "
              f"| {relative} |", flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="L2/H128,L4/H512")
  parser.add_argument("--seqs", default="128,384")
  parser.add_argument("--batches", default="1,2,4")
  parser.add_argument("--steps", type=int, default=3, help="updates per child (the first one traces)")
  parser.add_argument("--dtype", default="float32")
  parser.add_argument("--checkpointing", default="off,on", help="off, on or off,on (--gradient_checkpointing)")
  parser.add_argument("--table", action="store_true", help="print docs/memory.md's table and exit")
  args = parser.parse_args()
  if args.table:
    print_table()
    return
  if args.steps < 2:
    parser.error("--steps must be at least 2: the first update traces, the others are timed")
  measure(args)


if __name__ == "__main__":
  if len(sys.argv) > 1 and sys.argv[1] == "--child":
    child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7] == "1")
  else:
    main()
