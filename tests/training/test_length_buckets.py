"""Length-bucketed prediction: the same logits as the padded run at every computed position, in order.

A tiny random span model (`build_span_model`, static seq 128) predicts
features of many lengths padded (the default path) and bucketed, with a batch
size that leaves partial batches. The mirrored run over 2 logical CPUs needs
its own process (logical devices must be set before TensorFlow starts): this
file is also that process's script.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from bert_squad.modeling import model_config  # noqa: E402
from bert_squad.modeling import span_model  # noqa: E402
from bert_squad.training import length_buckets  # noqa: E402
from bert_squad.training import prediction  # noqa: E402

SEQ_LENGTH = 128
GRANULARITY = 32
BATCH_SIZE = 4
FIRST_UNIQUE_ID = 1000000000
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_model() -> span_model.BertSpanModel:
  tf.keras.utils.set_random_seed(7)
  config = model_config.BertConfig(
      vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
      intermediate_size=64, hidden_act="gelu", hidden_dropout_prob=0.1,
      attention_probs_dropout_prob=0.1, max_position_embeddings=SEQ_LENGTH, type_vocab_size=2,
      initializer_range=0.02)
  return span_model.build_span_model(config, SEQ_LENGTH)


def features(lengths: list[int], seed: int = 0) -> tf.data.Dataset:
  """Unbatched (inputs [seq], targets) with the given real lengths, padded as the feature writer pads."""
  rng = np.random.RandomState(seed)
  n = len(lengths)
  mask = (np.arange(SEQ_LENGTH)[None, :] < np.array(lengths)[:, None]).astype(np.int32)
  ids = rng.randint(5, 100, size=[n, SEQ_LENGTH]).astype(np.int32) * mask
  segments = ((np.arange(SEQ_LENGTH)[None, :] >= 12) * mask).astype(np.int32)
  inputs = {"input_ids": ids, "input_mask": mask, "segment_ids": segments}
  # Unique ids out of order, so that the order can only come from the dataset, not a sort.
  targets = {"unique_ids": (FIRST_UNIQUE_ID + rng.permutation(n)).astype(np.int32)}
  return tf.data.Dataset.from_tensor_slices((inputs, targets))


def many_lengths(n: int = 37, seed: int = 1) -> list[int]:
  lengths = np.random.RandomState(seed).randint(1, SEQ_LENGTH + 1, size=n).tolist()
  return lengths + [1, GRANULARITY, GRANULARITY + 1, SEQ_LENGTH]  # the bucket edges


def assert_same_as_padded(padded, bucketed, lengths: list[int]) -> None:
  """Bucketed logits equal the padded ones up to each feature's width; FILL_LOGIT after."""
  assert bucketed[0].dtype == np.int64 and bucketed[1].dtype == np.float32
  assert bucketed[0].tolist() == padded[0].tolist()
  assert bucketed[1].shape == padded[1].shape == (len(lengths), SEQ_LENGTH)
  for row, length in enumerate(lengths):
    width = -(-length // GRANULARITY) * GRANULARITY
    for got, want in zip(bucketed[1:], padded[1:]):
      np.testing.assert_allclose(got[row, :width], want[row, :width], atol=1e-5, rtol=0)
      assert (got[row, width:] == length_buckets.FILL_LOGIT).all()
    assert np.isfinite(bucketed[1][row]).all()


@pytest.fixture(scope="module")
def strategy():
  return tf.distribute.OneDeviceStrategy("/cpu:0")


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_bucketed_logits_equal_the_padded_ones_in_order(strategy, jit_compile):
  lengths = many_lengths()
  with strategy.scope():
    model = tiny_model()
  padded = prediction.predict_logits(model, features(lengths), strategy, BATCH_SIZE,
                                     jit_compile=jit_compile)
  bucketed = prediction.predict_logits(model, features(lengths).batch(5), strategy, BATCH_SIZE,
                                       jit_compile=jit_compile, length_bucketing=True,
                                       bucket_granularity=GRANULARITY)
  assert len(padded[0]) == len(lengths)
  assert_same_as_padded(padded, bucketed, lengths)


def test_tokens_computed_for_a_hand_made_length_set(strategy):
  # Buckets of 32: {10, 20, 5} -> 2 batches of width 32 (the second with one unreal row),
  # {33, 64} -> 1 of width 64, {65} -> 1 of 96, {128} -> 1 of 128: 2 * (32 + 32 + 64 + 96 + 128).
  # A padded run: ceil(7 / 2) = 4 batches of 2 x 128.
  lengths = [10, 20, 33, 64, 65, 128, 5]
  with strategy.scope():
    model = tiny_model()
  unique_ids, start_logits, _, tokens = prediction.predict_bucketed(
      model, features(lengths), strategy, 2, granularity=GRANULARITY)
  assert tokens == length_buckets.TokenCounts(computed=704, padded=1024)
  assert tokens.summary() == "predict: computed 704 of 1,024 tokens (1.45× fewer)"
  assert len(unique_ids) == 7 and start_logits.shape == (7, SEQ_LENGTH)


def test_batches_are_full_bounded_in_width_and_mark_the_unreal_rows():
  lengths = [10, 20, 33, 64, 65, 128, 5]
  batches = list(length_buckets.bucketed_batches(features(lengths), 2, GRANULARITY))
  widths = [inputs["input_ids"].shape for inputs, _ in batches]
  # Full batches as their bucket fills, then each bucket's remainder, by width.
  assert widths == [[2, 32], [2, 64], [2, 32], [2, 96], [2, 128]]
  indexes = [t[length_buckets.FEATURE_INDEX].numpy().tolist() for _, t in batches]
  real = [t[length_buckets.IS_REAL].numpy().tolist() for _, t in batches]
  assert indexes == [[0, 1], [2, 3], [6, 6], [4, 4], [5, 5]]
  assert real == [[1, 1], [1, 1], [1, 0], [1, 0], [1, 0]]
  assert length_buckets.bucket_widths(384) == [64, 128, 192, 256, 320, 384]
  assert length_buckets.bucket_widths(100, 64) == [64, 100]


def test_empty_dataset(strategy):
  with strategy.scope():
    model = tiny_model()
  unique_ids, start_logits, end_logits, tokens = prediction.predict_bucketed(
      model, features([3]).take(0), strategy, 2, granularity=GRANULARITY)
  assert unique_ids.shape == (0,) and end_logits.shape == (0, SEQ_LENGTH)
  assert tokens == length_buckets.TokenCounts(0, 0)


def test_mirrored_over_two_logical_cpus_gives_the_same(tmp_path):
  result = subprocess.run([sys.executable, os.path.abspath(__file__), str(tmp_path)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
  assert result.returncode == 0, result.stderr[-3000:]
  saved = np.load(tmp_path / "mirrored.npz")
  lengths = saved["lengths"].tolist()
  assert int(saved["replicas"]) == 2
  assert_same_as_padded((saved["ids"], saved["start"], saved["end"]),
                        (saved["b_ids"], saved["b_start"], saved["b_end"]), lengths)


def _mirrored_run(output_dir: str) -> None:
  """Padded on one device vs bucketed mirrored over 2 logical CPUs; saves both."""
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
  mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  lengths = many_lengths()
  with one_device.scope():
    model = tiny_model()
  ids, start, end = prediction.predict_logits(model, features(lengths), one_device, BATCH_SIZE)
  with mirrored.scope():
    mirrored_model = tiny_model()
  mirrored_model.set_weights(model.get_weights())
  b_ids, b_start, b_end = prediction.predict_logits(
      mirrored_model, features(lengths), mirrored, BATCH_SIZE, length_bucketing=True,
      bucket_granularity=GRANULARITY)
  np.savez(os.path.join(output_dir, "mirrored.npz"), lengths=lengths, ids=ids, start=start, end=end,
           b_ids=b_ids, b_start=b_start, b_end=b_end, replicas=mirrored.num_replicas_in_sync)


if __name__ == "__main__":
  _mirrored_run(sys.argv[1])


@pytest.mark.parametrize("lengths,width", [([3, 17, 5], 32), ([16], 16), ([0, 0], 16), ([], 16),
                                           ([40, 2], 40), ([33], 40)])
def test_batch_width_holds_the_longest_row_in_a_multiple_of_the_granularity(lengths, width):
  mask = np.array([[1] * n + [0] * (40 - n) for n in lengths], np.int32).reshape([-1, 40])
  assert int(length_buckets.batch_width(tf.constant(mask), 40, 16)) == width
