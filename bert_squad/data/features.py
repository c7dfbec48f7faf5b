"""Examples -> model features (the original's `InputFeatures`); TFRecord, metadata and info files.

The windowing is the original `convert_examples_to_features` (google-research/bert
run_squad.py), unchanged in meaning; its steps live in `windows` (see there).
`is_impossible` is the EXAMPLE's flag, as in the original (tf-models-official's
squad_lib sets it per window to "window lacks the answer", a known divergence).

What is new is speed, not meaning: a paragraph's context is tokenized once and
shared by all its questions (`SquadExample.paragraph_index`), each distinct
word is tokenized once, and windows are built from slices of precomputed ids.
The TFRecord payloads are encoded by `records` (deterministic bytes); the
preprocessing workers write the same bytes without building `InputFeatures`.
"""
import contextlib
import dataclasses
import hashlib
import json
from typing import Any, Iterable, Iterator, Sequence

from absl import logging

from bert_squad.common import io_utils
from bert_squad.common.errors import located
from bert_squad.data import records
from bert_squad.data import tfrecord
from bert_squad.data import windows
from bert_squad.data.squad import SquadExample

# `unique_id` of the first feature, as in the original.
FIRST_UNIQUE_ID = records.FIRST_UNIQUE_ID
MAX_CUT_QUESTION_WARNINGS = 5  # per file; then one line with the total
# Bump when the features, the TFRecord or the metadata change meaning or layout:
# it is part of `features_cache_key`, so stale caches are not reused.
FORMAT_VERSION = 1

DocSpan = windows.DocSpan
validate_window_params = windows.validate_window_params


@dataclasses.dataclass
class InputFeatures:
  """One window of one example, as the original `InputFeatures`.

  Attributes:
    unique_id: running id from 1000000000, the key that joins logits back.
    example_index: index of the example in the list it was built from.
    doc_span_index: which window of that example this is.
    tokens: `[CLS] query [SEP] doc [SEP]` wordpieces, length <= max_seq_length.
    token_to_orig_map: token position -> index into the example's doc_tokens.
    token_is_max_context: token position -> whether this window is the one
      where that token has the most context.
    input_ids, input_mask, segment_ids: int lists of length max_seq_length.
    start_position, end_position: answer token positions (training only).
    is_impossible: training label (training only).
  """
  unique_id: int
  example_index: int
  doc_span_index: int
  tokens: list[str]
  token_to_orig_map: dict[int, int]
  token_is_max_context: dict[int, bool]
  input_ids: list[int]
  input_mask: list[int]
  segment_ids: list[int]
  start_position: int | None = None
  end_position: int | None = None
  is_impossible: bool | None = None


def iter_features(examples: Iterable[SquadExample], tokenizer: Any, max_seq_length: int = 384,
                  doc_stride: int = 128, max_query_length: int = 64,
                  is_training: bool = False) -> Iterator[InputFeatures]:
  """The windows of each example in order, lazily (the streaming form of the original).

  Args:
    examples: from `squad.read_squad_examples` (pre-shuffled for training if
      wanted: `squad.shuffle_examples`). Examples with the same
      `paragraph_index` >= 0 must have the same `doc_tokens`.
    tokenizer: a `FullTokenizer` (anything with `tokenize` and
      `convert_tokens_to_ids`).
    max_seq_length, doc_stride, max_query_length: window geometry, checked by
      `validate_window_params`.
    is_training: set start/end positions and `is_impossible`.

  Returns:
    An iterator of `InputFeatures` with unique ids from 1000000000 and
    `example_index` the position of the example in `examples`.

  Raises:
    InputError: at once (not at the first `next`) for bad window parameters.
  """
  validate_window_params(max_seq_length, doc_stride, max_query_length)
  return _generate_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length, is_training)


def _generate_features(examples: Iterable[SquadExample], tokenizer: Any, max_seq_length: int, doc_stride: int,
                       max_query_length: int, is_training: bool) -> Iterator[InputFeatures]:
  """The body of `iter_features`, after the parameters were checked."""
  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
  docs_by_paragraph: dict[int, windows.TokenizedDoc] = {}
  word_pieces: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}
  unique_id = FIRST_UNIQUE_ID
  cut_questions = 0
  for example_index, example in enumerate(examples):
    doc = _shared_tokenized_doc(example, tokenizer, docs_by_paragraph, word_pieces)
    plan = windows.plan_example_windows(example.question_text, doc, tokenizer, max_seq_length, doc_stride,
                                        max_query_length, windows.training_answer(example) if is_training else None)
    if plan.num_question_tokens > max_query_length:
      cut_questions += 1
      if cut_questions <= MAX_CUT_QUESTION_WARNINGS:
        warn_cut_question(example.qas_id, plan.num_question_tokens, max_query_length)
    for doc_span_index, doc_span in enumerate(plan.doc_spans):
      feature = InputFeatures(
          unique_id=unique_id,
          example_index=example_index,
          doc_span_index=doc_span_index,
          **_window_inputs(plan, doc_span_index, max_seq_length, cls_id, sep_id))
      if is_training:
        feature.start_position, feature.end_position = windows.window_answer_positions(
            plan.answer_span, doc_span, plan.doc_offset)
        feature.is_impossible = example.is_impossible
      yield feature
      unique_id += 1
  warn_cut_questions(cut_questions, max_query_length)


