"""The preprocessing entry point: library function and `python -m bert_squad.preprocess`."""
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import tensorflow as tf

from bert_squad.common.errors import InputError
from bert_squad.data import build
from bert_squad.data import feature_files
from bert_squad.data import feature_workers
from bert_squad.data import features
from bert_squad.data import records
from bert_squad.data import squad
from bert_squad.data import tokenization
from bert_squad.data import windows

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
VOCAB = "[PAD] [UNK] [CLS] [SEP] the man went to store and bought a gallon of milk what did he buy who ? .".split()
CONTEXT = "the man went to the store and bought a gallon of milk . " * 3


@pytest.fixture
def vocab_file(tmp_path):
  path = tmp_path / "vocab.txt"
  path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
  return str(path)


@pytest.fixture
def squad_file(tmp_path):
  """Two paragraphs, ten questions; one answer the original cannot find, one with two answers."""
  qas = []
  for i in range(10):
    word = ["milk", "store", "man", "gallon", "bought"][i % 5]
    start = CONTEXT.index(word)
    qas.append({"id": f"q{i}", "question": f"what did he buy {i * 'who '}?",
                "answers": [{"text": word, "answer_start": start}]})
  # At its answer_start, but the original's word check misses it (U+00A0 joins two context
  # words, while the answer's split() turns it into a space): skipped.
  nbsp_context = CONTEXT.replace("gallon of", "gallon\u00a0of", 1)
  qas[3]["answers"] = [{"text": "gallon\u00a0of", "answer_start": nbsp_context.index("gallon\u00a0of")}]
  qas[4]["answers"].append({"text": "the", "answer_start": 0})
  data = {"data": [{"title": "t", "paragraphs": [
      {"context": nbsp_context, "qas": qas[:6]},
      {"context": CONTEXT + "who went ?", "qas": qas[6:]},
  ]}]}
  path = tmp_path / "train.json"
  path.write_text(json.dumps(data), encoding="utf-8")
  return str(path)


def _build(squad_file, vocab_file, output_file, **kwargs):
  params = dict(max_seq_length=40, doc_stride=8, max_query_length=16)
  params.update(kwargs)
  return build.build_feature_files(squad_file, output_file, vocab_file, **params)


def _questions(metadata):
  """The query of each example's first window, in feature order."""
  return [" ".join(m.tokens[1:m.tokens.index("[SEP]")]) for m in metadata if m.doc_span_index == 0]


def _record_unique_ids(path):
  spec = {"unique_ids": tf.io.FixedLenFeature([], tf.int64)}
  return [int(tf.io.parse_single_example(r, spec)["unique_ids"]) for r in tf.data.TFRecordDataset(path)]


def test_training_files_counts_and_shuffle(tmp_path, squad_file, vocab_file):
  output = str(tmp_path / "out" / "train.tf_record")
  info = _build(squad_file, vocab_file, output, is_training=True, write_metadata=True)
  assert (info.num_examples, info.skipped_answers, info.multi_answer_questions) == (9, 1, 1)
  assert info.shuffle_seed == squad.TRAIN_SHUFFLE_SEED
  assert info.input_sha256 == hashlib.sha256(pathlib.Path(squad_file).read_bytes()).hexdigest()
  assert info.vocab_sha256 == hashlib.sha256(pathlib.Path(vocab_file).read_bytes()).hexdigest()
  assert feature_files.read_features_info(output + ".info.json") == info
  metadata = feature_files.read_feature_metadata(output + ".metadata.jsonl")
  assert _record_unique_ids(output) == [m.unique_id for m in metadata]
  assert info.num_features == len(metadata) > info.num_examples  # 13 wordpieces per sentence: several windows
  # The features follow the original's seeded shuffle of the examples.
  examples, _ = squad.read_squad_examples(squad_file, is_training=True, version_2_with_negative=False)
  shuffled = squad.shuffle_examples(examples)
  assert [e.qas_id for e in shuffled] != [e.qas_id for e in examples]
  assert _questions(metadata) == [e.question_text for e in shuffled]

  unshuffled = _build(squad_file, vocab_file, str(tmp_path / "plain.tf_record"), is_training=True, shuffle=False,
                      write_metadata=True)
  assert unshuffled.shuffle_seed is None and unshuffled.num_features == info.num_features
  plain = feature_files.read_feature_metadata(str(tmp_path / "plain.tf_record.metadata.jsonl"))
  assert _questions(plain) == [e.question_text for e in examples]


