"""Doc-stride windows over examples -> model features; TFRecord and metadata I/O.

The windowing is the original `convert_examples_to_features` (google-research/bert
run_squad.py), unchanged in meaning:

  * each window is `[CLS] query [SEP] doc [SEP]`, padded to `max_seq_length`;
    the query is cut to `max_query_length` wordpieces;
  * windows start every `doc_stride` document tokens: the stride is the *step*
    between window starts, not the overlap (HF's `doc_stride` is the overlap);
  * `_improve_answer_span` and `_check_is_max_context` are the original rules;
  * training: a window that does not hold the whole answer, and every window of
    an impossible question, gets start = end = 0; `is_impossible` is the
    EXAMPLE's flag, as in the original (tf-models-official's squad_lib sets it
    per window to "window lacks the answer", a known divergence).

What is new is speed, not meaning: a paragraph's context is tokenized once and
shared by all its questions (`SquadExample.paragraph_index`), each distinct
word is tokenized once, and windows are built from slices of precomputed ids.
"""
import collections
import contextlib
import dataclasses
import hashlib
import json
from typing import Any, Iterable, Iterator, Sequence

from absl import logging
import tensorflow as tf

from bert_squad import io_utils
from bert_squad.errors import InputError, located
from bert_squad.squad import SquadExample

# `unique_id` of the first feature, as in the original.
FIRST_UNIQUE_ID = 1000000000
# Bump when the features, the TFRecord or the metadata change meaning or layout:
# it is part of `features_cache_key`, so stale caches are not reused.
FORMAT_VERSION = 1

DocSpan = collections.namedtuple("DocSpan", ["start", "length"])


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


@dataclasses.dataclass
class _TokenizedDoc:
  """A context after WordPiece, shared by the questions of one paragraph.

  Attributes:
    tokens: all wordpieces of the context (the original's `all_doc_tokens`).
    token_ids: their vocabulary ids.
    tok_to_orig_index: wordpiece position -> index into `doc_tokens`.
    orig_to_tok_index: `doc_tokens` index -> its first wordpiece position.
  """
  tokens: list[str]
  token_ids: list[int]
  tok_to_orig_index: list[int]
  orig_to_tok_index: list[int]


def validate_window_params(max_seq_length: int, doc_stride: int, max_query_length: int) -> None:
  """Raises `InputError`, naming the flag, for settings that cannot make sensible windows."""
  if max_query_length < 1:
    raise InputError(f"--max_query_length={max_query_length}: must be at least 1")
  if doc_stride < 1:
    raise InputError(f"--doc_stride={doc_stride}: must be at least 1")
  max_tokens_for_doc = max_seq_length - max_query_length - 3
  if max_tokens_for_doc < 2:
    raise InputError(
        f"--max_seq_length={max_seq_length}: leaves only {max_tokens_for_doc} document token(s) per window; it "
        f"must be at least max_query_length + 5 = {max_query_length + 5} ([CLS] query [SEP] doc [SEP])")
  if doc_stride >= max_tokens_for_doc:
    raise InputError(
        f"--doc_stride={doc_stride}: must be smaller than max_seq_length - max_query_length - 3 = "
        f"{max_tokens_for_doc} (the document tokens of a window with the longest query); doc_stride is the step "
        f"between window starts, not the overlap")


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
  docs_by_paragraph: dict[int, _TokenizedDoc] = {}
  word_pieces: dict[str, list[str]] = {}
  unique_id = FIRST_UNIQUE_ID
  cut_questions = 0
  for example_index, example in enumerate(examples):
    query_tokens = tokenizer.tokenize(example.question_text)
    if len(query_tokens) > max_query_length:
      cut_questions += 1
      _warn_cut_question(example.qas_id, len(query_tokens), max_query_length)
      query_tokens = query_tokens[:max_query_length]
    query_ids = tokenizer.convert_tokens_to_ids(query_tokens)
    doc = _shared_tokenized_doc(example, tokenizer, docs_by_paragraph, word_pieces)
    answer_span = _answer_token_span(example, doc, tokenizer) if is_training else None
    # The -3 accounts for [CLS] and the two [SEP].
    doc_spans = _doc_spans(len(doc.tokens), max_seq_length - len(query_tokens) - 3, doc_stride)
    # `_check_is_max_context` for every window at once: each token's best
    # window, looked up once (a lone window is every token's best).
    max_context_span = ([0] * len(doc.tokens) if len(doc_spans) == 1 else
                        [_max_context_span_index(doc_spans, p) for p in range(len(doc.tokens))])
    for doc_span_index, doc_span in enumerate(doc_spans):
      feature = InputFeatures(
          unique_id=unique_id,
          example_index=example_index,
          doc_span_index=doc_span_index,
          **_window_inputs(query_tokens, query_ids, doc, doc_span, doc_span_index, max_context_span,
                           max_seq_length, cls_id, sep_id))
      if is_training:
        feature.start_position, feature.end_position = _window_answer_positions(
            answer_span, doc_span, doc_offset=len(query_tokens) + 2)
        feature.is_impossible = example.is_impossible
      yield feature
      unique_id += 1
  if cut_questions:
    logging.warning("%d question(s) longer than max_query_length=%d wordpieces were cut to that length",
                    cut_questions, max_query_length)


