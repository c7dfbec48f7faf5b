"""The whole run_squad job with every path a `tf.io.gfile` URL, as on Cloud TPU with `gs://`.

Nothing here can reach a bucket, so `file://` URLs stand in: like `gs://`
paths they work only through `tf.io.gfile` (plain `open()` and `os.path` see
no such file), so any stage that bypasses gfile fails here. The inputs, the
pre-trained checkpoint, the feature cache, checkpoints, TensorBoard events,
the export, predictions, eval.json and the plots are all given as URLs; the
working directory must stay empty. (TensorFlow's `ram://` would be closer to
an object store but lists and checks directories by name prefix, so
`bert_model.ckpt` looks like a folder there: no real store does that.)
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from bert_squad import pipeline
from bert_squad import run_config
from bert_squad.modeling import google_format
from bert_squad.modeling import span_model
from tests import run_testlib
from tests.run_testlib import DEMO_DATA
from tests.run_testlib import TINY


def _copy_to(local_path, remote_path: str) -> str:
  tf.io.gfile.copy(str(local_path), remote_path, overwrite=True)
  return remote_path


def _listing(root: str) -> set[str]:
  return {os.path.relpath(os.path.join(folder, name), root)
          for folder, _, names in tf.io.gfile.walk(root) for name in names}


@pytest.fixture(scope="module")
def ram_run(minilm_dir, tmp_path_factory):
  """Trains, predicts and scores SQuAD 2.0 with every path a file:// URL; returns (root, scores, local cwd)."""
  root = f"file://{tmp_path_factory.mktemp('bucket')}"
  init_checkpoint = run_testlib.export_tiny_checkpoint(str(minilm_dir / "vocab.txt"), f"{root}/pretrained")
  config = run_config.RunConfig(
      init_checkpoint=init_checkpoint, output_dir=f"{root}/run",
      train_file=_copy_to(DEMO_DATA / "squad2.0_demo_train.json", f"{root}/squad2.0_demo_train.json"),
      predict_file=_copy_to(DEMO_DATA / "squad2.0_demo_dev.json", f"{root}/squad2.0_demo_dev.json"),
      do_train=True, do_predict=True, do_eval=True, version_2_with_negative=True,
      max_seq_length=160, doc_stride=64, train_batch_size=16, predict_batch_size=16,
      learning_rate=1e-3, num_train_epochs=0.3, save_checkpoints_steps=5, iterations_per_loop=5,
      log_steps=5, deterministic=True, seed=3)
  local_dir = tmp_path_factory.mktemp("cwd")
  cwd = os.getcwd()
  os.chdir(local_dir)  # anything written to a relative local path would land here
  try:
    scores = pipeline.run(config)
  finally:
    os.chdir(cwd)
  return root, scores, local_dir


def test_every_output_is_written_through_gfile(ram_run):
  root, scores, local_dir = ram_run
  files = _listing(f"{root}/run")
  expected = {"predictions.json", "nbest_predictions.json", "null_odds.json", "eval.json",
              "predict_logits.npz", "train_history.json", "training_curves.png", "checkpoint",
              "export/bert_model.ckpt.index", "export/bert_config.json", "export/vocab.txt",
              "plots/pr_f1.png", "plots/na_prob_hist_noAns.png"}
  assert expected <= files, expected - files
  assert any(name.startswith("ckpt-") and name.endswith(".index") for name in files)
  assert any(name.startswith("tensorboard/") and "tfevents" in name for name in files)
  assert any(name.startswith("features/train-") and name.endswith(".tf_record") for name in files)
  assert any(name.startswith("features/predict-") and name.endswith(".metadata.jsonl") for name in files)
  assert not any(".tmp" in name for name in files), files  # atomic writes renamed into place
  assert not list(local_dir.iterdir())  # nothing leaked onto the local disk

  with tf.io.gfile.GFile(f"{root}/run/eval.json") as f:
    assert json.load(f) == scores
  with tf.io.gfile.GFile(f"{root}/run/predictions.json") as f:
    predictions = json.load(f)
  with tf.io.gfile.GFile(f"{root}/squad2.0_demo_dev.json") as f:
    dev_ids = {qa["id"] for article in json.load(f)["data"] for paragraph in article["paragraphs"]
               for qa in paragraph["qas"]}
  assert set(predictions) == dev_ids
  assert scores["total"] == len(dev_ids) and "best_f1_thresh" in scores and "pr_f1_ap" in scores


def test_exported_model_on_gfile_loads_back(ram_run):
  root, _, _ = ram_run
  model = span_model.build_span_model(TINY)
  google_format.load_google_checkpoint(model, f"{root}/run/export/bert_model.ckpt")
  with tf.io.gfile.GFile(f"{root}/run/predict_logits.npz", "rb") as f:
    with np.load(f) as logits:
      assert logits["start_logits"].shape[1] == 160
  assert model.bert_config.to_dict() == json.loads(
      tf.io.gfile.GFile(f"{root}/run/export/bert_config.json").read())
