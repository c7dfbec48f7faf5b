"""Feature files of a run, built once and reused: (config, SQuAD file, vocab) -> (TFRecord path, FeaturesInfo).

The cache file name carries `feature_files.features_cache_key` (input and
vocab bytes, every parameter, `FORMAT_VERSION`); a cached set is reused only
when its info records the same and its TFRecord (and, in prediction, its
metadata) holds `num_features` intact entries. The one module of `data` that
imports TensorFlow (tf.io.gfile and tf.data read the cached files, local or
gs://).
"""
import os
from typing import Protocol

import tensorflow as tf
from absl import logging

from bert_squad.common import errors
from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.data import build
from bert_squad.data import feature_files
from bert_squad.data import squad


class CacheSettings(Protocol):
  """The settings `cached_features` reads (a `run_config.RunConfig` has them all)."""
  output_dir: str | None
  cache_dir: str | None
  overwrite_cache: bool
  do_lower_case: bool
  max_seq_length: int
  doc_stride: int
  max_query_length: int
  version_2_with_negative: bool


def cached_features(config: CacheSettings, input_file: str, vocab_file: str,
                    is_training: bool) -> tuple[str, feature_files.FeaturesInfo]:
  """Builds (or reuses) the TFRecord features of `input_file`; returns (path, info).

  The file name carries a key of the input and vocab bytes and every
  parameter, so features made with other settings are never reused.
  """
  cache_dir = config.cache_dir or os.path.join(config.output_dir, feature_files.RUN_FEATURES_DIR)
  shuffle_seed = squad.TRAIN_SHUFFLE_SEED if is_training else None
  key = feature_files.features_cache_key(
      input_file, vocab_file, config.do_lower_case, config.max_seq_length, config.doc_stride,
      config.max_query_length, is_training, config.version_2_with_negative, shuffle_seed)
  path = os.path.join(cache_dir, f"{'train' if is_training else 'predict'}-{key[:16]}.tf_record")
  info_path = feature_files.features_info_path(path)
  if not config.overwrite_cache and tf.io.gfile.exists(info_path):
    expected = dict(
        format_version=feature_files.FORMAT_VERSION, input_sha256=io_utils.file_sha256(input_file),
        vocab_sha256=io_utils.file_sha256(vocab_file), do_lower_case=config.do_lower_case,
        max_seq_length=config.max_seq_length, doc_stride=config.doc_stride,
        max_query_length=config.max_query_length, is_training=is_training,
        version_2_with_negative=config.version_2_with_negative, shuffle_seed=shuffle_seed)
    problem = _cached_features_problem(path, expected)
    if problem is None:
      logging.info("reusing cached features %s", path)
      return path, feature_files.read_features_info(info_path)
    logging.warning("%s: %s; rebuilding the cached features", path, problem)
  logging.info("writing %s features of %s to %s", "training" if is_training else "prediction",
               input_file, path)
  info = build.build_feature_files(
      input_file, path, vocab_file, config.do_lower_case, config.max_seq_length, config.doc_stride,
      config.max_query_length, is_training, config.version_2_with_negative, shuffle=True,
      show_progress=True)
  if is_training:
    logging.info("%d examples -> %d features (%d answers not found in the text were skipped, "
                 "%d questions had several answers: the first was used)", info.num_examples,
                 info.num_features, info.skipped_answers, info.multi_answer_questions)
  else:  # prediction reads no answers: those counts are always 0
    logging.info("%d examples -> %d features", info.num_examples, info.num_features)
  return path, info


def _cached_features_problem(path: str, expected: dict) -> str | None:
  """Why the cached TFRecord (+ info, + metadata in prediction) cannot be reused; None if it can.

  The info must record exactly `expected` (the inputs' sha256 and every
  parameter), and the TFRecord must hold `num_features` records whose
  checksums are intact (read through once, ~1 s for the SQuAD train set).
  """
  try:
    info = feature_files.read_features_info(feature_files.features_info_path(path))
  except InputError as e:
    return str(e)
  changed = [name for name, value in expected.items() if getattr(info, name) != value]
  if changed:
    return f"built with other inputs or parameters ({', '.join(changed)})"
  try:
    num_records = int(tf.data.TFRecordDataset(path).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
  except tf.errors.OpError as e:
    return f"unreadable TFRecord ({errors.first_line(e)})"
  if num_records != info.num_features:
    return f"{num_records} records, but {info.num_features} were written"
  metadata_path = feature_files.feature_metadata_path(path)
  if not info.is_training:
    if not tf.io.gfile.exists(metadata_path):
      return f"{metadata_path} is missing"
    with tf.io.gfile.GFile(metadata_path, "rb") as f:
      num_lines = sum(1 for _ in f)
    if num_lines != info.num_features:
      return f"{metadata_path} has {num_lines} lines, but {info.num_features} features were written"
  return None