def test_prediction_files_keep_file_order(tmp_path, squad_file, vocab_file):
  output = str(tmp_path / "dev.tf_record")
  info = _build(squad_file, vocab_file, output, is_training=False, metadata_file=str(tmp_path / "meta.jsonl"),
                info_file=str(tmp_path / "info.json"))
  assert (info.num_examples, info.skipped_answers, info.shuffle_seed) == (10, 0, None)
  metadata = feature_files.read_feature_metadata(str(tmp_path / "meta.jsonl"))
  assert [m.example_index for m in metadata] == sorted(m.example_index for m in metadata)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.tf_record", "info.json", "meta.jsonl", "train.json",
                                                      "vocab.txt"]


def test_failure_midway_leaves_no_output(tmp_path, squad_file, vocab_file, monkeypatch):
  out_dir = tmp_path / "out"
  calls = []

  def fail_on_third_example(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:
      raise RuntimeError("disk on fire")
    return real_plan(*args, **kwargs)

  real_plan = windows.plan_example_windows
  monkeypatch.setattr(windows, "plan_example_windows", fail_on_third_example)
  with pytest.raises(RuntimeError):
    _build(squad_file, vocab_file, str(out_dir / "x.tf_record"), is_training=False, num_workers=1)
  assert list(out_dir.iterdir()) == []

  monkeypatch.setattr(windows, "plan_example_windows", real_plan)
  monkeypatch.setattr(feature_files, "write_features_info", lambda *a: (_ for _ in ()).throw(OSError("full")))
  with pytest.raises(OSError):
    _build(squad_file, vocab_file, str(out_dir / "x.tf_record"), is_training=False)
  assert list(out_dir.iterdir()) == []


def test_failure_while_workers_run_leaves_no_output_and_no_worker(tmp_path, many_questions_file, vocab_file,
                                                                 monkeypatch):
  started = []
  real_popen = subprocess.Popen
  monkeypatch.setattr(feature_workers.subprocess, "Popen",
                      lambda *a, **k: started.append(real_popen(*a, **k)) or started[-1])
  calls = []
  real_finish = records.finish_example

  def fail_on_200th_record(*args):
    calls.append(1)
    if len(calls) == 200:
      raise OSError("disk full")
    return real_finish(*args)

  monkeypatch.setattr(records, "finish_example", fail_on_200th_record)
  out_dir = tmp_path / "out"
  with pytest.raises(OSError, match="disk full"):
    _build(many_questions_file, vocab_file, str(out_dir / "x.tf_record"), is_training=False, num_workers=3)
  assert list(out_dir.iterdir()) == []
  assert len(started) == 2 and all(p.poll() is not None for p in started)


def test_zero_workers_is_an_input_error(tmp_path, squad_file, vocab_file):
  with pytest.raises(InputError, match=r"--num_preprocess_workers=0: must be at least 1"):
    _build(squad_file, vocab_file, str(tmp_path / "out" / "x.tf_record"), num_workers=0)
  assert not (tmp_path / "out").exists()


@pytest.fixture
def many_questions_file(tmp_path):
  """300 questions about 60 paragraphs: several chunks, so several workers get work."""
  paragraphs = []
  for p in range(60):
    context = " ".join(VOCAB[4 + (p + i) % (len(VOCAB) - 4)] for i in range(5 + p % 40))
    qas = []
    for q in range(5):
      word = context.split()[q % 3]
      qas.append({"id": f"{p}-{q}", "question": " ".join(VOCAB[4 + (p * q + i) % 10] for i in range(1 + q * 4)),
                  "is_impossible": q == 4, "answers": [] if q == 4 else [
                      {"text": word, "answer_start": context.index(word)}]})
    paragraphs.append({"context": context, "qas": qas})
  path = tmp_path / "many.json"
  path.write_text(json.dumps({"data": [{"title": "many", "paragraphs": paragraphs}]}), encoding="utf-8")
  return str(path)


@pytest.mark.parametrize("is_training", [False, True])
def test_any_number_of_workers_writes_the_same_bytes(tmp_path, many_questions_file, vocab_file, is_training):
  outputs = {}
  for num_workers in (1, 2, 3):
    output = tmp_path / f"w{num_workers}" / "f.tf_record"
    info = _build(many_questions_file, vocab_file, str(output), is_training=is_training, write_metadata=True,
                  version_2_with_negative=True, num_workers=num_workers)
    outputs[num_workers] = [output.read_bytes(), pathlib.Path(f"{output}.metadata.jsonl").read_bytes()]
  assert info.num_examples == 300 and info.num_features > 400
  assert outputs[1] == outputs[2] == outputs[3]
  # The sequential InputFeatures path of the same (shuffled) examples writes the same bytes.
  examples, _ = squad.read_squad_examples(many_questions_file, is_training, version_2_with_negative=True)
  if is_training:
    examples = squad.shuffle_examples(examples)
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  sequential = tmp_path / "sequential.tf_record"
  feature_files.write_feature_files(features.iter_features(examples, tokenizer, 40, 8, 16, is_training), str(sequential),
                               f"{sequential}.metadata.jsonl", is_training)
  assert [sequential.read_bytes(), pathlib.Path(f"{sequential}.metadata.jsonl").read_bytes()] == outputs[1]


# TensorFlow's C++ logger writes e.g. "2026-11-21 04:38:01.469583: E external/
# .../cuda_platform.cc:51] failed call to cuInit" on machines without a GPU,
# whatever the entry point does; those lines are not ours to count.
TF_NATIVE_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] ")


