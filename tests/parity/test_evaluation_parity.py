"""The official evaluators' numbers on the real dev sets, to the last digit.

`../shared/data/squad/samples/expected-scores.json` holds what
evaluate-v1.1.py / evaluate-v2.0.py print for three leaderboard prediction
files; the library and the CLI must print exactly that (==, key order too).
The na-prob / best-threshold / PR numbers, which that file lacks, are checked
against tf-models-official's port of evaluate-v2.0.py.
"""
import collections
import json
import pathlib
import subprocess
import sys
import zlib

import pytest

from bert_squad.answers import evaluation
from bert_squad.answers import metrics

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLES = ["v1.1-bert-ensemble.predictions.json",
           "v1.1-logistic-regression.predictions.json",
           "v2.0-bert-single.predictions.json"]
V2_SAMPLE = SAMPLES[2]


@pytest.fixture(scope="module")
def squad_dir(shared_data):
  return shared_data / "squad"


@pytest.fixture(scope="module")
def expected(squad_dir):
  return json.loads((squad_dir / "samples" / "expected-scores.json").read_text(),
                    object_pairs_hook=collections.OrderedDict)


@pytest.fixture(scope="module")
def datasets(squad_dir):
  """Each dev set parsed once per module: file name -> Dataset."""
  return {name: metrics.load_dataset(str(squad_dir / name))
          for name in ("dev-v1.1.json", "dev-v2.0.rebuilt.json")}


def synthetic_na_probs(predictions):
  """Deterministic no-answer probabilities with many ties: high for "", low otherwise."""
  na_probs = {}
  for qid, answer in predictions.items():
    spread = zlib.crc32(qid.encode()) / 2**32
    na_probs[qid] = round(0.5 + 0.5 * spread if answer == "" else 0.6 * spread, 3)
  return na_probs


def run_cli(*args):
  return subprocess.run([sys.executable, str(REPO_ROOT / "evaluate_v2.py"), *map(str, args)],
                        capture_output=True, text=True, check=False)


@pytest.mark.parametrize("sample", SAMPLES)
def test_library_gives_the_official_scores(sample, expected, datasets, squad_dir):
  case = expected[sample]
  predictions = metrics.load_predictions(str(squad_dir / "samples" / sample))
  dataset = datasets[case["dataset"]]
  if case["official_evaluator"] == "evaluate-v1.1.py":
    result = metrics.evaluate_v1(dataset, predictions)
  else:
    result = evaluation.evaluate_v2(dataset, predictions)
  assert list(result.items()) == list(case["scores"].items())


@pytest.mark.parametrize("sample", SAMPLES)
def test_cli_prints_the_official_scores(sample, expected, squad_dir):
  case = expected[sample]
  version = ["--squad-version", "1.1"] if case["official_evaluator"] == "evaluate-v1.1.py" else []
  done = run_cli(*version, squad_dir / case["dataset"], squad_dir / "samples" / sample)
  assert done.returncode == 0, done.stderr
  printed = json.loads(done.stdout, object_pairs_hook=collections.OrderedDict)
  assert list(printed.items()) == list(case["scores"].items())
  indent = None if version else 2
  assert done.stdout == json.dumps(case["scores"], indent=indent) + "\n"


def test_cli_out_file_holds_the_official_scores(expected, squad_dir, tmp_path):
  out_file = tmp_path / "eval.json"
  done = run_cli(squad_dir / "dev-v2.0.rebuilt.json", squad_dir / "samples" / V2_SAMPLE,
                 "--out-file", out_file)
  assert done.returncode == 0 and done.stdout == ""
  assert out_file.read_text() == json.dumps(expected[V2_SAMPLE]["scores"])


def test_na_prob_file_best_thresholds_and_images(expected, squad_dir, tmp_path):
  predictions = json.loads((squad_dir / "samples" / V2_SAMPLE).read_text())
  na_file = tmp_path / "na_prob.json"
  na_file.write_text(json.dumps(synthetic_na_probs(predictions)))
  image_dir = tmp_path / "images"
  done = run_cli(squad_dir / "dev-v2.0.rebuilt.json", squad_dir / "samples" / V2_SAMPLE,
                 "-n", na_file, "-p", image_dir)
  assert done.returncode == 0, done.stderr
  printed = json.loads(done.stdout, object_pairs_hook=collections.OrderedDict)
  # All na_probs are <= 1.0 (the default threshold): the main scores stay official.
  assert list(printed.items())[:9] == list(expected[V2_SAMPLE]["scores"].items())
  assert list(printed)[9:] == ["best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh",
                               "pr_exact_ap", "pr_f1_ap", "pr_oracle_ap"]
  assert sorted(p.name for p in image_dir.iterdir()) == [
      "na_prob_hist_hasAns.png", "na_prob_hist_noAns.png",
      "pr_exact.png", "pr_f1.png", "pr_oracle.png"]
  assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 10_000
             for p in image_dir.iterdir())
  reference = pytest.importorskip("official.nlp.tools.squad_evaluate_v2_0")
  data = json.loads((squad_dir / "dev-v2.0.rebuilt.json").read_text())["data"]
  want = reference.evaluate(data, predictions, json.loads(na_file.read_text()))
  for key in ("exact", "f1", "exact_thresh", "f1_thresh"):
    assert printed[f"best_{key}"] == want[f"final_{key}"]
  for key in ("pr_exact_ap", "pr_f1_ap", "pr_oracle_ap"):
    assert printed[key] == want[key]


def test_missing_predictions_are_left_out_as_tf_models_official_does(datasets, squad_dir):
  predictions = json.loads((squad_dir / "samples" / V2_SAMPLE).read_text())
  kept = {qid: answer for i, (qid, answer) in enumerate(predictions.items()) if i % 3}
  na_probs = synthetic_na_probs(kept)
  result = evaluation.evaluate_v2(datasets["dev-v2.0.rebuilt.json"], kept, na_probs)
  reference = pytest.importorskip("official.nlp.tools.squad_evaluate_v2_0")
  data = json.loads((squad_dir / "dev-v2.0.rebuilt.json").read_text())["data"]
  want = reference.evaluate(data, kept, na_probs)
  assert result["total"] == len(kept) < len(predictions)
  assert [v for k, v in result.items()] == [v for k, v in want.items() if "pr_" not in k]
