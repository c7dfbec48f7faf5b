"""Parity with tf-models-official (the port of the original) on the real dev sets.

References are computed once per module: squad_lib on a full dev set takes
10-20 s per mode here. Prediction mode is compared feature by feature in
order. Training mode uses squad_lib on a copy of each file that keeps only
the first answer (squad_lib raises on several answers; we use the first) and
is compared in order too (a stronger check than the multiset the shuffle-off
order would need), except `is_impossible`: squad_lib sets it per window ("this
window lacks the answer"), the original per example, which is what we check.

The feature files that `build.build_feature_files` writes with worker
processes are checked byte for byte against the features compared here.

The reference tokenizer is tf-models-official's FullTokenizer with the
original's 200-character word limit (the port's default is 400; no basic token
in these files is longer than 200 characters, checked below).
"""
import functools
import json
import pathlib

from absl import logging
from official.nlp.data import squad_lib
from official.nlp.tools import tokenization as tfm_tokenization
import pytest
import tensorflow as tf

from bert_squad.data import build
from bert_squad.data import feature_files
from bert_squad.data import features
from bert_squad.data import squad
from bert_squad.data import tokenization

MAX_SEQ_LENGTH, DOC_STRIDE, MAX_QUERY_LENGTH = 384, 128, 64
WINDOW = (MAX_SEQ_LENGTH, DOC_STRIDE, MAX_QUERY_LENGTH)
# name -> (file under shared/data/squad, version_2_with_negative)
DATASETS = {
    "dev-v1.1": ("dev-v1.1.json", False),
    "dev-v2.0": ("dev-v2.0.rebuilt.json", True),
    "xquad.de": ("xquad.de.json", False),
}
FEATURE_FIELDS = ("unique_id", "example_index", "doc_span_index", "tokens", "token_to_orig_map",
                  "token_is_max_context", "input_ids", "input_mask", "segment_ids")


@pytest.fixture(scope="module")
def reference_tokenizer(uncased_vocab):
  tokenizer = tfm_tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=True)
  tokenizer.wordpiece_tokenizer.max_input_chars_per_word = tokenization.MAX_INPUT_CHARS_PER_WORD
  return tokenizer


@pytest.fixture(scope="module")
def our_tokenizer(uncased_vocab):
  return tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=True)


def _first_answer_copy(path, out_path):
  """The SQuAD file with every answer list cut to its first answer (for squad_lib training)."""
  data = json.loads(path.read_text(encoding="utf-8"))
  for article in data["data"]:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        qa["answers"] = qa["answers"][:1]
  out_path.write_text(json.dumps(data), encoding="utf-8")
  return out_path


@pytest.fixture(scope="module")
def reference(shared_data, reference_tokenizer, tmp_path_factory):
  """(name, is_training) -> (squad_lib examples, squad_lib features), computed once."""
  logging.set_verbosity(logging.WARNING)  # squad_lib logs its first 20 features at INFO
  copies = tmp_path_factory.mktemp("first_answer")

  @functools.cache
  def compute(name, is_training, window=WINDOW):
    file_name, version_2 = DATASETS[name]
    path = shared_data / "squad" / file_name
    if is_training:
      path = _first_answer_copy(path, copies / file_name)
    examples = squad_lib.read_squad_examples(str(path), is_training, version_2)
    feats = []
    squad_lib.convert_examples_to_features(
        examples, reference_tokenizer, *window, is_training,
        output_fn=feats.append if is_training else lambda f, is_padding: None if is_padding else feats.append(f),
        batch_size=None if is_training else 64)
    return examples, feats

  return compute


@pytest.fixture(scope="module")
def ours(shared_data, our_tokenizer):
  """(name, is_training) -> (our examples, stats, our features), unshuffled."""

  @functools.cache
  def compute(name, is_training, window=WINDOW):
    file_name, version_2 = DATASETS[name]
    examples, stats = squad.read_squad_examples(str(shared_data / "squad" / file_name), is_training, version_2)
    feats = features.convert_examples_to_features(examples, our_tokenizer, *window, is_training)
    return examples, stats, feats

  return compute


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_prediction_features_equal_squad_lib_in_order(reference, ours, name):
  reference_examples, reference_features = reference(name, False)
  examples, stats, feats = ours(name, False)
  assert stats.num_examples == stats.num_questions == len(reference_examples)
  for mine, theirs in zip(examples, reference_examples):
    assert (mine.qas_id, mine.question_text, mine.doc_tokens) == (theirs.qas_id, theirs.question_text,
                                                                   theirs.doc_tokens)
  assert len(feats) == len(reference_features)
  for mine, theirs in zip(feats, reference_features):
    for field in FEATURE_FIELDS:
      assert getattr(mine, field) == getattr(theirs, field), (field, mine.unique_id)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_training_features_equal_squad_lib_with_per_example_is_impossible(reference, ours, name):
  reference_examples, reference_features = reference(name, True)
  examples, stats, feats = ours(name, True)
  assert len(examples) == len(reference_examples)
  assert stats.skipped_answers == stats.num_questions - len(reference_examples)
  for mine, theirs in zip(examples, reference_examples):
    assert (mine.qas_id, mine.doc_tokens, mine.orig_answer_text, mine.start_position, mine.end_position,
            mine.is_impossible) == (theirs.qas_id, theirs.doc_tokens, theirs.orig_answer_text,
                                    theirs.start_position, theirs.end_position, theirs.is_impossible)
  assert len(feats) == len(reference_features)
  for mine, theirs in zip(feats, reference_features):
    for field in FEATURE_FIELDS + ("start_position", "end_position"):
      assert getattr(mine, field) == getattr(theirs, field), (field, mine.unique_id)
    assert mine.is_impossible == reference_examples[mine.example_index].is_impossible


