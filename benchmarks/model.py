"""Training and prediction examples/s of the span model vs. tf-models-official, with MFU.

  python benchmarks/model.py                                  # the default sizes at seq 384
  python benchmarks/model.py --sizes=L2/H128,L4/H256 --train_batch_size=8 --predict_batch_size=16
  python benchmarks/model.py --no_onednn                      # TF_ENABLE_ONEDNN_OPTS=0
  python benchmarks/model.py --sizes=L12/H768,L24/H1024 --dtype=float16 --train_xla \
      --train_batch_size=32 --predict_batch_size=64 --max_train_step_tflop=1e6 \
      --max_predict_step_tflop=1e6 --tflop_per_repeat=200 --peak_tflops=989   # a GPU

For each size (Google's small BERTs: L layers, hidden H, H/64 heads, intermediate
4H, vocab 30522) both sides get the same random batch:

ours   `span_model.build_span_model` + `optimization.create_optimizer`, trained
       by the training loop's own step: `update_step.make_train_loop` over
       `update_step.StepFunctions` (forward, span_loss, gradients, None dropped,
       dense embedding gradients, apply), the function `loop.train` calls
       for every loop of updates, here one call per repetition of N steps.
       Prediction runs `prediction.make_predict_step`, the step
       `prediction.predict_logits` uses (the forward pass under `strategy.run`),
       without and with XLA (`jit_compile`).
ref    tf-models-official `BertSpanLabeler` over a `BertEncoder` of the same
       size + `official.nlp.optimization.create_optimizer` (its legacy
       `AdamWeightDecay`, clip 1.0, warmup + linear decay) in a plain
       `tf.function` train step (forward, mean span loss, gradients, apply),
       and its forward pass in a plain `tf.function` (no XLA) for prediction.

Each variant is warmed up (traced, compiled, one run), then the variants take
turns (A B C A B C ...) for `--repeats` timed repetitions of N steps, and the
median examples/s is reported: the machine is shared, so single runs are noisy.
Process CPU time is recorded too; ratios are also given by CPU seconds per
example, which hold still when other jobs take cores away (the "cores" each
variant got, CPU s / wall s, are printed per size).
N is chosen from the model FLOPs: about `--tflop_per_repeat` per repetition
(at least 1 step), or set with `--steps`. So that the default run ends in
minutes on 2 cores, a size's batch is halved while one step would exceed
`--max_train_step_tflop` / `--max_predict_step_tflop`: prediction down to 1
(its examples/s hardly depend on the batch), training not below 4, as a
smaller batch would weigh the optimizer's per-step cost far more than
fine-tuning does (batch 32).

FLOP/s are model FLOPs (see `_runners.forward_flops_per_example`) per second. The peak
is measured, not taken from a spec sheet: a 4096x4096 `tf.linalg.matmul` in the
compute dtype, timed at the start and once in every round; the fastest of the
run is "peak" and MFU = model FLOP/s / peak. `--peak_tflops` replaces it by a
spec-sheet figure (e.g. a GPU's dense bf16/fp16 peak). "MFU of CPU time" =
model FLOPs per CPU second / the matmul's FLOPs per CPU second in the same
rounds (meaningful on CPUs only).

The models run on the first GPU when one is visible, else on the CPU.
`--dtype=float16` or `bfloat16` builds both models under the Keras
mixed-precision policy (`loop_config.set_precision`, as run_squad.py's `--dtype`);
in float16 both train steps use a dynamic `LossScaleOptimizer`, ours the way
`loop.train` wraps it.
"""
import argparse
import dataclasses
import gc
import math
import os
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # the checkout
from benchmarks import _setup  # noqa: E402  (before TensorFlow: sets its environment)

if __name__ == "__main__":
  # oneDNN is chosen when TensorFlow loads, so the flag is read before the import.
  _setup.set_onednn("--no_onednn" not in sys.argv[1:])

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from benchmarks import _runners  # noqa: E402

from bert_squad.common import io_utils  # noqa: E402
from bert_squad.training import distribution  # noqa: E402
from bert_squad.training import loop_config  # noqa: E402

