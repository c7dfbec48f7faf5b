"""A learnable toy span task, a tiny span model and a span loss, for the training tests.

Also a command line (`python tests/training_toys.py --help`) that trains the
toy model in a fresh process: strategies over logical CPU devices and
multi-worker runs must configure devices before TensorFlow initialises them,
and the interrupt test kills a real process.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

SEQ_LENGTH = 64
VOCAB_SIZE = 100
MARKER = 3  # the answer starts at this token and ends one token later
FIRST_UNIQUE_ID = 1000000000
BUCKET_GRANULARITY = 16  # toy lengths 24-64 fall in the widths 32, 48 and 64


def toy_records(num_records: int, seed: int) -> list[dict[str, list[int]]]:
  """Feature dicts (as the TFRecords hold them) of the toy task."""
  rng = np.random.RandomState(seed)
  records = []
  for i in range(num_records):
    length = rng.randint(24, SEQ_LENGTH + 1)
    ids = rng.randint(5, VOCAB_SIZE, size=SEQ_LENGTH)
    ids[0] = 1
    ids[length:] = 0
    start = rng.randint(12, length - 2)
    ids[start] = MARKER
    mask = (np.arange(SEQ_LENGTH) < length).astype(int)
    segments = ((np.arange(SEQ_LENGTH) >= 10) & (mask == 1)).astype(int)
    records.append({
        "unique_ids": [FIRST_UNIQUE_ID + i],
        "input_ids": ids.tolist(),
        "input_mask": mask.tolist(),
        "segment_ids": segments.tolist(),
        "start_positions": [int(start)],
        "end_positions": [int(start) + 1],
        "is_impossible": [0],
    })
  return records


def write_records(path: str, records: list[dict[str, list[int]]], is_training: bool = True) -> str:
  """Writes feature dicts as tf.train.Examples (the features module's format)."""
  import tensorflow as tf
  with tf.io.TFRecordWriter(path) as writer:
    for record in records:
      if not is_training:
        record = {k: v for k, v in record.items()
                  if k in ("unique_ids", "input_ids", "input_mask", "segment_ids")}
      feature = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
                 for k, v in record.items()}
      example = tf.train.Example(features=tf.train.Features(feature=feature))
      writer.write(example.SerializeToString())
  return path


