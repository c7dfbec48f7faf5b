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

`build_feature_files` is the library function behind the CLI (run_squad.py
calls it too); the flags are defined only when this module runs as a script.
"""
import sys
import time
from typing import Iterable, Sequence

import bert_squad  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from absl import flags
from absl import logging

from bert_squad.common import cli
from bert_squad.common import gc_utils
from bert_squad.common import io_utils
from bert_squad.common import progress
from bert_squad.common.errors import InputError
from bert_squad.data import feature_workers
from bert_squad.data import features
from bert_squad.data import squad
from bert_squad.data import tokenization


def build_feature_files(input_file: str, output_file: str, vocab_file: str, do_lower_case: bool = True,
                        max_seq_length: int = 384, doc_stride: int = 128, max_query_length: int = 64,
                        is_training: bool = False, version_2_with_negative: bool = False, shuffle: bool = True,
                        write_metadata: bool | None = None, metadata_file: str | None = None,
                        info_file: str | None = None, show_progress: bool = False,
                        num_workers: int | None = None) -> features.FeaturesInfo:
  """Reads a SQuAD file and writes its features as TFRecord + metadata + info.

  The files are byte-identical for any `num_workers`, and to
  `features.write_feature_files(features.iter_features(...))` of the same
  examples.

  Args:
    input_file: SQuAD v1.1 / v2.0 JSON (local or gs://).
    output_file: the TFRecord to write.
    vocab_file, do_lower_case: the WordPiece vocabulary and casing.
    max_seq_length, doc_stride, max_query_length: window geometry
      (doc_stride is the step between windows).
    is_training: training features (labels; first answer per question).
    version_2_with_negative: read `is_impossible` (SQuAD 2.0).
    shuffle: in training, pre-shuffle the examples with the original's seed
      (`squad.TRAIN_SHUFFLE_SEED`); ignored in prediction mode.
    write_metadata: write the per-feature metadata that postprocessing needs;
      default: in prediction mode only (for the SQuAD train set it would be
      ~400 MB nobody reads).
    metadata_file, info_file: default `<output_file>.metadata.jsonl` and
      `<output_file>.info.json`.
    show_progress: show the examples done, rate and ETA on stderr (`progress`).
    num_workers: processes that tokenize and encode, this one included
      (`feature_workers`); default: one per CPU core this process may use; 1
      does everything in this process. The output is the same for any number.

  Returns:
    The `FeaturesInfo` written to `info_file`.

  Raises:
    InputError: bad parameters, vocab or SQuAD file, a `do_lower_case` that
      contradicts the vocab; nothing is written then.
  """
  features.validate_window_params(max_seq_length, doc_stride, max_query_length)
  if num_workers is None:
    num_workers = feature_workers.usable_cpus()
  if num_workers < 1:
    raise InputError(f"--num_preprocess_workers={num_workers}: must be at least 1")
  vocab = tokenization.load_vocab(vocab_file)
  tokenization.check_do_lower_case(do_lower_case, vocab_file, vocab)
  if write_metadata is None:
    write_metadata = not is_training
  settings = feature_workers.EncodingSettings(
      vocab_tokens=list(vocab), do_lower_case=do_lower_case, max_seq_length=max_seq_length, doc_stride=doc_stride,
      max_query_length=max_query_length, is_training=is_training, with_metadata=write_metadata)
  # The workers start now and get ready while this process reads the file.
  with gc_utils.cyclic_gc_paused(), feature_workers.chunk_encoding(settings, num_workers) as encode:
    examples, stats = squad.read_squad_examples(input_file, is_training, version_2_with_negative)
    shuffle_seed = squad.TRAIN_SHUFFLE_SEED if is_training and shuffle else None
    if shuffle_seed is not None:
      examples = squad.shuffle_examples(examples, shuffle_seed)
    metadata_file = (metadata_file or features.feature_metadata_path(output_file)) if write_metadata else None
    info_file = info_file or features.features_info_path(output_file)
    info = features.FeaturesInfo(
        input_file=input_file, input_sha256=io_utils.file_sha256(input_file),
        vocab_file=vocab_file, vocab_sha256=io_utils.file_sha256(vocab_file),
        do_lower_case=do_lower_case, max_seq_length=max_seq_length, doc_stride=doc_stride,
        max_query_length=max_query_length, is_training=is_training,
        version_2_with_negative=version_2_with_negative, shuffle_seed=shuffle_seed,
        num_examples=len(examples), num_features=0, skipped_answers=stats.skipped_answers,
        multi_answer_questions=stats.multi_answer_questions)

    outputs = [path for path in (output_file, metadata_file) if path]
    for flag, path in (("--output_file", output_file), ("--metadata_file", metadata_file),
                       ("--info_file", info_file)):
      parent = (path or "").rpartition("/")[0]
      if parent:
        io_utils.make_output_dir(parent, flag, path)
    qas_ids = [example.qas_id for example in examples]  # example_chunks frees the examples as it goes
    encoded_chunks = encode(feature_workers.example_chunks(examples, is_training))
    if show_progress:
      encoded_chunks = progress.iterate(encoded_chunks, len(examples), "features", "examples",
                                        sys.stderr, count=lambda chunk: chunk.num_examples)
    cut_questions = 0

    def windows_of(chunks: Iterable[feature_workers.EncodedChunk]):
      nonlocal cut_questions
      for chunk in chunks:
        for example_index, num_tokens in chunk.cut_questions:
          cut_questions += 1
          if cut_questions <= features.MAX_CUT_QUESTION_WARNINGS:
            features.warn_cut_question(qas_ids[example_index], num_tokens, max_query_length)
        yield chunk.windows

    info.num_features = features.write_encoded_feature_files(windows_of(encoded_chunks), output_file,
                                                             metadata_file)
    features.warn_cut_questions(cut_questions, max_query_length)
  try:
    features.write_features_info(info_file, info)
  except BaseException:
    for path in outputs:
      io_utils.remove_if_exists(path)
    raise
  return info


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
  info = build_feature_files(
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