DEFAULT_SIZES = ("L2/H128", "L4/H256", "L4/H512", "L8/H512", "L12/H768")
_PEAK = "peak matmul"
MIN_TRAIN_BATCH = 4


# ---------------------------------------------------------------- timing


@dataclasses.dataclass
class Timings:
  """Per runner: seconds per step of each repetition (wall clock and process CPU)."""
  wall: dict[str, list[float]]
  cpu: dict[str, list[float]]
  warmup: dict[str, float]  # wall seconds of the first call: tracing, XLA compile, steps


def time_interleaved(runners: dict[str, _runners.Runner], num_steps: dict[str, int], repeats: int,
                     warmup_steps: int = 1) -> Timings:
  """Times each runner `repeats` times for its `num_steps`, the runners taking turns.

  Each runner first runs `warmup_steps` untimed steps. Process CPU time is
  recorded next to wall time: on a shared machine it varies much less, and
  it shows the work a step needs rather than the share of CPU it got.
  """
  timings = Timings({name: [] for name in runners}, {name: [] for name in runners}, {})
  for name, run in runners.items():
    start = time.perf_counter()
    run(warmup_steps)
    timings.warmup[name] = time.perf_counter() - start
  for _ in range(repeats):
    for name, run in runners.items():
      start, cpu_start = time.perf_counter(), time.process_time()
      run(num_steps[name])
      timings.wall[name].append((time.perf_counter() - start) / num_steps[name])
      timings.cpu[name].append((time.process_time() - cpu_start) / num_steps[name])
  return timings


