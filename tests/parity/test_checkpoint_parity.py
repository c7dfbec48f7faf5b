"""Encoder parity with tf-models-official's own TF1 checkpoint converter.

Random checkpoints with exactly the names of Google's released checkpoints
(`../shared/data/bert/google-checkpoints/*/variables.tsv`, shapes scaled down
to a tiny width) are loaded by `bert_squad.modeling.google_format` and, as the reference,
by `official.nlp.tools.tf1_bert_checkpoint_converter_lib` into its own
`BertEncoder`: both must compute the same outputs.
"""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.modeling import tf_utils
from official.nlp.modeling import networks
from official.nlp.tools import tf1_bert_checkpoint_converter_lib as official_converter

from bert_squad.modeling import google_format
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from tests import checkpoint_testlib as testlib

LISTINGS = {"uncased_L-8_H-512_A-8": 142, "uncased_L-12_H-768_A-12-with-optimizer-slots": 619}

IDS = [[2, 17, 9, 3, 41, 12, 13, 3, 0, 0, 0, 0], [2, 5, 3, 20, 21, 22, 23, 24, 25, 26, 27, 3]]
MASK = [[1] * 8 + [0] * 4, [1] * 12]
SEGMENTS = [[0] * 4 + [1] * 4 + [0] * 4, [0] * 3 + [1] * 9]


def _read_listing(path) -> dict[str, tuple[int, ...]]:
  """name -> shape from a `variables.tsv` (name, dtype, shape per line)."""
  shapes = {}
  for line in path.read_text(encoding="utf-8").splitlines():
    name, _, shape = line.split("\t")
    shapes[name] = tuple(int(d) for d in shape.strip("[]").split(",") if d.strip())
  return shapes


def _tiny(config: model_config.BertConfig) -> model_config.BertConfig:
  """The same layers and activation at a tiny width."""
  return dataclasses.replace(config, vocab_size=97, hidden_size=32, num_attention_heads=4,
                             intermediate_size=48, max_position_embeddings=40)


def _scaled_shape(name: str, shape: tuple[int, ...], big: model_config.BertConfig,
                  small: model_config.BertConfig) -> tuple[int, ...]:
  """Maps each dimension of a released tensor to the tiny config's."""
  sizes = {big.vocab_size: small.vocab_size, big.hidden_size: small.hidden_size,
           big.intermediate_size: small.intermediate_size,
           big.type_vocab_size: small.type_vocab_size}
  if "embeddings/position_embeddings" in name:  # [max_positions, hidden]
    return (small.max_position_embeddings, small.hidden_size)
  return tuple(sizes[d] for d in shape)


def _official_encoder(config: model_config.BertConfig, tf1_checkpoint: str,
                      work_dir) -> networks.BertEncoder:
  """tf-models-official's path for a Google checkpoint: rename + reshape, then load by name."""
  converted = str(work_dir / "ckpt")
  official_converter.convert(
      checkpoint_from_path=tf1_checkpoint, checkpoint_to_path=converted,
      num_heads=config.num_attention_heads,
      name_replacements=official_converter.BERT_V2_NAME_REPLACEMENTS,
      permutations=official_converter.BERT_V2_PERMUTATIONS, exclude_patterns=["adam", "Adam"])
  encoder = networks.BertEncoder(
      vocab_size=config.vocab_size, hidden_size=config.hidden_size,
      num_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
      intermediate_size=config.intermediate_size,
      activation=tf_utils.get_activation(config.hidden_act),
      dropout_rate=config.hidden_dropout_prob,
      attention_dropout_rate=config.attention_probs_dropout_prob,
      max_sequence_length=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
      initializer=tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range))
  encoder.load_weights(converted).assert_existing_objects_matched()
  return encoder


def _inputs():
  return [tf.constant(IDS, tf.int32), tf.constant(MASK, tf.int32), tf.constant(SEGMENTS, tf.int32)]


