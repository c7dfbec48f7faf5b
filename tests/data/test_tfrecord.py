"""TFRecord framing without TensorFlow: the same bytes as tf.io.TFRecordWriter, read back by tf.data,
and a preprocessing run that never imports TensorFlow."""
import json
import random
import subprocess
import sys

import tensorflow as tf

from bert_squad.data import tfrecord
from tests.run_testlib import DEMO_DATA
from tests.run_testlib import REPO_ROOT


def _payloads() -> list[bytes]:
  rng = random.Random(5)
  sizes = [0, 1, 3, 4, 7, 8, 255, 256, 4096, 70_000]
  return [bytes(rng.getrandbits(8) for _ in range(size)) for size in sizes]


def test_entries_are_tf_record_writer_bytes(tmp_path):
  reference = tmp_path / "reference.tf_record"
  with tf.io.TFRecordWriter(str(reference)) as writer:
    for payload in _payloads():
      writer.write(payload)
  assert b"".join(map(tfrecord.entry, _payloads())) == reference.read_bytes()


def test_tf_data_reads_the_entries_and_checks_their_crcs(tmp_path):
  path = tmp_path / "ours.tf_record"
  path.write_bytes(b"".join(map(tfrecord.entry, _payloads())))
  assert list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()) == _payloads()
  corrupt = bytearray(path.read_bytes())
  corrupt[20] ^= 1  # inside the first non-empty payload
  path.write_bytes(bytes(corrupt))
  try:
    list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
  except tf.errors.DataLossError:
    return
  raise AssertionError("a flipped bit went unnoticed")


def test_crc32c_check_value():
  # The standard CRC-32C check: "123456789" -> 0xE3069283; masked as TFRecord does.
  crc = 0xE3069283
  expected = ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF).to_bytes(4, "little")
  assert tfrecord.masked_crc32c(b"123456789") == expected


def test_preprocessing_never_imports_tensorflow(tmp_path, minilm_dir):
  """The CLI's whole run (workers included) without TensorFlow in the main process."""
  script = f"""
import runpy
import sys
sys.argv = ["preprocess", "--input_file={DEMO_DATA / 'squad2.0_demo_dev.json'}", "--output_file={tmp_path / 'dev.tf_record'}",
            "--vocab_file={minilm_dir / 'vocab.txt'}", "--max_seq_length=160", "--doc_stride=64",
            "--version_2_with_negative", "--num_preprocess_workers=2"]
try:
  runpy.run_module("bert_squad.preprocess", run_name="__main__")
except SystemExit as e:
  assert not e.code, e.code
assert "tensorflow" not in sys.modules, "tensorflow was imported"
print("ok")
"""
  result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
  info = json.loads((tmp_path / "dev.tf_record.info.json").read_text())
  records = list(tf.data.TFRecordDataset(str(tmp_path / "dev.tf_record")).as_numpy_iterator())
  assert len(records) == info["num_features"] == 121