def tiny_span_model(dropout: float = 0.0, seed: int = 1, gradient_checkpointing: bool = False):
  """BertEncoder (2 layers, hidden 64) + Dense(2) split into start/end logits.

  With `gradient_checkpointing` the encoder's layers are recomputed in the
  backward pass (`modeling.recompute`; build after `set_determinism`).
  """
  import tensorflow as tf
  import tf_keras
  from official.nlp.modeling import networks
  initializer = tf_keras.initializers.TruncatedNormal(stddev=0.02, seed=seed)
  encoder = networks.BertEncoder(
      vocab_size=VOCAB_SIZE, hidden_size=64, num_layers=2, num_attention_heads=2,
      max_sequence_length=SEQ_LENGTH, type_vocab_size=2, inner_dim=128,
      output_dropout=dropout, attention_dropout=dropout, initializer=initializer)
  inputs = {k: tf_keras.Input(shape=(SEQ_LENGTH,), dtype=tf.int32, name=k)
            for k in ("input_ids", "input_mask", "segment_ids")}
  sequence_output, _ = encoder([inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"]])
  logits = tf_keras.layers.Dense(2, kernel_initializer=tf_keras.initializers.TruncatedNormal(
      stddev=0.02, seed=seed + 1), dtype="float32")(sequence_output)
  start_logits, end_logits = tf_keras.layers.Lambda(
      lambda x: tf.unstack(x, axis=-1), dtype="float32")(logits)
  if gradient_checkpointing:
    from bert_squad.modeling import recompute
    recompute.recompute_layers(encoder)
  return tf_keras.Model(inputs, {"start_logits": start_logits, "end_logits": end_logits})


def span_loss(start_positions, end_positions, start_logits, end_logits):
  """Per-example (CE(start) + CE(end)) / 2, [batch]."""
  import tensorflow as tf
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits
  return (ce(labels=start_positions, logits=start_logits)
          + ce(labels=end_positions, logits=end_logits)) / 2


def make_optimizer(name: str, learning_rate: float, clipnorm: float | None):
  import tf_keras
  if name == "sgd":
    return tf_keras.optimizers.legacy.SGD(learning_rate, global_clipnorm=clipnorm)
  return tf_keras.optimizers.legacy.Adam(learning_rate, global_clipnorm=clipnorm)


def model_weights(model) -> list[np.ndarray]:
  return [v.numpy() for v in model.trainable_variables]


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
  """The largest absolute difference between two lists of weights."""
  return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def clipped_adam():
  """Adam whose step count (bias correction) and global-norm clipping of the averaged gradient change the update.

  A large epsilon keeps it from blowing float round-off in near-zero
  gradients up to full-size steps.
  """
  import tf_keras
  return tf_keras.optimizers.legacy.Adam(3e-3, epsilon=1e-3, global_clipnorm=0.1)


def _configure_devices(logical_cpus: int) -> None:
  import tensorflow as tf
  if logical_cpus > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)


def _slowed(dataset_fn, seconds: float):
  """Sleeps `seconds` per batch, so that a test can kill the run mid-way."""
  import tensorflow as tf

  def slow(inputs, targets):
    slept = tf.numpy_function(lambda: np.float32(time.sleep(seconds) or 0), [], tf.float32)
    with tf.control_dependencies([slept]):
      return {k: tf.identity(v) for k, v in inputs.items()}, targets

  return lambda ctx: dataset_fn(ctx).map(slow)


WEIGHTS_FILE = "final_weights.npz"
PREDICTIONS_FILE = "predictions.npz"


def _train_one(args, strategy_name: str, output_dir: str) -> dict:
  """Trains with one strategy; the chief writes WEIGHTS_FILE (and PREDICTIONS_FILE)."""
  from bert_squad.training import distribution
  from bert_squad.training import input_pipeline
  from bert_squad.training import loop
  from bert_squad.training import loop_config
  from bert_squad.training import prediction

  strategy = distribution.make_strategy(strategy_name)
  with strategy.scope():
    model = tiny_span_model(args.dropout, gradient_checkpointing=args.gradient_checkpointing)
    optimizer = make_optimizer(args.optimizer, args.learning_rate, args.clipnorm)
  dataset_fn = functools.partial(
      input_pipeline.make_dataset, args.data, SEQ_LENGTH, args.batch // args.accumulation, True,
      seed=args.seed, shuffle_buffer_size=args.shuffle_buffer, length_bucketing=args.length_bucketing,
      keep_padded_updates=args.keep_padded_updates, accumulation_steps=args.accumulation,
      bucket_granularity=BUCKET_GRANULARITY)
  if args.slow_seconds:
    dataset_fn = _slowed(dataset_fn, args.slow_seconds)
  config = loop_config.TrainConfig(
      output_dir=output_dir, num_train_steps=args.steps, train_batch_size=args.batch,
      steps_per_loop=args.steps_per_loop, save_checkpoints_steps=args.save_steps,
      log_steps=args.log_steps, gradient_accumulation_steps=args.accumulation,
      mask_padding_logits=args.length_bucketing, max_seq_length=SEQ_LENGTH)
  try:
    result = loop.train(model, optimizer, span_loss, dataset_fn, strategy, config)
  except loop_config.TrainingInterrupted as e:
    print(json.dumps({"interrupted_step": e.step, "checkpoint": e.checkpoint_path}))
    sys.exit(130)
  if distribution.is_chief(strategy):
    np.savez(os.path.join(output_dir, WEIGHTS_FILE), *model_weights(model))
  if args.predict_data:
    dataset = input_pipeline.make_dataset(args.predict_data, SEQ_LENGTH, args.predict_batch, False)
    unique_ids, start_logits, end_logits = prediction.predict_logits(
        model, dataset, strategy, args.predict_batch)
    np.savez(os.path.join(output_dir, PREDICTIONS_FILE), unique_ids=unique_ids,
             start_logits=start_logits, end_logits=end_logits)
  return {"initial_step": result.initial_step, "final_step": result.final_step,
          "replicas": strategy.num_replicas_in_sync}


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--data", required=True)
  parser.add_argument("--output_dir", required=True,
                      help="the run's folder; <output_dir>/<strategy> with several strategies")
  parser.add_argument("--strategy", default="one_device",
                      help="a make_strategy name, or several separated by commas (run in turn)")
  parser.add_argument("--logical_cpus", type=int, default=1)
  parser.add_argument("--steps", type=int, default=4)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--accumulation", type=int, default=1)
  parser.add_argument("--steps_per_loop", type=int, default=1)
  parser.add_argument("--save_steps", type=int, default=1000)
  parser.add_argument("--log_steps", type=int, default=1)
  parser.add_argument("--optimizer", default="sgd")
  parser.add_argument("--learning_rate", type=float, default=0.05)
  parser.add_argument("--clipnorm", type=float, default=None)
  parser.add_argument("--dropout", type=float, default=0.0)
  parser.add_argument("--seed", type=int, default=7)
  parser.add_argument("--shuffle_buffer", type=int, default=1)
  parser.add_argument("--slow_seconds", type=float, default=0.0)
  parser.add_argument("--predict_data", default=None)
  parser.add_argument("--predict_batch", type=int, default=6)
  parser.add_argument("--gradient_checkpointing", action="store_true",
                      help="recompute the encoder's layers in the backward pass")
  parser.add_argument("--length_bucketing", action="store_true",
                      help=f"train in length buckets of {BUCKET_GRANULARITY} positions, padding masked")
  parser.add_argument("--keep_padded_updates", action="store_true",
                      help="with --length_bucketing: the padded updates, in length-sorted trimmed micro-batches")
  args = parser.parse_args(argv)

  _configure_devices(args.logical_cpus)
  from bert_squad.training import distribution
  distribution.set_determinism(args.seed)
  names = args.strategy.split(",")
  outcomes = {}
  for name in names:
    output_dir = args.output_dir if len(names) == 1 else os.path.join(args.output_dir, name)
    outcomes[name] = _train_one(args, name, output_dir)
  print(json.dumps(outcomes[names[0]] if len(names) == 1 else outcomes))


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  main(sys.argv[1:])
