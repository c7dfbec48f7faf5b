"""Hand-encoded records: protobuf's deterministic bytes, built without protobuf."""
import pytest
import tensorflow as tf

from bert_squad.data import feature_files
from bert_squad.data import features
from bert_squad.data import records


def _protobuf_example(fields):
  """The Example as squad_lib's FeatureWriter builds it, serialized deterministically (keys sorted)."""
  feature = {name: tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))
             for name, values in fields.items()}
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


FIELDS = [
    {"unique_ids": [1000000000], "input_ids": [101, 2054, 300, 0], "input_mask": [1, 1, 1, 0],
     "segment_ids": [0, 0, 1, 0]},
    {"unique_ids": [1000012231], "input_ids": list(range(0, 30522, 79)), "input_mask": [1] * 300 + [0] * 84,
     "segment_ids": [0] * 20 + [1] * 280 + [0] * 84, "start_positions": [300], "end_positions": [301],
     "is_impossible": [0]},
    {"values": [-1, -(2 ** 63), 2 ** 63 - 1, 0, 127, 128, 16383, 16384, 2 ** 35], "empty": [], "one": [7],
     "z": [1, 1], "a" * 200: [5]},
]


@pytest.mark.parametrize("fields", FIELDS)
def test_encode_example_is_protobufs_deterministic_serialization(fields):
  encoded = records.encode_example(fields)
  assert encoded == _protobuf_example(fields)
  parsed = tf.train.Example.FromString(encoded)
  assert {name: list(f.int64_list.value) for name, f in parsed.features.feature.items()} == fields


@pytest.mark.parametrize("is_training", [False, True])
def test_unique_id_appended_last_gives_the_whole_record(is_training):
  feature = features.InputFeatures(
      unique_id=1000000007, example_index=3, doc_span_index=1, tokens=[], token_to_orig_map={},
      token_is_max_context={}, input_ids=[101, 7, 102, 0], input_mask=[1, 1, 1, 0], segment_ids=[0, 0, 1, 0],
      start_position=2, end_position=2, is_impossible=False)
  fields = {"input_ids": feature.input_ids, "input_mask": feature.input_mask, "segment_ids": feature.segment_ids}
  if is_training:
    fields.update(start_positions=[2], end_positions=[2], is_impossible=[0])
  entries = b"".join(records.feature_entry(name, records.packed_varints(fields[name])) for name in sorted(fields))
  whole = records.finish_example(entries, feature.unique_id)
  assert whole == feature_files.serialize_feature(feature, is_training)
  assert whole == _protobuf_example({**fields, "unique_ids": [feature.unique_id]})


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2 ** 21, 1000000000, 2 ** 35, 2 ** 63 - 1, -1, -300])
def test_varint_round_trips_through_protobuf(value):
  parsed = tf.train.Example.FromString(records.encode_example({"v": [value, value]}))
  assert list(parsed.features.feature["v"].int64_list.value) == [value, value]