def fitting_batch_size(batch_size: int, flops_per_example: float, max_step_flops: float,
                       min_batch_size: int = 1) -> int:
  """`batch_size`, halved down to `min_batch_size` while a step exceeds `max_step_flops`."""
  while batch_size > min_batch_size and batch_size * flops_per_example > max_step_flops:
    batch_size = max(min_batch_size, batch_size // 2)
  return batch_size


def steps_for(flops_per_step: float, flops_per_repeat: float, max_steps: int = 50) -> int:
  """Steps that make about `flops_per_repeat` (1 to `max_steps`)."""
  return max(1, min(max_steps, round(flops_per_repeat / flops_per_step)))


@dataclasses.dataclass
class Measurement:
  """One phase (training or prediction) of one size; rates are medians over the repetitions."""
  batch_size: int
  steps: int  # per repetition
  examples_per_second: dict[str, float]  # variant -> examples / wall second
  cpu_seconds_per_example: dict[str, float]  # variant -> process CPU seconds / example
  warmup_seconds: dict[str, float]  # variant -> first call: tracing, XLA compile, one step
  matmul_flops_per_second: list[float]  # the peak matmul in each round
  matmul_flops_per_cpu_second: float


@dataclasses.dataclass
class SizeResult:
  """Training and prediction of one model size."""
  size: str
  params: int
  train: Measurement
  predict: Measurement
  train_flops_per_example: float
  predict_flops_per_example: float


def measure(runners: dict[str, _runners.Runner], batch_size: int, steps: int, repeats: int,
            matmul: _runners.Runner, matmul_flops: float) -> Measurement:
  """Times `runners` interleaved, with one `matmul` step (`matmul_flops`) a round."""
  step_counts = {name: steps for name in runners}
  step_counts[_PEAK] = 1
  timings = time_interleaved({**runners, _PEAK: matmul}, step_counts, repeats)
  matmul_wall, matmul_cpu = timings.wall.pop(_PEAK), timings.cpu.pop(_PEAK)
  del timings.warmup[_PEAK]
  return Measurement(
      batch_size=batch_size, steps=steps,
      examples_per_second={name: batch_size / statistics.median(times)
                           for name, times in timings.wall.items()},
      cpu_seconds_per_example={name: statistics.median(times) / batch_size
                               for name, times in timings.cpu.items()},
      warmup_seconds=timings.warmup,
      matmul_flops_per_second=[matmul_flops / seconds for seconds in matmul_wall],
      matmul_flops_per_cpu_second=matmul_flops / statistics.median(matmul_cpu))


def benchmark_size(size: str, seq_length: int, train_batch_size: int, predict_batch_size: int,
                   repeats: int, flops_per_repeat: float, max_train_step_flops: float = math.inf,
                   max_predict_step_flops: float = math.inf, steps: int | None = None,
                   train_xla: bool = False,
                   peak_matmul_size: int = _runners.PEAK_MATMUL_SIZE,
                   dtype: str = "float32") -> SizeResult:
  """Builds both models for `size` and times their training and prediction.

  Batches are halved while a step exceeds `max_*_step_flops` (training not
  below `MIN_TRAIN_BATCH`); a repetition runs `steps` steps, by default
  about `flops_per_repeat`. Each phase also times one `peak_matmul_size`^2
  matmul (in `dtype`) per round, for the peak and the CPU-time MFU. The
  models are built under `dtype`'s Keras policy (`loop_config.set_precision`),
  on the first GPU if there is one.
  """
  config = _runners.small_bert_config(size)
  loop_config.set_precision(dtype)
  strategy = distribution.make_strategy(
      "one_device", num_gpus=min(1, len(tf.config.list_physical_devices("GPU"))))
  forward_flops = _runners.forward_flops_per_example(config, seq_length)
  train_flops = 3 * forward_flops
  train_batch_size = fitting_batch_size(train_batch_size, train_flops, max_train_step_flops,
                                        min(MIN_TRAIN_BATCH, train_batch_size))
  predict_batch_size = fitting_batch_size(predict_batch_size, forward_flops,
                                          max_predict_step_flops)
  train_steps = steps or steps_for(train_flops * train_batch_size, flops_per_repeat)
  predict_steps = steps or steps_for(forward_flops * predict_batch_size, flops_per_repeat)

  matmul = _runners.matmul_runner(peak_matmul_size, dtype)
  matmul_flops = 2.0 * peak_matmul_size ** 3
  model, optimizer = _runners.build_ours(config, seq_length, strategy)
  ref_model, ref_optimizer = _runners.build_reference(config)
  params = model.count_params()
  train_batch = _runners.random_batch(train_batch_size, seq_length, config.vocab_size, seed=1)
  train_runners = {"ours": _runners.ours_train_runner(model, optimizer, strategy, train_batch, dtype=dtype),
                   "ref": _runners.reference_train_runner(ref_model, ref_optimizer, train_batch, dtype)}
  if train_xla:
    xla_model, xla_optimizer = _runners.build_ours(config, seq_length, strategy, fused_update=True)
    train_runners["ours_xla"] = _runners.ours_train_runner(xla_model, xla_optimizer, strategy, train_batch,
                                                  use_xla=True, dtype=dtype)
  train = measure(train_runners, train_batch_size, train_steps, repeats, matmul,
                  matmul_flops)
  del train_runners
  gc.collect()

  predict_batch = _runners.random_batch(predict_batch_size, seq_length, config.vocab_size, seed=2)
  predict_runners = {"ours": _runners.ours_predict_runner(model, strategy, predict_batch, jit_compile=False),
                     "ours_xla": _runners.ours_predict_runner(model, strategy, predict_batch,
                                                     jit_compile=True),
                     "ref": _runners.reference_predict_runner(ref_model, predict_batch)}
  predict = measure(predict_runners, predict_batch_size, predict_steps, repeats, matmul,
                    matmul_flops)
  del predict_runners, model, optimizer, ref_model, ref_optimizer
  tf_keras.backend.clear_session()
  loop_config.set_precision("float32")
  gc.collect()
  return SizeResult(size, params, train, predict, train_flops, forward_flops)


# ----------------------------------------------------------------- report


def best_peak_flops(results: list[SizeResult], start_peak_flops: float) -> float:
  """The machine's peak: the fastest 4096^2 matmul of the whole run."""
  rounds = [rate for r in results for measurement in (r.train, r.predict)
            for rate in measurement.matmul_flops_per_second]
  return max([start_peak_flops, *rounds])


def _ratio(measurement: Measurement, ours: str) -> str:
  """`ours` over "ref": by wall-clock ex/s, and in brackets by CPU seconds per example."""
  wall = measurement.examples_per_second[ours] / measurement.examples_per_second["ref"]
  cpu = measurement.cpu_seconds_per_example["ref"] / measurement.cpu_seconds_per_example[ours]
  return f"{wall:.2f} ({cpu:.2f})"


def _fastest_prediction(measurement: Measurement) -> str:
  return max(("ours", "ours_xla"), key=measurement.examples_per_second.get)


def format_throughput_table(results: list[SizeResult]) -> str:
  """Examples/s of every variant, and ours over the reference, as a Markdown table."""
  train_xla = any("ours_xla" in r.train.examples_per_second for r in results)
  header = ["size", "params", "batch train/predict", "train ours", "train ref", "ours/ref"]
  if train_xla:
    header += ["train ours XLA", "XLA/ref"]
  header += ["predict ours", "predict ours XLA", "predict ref", "faster ours/ref"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in results:
    train, predict = r.train.examples_per_second, r.predict.examples_per_second
    row = [r.size, f"{r.params / 1e6:.1f}M", f"{r.train.batch_size}/{r.predict.batch_size}",
           f"{train['ours']:.2f}", f"{train['ref']:.2f}", _ratio(r.train, "ours")]
    if train_xla:
      row += [f"{train['ours_xla']:.2f}", _ratio(r.train, "ours_xla")]
    row += [f"{predict['ours']:.2f}", f"{predict['ours_xla']:.2f}", f"{predict['ref']:.2f}",
            _ratio(r.predict, _fastest_prediction(r.predict))]
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)


def _utilisation(measurement: Measurement, variant: str, flops_per_example: float,
                 peak_flops: float) -> list[str]:
  """[GFLOP/s, MFU against `peak_flops`, MFU of the CPU time] of one variant."""
  flops = measurement.examples_per_second[variant] * flops_per_example
  flops_per_cpu_second = flops_per_example / measurement.cpu_seconds_per_example[variant]
  return [f"{flops / 1e9:.0f}", f"{flops / peak_flops:.0%}",
          f"{flops_per_cpu_second / measurement.matmul_flops_per_cpu_second:.0%}"]


def format_utilisation_table(results: list[SizeResult], peak_flops: float) -> str:
  """Model FLOP/s and MFU of our training and faster prediction, as a Markdown table.

  MFU is model FLOP/s over `peak_flops`; "MFU of CPU time" is model FLOPs
  per CPU second over the peak matmul's FLOPs per CPU second in the same
  rounds, which holds still when other jobs take CPU away.
  """
  header = ["size", "train GFLOP/s", "train MFU", "train MFU of CPU time",
            "predict variant", "predict GFLOP/s", "predict MFU", "predict MFU of CPU time",
            "matmul GFLOP/s in the rounds"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in results:
    fastest = _fastest_prediction(r.predict)
    rounds = r.train.matmul_flops_per_second + r.predict.matmul_flops_per_second
    row = [r.size, *_utilisation(r.train, "ours", r.train_flops_per_example, peak_flops),
           fastest, *_utilisation(r.predict, fastest, r.predict_flops_per_example, peak_flops),
           f"{min(rounds) / 1e9:.0f}-{max(rounds) / 1e9:.0f}"]
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)


def _describe(phase: str, measurement: Measurement) -> str:
  """One line per phase: rates, CPU time, the cores each variant got, warm-up."""
  rates, cpu = measurement.examples_per_second, measurement.cpu_seconds_per_example
  join = lambda values, spec: ", ".join(f"{k} {v:{spec}}" for k, v in values.items())  # noqa: E731
  cores = {name: rates[name] * cpu[name] for name in rates}
  return (f"{phase} batch {measurement.batch_size} x {measurement.steps} steps: "
          f"ex/s {join(rates, '.2f')}; CPU s/ex {join(cpu, '.4g')}; cores {join(cores, '.2f')}; "
          f"warm-up s {join(measurement.warmup_seconds, '.0f')}")


def parse_args() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--sizes", default=",".join(DEFAULT_SIZES),
                      help="comma-separated L<layers>/H<hidden> (default: %(default)s)")
  parser.add_argument("--seq_length", type=int, default=384)
  parser.add_argument("--train_batch_size", type=int, default=8,
                      help=f"at most; see --max_train_step_tflop (not below {MIN_TRAIN_BATCH})")
  parser.add_argument("--predict_batch_size", type=int, default=16,
                      help="at most; see --max_predict_step_tflop")
  parser.add_argument("--max_train_step_tflop", type=float, default=1.0,
                      help="halve a size's training batch while a step has more model FLOPs")
  parser.add_argument("--max_predict_step_tflop", type=float, default=0.3,
                      help="halve a size's prediction batch while a step has more model FLOPs")
  parser.add_argument("--repeats", type=int, default=3, help="timed repetitions per variant")
  parser.add_argument("--steps", type=int, default=None,
                      help="steps per repetition (default: about --tflop_per_repeat)")
  parser.add_argument("--tflop_per_repeat", type=float, default=0.15)
  parser.add_argument("--train_xla", action="store_true",
                      help="also time our train step with use_xla=True")
  parser.add_argument("--no_onednn", action="store_true",
                      help="run with TF_ENABLE_ONEDNN_OPTS=0 (default: 1)")
  parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                      help="compute precision of both models and of the peak matmul "
                           "(float16: dynamic loss scaling on both sides)")
  parser.add_argument("--peak_tflops", type=float, default=None,
                      help="MFU against this spec-sheet peak (e.g. a GPU's dense bf16 TFLOP/s) "
                           "instead of the measured matmul")
  parser.add_argument("--json", default=None, help="also write the results to this JSON file")
  return parser.parse_args()