def warn_cut_question(qas_id: str, num_tokens: int, max_query_length: int) -> None:
  """The original silently keeps the first max_query_length wordpieces; this says so.

  Callers warn for the first `MAX_CUT_QUESTION_WARNINGS` questions of a file, then
  `warn_cut_questions` gives the total.
  """
  logging.warning("question %r has %d wordpieces; only the first max_query_length=%d are used",
                  qas_id, num_tokens, max_query_length)


def warn_cut_questions(count: int, max_query_length: int) -> None:
  """One summary line for the questions cut to max_query_length (none: no line)."""
  if count:
    logging.warning("%d question(s) longer than max_query_length=%d wordpieces were cut to that length",
                    count, max_query_length)


def convert_examples_to_features(examples: Sequence[SquadExample], tokenizer: Any, max_seq_length: int = 384,
                                 doc_stride: int = 128, max_query_length: int = 64,
                                 is_training: bool = False) -> list[InputFeatures]:
  """`iter_features` collected into a list (the original's result)."""
  return list(iter_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length, is_training))


def _shared_tokenized_doc(example: SquadExample, tokenizer: Any,
                          docs_by_paragraph: dict[int, windows.TokenizedDoc],
                          word_pieces: dict[str, tuple[tuple[str, ...], tuple[int, ...]]]) -> windows.TokenizedDoc:
  """The example's tokenized context, computed once per paragraph."""
  if example.paragraph_index < 0:
    return windows.tokenize_doc(example.doc_tokens, tokenizer, word_pieces)
  doc = docs_by_paragraph.get(example.paragraph_index)
  if doc is None:
    doc = windows.tokenize_doc(example.doc_tokens, tokenizer, word_pieces)
    docs_by_paragraph[example.paragraph_index] = doc
  return doc


def _window_inputs(plan: windows.ExampleWindows, doc_span_index: int, max_seq_length: int, cls_id: int,
                   sep_id: int) -> dict[str, Any]:
  """Tokens, maps and padded model inputs of `[CLS] query [SEP] doc-window [SEP]`."""
  doc, doc_span, doc_offset = plan.doc, plan.doc_spans[doc_span_index], plan.doc_offset
  doc_begin, doc_end = doc_span.start, doc_span.start + doc_span.length
  positions = range(doc_offset, doc_offset + doc_span.length)
  tokens = ["[CLS]", *plan.query_tokens, "[SEP]", *doc.tokens[doc_begin:doc_end], "[SEP]"]
  input_ids = [cls_id, *plan.query_ids, sep_id, *doc.token_ids[doc_begin:doc_end], sep_id]
  num_padding = max_seq_length - len(input_ids)
  is_max_context = [best == doc_span_index for best in plan.max_context_span[doc_begin:doc_end]]
  return dict(
      tokens=tokens,
      token_to_orig_map=dict(zip(positions, doc.tok_to_orig_index[doc_begin:doc_end])),
      token_is_max_context=dict(zip(positions, is_max_context)),
      input_ids=input_ids + [0] * num_padding,
      input_mask=[1] * len(input_ids) + [0] * num_padding,
      segment_ids=[0] * doc_offset + [1] * (doc_span.length + 1) + [0] * num_padding)


# --- TFRecord -----------------------------------------------------------------


def serialize_feature(feature: InputFeatures, is_training: bool) -> bytes:
  """A `tf.train.Example` with the original's names, all int64, serialized (`records.encode_example`)."""
  fields = {"unique_ids": [feature.unique_id], "input_ids": feature.input_ids, "input_mask": feature.input_mask,
            "segment_ids": feature.segment_ids}
  if is_training:
    fields.update(start_positions=[feature.start_position], end_positions=[feature.end_position],
                  is_impossible=[int(feature.is_impossible)])
  return records.encode_example(fields)