def _warn_cut_question(qas_id: str, num_tokens: int, max_query_length: int) -> None:
  """The original silently keeps the first max_query_length wordpieces; this says so (5 times at most)."""
  logging.log_first_n(logging.WARNING, "question %r has %d wordpieces; only the first max_query_length=%d "
                      "are used", 5, qas_id, num_tokens, max_query_length)


def convert_examples_to_features(examples: Sequence[SquadExample], tokenizer: Any, max_seq_length: int = 384,
                                 doc_stride: int = 128, max_query_length: int = 64,
                                 is_training: bool = False) -> list[InputFeatures]:
  """`iter_features` collected into a list (the original's result)."""
  return list(iter_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length, is_training))


def _shared_tokenized_doc(example: SquadExample, tokenizer: Any, docs_by_paragraph: dict[int, _TokenizedDoc],
                          word_pieces: dict[str, list[str]]) -> _TokenizedDoc:
  """The example's tokenized context, computed once per paragraph."""
  if example.paragraph_index < 0:
    return _tokenize_doc(example.doc_tokens, tokenizer, word_pieces)
  doc = docs_by_paragraph.get(example.paragraph_index)
  if doc is None:
    doc = _tokenize_doc(example.doc_tokens, tokenizer, word_pieces)
    docs_by_paragraph[example.paragraph_index] = doc
  return doc


def _tokenize_doc(doc_tokens: list[str], tokenizer: Any, word_pieces: dict[str, list[str]]) -> _TokenizedDoc:
  """WordPiece-splits each whitespace word of a context, with both index maps."""
  tokens = []
  tok_to_orig_index = []
  orig_to_tok_index = []
  for orig_index, word in enumerate(doc_tokens):
    orig_to_tok_index.append(len(tokens))
    pieces = word_pieces.get(word)
    if pieces is None:
      pieces = tokenizer.tokenize(word)
      word_pieces[word] = pieces
    tokens.extend(pieces)
    tok_to_orig_index.extend([orig_index] * len(pieces))
  return _TokenizedDoc(tokens=tokens, token_ids=tokenizer.convert_tokens_to_ids(tokens),
                       tok_to_orig_index=tok_to_orig_index, orig_to_tok_index=orig_to_tok_index)


def _answer_token_span(example: SquadExample, doc: _TokenizedDoc, tokenizer: Any) -> tuple[int, int]:
  """The answer's first and last wordpiece positions in the context; (-1, -1) if impossible."""
  if example.is_impossible:
    return -1, -1
  tok_start_position = doc.orig_to_tok_index[example.start_position]
  if example.end_position < len(example.doc_tokens) - 1:
    tok_end_position = doc.orig_to_tok_index[example.end_position + 1] - 1
  else:
    tok_end_position = len(doc.tokens) - 1
  return _improve_answer_span(doc.tokens, tok_start_position, tok_end_position, tokenizer,
                              example.orig_answer_text)


