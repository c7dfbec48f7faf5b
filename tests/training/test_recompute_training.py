"""Training with gradient checkpointing (`build_span_model(gradient_checkpointing=True)`) through `loop.train`.

Each test trains the same tiny BERT span model, dropout on, from the same
weights and dropout-generator states twice -- without and with
checkpointing -- and expects the same weights after a few updates.
"""
import functools
import io

import numpy as np
import pytest

from bert_squad.modeling import model_config
from bert_squad.modeling import recompute
from bert_squad.modeling import span_model
from bert_squad.training import distribution
from bert_squad.training import input_pipeline
from bert_squad.training import loop
from bert_squad.training import loop_config
from bert_squad.training import optimization
from tests import toys_process_testlib as runs
from tests import training_toys as toys

TINY = model_config.BertConfig(
    vocab_size=toys.VOCAB_SIZE, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=64, hidden_act="gelu", hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1, max_position_embeddings=toys.SEQ_LENGTH, type_vocab_size=2,
    initializer_range=0.02)
STEPS = 3
BATCH = 8


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> str:
  folder = tmp_path_factory.mktemp("toy_data")
  return toys.write_records(str(folder / "train.tf_record"), toys.toy_records(64, seed=0))


@pytest.fixture(scope="module")
def strategy():
  return distribution.make_strategy("one_device", num_gpus=0)


@pytest.fixture
def precision(request):
  loop_config.set_precision(request.param)
  yield request.param
  loop_config.set_precision("float32")


def _train_twins(strategy, train_file: str, output_dir, dtype: str = "float32", accumulation: int = 1,
                 use_xla: bool = False, length_bucketing: bool = False) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
  """(initial, plain, checkpointing) trainable weights of `STEPS` AdamWeightDecay updates."""
  with strategy.scope():
    with recompute.replayable_dropout():
      plain = span_model.build_span_model(TINY, toys.SEQ_LENGTH)
    checkpointing = span_model.build_span_model(TINY, toys.SEQ_LENGTH, gradient_checkpointing=True)
  checkpointing.set_weights(plain.get_weights())
  for source, target in zip(loop._dropout_generators(plain), loop._dropout_generators(checkpointing)):
    target.reset(source.state)
  initial = toys.model_weights(plain)
  dataset_fn = functools.partial(input_pipeline.make_dataset, train_file, toys.SEQ_LENGTH,
                                 BATCH // accumulation, True, shuffle_buffer_size=1, seed=5,
                                 length_bucketing=length_bucketing, accumulation_steps=accumulation,
                                 bucket_granularity=toys.BUCKET_GRANULARITY)
  for name, model in (("plain", plain), ("checkpointing", checkpointing)):
    with strategy.scope():
      optimizer = optimization.create_optimizer(1e-3, STEPS, 1, fused_update=use_xla)
    config = loop_config.TrainConfig(
        output_dir=str(output_dir / name), num_train_steps=STEPS, train_batch_size=BATCH,
        gradient_accumulation_steps=accumulation, dtype=dtype, use_xla=use_xla,
        steps_per_loop=1, log_steps=1, handle_signals=False, mask_padding_logits=length_bucketing)
    loop.train(model, optimizer, span_model.span_loss, dataset_fn, strategy, config, log_stream=io.StringIO())
  return initial, toys.model_weights(plain), toys.model_weights(checkpointing)


@pytest.mark.parametrize("accumulation, use_xla, length_bucketing",
                         [(1, False, False), (2, False, False), (1, True, False), (2, False, True)],
                         ids=["plain", "accumulation", "xla", "length_bucketing"])
def test_checkpointing_trains_to_the_same_weights(tmp_path, strategy, train_file, accumulation, use_xla,
                                                  length_bucketing):
  initial, plain, checkpointing = _train_twins(strategy, train_file, tmp_path, accumulation=accumulation,
                                               use_xla=use_xla, length_bucketing=length_bucketing)
  assert toys.max_difference(plain, initial) > 1e-3  # it trained
  assert toys.max_difference(plain, checkpointing) < 1e-6


def test_checkpointing_trains_to_the_same_weights_under_mirrored_strategy(tmp_path, train_file):
  # One logical CPU: one replica, but MirroredVariables and replica context, as on several GPUs.
  mirrored = distribution.make_strategy("mirrored", num_gpus=0)
  initial, plain, checkpointing = _train_twins(mirrored, train_file, tmp_path, accumulation=2)
  assert toys.max_difference(plain, initial) > 1e-3
  assert toys.max_difference(plain, checkpointing) < 1e-6


@pytest.mark.parametrize("precision", ["float16"], indirect=True)
def test_checkpointing_trains_to_the_same_weights_in_float16(tmp_path, strategy, train_file, precision):
  initial, plain, checkpointing = _train_twins(strategy, train_file, tmp_path, dtype=precision,
                                               accumulation=2)
  assert toys.max_difference(plain, initial) > 1e-3
  assert toys.max_difference(plain, checkpointing) < 1e-6


def test_checkpointing_over_two_mirrored_replicas_keeps_each_replicas_dropout_masks(tmp_path):
  """2 logical CPUs, dropout on: each replica replays its own masks, so the weights equal those without."""
  train_file = toys.write_records(str(tmp_path / "train.tf_record"), toys.toy_records(64, seed=0))
  common = ["--steps", 3, "--batch", 8, "--optimizer", "adam", "--learning_rate", 1e-3, "--dropout", 0.1,
            "--strategy", "mirrored", "--logical_cpus", 2, "--shuffle_buffer", 16, "--length_bucketing"]
  data = {"train": train_file}
  plain = runs.start(runs.toys_command(data, tmp_path / "plain", *common))
  checkpointing = runs.start(runs.toys_command(data, tmp_path / "checkpointing", *common,
                                               "--gradient_checkpointing"))
  assert runs.finish(plain)["replicas"] == runs.finish(checkpointing)["replicas"] == 2
  plain_weights, weights = runs.final_weights(tmp_path / "plain"), runs.final_weights(tmp_path / "checkpointing")
  assert toys.max_difference(plain_weights, weights) < 1e-6
