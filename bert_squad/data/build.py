"""SQuAD JSON file -> its feature files (TFRecord + metadata JSON lines + info JSON), with worker processes.

`build_feature_files(input_file, output_file, vocab_file, ...) -> FeaturesInfo`
is the library function behind `python -m bert_squad.preprocess` and
run_squad.py: read and validate the examples (`squad`), tokenize, window and
encode them in this process and `feature_workers` processes, and stream the
records and metadata lines to disk (`feature_files`). No TensorFlow.
"""
import sys
from typing import Callable, Iterable, Iterator

from bert_squad.common import gc_utils
from bert_squad.common import io_utils
from bert_squad.common import progress
from bert_squad.common.errors import InputError
from bert_squad.data import feature_files
from bert_squad.data import feature_workers
from bert_squad.data import features
from bert_squad.data import squad
from bert_squad.data import tokenization
from bert_squad.data import windows

# `encode(chunks) -> encoded chunks in order`, from `feature_workers.chunk_encoding`.
EncodeChunks = Callable[[Iterable[feature_workers.ExampleChunk]], Iterator[feature_workers.EncodedChunk]]


def build_feature_files(input_file: str, output_file: str, vocab_file: str, do_lower_case: bool = True,
                        max_seq_length: int = 384, doc_stride: int = 128, max_query_length: int = 64,
                        is_training: bool = False, version_2_with_negative: bool = False, shuffle: bool = True,
                        write_metadata: bool | None = None, metadata_file: str | None = None,
                        info_file: str | None = None, show_progress: bool = False,
                        num_workers: int | None = None) -> feature_files.FeaturesInfo:
  """Reads a SQuAD file and writes its features as TFRecord + metadata + info.

  The files are byte-identical for any `num_workers`, and to
  `feature_files.write_feature_files(features.iter_features(...))` of the same
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
  windows.validate_window_params(max_seq_length, doc_stride, max_query_length)
  num_workers = _worker_count(num_workers)
  if write_metadata is None:
    write_metadata = not is_training
  settings = _encoding_settings(vocab_file, do_lower_case, max_seq_length, doc_stride, max_query_length,
                                is_training, write_metadata)
  # The workers start now and get ready while this process reads the file.
  with gc_utils.cyclic_gc_paused(), feature_workers.chunk_encoding(settings, num_workers) as encode:
    examples, stats, shuffle_seed = _read_examples(input_file, is_training, version_2_with_negative, shuffle)
    metadata_file = (metadata_file or feature_files.feature_metadata_path(output_file)) if write_metadata else None
    info_file = info_file or feature_files.features_info_path(output_file)
    info = _features_info(input_file, vocab_file, settings, version_2_with_negative, shuffle_seed,
                          len(examples), stats)
    outputs = [path for path in (output_file, metadata_file) if path]
    _make_output_dirs(output_file, metadata_file, info_file)
    info.num_features = _write_windows(encode, examples, settings, output_file, metadata_file, show_progress)
  _write_info_or_remove_outputs(info_file, info, outputs)
  return info


def _worker_count(num_workers: int | None) -> int:
  """`num_workers`, by default one per usable CPU core; `InputError` below 1."""
  if num_workers is None:
    num_workers = feature_workers.usable_cpus()
  if num_workers < 1:
    raise InputError(f"--num_preprocess_workers={num_workers}: must be at least 1")
  return num_workers


def _read_examples(input_file: str, is_training: bool, version_2_with_negative: bool,
                   shuffle: bool) -> tuple[list[squad.SquadExample], squad.ReadStats, int | None]:
  """The file's examples (pre-shuffled in training if `shuffle`), their counts and the seed used (or None)."""
  examples, stats = squad.read_squad_examples(input_file, is_training, version_2_with_negative)
  shuffle_seed = squad.TRAIN_SHUFFLE_SEED if is_training and shuffle else None
  if shuffle_seed is not None:
    examples = squad.shuffle_examples(examples, shuffle_seed)
  return examples, stats, shuffle_seed


