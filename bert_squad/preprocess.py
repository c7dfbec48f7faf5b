"""SQuAD JSON -> TFRecord of features + per-feature metadata + info JSON.

  python -m bert_squad.preprocess --input_file=dev-v2.0.json \
      --output_file=out/dev.tf_record --vocab_file=vocab.txt --do_lower_case \
      --max_seq_length=384 --doc_stride=128 --max_query_length=64 \
      --is_training=false --version_2_with_negative=true

writes `out/dev.tf_record`, `out/dev.tf_record.metadata.jsonl` (what
postprocessing needs per feature; prediction mode only unless
--write_metadata) and `out/dev.tf_record.info.json` (the parameters,
input/vocab sha256 and counts). Bad input: one line on stderr,
exit code 2, no output files.

The CLI only: flags and `main`; the work is `data.build.build_feature_files`
(run_squad.py calls it too). The flags are defined only when this module runs
as a script.
"""
import time
from typing import Sequence

import bert_squad  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from absl import flags
from absl import logging

from bert_squad.common import cli
from bert_squad.common.errors import InputError
from bert_squad.data import build


def define_flags() -> None:
  """The original run_squad.py flag names, for this entry point only."""
  flags.DEFINE_string("input_file", None, "SQuAD JSON to convert (local or gs://).")
  flags.DEFINE_string("output_file", None, "TFRecord to write; metadata and info go beside it.")
  flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary of the BERT model.")
  flags.DEFINE_bool("do_lower_case", True, "Lower-case and strip accents (uncased models); checked against "
                    "the vocabulary.")
  flags.DEFINE_integer("max_seq_length", 384, "Tokens per window, [CLS] query [SEP] doc [SEP] and padding.")
  flags.DEFINE_integer("doc_stride", 128, "Step between the starts of a document's windows (not the overlap).")
  flags.DEFINE_integer("max_query_length", 64, "Question tokens kept; longer questions are cut.")
  flags.DEFINE_bool("is_training", False, "Write training features (answer positions, first answer only).")
  flags.DEFINE_bool("version_2_with_negative", False, "SQuAD 2.0: questions may be impossible.")
  flags.DEFINE_bool("shuffle", True, "Training: pre-shuffle examples with the original's seed 12345.")
  flags.DEFINE_bool("write_metadata", None, "Write the per-feature metadata (default: prediction mode only).")
  flags.DEFINE_string("metadata_file", None, "Default: <output_file>.metadata.jsonl.")
  flags.DEFINE_string("info_file", None, "Default: <output_file>.info.json.")
  flags.DEFINE_integer("num_preprocess_workers", None,
                       "Processes that tokenize and encode, this one included (default: one per usable CPU "
                       "core); 1: all in this process. The output is the same for any number.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise InputError(f"unexpected arguments: {' '.join(argv[1:])}")
  flag_values = flags.FLAGS
  for name in ("input_file", "output_file", "vocab_file"):
    if not flag_values[name].value:
      raise InputError(f"--{name} is required")
  started = time.monotonic()
  info = build.build_feature_files(
      input_file=flag_values.input_file, output_file=flag_values.output_file,
      vocab_file=flag_values.vocab_file, do_lower_case=flag_values.do_lower_case,
      max_seq_length=flag_values.max_seq_length, doc_stride=flag_values.doc_stride,
      max_query_length=flag_values.max_query_length, is_training=flag_values.is_training,
      version_2_with_negative=flag_values.version_2_with_negative, shuffle=flag_values.shuffle,
      write_metadata=flag_values.write_metadata, metadata_file=flag_values.metadata_file,
      info_file=flag_values.info_file, show_progress=True,
      num_workers=flag_values.num_preprocess_workers)
  summary = (f"{info.input_file}: {info.num_examples} examples -> {info.num_features} features in "
             f"{time.monotonic() - started:.1f} s")
  if info.is_training:  # prediction reads no answers: those counts are always 0
    summary += (f"; {info.skipped_answers} answers not found (skipped), "
                f"{info.multi_answer_questions} questions with several answers (first used)")
  logging.info("%s", summary)


if __name__ == "__main__":
  define_flags()
  cli.run(main)
