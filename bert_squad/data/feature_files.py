"""InputFeatures -> the files of a feature set: TFRecord, metadata JSON lines, info JSON; and back.

  * `<name>.tf_record`: one serialized `tf.train.Example` per feature
    (`serialize_feature`: unique_ids [1], input_ids/input_mask/segment_ids
    [max_seq_length], training also start/end_positions and is_impossible [1],
    all int64), framed by `tfrecord.entry`;
  * `<name>.tf_record.metadata.jsonl`: one JSON line per feature, what
    postprocessing needs (`METADATA_FIELDS`), read back as `InputFeatures`
    with empty model inputs;
  * `<name>.tf_record.info.json`: `FeaturesInfo` (parameters, input/vocab
    sha256, counts), and `features_cache_key` over the same.

No TensorFlow: the bytes are built by `records` and `tfrecord`.
"""
import contextlib
import dataclasses
import hashlib
import json
from typing import Iterable, Sequence

from bert_squad.common import io_utils
from bert_squad.common.errors import located
from bert_squad.data import records
from bert_squad.data import tfrecord
from bert_squad.data.features import InputFeatures

# Bump when the features, the TFRecord or the metadata change meaning or layout:
# it is part of `features_cache_key`, so stale caches are not reused.
FORMAT_VERSION = 1
# Where run_squad.py puts its cached features inside its output_dir.
RUN_FEATURES_DIR = "features"


def serialize_feature(feature: InputFeatures, is_training: bool) -> bytes:
  """A `tf.train.Example` with the original's names, all int64, serialized (`records.encode_example`)."""
  fields = {"unique_ids": [feature.unique_id], "input_ids": feature.input_ids, "input_mask": feature.input_mask,
            "segment_ids": feature.segment_ids}
  if is_training:
    fields.update(start_positions=[feature.start_position], end_positions=[feature.end_position],
                  is_impossible=[int(feature.is_impossible)])
  return records.encode_example(fields)


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
  """One metadata line -> `InputFeatures` with int map keys; `InputError` naming the line if malformed."""
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

  Numbers the windows from `records.FIRST_UNIQUE_ID` in order and streams the records
  and (unless `metadata_path` is None) the metadata lines out chunk by chunk;
  the bytes equal those `write_feature_files` writes for the same features.
  The files appear only when all windows are written; on an error none is
  left behind.
  """
  with contextlib.ExitStack() as stack:
    record_file = stack.enter_context(io_utils.atomic_open(tfrecord_path, "wb"))
    metadata_file = stack.enter_context(io_utils.atomic_open(metadata_path, "wb")) if metadata_path else None
    unique_id = records.FIRST_UNIQUE_ID
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
  return unique_id - records.FIRST_UNIQUE_ID


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