def main() -> None:
  args = parse_args()
  sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
  for size in sizes:
    _runners.small_bert_config(size)  # fail before the slow part
  start = time.perf_counter()
  gpus = tf.config.list_physical_devices("GPU")
  device = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
            if gpus else f"{os.cpu_count()} CPUs")
  print(f"TF {tf.__version__}, TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}, "
        f"{device}, {args.dtype}, seq {args.seq_length}, median of {args.repeats} interleaved "
        "repeats", flush=True)
  start_peak_flops = _runners.measure_peak_flops(dtype=args.dtype)
  print(f"{args.dtype} 4096x4096 matmul at the start: "
        f"{start_peak_flops / 1e9:.0f} GFLOP/s", flush=True)
  results = []
  for size in sizes:
    result = benchmark_size(size, args.seq_length, args.train_batch_size, args.predict_batch_size,
                            args.repeats, args.tflop_per_repeat * 1e12,
                            args.max_train_step_tflop * 1e12, args.max_predict_step_tflop * 1e12,
                            args.steps, args.train_xla, dtype=args.dtype)
    results.append(result)
    print(f"{size}: {_describe('train', result.train)}; {_describe('predict', result.predict)} "
          f"[{time.perf_counter() - start:.0f} s]", flush=True)
  peak_flops = best_peak_flops(results, start_peak_flops)
  peak_source = f"the fastest {args.dtype} 4096x4096 matmul of the run"
  if args.peak_tflops:
    print(f"\nfastest {args.dtype} 4096x4096 matmul of the run: {peak_flops / 1e9:.0f} GFLOP/s")
    peak_flops, peak_source = args.peak_tflops * 1e12, "--peak_tflops"
  print(f"\npeak: {peak_flops / 1e9:.0f} GFLOP/s, {peak_source}; "
        f"total {time.perf_counter() - start:.0f} s\n")
  print(format_throughput_table(results))
  print(f"\nexamples/s, median of {args.repeats} interleaved repetitions; ratios: by examples/s "
        "(by CPU seconds per example)\n")
  print(format_utilisation_table(results, peak_flops))
  if args.json:
    io_utils.write_json(args.json, {
        "tensorflow": tf.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "device": device,
        "dtype": args.dtype,
        "seq_length": args.seq_length,
        "repeats": args.repeats,
        "peak_flops": peak_flops,
        "start_peak_flops": start_peak_flops,
        "results": [dataclasses.asdict(r) for r in results]})


if __name__ == "__main__":
  main()