def name_to_features(seq_length: int, is_training: bool) -> dict[str, "tf.io.FixedLenFeature"]:
  """The parsing spec of one record: ids/mask/segments [seq_length], the rest scalars."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  # preprocessing runs without it
  spec = {
      "unique_ids": tf.io.FixedLenFeature([], tf.int64),
      "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
      "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
      "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
  }
  if is_training:
    for name in ("start_positions", "end_positions", "is_impossible"):
      spec[name] = tf.io.FixedLenFeature([], tf.int64)
  return spec


def decode_record(record: "tf.Tensor", spec: dict[str, "tf.io.FixedLenFeature"]) -> dict[str, "tf.Tensor"]:
  """Parses one serialized record; int64 becomes int32 as in the original input_fn.

  Returns:
    name -> tensor, e.g. input_ids int32 [seq_length], unique_ids int32 [].
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  parsed = tf.io.parse_single_example(record, spec)
  return {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else t for name, t in parsed.items()}


def write_tfrecord(path: str, features: Iterable[InputFeatures], is_training: bool) -> int:
  """Streams features into a TFRecord file atomically; returns how many were written."""
  with io_utils.atomic_open(path, "wb") as f:
    count = 0
    for feature in features:
      f.write(tfrecord.entry(serialize_feature(feature, is_training)))
      count += 1
  return count


# --- Metadata for postprocessing ------------------------------------------------
# One JSON object per line and per feature, in TFRecord order:
#   {"unique_id": 1000000000, "example_index": 0, "doc_span_index": 0,
#    "tokens": ["[CLS]", ...], "token_to_orig_map": {"12": 0, ...},
#    "token_is_max_context": {"12": true, ...}}
# JSON object keys are strings; `read_feature_metadata` turns them back to int.

METADATA_FIELDS = ("unique_id", "example_index", "doc_span_index", "tokens", "token_to_orig_map",
                   "token_is_max_context")


def feature_metadata_line(feature: InputFeatures) -> str:
  """One metadata line (with its newline) for `feature`."""
  return json.dumps({name: getattr(feature, name) for name in METADATA_FIELDS}, ensure_ascii=False,
                    separators=(",", ":")) + "\n"


def write_feature_metadata(path: str, features: Iterable[InputFeatures]) -> int:
  """Writes the metadata JSON lines atomically; returns how many features were written."""
  with io_utils.atomic_open(path, "w") as f:
    count = 0
    for feature in features:
      f.write(feature_metadata_line(feature))
      count += 1
  return count


def read_feature_metadata(path: str) -> list[InputFeatures]:
  """Reads metadata lines back into `InputFeatures` (int keys restored).

  The model inputs live in the TFRecord, so `input_ids`, `input_mask` and
  `segment_ids` are empty lists here.
  """
  features = []
  try:
    with io_utils.open_for_reading(path) as f:
      for line_number, line in enumerate(f, start=1):
        features.append(_feature_from_metadata_line(line, path, line_number))
  except FileNotFoundError:
    raise located(path, "", "feature metadata file not found") from None
  return features


def _feature_from_metadata_line(line: str, path: str, line_number: int) -> InputFeatures:
  try:
    record = json.loads(line)
    return InputFeatures(
        unique_id=record["unique_id"],
        example_index=record["example_index"],
        doc_span_index=record["doc_span_index"],
        tokens=record["tokens"],
        token_to_orig_map={int(k): v for k, v in record["token_to_orig_map"].items()},
        token_is_max_context={int(k): v for k, v in record["token_is_max_context"].items()},
        input_ids=[], input_mask=[], segment_ids=[])
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise located(path, f"line {line_number}", f"not a feature metadata line ({type(e).__name__}: {e})") from None


def write_feature_files(features: Iterable[InputFeatures], tfrecord_path: str, metadata_path: str | None,
                        is_training: bool) -> int:
  """Streams each feature into the TFRecord and (unless None) the metadata at once; returns the count.

  The files appear only when all features are written; on an error none is
  left behind.
  """
  with contextlib.ExitStack() as stack:
    record_file = stack.enter_context(io_utils.atomic_open(tfrecord_path, "wb"))
    metadata_file = stack.enter_context(io_utils.atomic_open(metadata_path, "w")) if metadata_path else None
    count = 0
    for feature in features:
      record_file.write(tfrecord.entry(serialize_feature(feature, is_training)))
      if metadata_file:
        metadata_file.write(feature_metadata_line(feature))
      count += 1
  return count


