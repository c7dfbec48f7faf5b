"""The `python -m bert_squad.postprocess` command: re-writes the prediction files from saved logits.

Other `n_best_size`, `max_answer_length` or null threshold, without running
the model; `--run_dir` finds everything in the output folder of a
`run_squad.py --do_predict` run (`rewrite.find_run_inputs`). The work is done
by `bert_squad.answers.rewrite.rewrite_predictions`.
"""
import dataclasses
from typing import Sequence

from absl import flags
from absl import logging

from bert_squad.answers import rewrite
from bert_squad.common import cli
from bert_squad.common.errors import InputError


def _define_flags() -> None:
  """The entry point's flags (defined only when run as a program, so that
  importing this module defines none)."""
  flags.DEFINE_string("run_dir", None,
                      "The output_dir of a run_squad.py --do_predict run: supplies --predict_file, "
                      "--feature_metadata_file, --logits_file, --do_lower_case, "
                      "--version_2_with_negative and --output_dir (the files are rewritten in place) "
                      "unless they are given.")
  flags.DEFINE_string("predict_file", None,
                      "SQuAD JSON the prediction features were built from.")
  flags.DEFINE_string("feature_metadata_file", None,
                      "Metadata (JSON lines) of those features.")
  flags.DEFINE_string("logits_file", None,
                      "Raw logits saved by do_predict (.npz).")
  flags.DEFINE_string("output_dir", None,
                      "Where predictions.json, nbest_predictions.json and "
                      "null_odds.json are written.")
  flags.DEFINE_bool("do_lower_case", True,
                    "Whether the model's vocabulary is uncased.")
  flags.DEFINE_bool("version_2_with_negative", False,
                    "SQuAD 2.0: questions may have no answer.")
  flags.DEFINE_integer("n_best_size", 20,
                       "n-best predictions per question.")
  flags.DEFINE_integer("max_answer_length", 30,
                       "Longest answer, in WordPieces.")
  flags.DEFINE_float("null_score_diff_threshold", 0.0,
                     "Predict no answer if score_null - best_non_null is "
                     "above this.")
  flags.DEFINE_bool("verbose_logging", False,
                    "Log where answers cannot be aligned to the text.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise InputError(f"unexpected arguments: {' '.join(argv[1:])}")
  flag_values = flags.FLAGS
  settings = {name: flag_values[name].value for name in (
      "predict_file", "feature_metadata_file", "logits_file", "output_dir", "do_lower_case",
      "version_2_with_negative")}
  if flag_values.run_dir:
    found = dataclasses.asdict(rewrite.find_run_inputs(flag_values.run_dir))
    found["output_dir"] = flag_values.run_dir
    settings.update((name, value) for name, value in found.items() if not flag_values[name].present)
  for name in ("predict_file", "feature_metadata_file", "logits_file", "output_dir"):
    if not settings[name]:
      raise InputError(f"--{name} is required (or --run_dir)")
  files = rewrite.rewrite_predictions(
      settings["predict_file"], settings["feature_metadata_file"],
      settings["logits_file"], settings["output_dir"],
      do_lower_case=settings["do_lower_case"],
      version_2_with_negative=settings["version_2_with_negative"],
      n_best_size=flag_values.n_best_size,
      max_answer_length=flag_values.max_answer_length,
      null_score_diff_threshold=flag_values.null_score_diff_threshold,
      verbose_logging=flag_values.verbose_logging)
  logging.info("wrote %s", ", ".join(files.written(settings["version_2_with_negative"])))


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
