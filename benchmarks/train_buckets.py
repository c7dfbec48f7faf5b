"""Training examples/s: length-bucketed against padded and against tf-models-official, on real dev-v1.1 windows.

  python benchmarks/train_buckets.py                                   # MiniLM and L4/H512, ~15 min
  python benchmarks/train_buckets.py --sizes=L12/H768 --updates=6 --batch_size=8

Features: training windows (labels, the original's pre-shuffle) of
dev-v1.1 at max_seq_length 384, doc_stride 128, built by
`bert_squad.data.build.build_feature_files` from `../shared` with Google's
uncased vocabulary, over every k-th paragraph of all 48 articles (about
`--max_features` windows), so that the length distribution is the real one.
No SQuAD training set is available offline; dev-v1.1's windows are of the
same kind (mean 178 tokens of 384). Stops, saying so, without `../shared`.

Variants, all float32 without XLA (XLA slows CPU training) and the same
global batch, fed from the record file by `input_pipeline.make_dataset`
(seeded shuffle, as run_squad.py):
  reference  tf-models-official `BertSpanLabeler` + its `AdamWeightDecay`
             (`benchmarks/model.py`), a plain `tf.function` train step over
             batches padded to 384: what a user of tf-models-official runs;
  padded     this project's model, optimizer and training-loop function
             (`update_step.make_train_loop`, the one `loop.train` calls),
             padded batches: the original command line;
  bucketed   the same with `--length_bucketing`: `make_dataset(...,
             length_bucketing=True)` and the masked loss;
  sorted     the same with `--trim_micro_batches` and
             `--gradient_accumulation_steps=--sorted_micro_batches`: the
             padded run's updates, each in length-sorted micro-batches
             trimmed to their longest, the masked loss.
Each variant first runs `--warmup_updates` (tracing; every bucket width
met at least once is not guaranteed, so the first timed updates may still
trace), then the variants take turns for `--repeats` rounds of `--updates`
updates; the median is reported. Wall-clock examples/s and process CPU
seconds per example are both printed: on a shared machine the CPU time is
the steadier measure. MFU is model FLOPs (3x forward, `model.py`) per
second over the measured float32 4096^2 matmul peak, counted two ways: all
384 positions of every window (the padded run's work) and only each
window's real tokens (the work that matters; the same for every variant).
"""
import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # the checkout
from benchmarks import _setup  # noqa: E402  (before TensorFlow: sets its environment)

if __name__ == "__main__":
  _setup.set_onednn()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import _dev_features  # noqa: E402
from benchmarks import _runners  # noqa: E402
from bert_squad.modeling import span_model  # noqa: E402
from bert_squad.training import input_pipeline  # noqa: E402
from bert_squad.training import optimization  # noqa: E402
from bert_squad.training import update_step  # noqa: E402

SEQ_LENGTH = _dev_features.SEQ_LENGTH
SEED = 1


def ours_runner(model, record: str, batch_size: int, trimming: str | None, micro_batches: int = 1):
  """n updates of the training-loop function over the record's batches.

  `trimming`: None (padded), "bucketed" or "sorted" (in `micro_batches`
  gradient-accumulation micro-batches per update).
  """
  strategy = tf.distribute.get_strategy()
  optimizer = optimization.create_optimizer(5e-5, num_train_steps=10000, num_warmup_steps=1000)
  steps = update_step.StepFunctions(model, optimizer, span_model.span_loss, strategy, batch_size // micro_batches,
                                    micro_batches, None, use_xla=False, mask_padding_logits=trimming is not None)
  train_loop = update_step.make_train_loop(steps, tf.Variable(0, dtype=tf.int64, trainable=False))
  dataset = input_pipeline.make_dataset(record, SEQ_LENGTH, batch_size // micro_batches, True, seed=SEED,
                                        length_bucketing=trimming is not None,
                                        keep_padded_updates=trimming == "sorted", accumulation_steps=micro_batches)
  iterator = iter(strategy.distribute_datasets_from_function(lambda _: dataset))
  widths = []

  def run(num_updates: int) -> None:
    _, totals = train_loop(iterator, tf.constant(num_updates, tf.int32))
    widths.append(float(totals.numpy()[3]) / num_updates)

  return run, widths


def reference_runner(reference, optimizer, record: str, batch_size: int):
  """n steps of tf-models-official's model and optimizer in a plain tf.function, padded batches."""
  variables = reference.trainable_variables
  iterator = iter(input_pipeline.make_dataset(record, SEQ_LENGTH, batch_size, True, seed=SEED))

  @tf.function
  def train_step(inputs, targets):
    with tf.GradientTape() as tape:
      start_logits, end_logits = reference([inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"]],
                                           training=True)
      loss = tf.reduce_mean(span_model.span_loss(targets["start_positions"], targets["end_positions"],
                                                 start_logits, end_logits))
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables) if g is not None])
    return loss

  def run(num_updates: int) -> None:
    for _ in range(num_updates):
      loss = train_step(*next(iterator))
    loss.numpy()

  return run, []