def write_encoded_feature_files(encoded_chunks: Iterable[Sequence[tuple[bytes, bytes | None]]], tfrecord_path: str,
                                metadata_path: str | None) -> int:
  """`write_feature_files` for windows encoded by `records.WindowEncoder`; returns the count.

  Numbers the windows from `FIRST_UNIQUE_ID` in order and streams the records
  and (unless `metadata_path` is None) the metadata lines out chunk by chunk;
  the bytes equal those `write_feature_files` writes for the same features.
  The files appear only when all windows are written; on an error none is
  left behind.
  """
  with contextlib.ExitStack() as stack:
    record_file = stack.enter_context(io_utils.atomic_open(tfrecord_path, "wb"))
    metadata_file = stack.enter_context(io_utils.atomic_open(metadata_path, "wb")) if metadata_path else None
    unique_id = FIRST_UNIQUE_ID
    for encoded_windows in encoded_chunks:
      record_entries, metadata_lines = [], []
      for entries, metadata_tail in encoded_windows:
        record_entries.append(tfrecord.entry(records.finish_example(entries, unique_id)))
        if metadata_file:
          metadata_lines += (records.metadata_head(unique_id), metadata_tail)
        unique_id += 1
      record_file.write(b"".join(record_entries))  # one large write per chunk and file
      if metadata_file:
        metadata_file.write(b"".join(metadata_lines))
  return unique_id - FIRST_UNIQUE_ID


def feature_metadata_path(tfrecord_path: str) -> str:
  """Where the metadata beside a TFRecord lives: `<tfrecord>.metadata.jsonl`."""
  return tfrecord_path + ".metadata.jsonl"


def features_info_path(tfrecord_path: str) -> str:
  """Where the info JSON beside a TFRecord lives: `<tfrecord>.info.json`."""
  return tfrecord_path + ".info.json"


# --- Parameters, provenance and counts ------------------------------------------


@dataclasses.dataclass
class FeaturesInfo:
  """What a TFRecord holds and how it was made (the `<tfrecord>.info.json` file).

  Attributes:
    format_version: `FORMAT_VERSION` of the code that wrote it.
    input_file, input_sha256: the SQuAD JSON and the sha256 of its bytes.
    vocab_file, vocab_sha256: the vocabulary and the sha256 of its bytes.
    do_lower_case, max_seq_length, doc_stride, max_query_length, is_training,
    version_2_with_negative, shuffle_seed: the parameters (shuffle_seed is None
      when the examples were not shuffled).
    num_examples, num_features: examples converted, records written.
    skipped_answers, multi_answer_questions: `squad.ReadStats` counts.
  """
  input_file: str
  input_sha256: str
  vocab_file: str
  vocab_sha256: str
  do_lower_case: bool
  max_seq_length: int
  doc_stride: int
  max_query_length: int
  is_training: bool
  version_2_with_negative: bool
  shuffle_seed: int | None
  num_examples: int
  num_features: int
  skipped_answers: int
  multi_answer_questions: int
  format_version: int = FORMAT_VERSION


def write_features_info(path: str, info: FeaturesInfo) -> None:
  """Writes `info` as an indented JSON object, atomically."""
  io_utils.write_json(path, dataclasses.asdict(info))


def read_features_info(path: str) -> FeaturesInfo:
  """Reads a `write_features_info` file; `InputError` if it is missing or malformed."""
  try:
    with io_utils.open_for_reading(path) as f:
      return FeaturesInfo(**json.load(f))
  except FileNotFoundError:
    raise located(path, "", "features info file not found") from None
  except (ValueError, TypeError) as e:
    raise located(path, "", f"not a features info file ({e})") from None


def features_cache_key(input_file: str, vocab_file: str, do_lower_case: bool, max_seq_length: int,
                       doc_stride: int, max_query_length: int, is_training: bool,
                       version_2_with_negative: bool, shuffle_seed: int | None) -> str:
  """A hex key that changes with the input bytes, the vocab bytes, any parameter or `FORMAT_VERSION`.

  File names do not enter the key, only contents, so a moved file still hits.
  """
  description = json.dumps({
      "format_version": FORMAT_VERSION,
      "input_sha256": io_utils.file_sha256(input_file),
      "vocab_sha256": io_utils.file_sha256(vocab_file),
      "do_lower_case": do_lower_case,
      "max_seq_length": max_seq_length,
      "doc_stride": doc_stride,
      "max_query_length": max_query_length,
      "is_training": is_training,
      "version_2_with_negative": version_2_with_negative,
      "shuffle_seed": shuffle_seed,
  }, sort_keys=True)
  return hashlib.sha256(description.encode("utf-8")).hexdigest()
