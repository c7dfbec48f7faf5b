"""Feature fields (name -> int list) -> serialized `tf.train.Example` bytes; windows -> record + metadata-line bytes.

Without TensorFlow or protobuf.

A record is a serialized `tf.train.Example` whose features are all
`Int64List`s. It is encoded here by hand, for two reasons:

  * protobuf's upb backend (TF 2.20) orders the map `Features.feature` by a
    hash seeded per process, so `SerializeToString()` gives other bytes on
    every run. Here the keys are sorted, as in protobuf's deterministic
    serialization: the same bytes on every run and for any number of workers
    (tested against `SerializeToString(deterministic=True)`).
  * The preprocessing workers do not load TensorFlow (seconds, hundreds of MB
    per process), and `WindowEncoder` builds each window's bytes from slices
    of per-paragraph precomputed pieces, several times faster than filling a
    proto and `json.dumps`.

Wire format (field numbers 1 unless noted): Example{features: Features{
repeated entry{key: string, value (2): Feature{int64_list (3): Int64List{
packed varint values}}}}}.

The file framing around each record is `tfrecord.entry`.
"""
from json import encoder as json_encoder
from typing import Mapping, Sequence

from bert_squad.data import windows

# The model's input fields of a record, each [max_seq_length] ints (the original's names).
INPUT_KEYS = ("input_ids", "input_mask", "segment_ids")
# The training labels of a record, one int each.
TRAINING_LABEL_KEYS = ("start_positions", "end_positions", "is_impossible")
# `unique_id` of the first feature, as in the original.
FIRST_UNIQUE_ID = 1000000000
# Sorts after every other feature name of a record, so the writer appends it
# to a window encoded without it (`finish_example`).
UNIQUE_IDS = "unique_ids"
# `json.dumps(text, ensure_ascii=False)` for a str is exactly this function.
_json_string = json_encoder.encode_basestring