@dataclasses.dataclass
class Release:
  """A random checkpoint with one release's names, and the models that read it."""
  config: model_config.BertConfig  # the release's config at a tiny width
  tensors: dict[str, np.ndarray]
  prefix: str  # the TF1 checkpoint
  work_dir: object
  model: span_model.BertSpanModel  # ours, built once per release (12 layers take seconds)
  official: networks.BertEncoder  # the reference, loaded from `prefix`


@pytest.fixture(scope="module", params=sorted(LISTINGS))
def release(request, shared_data, tmp_path_factory) -> Release:
  folder = shared_data / "bert" / "google-checkpoints" / request.param
  big = model_config.BertConfig.from_json_file(str(folder / "bert_config.json"))
  small = _tiny(big)
  listing = _read_listing(folder / "variables.tsv")
  assert len(listing) == LISTINGS[request.param]
  tensors = testlib.random_tensors({n: _scaled_shape(n, s, big, small) for n, s in listing.items()})
  work_dir = tmp_path_factory.mktemp(request.param)
  prefix = testlib.write_tf1_checkpoint(str(work_dir / request.param / "bert_model.ckpt"), tensors)
  return Release(small, tensors, prefix, work_dir, span_model.build_span_model(small),
                 _official_encoder(small, prefix, work_dir / "official"))


def test_release_names_load_and_match_the_official_converter(release):
  loaded = google_format.load_google_checkpoint(release.model, release.prefix)
  assert sorted(loaded) == sorted(n for n in release.tensors
                                  if n.startswith("bert/") and "/adam_" not in n)
  ours = release.model.encoder(_inputs())
  reference_sequence, reference_pooled = release.official(_inputs())
  np.testing.assert_allclose(ours["sequence_output"], reference_sequence, atol=1e-5)
  np.testing.assert_allclose(ours["pooled_output"], reference_pooled, atol=1e-5)


def test_fine_tuned_squad_head_matches_the_originals_formula(release):
  """A `run_squad.py` output: the release's names plus cls/squad/* (and its slots)."""
  hidden = release.config.hidden_size
  head = testlib.random_tensors({"cls/squad/output_weights": (2, hidden),
                                 "cls/squad/output_bias": (2,)}, seed=7)
  slots = {f"{n}/{slot}": v * 0 for n, v in head.items() for slot in ("adam_m", "adam_v")
           if any("/adam_" in name for name in release.tensors)}
  prefix = testlib.write_tf1_checkpoint(str(release.work_dir / "fine_tuned" / "bert_model.ckpt"),
                                        {**release.tensors, **head, **slots})
  loaded = google_format.load_google_checkpoint(release.model, prefix)
  assert {"cls/squad/output_weights", "cls/squad/output_bias"} <= set(loaded)
  sequence, _ = release.official(_inputs())
  # The original: logits = final_hidden @ output_weights^T + output_bias, then unstack.
  logits = sequence.numpy() @ head["cls/squad/output_weights"].T + head["cls/squad/output_bias"]
  ids, mask, segments = _inputs()
  outputs = release.model({"input_ids": ids, "input_mask": mask, "segment_ids": segments})
  np.testing.assert_allclose(outputs["start_logits"], logits[..., 0], atol=1e-5)
  np.testing.assert_allclose(outputs["end_logits"], logits[..., 1], atol=1e-5)


def test_exported_checkpoint_loads_in_the_official_converter(release):
  """Our Google-format export is readable by the reference, giving the same encoder."""
  google_format.load_google_checkpoint(release.model, release.prefix)
  vocab = release.work_dir / "vocab.txt"
  vocab.write_text("".join(f"w{i}\n" for i in range(release.config.vocab_size)), encoding="utf-8")
  exported = google_format.export_google_checkpoint(release.model, str(vocab),
                                                  str(release.work_dir / "export"))
  official = _official_encoder(release.config, exported, release.work_dir / "official_export")
  reference_sequence, _ = official(_inputs())
  np.testing.assert_allclose(release.model.encoder(_inputs())["sequence_output"],
                             reference_sequence, atol=1e-5)
