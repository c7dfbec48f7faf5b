"""Times scoring the SQuAD v2.0 dev set (11873 questions) with an na-prob file.

  python benchmarks/evaluate.py [--shared ../shared] [--repeats 5]

Prints seconds for (1) the library: read the three files + `evaluate_v2`,
in-process, and (2) the whole `evaluate_v2.py` command, Python start-up
included. The na-prob file is built from the BERT sample predictions
(high for "", low otherwise, with ties), so the best-threshold search runs.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # the checkout
from benchmarks import _setup  # noqa: E402  (before TensorFlow: sets its environment)

from bert_squad.answers import evaluation  # noqa: E402  # pylint: disable=g-import-not-at-top
from bert_squad.answers import metrics  # noqa: E402  # pylint: disable=g-import-not-at-top


def write_na_probs(predictions_path: pathlib.Path, out_path: pathlib.Path) -> None:
  predictions = json.loads(predictions_path.read_text())
  na_probs = {qid: round((0.5 + 0.5 * zlib.crc32(qid.encode()) / 2**32) if answer == ""
                         else 0.6 * zlib.crc32(qid.encode()) / 2**32, 3)
              for qid, answer in predictions.items()}
  out_path.write_text(json.dumps(na_probs))


def time_library(data: str, predictions: str, na_probs: str) -> float:
  start = time.perf_counter()
  evaluation.evaluate_v2(metrics.load_dataset(data), metrics.load_predictions(predictions),
                         metrics.load_na_probs(na_probs))
  return time.perf_counter() - start


def time_cli(data: str, predictions: str, na_probs: str) -> float:
  start = time.perf_counter()
  subprocess.run([sys.executable, str(_setup.REPO_ROOT / "evaluate_v2.py"), data, predictions,
                  "-n", na_probs], check=True, stdout=subprocess.DEVNULL)
  return time.perf_counter() - start


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shared", default=str(_setup.SHARED_DATA.parent),
                      help="the shared reference data folder (holds data/squad; default: ../shared beside "
                           "the checkout, or $BERT_SQUAD_SHARED)")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  squad = pathlib.Path(args.shared) / "data" / "squad"
  data = str(squad / "dev-v2.0.rebuilt.json")
  predictions = squad / "samples" / "v2.0-bert-single.predictions.json"
  with tempfile.TemporaryDirectory() as tmp:
    na_probs = os.path.join(tmp, "na_prob.json")
    write_na_probs(predictions, pathlib.Path(na_probs))
    for name, timer in (("library (read + evaluate_v2)", time_library),
                        ("evaluate_v2.py command", time_cli)):
      seconds = [timer(data, str(predictions), na_probs) for _ in range(args.repeats)]
      print(f"{name}: median {statistics.median(seconds):.3f} s, "
            f"min {min(seconds):.3f} s over {args.repeats} runs")


if __name__ == "__main__":
  main()
