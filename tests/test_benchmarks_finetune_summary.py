"""benchmarks/finetune_summary.py: seed statistics over finetune.py's results.json files."""
import json
import math
import pathlib
import subprocess
import sys

import pytest

from benchmarks import finetune_summary as summary

_SCRIPT = pathlib.Path(summary.__file__)


def _write_results(folder, runs, **settings):
  folder.mkdir()
  defaults = {"modes": "x", "dropout": "None", "epochs": "1.0"}
  results = {"settings": {**defaults, **settings},
             "runs": [{"mode": mode, "seed": seed, "f1": f1, "exact_match": f1 / 2} for mode, seed, f1 in runs]}
  (folder / "results.json").write_text(json.dumps(results))
  return folder


def test_runs_of_several_folders_are_merged_by_mode_and_seed(tmp_path):
  first = _write_results(tmp_path / "a", [("sorted", 1, 12.0), ("masked4", 1, 11.0)])
  second = _write_results(tmp_path / "b", [("sorted", 2, 13.0), ("sorted", 1, 12.5)])
  runs, settings, notes = summary.load_runs([first, second])
  assert {mode: {seed: run["f1"] for seed, run in by_seed.items()} for mode, by_seed in runs.items()} == {
      "sorted": {1: 12.5, 2: 13.0}, "masked4": {1: 11.0}}
  assert notes == [f"sorted seed 1: the run in {second / 'results.json'} replaces an earlier one"]
  assert settings["dropout"] == "None" and settings["max_train_questions"] == "3000"  # default filled in


def test_folders_with_other_learning_settings_are_refused(tmp_path):
  first = _write_results(tmp_path / "a", [("sorted", 1, 12.0)])
  second = _write_results(tmp_path / "b", [("sorted", 2, 13.0)], dropout="0.0", modes="y")
  with pytest.raises(summary.SettingsMismatch, match=r"dropout None in .*a/results.json, 0.0 in .*b/results.json"):
    summary.load_runs([first, second])
  # Settings that do not change the learning (which modes ran) may differ.
  third = _write_results(tmp_path / "c", [("sorted", 3, 13.0)], modes="y")
  assert sorted(summary.load_runs([first, third])[0]["sorted"]) == [1, 3]


def test_describe():
  numbers = summary.describe([11.0, 12.0, 16.0])
  assert numbers == {"n": 3, "mean": 13.0, "sd": pytest.approx(math.sqrt(7)), "median": 12.0,
                     "min": 11.0, "max": 16.0}
  assert math.isnan(summary.describe([3.0])["sd"])


def test_compare_paired_and_unpaired():
  a = {1: 12.0, 2: 13.0, 3: 15.0, 4: 12.5}
  b = {1: 11.0, 2: 12.5, 3: 13.0, 5: 20.0}
  result = summary.compare(a, b)
  # Paired over seeds 1-3: differences 1.0, 0.5, 2.0: mean 7/6, sd 0.7638, t = mean / (sd / sqrt 3).
  paired = result["paired"]
  assert paired["seeds"] == 3 and paired["difference"] == pytest.approx(7 / 6)
  assert paired["t"] == pytest.approx((7 / 6) / (0.763763 / math.sqrt(3)), rel=1e-5)
  half = 4.302653 * 0.763763 / math.sqrt(3)  # t(0.975, 2 df)
  assert (paired["low"], paired["high"]) == pytest.approx((7 / 6 - half, 7 / 6 + half), rel=1e-5)
  # Unpaired uses every seed of both: mean 13.125 against 14.125.
  unpaired = result["unpaired"]
  assert (unpaired["n_a"], unpaired["n_b"], unpaired["difference"]) == (4, 4, pytest.approx(-1.0))
  assert unpaired["low"] < -1.0 < unpaired["high"] and 0 < unpaired["p"] < 1
  assert summary.compare({1: 1.0}, {1: 2.0}) == {}  # one seed: no test


def test_command_line_prints_the_table_and_refuses_bad_input_in_one_line(tmp_path):
  folder = _write_results(tmp_path / "a", [("sorted", 1, 12.0), ("sorted", 2, 13.0),
                                           ("masked4", 1, 11.0), ("masked4", 2, 14.0)])
  script = [sys.executable, str(_SCRIPT), str(folder)]
  done = subprocess.run([*script, "--compare=sorted:masked4"], capture_output=True, text=True, check=True)
  assert "sorted    1,2                  12.50  0.71" in done.stdout
  assert "sorted - masked4, paired: +0.00 F1" in done.stdout
  for extra, message in ((["--compare=sorted:padded"], "--compare=sorted:padded: want two modes of sorted, masked4"),
                         ([str(tmp_path / "none")], "none/results.json: not found")):
    failed = subprocess.run([*script, *extra], capture_output=True, text=True)
    assert failed.returncode == 2 and message in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr
