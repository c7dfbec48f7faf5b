"""A SQuAD file, feature metadata and saved logits -> the prediction files, without running the model.

`rewrite_predictions` checks that the three inputs belong together, then runs
`nbest_lists.compute_predictions` and `prediction_files.write_prediction_files`
(what `run_squad.py --do_predict` and `python -m bert_squad.postprocess` both
call); `find_run_inputs` finds those inputs in a `--do_predict` run's
output_dir.
"""
import dataclasses
import os
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from bert_squad.answers import logits_io
from bert_squad.answers import nbest_lists
from bert_squad.answers import prediction_files
from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.common.io_utils import make_output_dir
from bert_squad.data import feature_files
from bert_squad.data import squad



def _check_inputs_match(examples: Sequence[Any], features: Sequence[Any],
                        unique_ids: np.ndarray, seq_length: int,
                        paths: dict[str, str]) -> None:
  """Raises InputError naming the files when the three inputs disagree."""
  num_examples = len(examples)
  for feature in features:
    if not 0 <= feature.example_index < num_examples:
      raise InputError(
          f"{paths['features']}: feature unique_id {feature.unique_id} "
          f"belongs to example_index {feature.example_index}, but "
          f"{paths['examples']} has {num_examples} questions (built from "
          "another file?)")
  known = set(unique_ids.tolist())
  for feature in features:
    if feature.unique_id not in known:
      raise InputError(
          f"{paths['logits']}: no logits for feature unique_id "
          f"{feature.unique_id} of {paths['features']} (saved from other "
          "features?)")
    if len(feature.tokens) > seq_length:
      raise InputError(
          f"{paths['logits']}: logits have seq_length {seq_length}, but "
          f"feature unique_id {feature.unique_id} of {paths['features']} has "
          f"{len(feature.tokens)} tokens")


def _check_features_source(predict_file: str, feature_metadata_file: str) -> None:
  """Raises InputError when the features' info file (beside a `<tfrecord>.metadata.jsonl`)
  says they were built from other bytes than `predict_file`.

  Without it, features of another dataset with no more questions would be
  aligned to the wrong contexts without any error.
  """
  suffix = ".metadata.jsonl"
  if not feature_metadata_file.endswith(suffix):
    return
  info_file = feature_files.features_info_path(feature_metadata_file[:-len(suffix)])
  if not tf.io.gfile.exists(info_file):
    return
  info = feature_files.read_features_info(info_file)
  if io_utils.file_sha256(predict_file) != info.input_sha256:
    raise InputError(
        f"{predict_file}: not the file the features of {feature_metadata_file} were built from "
        f"(their {info_file} names {info.input_file}, with other content)")


def rewrite_predictions(predict_file: str, feature_metadata_file: str,
                        logits_file: str, output_dir: str, *,
                        do_lower_case: bool, version_2_with_negative: bool,
                        n_best_size: int, max_answer_length: int,
                        null_score_diff_threshold: float,
                        verbose_logging: bool = False) -> prediction_files.PredictionFiles:
  """Prediction files from saved logits, without running the model.

  Args:
    predict_file: the SQuAD JSON the features were built from.
    feature_metadata_file: the features' metadata (JSON lines) written
      beside the prediction TFRecord.
    logits_file: a `save_logits` file of those features.
    output_dir: where the three files go (created when the inputs have been
      checked, so that a bad input leaves no folder behind).

  Returns:
    the files written.
  """
  _check_features_source(predict_file, feature_metadata_file)
  logits = logits_io.load_logits(logits_file)
  examples, _ = squad.read_squad_examples(
      predict_file, is_training=False,
      version_2_with_negative=version_2_with_negative)
  features = feature_files.read_feature_metadata(feature_metadata_file)
  _check_inputs_match(examples, features, logits.unique_ids,
                      logits.start_logits.shape[1],
                      {"examples": predict_file,
                       "features": feature_metadata_file,
                       "logits": logits_file})
  predictions, nbest, null_odds = nbest_lists.compute_predictions(
      examples, features, logits, n_best_size=n_best_size,
      max_answer_length=max_answer_length, do_lower_case=do_lower_case,
      version_2_with_negative=version_2_with_negative,
      null_score_diff_threshold=null_score_diff_threshold,
      verbose_logging=verbose_logging)
  make_output_dir(output_dir, "--output_dir")
  return prediction_files.write_prediction_files(
      output_dir, predictions, nbest,
      null_odds if version_2_with_negative else None)


@dataclasses.dataclass(frozen=True)
class RunInputs:
  """What `rewrite_predictions` needs, as a `run_squad.py --do_predict` run left it."""
  predict_file: str
  feature_metadata_file: str
  logits_file: str
  do_lower_case: bool
  version_2_with_negative: bool


def find_run_inputs(run_dir: str) -> RunInputs:
  """The logits, features and settings of the last prediction in a run's output_dir.

  The logits are `run_dir/predict_logits.npz`; their features are the one
  `features/predict-*.tf_record` set whose info file counts as many features
  of the same length; the SQuAD file and the casing and version flags come
  from that info file (the SQuAD path as the run gave it).

  Raises:
    InputError: no logits, or not exactly one matching feature set (then
      `--feature_metadata_file` must say which).
  """
  logits_file = os.path.join(run_dir, logits_io.LOGITS_FILE)
  if not tf.io.gfile.exists(logits_file):
    raise InputError(f"--run_dir={run_dir}: no {logits_io.LOGITS_FILE} there (the output_dir of a "
                     "run_squad.py --do_predict run holds one)")
  shape = logits_io.load_logits(logits_file).start_logits.shape
  suffix = ".info.json"
  pattern = os.path.join(run_dir, feature_files.RUN_FEATURES_DIR, f"predict-*.tf_record{suffix}")
  matches = []
  for info_file in sorted(tf.io.gfile.glob(pattern)):
    info = feature_files.read_features_info(info_file)
    if (info.num_features, info.max_seq_length) == shape:
      matches.append((info_file, info))
  if len(matches) != 1:
    found = ", ".join(m[0] for m in matches) or f"none in {os.path.dirname(pattern)}"
    raise InputError(f"--run_dir={run_dir}: {len(matches)} prediction feature sets have {shape[0]} features of "
                     f"length {shape[1]} like {logits_io.LOGITS_FILE} ({found}): pass --feature_metadata_file")
  info_file, info = matches[0]
  return RunInputs(
      predict_file=info.input_file,
      feature_metadata_file=feature_files.feature_metadata_path(info_file[:-len(suffix)]),
      logits_file=logits_file, do_lower_case=info.do_lower_case,
      version_2_with_negative=info.version_2_with_negative)