def _improve_answer_span(doc_tokens: list[str], input_start: int, input_end: int, tokenizer: Any,
                         orig_answer_text: str) -> tuple[int, int]:
  """Narrows a word-aligned answer span to the wordpieces that spell the answer.

  SQuAD answers are character spans; projected onto whitespace words they can
  include extra characters ("(1895-1943)." for the answer "1895"). The first
  (leftmost start, then longest) sub-span whose wordpieces equal the answer's
  wordpieces wins; if none does, the word-aligned span is kept.
  """
  tok_answer_text = " ".join(tokenizer.tokenize(orig_answer_text))
  for new_start in range(input_start, input_end + 1):
    for new_end in range(input_end, new_start - 1, -1):
      if " ".join(doc_tokens[new_start:new_end + 1]) == tok_answer_text:
        return new_start, new_end
  return input_start, input_end


def _doc_spans(num_doc_tokens: int, max_tokens_for_doc: int, doc_stride: int) -> list[DocSpan]:
  """Windows of up to `max_tokens_for_doc` tokens starting every `doc_stride` tokens.

  The last window ends at the last token; e.g. 10 tokens, 4 per window,
  stride 3 -> (0, 4), (3, 4), (6, 4).
  """
  doc_spans = []
  start = 0
  while start < num_doc_tokens:
    length = min(num_doc_tokens - start, max_tokens_for_doc)
    doc_spans.append(DocSpan(start=start, length=length))
    if start + length == num_doc_tokens:
      break
    start += min(length, doc_stride)
  return doc_spans


def _max_context_span_index(doc_spans: Sequence[DocSpan], position: int) -> int | None:
  """The window in which the token at `position` has the most context.

  A token's context in a window is min(left, right) neighbours within that
  window, plus 0.01 * window length to break ties towards longer windows; the
  first window with the best score wins.
  """
  best_score = None
  best_span_index = None
  for span_index, doc_span in enumerate(doc_spans):
    end = doc_span.start + doc_span.length - 1
    if position < doc_span.start or position > end:
      continue
    score = min(position - doc_span.start, end - position) + 0.01 * doc_span.length
    if best_score is None or score > best_score:
      best_score = score
      best_span_index = span_index
  return best_span_index


def _check_is_max_context(doc_spans: Sequence[DocSpan], cur_span_index: int, position: int) -> bool:
  """Whether window `cur_span_index` gives the token at `position` its most context."""
  return cur_span_index == _max_context_span_index(doc_spans, position)


def _window_inputs(query_tokens: list[str], query_ids: list[int], doc: _TokenizedDoc, doc_span: DocSpan,
                   doc_span_index: int, max_context_span: list[int | None], max_seq_length: int, cls_id: int,
                   sep_id: int) -> dict[str, Any]:
  """Tokens, maps and padded model inputs of `[CLS] query [SEP] doc-window [SEP]`.

  `max_context_span[p]` is the window where doc token p has the most context.
  """
  doc_begin, doc_end = doc_span.start, doc_span.start + doc_span.length
  doc_offset = len(query_tokens) + 2
  positions = range(doc_offset, doc_offset + doc_span.length)
  tokens = ["[CLS]", *query_tokens, "[SEP]", *doc.tokens[doc_begin:doc_end], "[SEP]"]
  input_ids = [cls_id, *query_ids, sep_id, *doc.token_ids[doc_begin:doc_end], sep_id]
  num_padding = max_seq_length - len(input_ids)
  is_max_context = [best == doc_span_index for best in max_context_span[doc_begin:doc_end]]
  return dict(
      tokens=tokens,
      token_to_orig_map=dict(zip(positions, doc.tok_to_orig_index[doc_begin:doc_end])),
      token_is_max_context=dict(zip(positions, is_max_context)),
      input_ids=input_ids + [0] * num_padding,
      input_mask=[1] * len(input_ids) + [0] * num_padding,
      segment_ids=[0] * doc_offset + [1] * (doc_span.length + 1) + [0] * num_padding)


def _window_answer_positions(answer_span: tuple[int, int], doc_span: DocSpan, doc_offset: int) -> tuple[int, int]:
  """Training labels of one window: the answer's token positions, or (0, 0) at [CLS].

  (0, 0) when the example is impossible or the window does not hold the
  whole answer.
  """
  tok_start_position, tok_end_position = answer_span
  if tok_start_position < 0:
    return 0, 0
  doc_end = doc_span.start + doc_span.length - 1
  if tok_start_position < doc_span.start or tok_end_position > doc_end:
    return 0, 0
  return tok_start_position - doc_span.start + doc_offset, tok_end_position - doc_span.start + doc_offset