def varint(value: int) -> bytes:
  """Protobuf base-128 varint of an int64 (negative values as 10-byte two's complement)."""
  if 0 <= value < 0x80:
    return bytes((value,))
  value &= (1 << 64) - 1
  out = bytearray()
  while value > 0x7F:
    out.append(value & 0x7F | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


class _VarintTable(dict):
  """value -> `varint(value)`, filled on first use (token ids, positions, lengths)."""

  def __missing__(self, value: int) -> bytes:
    encoded = self[value] = varint(value)
    return encoded


_VARINTS = _VarintTable()
_varint_of = _VARINTS.__getitem__


def packed_varints(values: Sequence[int]) -> bytes:
  """The payload of a packed repeated int64 field."""
  if len(values) == 1:
    return varint(values[0])  # unique ids: not worth remembering
  return b"".join(map(_varint_of, values))


class _EntryKeys(dict):
  """name -> its map entry's key field and the tag of the value field that follows."""

  def __missing__(self, name: str) -> bytes:
    key = name.encode("utf-8")
    encoded = self[name] = b"\x0a" + varint(len(key)) + key + b"\x12"
    return encoded


_ENTRY_KEYS = _EntryKeys()


def feature_entry(name: str, payload: bytes) -> bytes:
  """One `Features.feature` map entry (with its tag): name -> Int64List with this packed payload."""
  int64_list = b"\x0a" + _varint_of(len(payload)) + payload if payload else b""
  value = b"\x1a" + _varint_of(len(int64_list)) + int64_list
  entry = _ENTRY_KEYS[name] + _varint_of(len(value)) + value
  return b"\x0a" + _varint_of(len(entry)) + entry


def encode_example(fields: Mapping[str, Sequence[int]]) -> bytes:
  """A serialized `tf.train.Example` of int64 lists, keys in sorted order."""
  content = b"".join(feature_entry(name, packed_varints(fields[name])) for name in sorted(fields))
  return b"\x0a" + _varint_of(len(content)) + content


def finish_example(entries: bytes, unique_id: int) -> bytes:
  """The record of a window encoded without its unique id (`WindowEncoder`), which is appended here."""
  content = entries + feature_entry(UNIQUE_IDS, varint(unique_id))
  return b"\x0a" + _varint_of(len(content)) + content


def metadata_head(unique_id: int) -> bytes:
  """The start of a metadata line; the window's metadata tail follows it."""
  return b'{"unique_id":%d' % unique_id


class EncodedDoc:
  """The doc part of a context's windows, each piece encoded once.

  Questions about one paragraph mostly share their windows (a context that
  fits into one window gives the same window for every question), so each
  span's ids and tokens are joined once, and its token_to_orig_map once per
  query length.
  """

  def __init__(self, doc: windows.TokenizedDoc):
    self._doc = doc
    self._id_varints: list[bytes] | None = None
    self._token_json: list[str] | None = None
    self._orig_index_text: list[str] | None = None
    self._ids: dict[tuple[int, int], bytes] = {}
    self._tokens: dict[tuple[int, int], str] = {}
    self._orig_maps: dict[tuple[int, int, int], str] = {}

  def ids(self, begin: int, end: int) -> bytes:
    """The packed varints of the wordpiece ids in [begin, end)."""
    joined = self._ids.get((begin, end))
    if joined is None:
      if self._id_varints is None:
        self._id_varints = list(map(_varint_of, self._doc.token_ids))
      joined = self._ids[begin, end] = b"".join(self._id_varints[begin:end])
    return joined

  def tokens(self, begin: int, end: int) -> str:
    """The wordpieces in [begin, end) as comma-separated JSON strings."""
    joined = self._tokens.get((begin, end))
    if joined is None:
      if self._token_json is None:
        self._token_json = list(map(_json_string, self._doc.tokens))
      joined = self._tokens[begin, end] = ",".join(self._token_json[begin:end])
    return joined

  def orig_map(self, positions: "_PositionMap", begin: int, end: int) -> str:
    """JSON object body {window position: whitespace-word index} of the wordpieces in [begin, end)."""
    body = self._orig_maps.get((positions.first, begin, end))
    if body is None:
      if self._orig_index_text is None:
        self._orig_index_text = list(map(str, self._doc.tok_to_orig_index))
      body = positions.template(end - begin) % tuple(self._orig_index_text[begin:end])
      self._orig_maps[positions.first, begin, end] = body
    return body


class _PositionMap:
  """The JSON object body of a map from window positions `first`, `first + 1`, ... to values.

  Built once per first position (= doc_offset) up to max_seq_length:
  `template(n)` is '"first":%s,...' with n pairs, `all_true(n)` the same
  with every value true.
  """

  def __init__(self, first: int, max_seq_length: int):
    self.first = first
    pairs = ['"%d":%%s' % position for position in range(first, max_seq_length)]
    self._ends = [0]  # where the first n pairs end
    for index, pair in enumerate(pairs):
      self._ends.append(self._ends[-1] + (1 if index else 0) + len(pair))  # a comma before all but the first
    self._template = ",".join(pairs)
    self._all_true = self._template.replace("%s", "true")

  def template(self, num_pairs: int) -> str:
    return self._template[:self._ends[num_pairs]]

  def all_true(self, num_pairs: int) -> str:
    return self._all_true[:self._ends[num_pairs] + 2 * num_pairs]  # "true" is 2 longer than "%s"


class WindowEncoder:
  """Encodes planned windows (`windows.ExampleWindows`) straight to record and metadata bytes.

  For each window it gives `entries`, the record without its unique id
  (`finish_example(entries, unique_id)` equals `feature_files.serialize_feature`
  of the `InputFeatures` that `features.iter_features` builds for it), and,
  with metadata, a tail (`metadata_head(unique_id) + tail` equals
  `feature_files.feature_metadata_line` in UTF-8). Tested on every window of the
  dev sets.
  """

  def __init__(self, cls_id: int, sep_id: int, max_seq_length: int, is_training: bool, with_metadata: bool):
    self._cls = varint(cls_id)
    self._sep = varint(sep_id)
    self._max_seq_length = max_seq_length
    self._is_training = is_training
    self._with_metadata = with_metadata
    self._zeros = bytes(max_seq_length)  # varint(0) is b"\x00"
    self._ones = b"\x01" * max_seq_length
    self._position_maps: dict[int, _PositionMap] = {}

  def encode_windows(self, plan: windows.ExampleWindows, doc: EncodedDoc, example_index: int,
                     is_impossible: bool | None) -> list[tuple[bytes, bytes | None]]:
    """(entries, metadata tail or None) of each window of one example, in window order.

    `doc` is `EncodedDoc(plan.doc)`, shared by the examples of one paragraph.
    """
    query_ids = self._cls + b"".join(map(_varint_of, plan.query_ids)) + self._sep
    doc_offset = plan.doc_offset
    encoded = []
    for doc_span_index, span in enumerate(plan.doc_spans):
      begin, end = span.start, span.start + span.length
      num_padding = self._max_seq_length - doc_offset - span.length - 1
      input_ids = feature_entry("input_ids", query_ids + doc.ids(begin, end) + self._sep + self._zeros[:num_padding])
      input_mask = feature_entry("input_mask", self._ones[:doc_offset + span.length + 1] + self._zeros[:num_padding])
      segment_ids = feature_entry(
          "segment_ids", self._zeros[:doc_offset] + self._ones[:span.length + 1] + self._zeros[:num_padding])
      if self._is_training:
        start_position, end_position = windows.window_answer_positions(plan.answer_span, span, doc_offset)
        # In sorted name order, as `encode_example`.
        entries = b"".join((feature_entry("end_positions", varint(end_position)), input_ids, input_mask,
                            feature_entry("is_impossible", varint(int(is_impossible))), segment_ids,
                            feature_entry("start_positions", varint(start_position))))
      else:
        entries = input_ids + input_mask + segment_ids
      tail = self._metadata_tail(plan, doc, example_index, doc_span_index) if self._with_metadata else None
      encoded.append((entries, tail))
    return encoded

  def _metadata_tail(self, plan: windows.ExampleWindows, doc: EncodedDoc, example_index: int,
                     doc_span_index: int) -> bytes:
    span = plan.doc_spans[doc_span_index]
    begin, end = span.start, span.start + span.length
    positions = self._position_maps.get(plan.doc_offset)
    if positions is None:
      positions = self._position_maps[plan.doc_offset] = _PositionMap(plan.doc_offset, self._max_seq_length)
    if len(plan.doc_spans) == 1:
      is_max_context = positions.all_true(span.length)
    else:
      is_max_context = positions.template(span.length) % tuple(
          "true" if best == doc_span_index else "false" for best in plan.max_context_span[begin:end])
    query = "".join(map(_JSON_COMMA.__getitem__, plan.query_tokens))
    return ((',"example_index":%d,"doc_span_index":%d,"tokens":["[CLS]",%s"[SEP]",%s,"[SEP]"],'
             '"token_to_orig_map":{%s},"token_is_max_context":{%s}}\n') % (
                 example_index, doc_span_index, query, doc.tokens(begin, end), doc.orig_map(positions, begin, end),
                 is_max_context)).encode("utf-8")


class _JsonComma(dict):
  """token -> the token as a JSON string followed by a comma."""

  def __missing__(self, token: str) -> str:
    encoded = self[token] = _json_string(token) + ","
    return encoded


_JSON_COMMA = _JsonComma()
