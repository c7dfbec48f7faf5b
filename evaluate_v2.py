"""Scores SQuAD predictions: a drop-in for the official `evaluate-v2.0.py`.

Same command line, same numbers to the last digit, same JSON (keys in the same
order) on stdout. `--squad-version 1.1` gives what `evaluate-v1.1.py` prints.
Bad input ends with one line on stderr naming the file and exit code 2.

  python evaluate_v2.py dev-v2.0.json predictions.json
  python evaluate_v2.py dev-v2.0.json predictions.json -n null_odds.json -p plots/
  python evaluate_v2.py --squad-version 1.1 dev-v1.1.json predictions.json

argparse rather than absl: the official script's flags (`-o`, `-n`, `-t`,
`-p`, `-v`, positional files) must keep working as they are.
"""
import bert_squad  # noqa: F401  # pylint: disable=unused-import  # sets TF_USE_LEGACY_KERAS=1 first

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from typing import Sequence  # noqa: E402

from bert_squad.answers import evaluation  # noqa: E402
from bert_squad.answers import metrics  # noqa: E402
from bert_squad.common import io_utils  # noqa: E402
from bert_squad.common.cli import exit_on_closed_stdout  # noqa: E402
from bert_squad.common.cli import fail  # noqa: E402
from bert_squad.common.errors import disk_full_message  # noqa: E402
from bert_squad.common.errors import InputError  # noqa: E402

_V2_ONLY_FLAGS = "--na-prob-file, --na-prob-thresh and --out-image-dir"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  """The official v2.0 flags plus `--squad-version`."""
  parser = argparse.ArgumentParser(
      description="Official-identical SQuAD evaluation (v2.0 by default, or v1.1).")
  parser.add_argument("data_file", metavar="data.json", help="The SQuAD JSON file with the gold answers.")
  parser.add_argument("pred_file", metavar="pred.json",
                      help="Model predictions: {question id: answer text}.")
  parser.add_argument("--out-file", "-o", metavar="eval.json",
                      help="Write the scores to this file (default: print them).")
  parser.add_argument("--na-prob-file", "-n", metavar="na_prob.json",
                      help="{question id: no-answer probability or null-odds score}; "
                           "adds best_exact/best_f1 and their thresholds.")
  parser.add_argument("--na-prob-thresh", "-t", type=float, default=None,
                      help="Score an answer as no answer where its na-prob is above "
                           "this (default 1.0).")
  parser.add_argument("--out-image-dir", "-p", metavar="out_images", default=None,
                      help="Save precision-recall curves and no-answer histograms "
                           "there (needs --na-prob-file).")
  parser.add_argument("--verbose", "-v", action="store_true",
                      help="List every question without a prediction, and the counts.")
  parser.add_argument("--squad-version", choices=("2.0", "1.1"), default="2.0",
                      help="Score as evaluate-v2.0.py (default) or evaluate-v1.1.py; a file whose "
                           "version is 1.1 scored as 2.0 gets a warning on stderr.")
  if not argv:
    parser.print_help()
    sys.exit(1)
  return parser.parse_args(argv)


def warn(message: str) -> None:
  sys.stderr.write(message + "\n")


def warn_missing(args: argparse.Namespace, missing: Sequence[str], consequence: str) -> None:
  """One line for all questions without a prediction, or one per question with -v."""
  if not missing:
    return
  if args.verbose:
    for qid in missing:
      warn(f"{args.pred_file}: no prediction for question '{qid}': {consequence}")
  else:
    warn(f"{args.pred_file}: no prediction for {len(missing)} question(s) of "
         f"{args.data_file}, e.g. '{missing[0]}': {consequence} (-v lists them)")


def report_counts(args: argparse.Namespace, dataset: metrics.Dataset,
                  predictions: dict[str, str]) -> None:
  """With -v: how many questions were scored and how many predictions ignored."""
  if not args.verbose:
    return
  qids = {q.qid for q in dataset.questions}
  extra = sum(1 for qid in predictions if qid not in qids)
  warn(f"{args.data_file}: {len(qids)} question ids, {len(qids & predictions.keys())} "
       f"predicted; {extra} prediction(s) for other ids ignored")


def write_result(result: dict, text_for_stdout: str, out_file: str | None) -> None:
  """Prints the JSON, or writes it compact (as the official `json.dump`) to out_file."""
  if out_file:
    with io_utils.atomic_open(out_file) as f:
      f.write(json.dumps(result))
  else:
    print(text_for_stdout)


def evaluate_squad_v1(args: argparse.Namespace) -> None:
  if args.na_prob_file or args.na_prob_thresh is not None or args.out_image_dir:
    raise InputError(f"{_V2_ONLY_FLAGS} apply to --squad-version 2.0 only")
  dataset = metrics.load_dataset(args.data_file)
  version_warning = evaluation.version_warning(dataset, "1.1")
  if version_warning:
    warn(version_warning)
  predictions = metrics.load_predictions(args.pred_file)
  # The official v1.1 script scores another dataset's predictions as 0 without a word.
  metrics.check_predictions_match(dataset, predictions, args.pred_file)
  result = metrics.evaluate_v1(dataset, predictions)
  report_counts(args, dataset, predictions)
  warn_missing(args, metrics.missing_predictions(dataset, predictions),
               "it scores 0")
  write_result(result, json.dumps(result), args.out_file)


def evaluate_squad_v2(args: argparse.Namespace) -> None:
  dataset = metrics.load_dataset(args.data_file)
  if dataset.version == "1.1":
    # A warning, not a refusal: evaluate-v2.0.py scores such a file without a word, and its command
    # lines must keep working; but whoever meant the v1.1 numbers learns why the totals differ.
    warn(f"{args.data_file}: a SQuAD v1.1 file (\"version\": \"1.1\") scored as evaluate-v2.0.py does: "
         "questions without a prediction are left out, not counted 0; for evaluate-v1.1.py's scores "
         "use --squad-version 1.1")
  predictions = metrics.load_predictions(args.pred_file)
  na_probs = metrics.load_na_probs(args.na_prob_file) if args.na_prob_file else None
  if args.out_image_dir and na_probs is None:
    warn(f"--out-image-dir {args.out_image_dir}: needs --na-prob-file, no images written")
  result = evaluation.evaluate_v2(
      dataset, predictions, na_probs,
      na_prob_thresh=1.0 if args.na_prob_thresh is None else args.na_prob_thresh,
      out_image_dir=args.out_image_dir, predictions_name=args.pred_file,
      na_probs_name=args.na_prob_file or "na_probs")
  report_counts(args, dataset, predictions)
  warn_missing(args, metrics.missing_predictions(dataset, predictions),
               "left out of every total")
  write_result(result, json.dumps(result, indent=2), args.out_file)


def main(argv: Sequence[str]) -> None:
  args = parse_args(argv)
  try:
    if args.squad_version == "1.1":
      evaluate_squad_v1(args)
    else:
      evaluate_squad_v2(args)
    sys.stdout.flush()  # here, not at exit, so that a closed pipe is seen below
  except BrokenPipeError:  # `... | head -1`: no error, see cli.BROKEN_PIPE_EXIT_CODE
    exit_on_closed_stdout()
  except InputError as e:
    fail(str(e))
  except OSError as e:  # writing -o / -p outputs (inputs are checked in evaluation)
    fail(disk_full_message(e) or f"{e.filename}: cannot write it ({e.strerror})")


if __name__ == "__main__":
  main(sys.argv[1:])