# --- TFRecord -----------------------------------------------------------------


def serialize_feature(feature: InputFeatures, is_training: bool) -> bytes:
  """A `tf.train.Example` with the original's names, all int64, serialized."""
  # Filling the repeated fields in place is ~30% faster than building
  # Feature/Int64List objects from lists, with the same parsed content.
  example = tf.train.Example()
  fields = example.features.feature
  fields["unique_ids"].int64_list.value.append(feature.unique_id)
  fields["input_ids"].int64_list.value.extend(feature.input_ids)
  fields["input_mask"].int64_list.value.extend(feature.input_mask)
  fields["segment_ids"].int64_list.value.extend(feature.segment_ids)
  if is_training:
    fields["start_positions"].int64_list.value.append(feature.start_position)
    fields["end_positions"].int64_list.value.append(feature.end_position)
    fields["is_impossible"].int64_list.value.append(int(feature.is_impossible))
  return example.SerializeToString()


def name_to_features(seq_length: int, is_training: bool) -> dict[str, tf.io.FixedLenFeature]:
  """The parsing spec of one record: ids/mask/segments [seq_length], the rest scalars."""
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


def decode_record(record: tf.Tensor, spec: dict[str, tf.io.FixedLenFeature]) -> dict[str, tf.Tensor]:
  """Parses one serialized record; int64 becomes int32 as in the original input_fn.

  Returns:
    name -> tensor, e.g. input_ids int32 [seq_length], unique_ids int32 [].
  """
  parsed = tf.io.parse_single_example(record, spec)
  return {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else t for name, t in parsed.items()}


def write_tfrecord(path: str, features: Iterable[InputFeatures], is_training: bool) -> int:
  """Streams features into a TFRecord file atomically; returns how many were written."""
  with io_utils.atomic_path(path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
    count = 0
    for feature in features:
      writer.write(serialize_feature(feature, is_training))
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
    with tf.io.gfile.GFile(path, "r") as f:
      for line_number, line in enumerate(f, start=1):
        features.append(_feature_from_metadata_line(line, path, line_number))
  except tf.errors.NotFoundError:
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
    record_tmp = stack.enter_context(io_utils.atomic_path(tfrecord_path))
    metadata_file = stack.enter_context(io_utils.atomic_open(metadata_path, "w")) if metadata_path else None
    with tf.io.TFRecordWriter(record_tmp) as writer:
      count = 0
      for feature in features:
        writer.write(serialize_feature(feature, is_training))
        if metadata_file:
          metadata_file.write(feature_metadata_line(feature))
        count += 1
  return count


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
    with tf.io.gfile.GFile(path, "r") as f:
      return FeaturesInfo(**json.load(f))
  except tf.errors.NotFoundError:
    raise located(path, "", "features info file not found") from None
  except (ValueError, TypeError) as e:
    raise located(path, "", f"not a features info file ({e})") from None


def file_sha256(path: str) -> str:
  """Hex sha256 of a file's bytes (local or gs://), read in 1 MiB chunks."""
  digest = hashlib.sha256()
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      while chunk := f.read(1 << 20):
        digest.update(chunk)
  except tf.errors.NotFoundError:
    raise located(path, "", "file not found") from None
  return digest.hexdigest()


def features_cache_key(input_file: str, vocab_file: str, do_lower_case: bool, max_seq_length: int,
                       doc_stride: int, max_query_length: int, is_training: bool,
                       version_2_with_negative: bool, shuffle_seed: int | None) -> str:
  """A hex key that changes with the input bytes, the vocab bytes, any parameter or `FORMAT_VERSION`.

  File names do not enter the key, only contents, so a moved file still hits.
  """
  description = json.dumps({
      "format_version": FORMAT_VERSION,
      "input_sha256": file_sha256(input_file),
      "vocab_sha256": file_sha256(vocab_file),
      "do_lower_case": do_lower_case,
      "max_seq_length": max_seq_length,
      "doc_stride": doc_stride,
      "max_query_length": max_query_length,
      "is_training": is_training,
      "version_2_with_negative": version_2_with_negative,
      "shuffle_seed": shuffle_seed,
  }, sort_keys=True)
  return hashlib.sha256(description.encode("utf-8")).hexdigest()