@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize("is_training", [False, True])
def test_feature_files_hold_the_same_features(shared_data, uncased_vocab, reference, ours, tmp_path, name,
                                              is_training):
  """`build_feature_files` with 2 workers: byte-equal to `write_feature_files` of the features checked above,
  and its records parse back to squad_lib's model inputs."""
  file_name, version_2 = DATASETS[name]
  _, _, feats = ours(name, is_training)
  expected = tmp_path / "expected.tf_record"
  feature_files.write_feature_files(feats, str(expected), f"{expected}.metadata.jsonl", is_training)
  built = tmp_path / "built.tf_record"
  info = build.build_feature_files(
      str(shared_data / "squad" / file_name), str(built), str(uncased_vocab), do_lower_case=True,
      max_seq_length=MAX_SEQ_LENGTH, doc_stride=DOC_STRIDE, max_query_length=MAX_QUERY_LENGTH,
      is_training=is_training, version_2_with_negative=version_2, shuffle=False, write_metadata=True, num_workers=2)
  assert info.num_features == len(feats)
  assert built.read_bytes() == expected.read_bytes()
  assert pathlib.Path(f"{built}.metadata.jsonl").read_bytes() == pathlib.Path(f"{expected}.metadata.jsonl").read_bytes()
  _, reference_features = reference(name, is_training)
  names = {"unique_ids": "unique_id", "input_ids": "input_ids", "input_mask": "input_mask",
           "segment_ids": "segment_ids"}
  if is_training:
    names.update(start_positions="start_position", end_positions="end_position")
  for record, theirs in zip(tf.data.TFRecordDataset(str(built)).as_numpy_iterator(), reference_features,
                            strict=True):
    parsed = tf.train.Example.FromString(record).features.feature
    for record_name, field in names.items():
      value = getattr(theirs, field)
      assert list(parsed[record_name].int64_list.value) == (value if isinstance(value, list) else [value])


def test_short_windows_equal_squad_lib_also_in_the_files(shared_data, uncased_vocab, reference, ours, tmp_path):
  """max_seq_length 128, doc_stride 64, max_query_length 64: refused before, accepted by the original."""
  window = (128, 64, 64)
  _, reference_features = reference("dev-v1.1", False, window)
  _, _, feats = ours("dev-v1.1", False, window)
  assert len(feats) == len(reference_features)
  for mine, theirs in zip(feats, reference_features):
    for field in FEATURE_FIELDS:
      assert getattr(mine, field) == getattr(theirs, field), (field, mine.unique_id)
  expected = tmp_path / "expected.tf_record"
  feature_files.write_feature_files(feats, str(expected), f"{expected}.metadata.jsonl", False)
  built = tmp_path / "built.tf_record"
  build.build_feature_files(str(shared_data / "squad" / "dev-v1.1.json"), str(built), str(uncased_vocab),
                                 max_seq_length=128, doc_stride=64, max_query_length=64, num_workers=2)
  assert built.read_bytes() == expected.read_bytes()
  assert pathlib.Path(f"{built}.metadata.jsonl").read_bytes() == pathlib.Path(f"{expected}.metadata.jsonl").read_bytes()


def test_dataset_counts(ours):
  """What the files hold, as /work/shared/README.md describes them, and how training reads them."""
  _, v1, _ = ours("dev-v1.1", True)
  _, v2, _ = ours("dev-v2.0", True)
  assert (v1.num_articles, v1.num_paragraphs, v1.num_questions) == (48, 2067, 10570)
  assert (v2.num_articles, v2.num_paragraphs, v2.num_questions, v2.num_impossible) == (35, 1204, 11873, 5945)
  assert v1.multi_answer_questions > 10000


@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize("do_lower_case", [True, False])
def test_tokenizer_identical_on_every_question_and_context(shared_data, uncased_vocab, name, do_lower_case):
  data = json.loads((shared_data / "squad" / DATASETS[name][0]).read_text(encoding="utf-8"))
  texts = []
  for article in data["data"]:
    for paragraph in article["paragraphs"]:
      texts.append(paragraph["context"])
      texts.extend(qa["question"] for qa in paragraph["qas"])
  mine = tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=do_lower_case)
  theirs = tfm_tokenization.FullTokenizer(str(uncased_vocab), do_lower_case=do_lower_case)
  theirs.wordpiece_tokenizer.max_input_chars_per_word = tokenization.MAX_INPUT_CHARS_PER_WORD
  longest_word = 0
  for text in texts:
    assert mine.tokenize(text) == theirs.tokenize(text), text
    basic = mine.basic_tokenizer.tokenize(text)
    assert basic == theirs.basic_tokenizer.tokenize(text), text
    longest_word = max([longest_word] + [len(word) for word in basic])
  # So the port's default 400-character limit gives the same result here.
  assert longest_word <= tokenization.MAX_INPUT_CHARS_PER_WORD