def time_rounds(runners: dict, warmup: int, updates: int, repeats: int) -> dict:
  """{variant: {"seconds": [..], "cpu_seconds": [..]}} per round of `updates` updates, variants in turn."""
  for run, _ in runners.values():
    run(warmup)
  timings = {name: {"seconds": [], "cpu_seconds": []} for name in runners}
  for _ in range(repeats):
    for name, (run, _) in runners.items():
      seconds, cpu_seconds, _ = _dev_features.timed(lambda: run(updates))
      timings[name]["seconds"].append(seconds)
      timings[name]["cpu_seconds"].append(cpu_seconds)
  return timings


def report(size: str, what: str, config, timings: dict, widths: dict[str, list[float]], lengths: np.ndarray,
           batch_size: int, updates: int, peak: float) -> dict:
  """Prints the size's table; returns its numbers. `widths`: {variant: mean width per timed round}."""
  examples = batch_size * updates
  padded_flops = 3 * _runners.forward_flops_per_example(config, SEQ_LENGTH)
  real_flops = 3 * float(np.mean([_runners.forward_flops_per_example(config, int(n)) for n in lengths]))
  reference = timings["reference"]
  computed = ", ".join(f"{name} {statistics.mean(w):.0f} ({statistics.mean(w) / SEQ_LENGTH:.1%} of the tokens)"
                       for name, w in widths.items())
  print(f"{size} ({what}); batch {batch_size}, {updates} updates per round, median of "
        f"{len(reference['seconds'])} rounds; mean widths of {SEQ_LENGTH}: {computed}")
  print(f"  {'variant':10s} {'ex/s':>7s} {'CPU ms/ex':>10s} {'vs ref (wall)':>14s} {'vs ref (CPU)':>13s} "
        f"{'MFU padded':>11s} {'MFU real':>9s}")
  result = {"size": size, "what": what, "batch_size": batch_size, "updates": updates,
            "mean_widths": {name: statistics.mean(w) for name, w in widths.items()}, "variants": {}}
  for name, timing in timings.items():
    seconds, cpu = statistics.median(timing["seconds"]), statistics.median(timing["cpu_seconds"])
    speed = examples / seconds
    wall_ratio = statistics.median(reference["seconds"]) / seconds
    cpu_ratio = statistics.median(reference["cpu_seconds"]) / cpu
    print(f"  {name:10s} {speed:7.2f} {1000 * cpu / examples:10.0f} {wall_ratio:13.2f}x {cpu_ratio:12.2f}x "
          f"{speed * padded_flops / peak:10.1%} {speed * real_flops / peak:8.1%}")
    result["variants"][name] = {"examples_per_second": speed, "cpu_ms_per_example": 1000 * cpu / examples,
                                "speedup_wall": wall_ratio, "speedup_cpu": cpu_ratio,
                                "mfu_padded": speed * padded_flops / peak, "mfu_real": speed * real_flops / peak}
  return result


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="minilm,L4/H512", help="comma-separated: minilm and/or L<n>/H<m>")
  parser.add_argument("--max_features", type=int, default=1000)
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--warmup_updates", type=int, default=6)
  parser.add_argument("--updates", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--sorted_micro_batches", type=int, default=4,
                      help="the sorted variant's micro-batches per update (--gradient_accumulation_steps)")
  parser.add_argument("--json", help="also write the results here")
  args = parser.parse_args()
  shared = _setup.shared_files("squad/dev-v1.1.json", "bert/vocab-uncased.txt")
  if not shared:
    return 0
  dev, vocab = shared
  tf.get_logger().setLevel("ERROR")
  results = []
  with tempfile.TemporaryDirectory() as folder:
    _, record, step, _ = _dev_features.build_dev_features(
        dev, vocab, folder, args.max_features, is_training=True)
    lengths = _dev_features.feature_lengths(record)
    print(f"dev-v1.1 training windows, every {step}th paragraph: {len(lengths)} at seq {SEQ_LENGTH}; tokens "
          f"mean {lengths.mean():.1f}, median {np.median(lengths):.0f}; "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}", flush=True)
    peak = _runners.measure_peak_flops()
    for size in args.sizes.split(","):
      ours, _, config, what = _dev_features.build_models(size, folder)
      reference, reference_optimizer = _runners.build_reference(config)
      # padded and bucketed train the same model, each with its own optimizer: their speed does not
      # depend on the weights' values.
      runners = {"reference": reference_runner(reference, reference_optimizer, record, args.batch_size),
                 "padded": ours_runner(ours, record, args.batch_size, None),
                 "bucketed": ours_runner(ours, record, args.batch_size, "bucketed"),
                 "sorted": ours_runner(ours, record, args.batch_size, "sorted", args.sorted_micro_batches)}
      timings = time_rounds(runners, args.warmup_updates, args.updates, args.repeats)
      widths = {name: runners[name][1][1:] for name in ("bucketed", "sorted")}
      results.append(report(size, what, config, timings, widths, lengths, args.batch_size, args.updates, peak))
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(results, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
