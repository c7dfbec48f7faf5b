"""Seed statistics over benchmarks/finetune.py runs: F1 per mode, and whether two modes learn the same.

  python benchmarks/finetune_summary.py /tmp/bert_squad_finetune
  python benchmarks/finetune_summary.py /tmp/ft_a /tmp/ft_b --compare=sorted:masked4,bucketed:masked4

Reads each folder's results.json (finetune.py's `--output_dir`) and prints,
per mode, the seeds' F1 (mean, standard deviation, median, range) and EM.
`--compare=A:B` tests mode A against mode B:
  unpaired  Welch's t-test over all seeds of each (the modes may have run
            different seeds), with the 95 % interval of mean(A) - mean(B);
  paired    over the seeds both ran, the paired t-test and its interval.
            Seeds pair the data order and the initial head; whether they
            pair anything else depends on the modes (`sorted` and `masked4`
            make the same updates, `bucketed` makes others).
Runs made with other learning settings (`--dropout`, `--epochs`, the article
split...) measure another thing: the folders must agree on them, or this
says which setting differs and stops. A (mode, seed) run twice keeps the
later folder's run, and says so.
"""
import argparse
import json
import pathlib
import statistics
import sys

from scipy import stats

# finetune.py's settings that change what is learned or scored; the defaults fill in older results.json.
LEARNING_SETTINGS = {"train_articles": "0-37", "score_articles": "38-47", "max_train_questions": "3000",
                     "max_seq_length": "384", "batch": "16", "epochs": "1.0", "learning_rate": "0.0002",
                     "dropout": "None", "deterministic": "False"}


class SettingsMismatch(ValueError):
  """Two results.json files were run with different learning settings."""


def learning_settings(results: dict) -> dict[str, str]:
  """The LEARNING_SETTINGS of one results.json, as strings."""
  settings = results.get("settings", {})
  return {key: str(settings.get(key, default)) for key, default in LEARNING_SETTINGS.items()}


def load_runs(folders: list[pathlib.Path]) -> tuple[dict[str, dict[int, dict]], dict[str, str], list[str]]:
  """{mode: {seed: run}} over the folders' results.json, their common settings, and notes on repeats.

  Raises:
    FileNotFoundError: a folder has no results.json.
    SettingsMismatch: two folders differ in a learning setting.
  """
  runs: dict[str, dict[int, dict]] = {}
  common: dict[str, str] | None = None
  notes = []
  for folder in folders:
    path = folder / "results.json"
    if not path.exists():
      raise FileNotFoundError(f"{path}: not found (is {folder} a finetune.py --output_dir?)")
    results = json.loads(path.read_text(encoding="utf-8"))
    settings = learning_settings(results)
    if common is None:
      common, first = settings, path
    differing = [f"{key} {common[key]} in {first}, {value} in {path}"
                 for key, value in settings.items() if value != common[key]]
    if differing:
      raise SettingsMismatch("runs with other learning settings: " + "; ".join(differing))
    for run in results["runs"]:
      if run["seed"] in runs.setdefault(run["mode"], {}):
        notes.append(f"{run['mode']} seed {run['seed']}: the run in {path} replaces an earlier one")
      runs[run["mode"]][run["seed"]] = run
  return runs, common or {}, notes


def describe(values: list[float]) -> dict[str, float]:
  """n, mean, sd (n - 1), median, min and max of `values`."""
  return {"n": len(values), "mean": statistics.mean(values),
          "sd": statistics.stdev(values) if len(values) > 1 else float("nan"),
          "median": statistics.median(values), "min": min(values), "max": max(values)}


def compare(a: dict[int, float], b: dict[int, float]) -> dict[str, dict[str, float]]:
  """Mode A's F1 by seed against mode B's: Welch's test on all seeds, the paired test on shared ones.

  Each test gives mean difference (A - B), t, p (two-sided) and the 95 % interval of the difference;
  a test is left out when a side has fewer than 2 seeds.
  """
  result = {}
  if len(a) > 1 and len(b) > 1:
    welch = stats.ttest_ind(list(a.values()), list(b.values()), equal_var=False)
    result["unpaired"] = _test_numbers(statistics.mean(a.values()) - statistics.mean(b.values()), welch)
    result["unpaired"].update(n_a=len(a), n_b=len(b))
  shared = sorted(set(a) & set(b))
  if len(shared) > 1:
    paired = stats.ttest_rel([a[s] for s in shared], [b[s] for s in shared])
    result["paired"] = _test_numbers(statistics.mean(a[s] - b[s] for s in shared), paired)
    result["paired"]["seeds"] = len(shared)
  return result


def _test_numbers(difference: float, test) -> dict[str, float]:
  interval = test.confidence_interval(0.95)
  return {"difference": difference, "t": float(test.statistic), "p": float(test.pvalue),
          "low": float(interval.low), "high": float(interval.high)}


def print_summary(runs: dict[str, dict[int, dict]], comparisons: list[tuple[str, str]]) -> None:
  print(f"{'mode':<9} {'seeds':<18} {'F1 mean':>7} {'sd':>5} {'median':>6} {'min':>6} {'max':>6} {'EM mean':>7}")
  for mode, by_seed in runs.items():
    f1 = describe([run["f1"] for run in by_seed.values()])
    em = statistics.mean(run["exact_match"] for run in by_seed.values())
    seeds = ",".join(map(str, sorted(by_seed)))
    print(f"{mode:<9} {seeds:<18} {f1['mean']:7.2f} {f1['sd']:5.2f} {f1['median']:6.2f} "
          f"{f1['min']:6.2f} {f1['max']:6.2f} {em:7.2f}")
  for first, second in comparisons:
    f1 = lambda mode: {seed: run["f1"] for seed, run in runs[mode].items()}  # noqa: E731
    for kind, test in compare(f1(first), f1(second)).items():
      print(f"{first} - {second}, {kind}: {test['difference']:+.2f} F1, t {test['t']:.2f}, "
            f"p {test['p']:.2f}, 95 % interval {test['low']:+.2f} to {test['high']:+.2f}")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("folders", nargs="+", type=pathlib.Path, help="finetune.py --output_dir folders")
  parser.add_argument("--compare", default="", help="comma-separated A:B mode pairs to test")
  args = parser.parse_args()
  try:
    runs, settings, notes = load_runs(args.folders)
    comparisons = [tuple(pair.split(":")) for pair in args.compare.split(",") if pair]
    for pair in comparisons:
      missing = [mode for mode in pair if mode not in runs]
      if len(pair) != 2 or missing:
        raise ValueError(f"--compare={':'.join(pair)}: want two modes of {', '.join(runs)}")
  except (OSError, ValueError) as error:
    print(f"finetune_summary.py: {error}", file=sys.stderr)
    return 2
  for note in notes:
    print(f"note: {note}")
  print("settings: " + ", ".join(f"{key}={value}" for key, value in settings.items()))
  print_summary(runs, comparisons)
  return 0


if __name__ == "__main__":
  sys.exit(main())