def _run_cli(*args):
  env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
  return subprocess.run([sys.executable, "-m", "bert_squad.preprocess", *args], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def test_cli_writes_the_three_files(tmp_path, squad_file, vocab_file):
  output = tmp_path / "o" / "train.tf_record"
  result = _run_cli(f"--input_file={squad_file}", f"--output_file={output}", f"--vocab_file={vocab_file}",
                    "--do_lower_case", "--max_seq_length=40", "--doc_stride=8", "--max_query_length=16",
                    "--is_training=true", "--version_2_with_negative=false", "--num_preprocess_workers=2")
  assert result.returncode == 0, result.stderr
  # Training features need no postprocessing metadata unless asked for.
  assert sorted(p.name for p in output.parent.iterdir()) == ["train.tf_record", "train.tf_record.info.json"]
  assert "9 examples -> " in result.stderr and "1 answers not found" in result.stderr
  assert "1 questions with several answers" in result.stderr
  info = feature_files.read_features_info(str(output) + ".info.json")
  assert info.is_training and info.shuffle_seed == 12345 and info.max_seq_length == 40
  assert len(_record_unique_ids(str(output))) == info.num_features


def test_cli_prediction_with_the_originals_short_windows(tmp_path, squad_file, vocab_file):
  # max_seq_length 128 with the default max_query_length 64: 61 document tokens for the longest question.
  output = tmp_path / "o" / "dev.tf_record"
  result = _run_cli(f"--input_file={squad_file}", f"--output_file={output}", f"--vocab_file={vocab_file}",
                    "--max_seq_length=128", "--doc_stride=64", "--num_preprocess_workers=2")
  assert result.returncode == 0, result.stderr
  info = feature_files.read_features_info(str(output) + ".info.json")
  assert (info.max_seq_length, info.doc_stride, info.max_query_length) == (128, 64, 64)
  assert f": {info.num_examples} examples -> {info.num_features} features in " in result.stderr
  progress_line = f"features: {info.num_examples}/{info.num_examples} examples 100% ["
  assert progress_line in result.stderr and "\r" not in result.stderr  # stderr is not a terminal here
  # Answers are not read in prediction mode: no training counts.
  assert "answers not found" not in result.stderr and "several answers" not in result.stderr


@pytest.mark.parametrize("case", ["bad_json", "bad_stride", "missing_vocab_flag"])
def test_cli_bad_input_one_line_exit_2_no_files(tmp_path, squad_file, vocab_file, case):
  out_dir = tmp_path / "o"
  args = [f"--input_file={squad_file}", f"--output_file={out_dir / 'x.tf_record'}", f"--vocab_file={vocab_file}",
          "--max_seq_length=40", "--doc_stride=8", "--max_query_length=16"]
  if case == "bad_json":
    pathlib.Path(squad_file).write_text('{"data": [{"title": "t"}]}', encoding="utf-8")
    expected = f"error: {squad_file}: article 0 ('t'): has no 'paragraphs'"
  elif case == "bad_stride":
    args.append("--doc_stride=0")
    expected = "error: --doc_stride=0: must be at least 1"
  else:
    args = [a for a in args if not a.startswith("--vocab_file")]
    expected = "error: --vocab_file is required"
  result = _run_cli(*args)
  assert result.returncode == 2
  lines = [line for line in result.stderr.strip().splitlines() if not TF_NATIVE_LOG_LINE.match(line)]
  assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
  assert not out_dir.exists() or list(out_dir.iterdir()) == []