def _write_info_or_remove_outputs(info_file: str, info: feature_files.FeaturesInfo, outputs: list[str]) -> None:
  """Writes the info file last; if that fails, removes the TFRecord and metadata written before it."""
  try:
    feature_files.write_features_info(info_file, info)
  except BaseException:
    for path in outputs:
      io_utils.remove_if_exists(path)
    raise


def _encoding_settings(vocab_file: str, do_lower_case: bool, max_seq_length: int, doc_stride: int,
                       max_query_length: int, is_training: bool,
                       with_metadata: bool) -> feature_workers.EncodingSettings:
  """Loads and checks the vocabulary (`InputError` if bad or of the other casing); the encoders' settings."""
  vocab = tokenization.load_vocab(vocab_file)
  tokenization.check_do_lower_case(do_lower_case, vocab_file, vocab)
  return feature_workers.EncodingSettings(
      vocab_tokens=list(vocab), do_lower_case=do_lower_case, max_seq_length=max_seq_length, doc_stride=doc_stride,
      max_query_length=max_query_length, is_training=is_training, with_metadata=with_metadata)


def _features_info(input_file: str, vocab_file: str, settings: feature_workers.EncodingSettings,
                   version_2_with_negative: bool, shuffle_seed: int | None, num_examples: int,
                   stats: squad.ReadStats) -> feature_files.FeaturesInfo:
  """The info of the feature set about to be written (sha256 of the input and the vocab); num_features 0."""
  return feature_files.FeaturesInfo(
      input_file=input_file, input_sha256=io_utils.file_sha256(input_file),
      vocab_file=vocab_file, vocab_sha256=io_utils.file_sha256(vocab_file),
      do_lower_case=settings.do_lower_case, max_seq_length=settings.max_seq_length,
      doc_stride=settings.doc_stride, max_query_length=settings.max_query_length,
      is_training=settings.is_training, version_2_with_negative=version_2_with_negative,
      shuffle_seed=shuffle_seed, num_examples=num_examples, num_features=0,
      skipped_answers=stats.skipped_answers, multi_answer_questions=stats.multi_answer_questions)


def _make_output_dirs(output_file: str, metadata_file: str | None, info_file: str) -> None:
  """Creates the folders of the three outputs; `InputError` naming the flag if one cannot be made."""
  for flag, path in (("--output_file", output_file), ("--metadata_file", metadata_file),
                     ("--info_file", info_file)):
    parent = (path or "").rpartition("/")[0]
    if parent:
      io_utils.make_output_dir(parent, flag, path)


def _write_windows(encode: EncodeChunks, examples: list[squad.SquadExample],
                   settings: feature_workers.EncodingSettings, output_file: str, metadata_file: str | None,
                   show_progress: bool) -> int:
  """Encodes the examples (consuming the list), writes the TFRecord (+ metadata); returns the feature count.

  Warns for the first `features.MAX_CUT_QUESTION_WARNINGS` questions cut to
  max_query_length, then gives their total.
  """
  max_query_length = settings.max_query_length
  qas_ids = [example.qas_id for example in examples]  # example_chunks frees the examples as it goes
  encoded_chunks = encode(feature_workers.example_chunks(examples, settings.is_training))
  if show_progress:
    encoded_chunks = progress.iterate(encoded_chunks, len(examples), "features", "examples",
                                      sys.stderr, count=lambda chunk: chunk.num_examples)
  cut_questions = 0

  def windows_of(chunks: Iterable[feature_workers.EncodedChunk]) -> Iterator[list[tuple[bytes, bytes | None]]]:
    nonlocal cut_questions
    for chunk in chunks:
      for example_index, num_tokens in chunk.cut_questions:
        cut_questions += 1
        if cut_questions <= features.MAX_CUT_QUESTION_WARNINGS:
          features.warn_cut_question(qas_ids[example_index], num_tokens, max_query_length)
      yield chunk.windows

  num_features = feature_files.write_encoded_feature_files(windows_of(encoded_chunks), output_file, metadata_file)
  features.warn_cut_questions(cut_questions, max_query_length)
  return num_features
