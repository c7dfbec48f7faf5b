"""Doc-stride windows, answer labels, and the TFRecord / metadata / info files."""
import dataclasses
import json
import pathlib
import random
import shutil

from absl import logging
from official.nlp.data import squad_lib
from official.nlp.tools import tokenization as tfm_tokenization
import pytest
import tensorflow as tf

import bert_squad
from bert_squad.common.errors import InputError
from bert_squad.data import feature_files
from bert_squad.data import features
from bert_squad.data import squad
from bert_squad.data import tokenization
from bert_squad.data import windows
from bert_squad.training import input_pipeline

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the man went to store and bought a gallon of milk what did he buy ? when was born leader john smith "
         "( ) - . 1895 1943 japan ##ese electronics industry").split()
VOCAB = SPECIALS + WORDS
MILK = "the man went to the store and bought a gallon of milk"
DEMO_DATA = pathlib.Path(bert_squad.__file__).parent / "demo_data"


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
  path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
  return str(path)


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
  return tokenization.FullTokenizer(vocab_file, do_lower_case=True)


def _example(context, question, answer=None, impossible=False, paragraph_index=-1):
  """A training example as the reader builds it (answer given as text, first occurrence)."""
  doc_tokens, word_starts = squad.split_context(context)
  example = squad.SquadExample(qas_id="q", question_text=question, doc_tokens=doc_tokens,
                               paragraph_index=paragraph_index)
  if impossible:
    example.is_impossible, example.orig_answer_text = True, ""
    example.start_position = example.end_position = -1
  elif answer is not None:
    start = context.index(answer)
    example.orig_answer_text = answer
    example.start_position = squad.char_to_word_index(word_starts, start)
    example.end_position = squad.char_to_word_index(word_starts, start + len(answer) - 1)
  return example


def _ids(tokens):
  return [VOCAB.index(t) for t in tokens]


def test_doc_spans_step_by_stride_and_end_at_the_last_token():
  assert windows.doc_spans(10, 4, 3) == [(0, 4), (3, 4), (6, 4)]
  assert windows.doc_spans(8, 4, 2) == [(0, 4), (2, 4), (4, 4)]
  assert windows.doc_spans(3, 4, 3) == [(0, 3)]
  assert windows.doc_spans(0, 4, 3) == []


@pytest.mark.parametrize("stride", [4, 5, 128])
def test_doc_spans_with_a_stride_of_a_window_or_more_meet_without_a_gap(stride):
  # The original steps by min(window length, doc_stride): no document token is ever skipped.
  assert windows.doc_spans(10, 4, stride) == [(0, 4), (4, 4), (8, 2)]


def test_max_context_prefers_the_most_centred_window():
  # The original's example: "bought" (position 7) has 4 left / 0 right
  # tokens in span B and 1 left / 3 right in span C, so C is its max context.
  spans = [windows.DocSpan(0, 5), windows.DocSpan(3, 5), windows.DocSpan(6, 5)]
  best = windows.max_context_spans(spans, 11)
  assert best[7] == 2
  assert best[4] == 1
  assert best[3] == 0
  assert best[0] == 0 and best[10] == 2
  assert windows.max_context_spans(spans[:1], 5) == [0] * 5


def test_max_context_ties_go_to_the_longer_then_the_first_window():
  longer_first = [windows.DocSpan(0, 5), windows.DocSpan(2, 3)]
  assert windows.max_context_spans(longer_first, 5)[3] == 0
  equal = [windows.DocSpan(0, 3), windows.DocSpan(2, 3)]
  assert windows.max_context_spans(equal, 5)[2] == 0


@pytest.mark.parametrize("num_tokens, max_tokens, stride", [(10, 4, 3), (37, 9, 2), (50, 13, 5), (23, 22, 1)])
def test_max_context_spans_equal_squad_lib_per_token_rule(num_tokens, max_tokens, stride):
  spans = windows.doc_spans(num_tokens, max_tokens, stride)
  best = windows.max_context_spans(spans, num_tokens)
  for position in range(num_tokens):
    assert [squad_lib._check_is_max_context(spans, i, position) for i in range(len(spans))] == [  # pylint: disable=protected-access
        i == best[position] for i in range(len(spans))], position


def test_two_windows_tokens_maps_and_inputs(tokenizer):
  example = _example(MILK, "What did he buy?", answer="bought")
  feats = features.convert_examples_to_features([example], tokenizer, max_seq_length=16, doc_stride=4,
                                                max_query_length=8, is_training=True)
  query = ["what", "did", "he", "buy", "?"]
  doc = MILK.split()
  assert len(feats) == 2
  first, second = feats
  assert (first.unique_id, first.example_index, first.doc_span_index) == (1000000000, 0, 0)
  assert (second.unique_id, second.example_index, second.doc_span_index) == (1000000001, 0, 1)
  assert first.tokens == ["[CLS]", *query, "[SEP]", *doc[0:8], "[SEP]"]
  assert second.tokens == ["[CLS]", *query, "[SEP]", *doc[4:12], "[SEP]"]
  assert first.token_to_orig_map == {7 + i: i for i in range(8)}
  assert second.token_to_orig_map == {7 + i: 4 + i for i in range(8)}
  # Doc positions 4, 5 are better centred in window 0; 6, 7 in window 1.
  assert first.token_is_max_context == {7 + i: i <= 5 for i in range(8)}
  assert second.token_is_max_context == {7 + i: i >= 2 for i in range(8)}
  assert first.input_ids == _ids(first.tokens)
  assert first.input_mask == [1] * 16 and first.segment_ids == [0] * 7 + [1] * 9
  # "bought" is doc token 7: position 7 + 7 in window 0, 7 + 3 in window 1.
  assert [(f.start_position, f.end_position, f.is_impossible) for f in feats] == [(14, 14, False), (10, 10, False)]


def test_padding_and_query_truncation(tokenizer):
  example = _example("the man went", "What did he buy?")
  (feat,) = features.convert_examples_to_features([example], tokenizer, max_seq_length=12, doc_stride=2,
                                                  max_query_length=3, is_training=False)
  assert feat.tokens == ["[CLS]", "what", "did", "he", "[SEP]", "the", "man", "went", "[SEP]"]
  assert feat.input_ids == _ids(feat.tokens) + [0, 0, 0]
  assert feat.input_mask == [1] * 9 + [0] * 3
  assert feat.segment_ids == [0] * 5 + [1] * 4 + [0] * 3
  assert (feat.start_position, feat.end_position, feat.is_impossible) == (None, None, None)


def test_answer_outside_a_window_points_at_cls_but_is_not_impossible(tokenizer):
  milk = _example(MILK, "What did he buy?", answer="milk")
  across = _example(MILK, "What did he buy?", answer="store and bought a")
  labels = [(f.start_position, f.end_position, f.is_impossible)
            for f in features.convert_examples_to_features([milk, across], tokenizer, 16, 4, 8, True)]
  # milk = doc token 11, only in window 1 (4..11); "store .. a" = 5..8, only in window 1.
  assert labels == [(0, 0, False), (14, 14, False), (0, 0, False), (8, 11, False)]


def test_impossible_example_labels_every_window(tokenizer):
  example = _example(MILK, "What did he buy?", impossible=True)
  labels = [(f.start_position, f.end_position, f.is_impossible)
            for f in features.convert_examples_to_features([example], tokenizer, 16, 4, 8, True)]
  assert labels == [(0, 0, True), (0, 0, True)]


def test_improve_answer_span_narrows_to_the_answer_wordpieces(tokenizer):
  context = "The leader was John Smith (1895-1943)."
  example = _example(context, "When was he born?", answer="1895")
  assert (example.start_position, example.end_position) == (5, 5)  # "(1895-1943)."
  (feat,) = features.convert_examples_to_features([example], tokenizer, 32, 8, 8, True)
  # Wordpieces: the leader was john smith ( 1895 - 1943 ) . -> 1895 is doc token 6.
  assert feat.tokens[feat.start_position] == "1895"
  assert (feat.start_position, feat.end_position) == (7 + 6, 7 + 6)
  doc_tokens = tokenizer.tokenize(context)
  assert windows.improve_answer_span(doc_tokens, 4, 10, tokenizer, "Smith (1895") == (4, 6)


def test_improve_answer_span_keeps_the_word_span_when_nothing_matches(tokenizer):
  # "Japa" is a character sub-span of "Japanese" (japan ##ese); its own
  # wordpieces ([UNK]) match no sub-span, so the whole word stays the answer.
  doc_tokens = tokenizer.tokenize("The Japanese electronics industry")
  assert doc_tokens == ["the", "japan", "##ese", "electronics", "industry"]
  assert windows.improve_answer_span(doc_tokens, 1, 2, tokenizer, "Japa") == (1, 2)
  assert windows.improve_answer_span(doc_tokens, 1, 2, tokenizer, "Japan") == (1, 1)


def test_word_to_wordpiece_maps(tokenizer):
  example = _example("Japanese electronics", "What?", answer="electronics")
  (feat,) = features.convert_examples_to_features([example], tokenizer, 16, 4, 8, True)
  assert feat.tokens[4:8] == ["japan", "##ese", "electronics", "[SEP]"]
  assert feat.token_to_orig_map == {4: 0, 5: 0, 6: 1}
  assert (feat.start_position, feat.end_position) == (6, 6)


def test_shared_paragraph_gives_the_same_features(tokenizer):
  shared = [_example(MILK, q, answer=a, paragraph_index=0)
            for q, a in [("What did he buy?", "milk"), ("What?", "the store"), ("Who went?", "the man")]]
  for example in shared[1:]:
    example.doc_tokens = shared[0].doc_tokens
  alone = [dataclasses.replace(e, paragraph_index=-1, doc_tokens=list(e.doc_tokens)) for e in shared]
  assert (features.convert_examples_to_features(shared, tokenizer, 16, 4, 8, True) ==
          features.convert_examples_to_features(alone, tokenizer, 16, 4, 8, True))


@pytest.mark.parametrize("max_seq_length, doc_stride, max_query_length, pattern", [
    (384, 128, 0, r"--max_query_length=0: must be at least 1"),
    (384, 0, 64, r"--doc_stride=0: must be at least 1"),
    (384, -5, 64, r"--doc_stride=-5: must be at least 1"),
    (67, 1, 64, r"^--max_seq_length=67: must be greater than max_query_length \+ 3 = 67, so that a window "
                r"with the longest question holds a document token"),
])
def test_nonsense_window_parameters_name_the_flag(tokenizer, max_seq_length, doc_stride, max_query_length,
                                                   pattern):
  with pytest.raises(InputError, match=pattern):
    # Raised by the call itself, before the first feature is asked for.
    features.iter_features([_example(MILK, "What?")], tokenizer, max_seq_length, doc_stride, max_query_length,
                           False)


@pytest.mark.parametrize("max_seq_length, doc_stride, max_query_length", [
    (384, 316, 64), (384, 317, 64), (128, 64, 64), (128, 61, 64), (128, 128, 64), (68, 1, 64), (68, 2, 64)])
def test_every_window_setting_the_original_accepts_is_accepted(max_seq_length, doc_stride, max_query_length):
  windows.validate_window_params(max_seq_length, doc_stride, max_query_length)


@pytest.fixture(scope="module")
def demo_reference_tokenizer(minilm_dir):
  reference = tfm_tokenization.FullTokenizer(str(minilm_dir / "vocab.txt"), do_lower_case=True)
  reference.wordpiece_tokenizer.max_input_chars_per_word = tokenization.MAX_INPUT_CHARS_PER_WORD
  return reference


@pytest.mark.parametrize("doc_stride", [64, 128])
@pytest.mark.parametrize("name, is_training", [("squad1.1_demo_dev.json", False),
                                               ("squad1.1_demo_train.json", True)])
def test_short_windows_equal_squad_lib_and_cover_every_token(minilm_dir, demo_reference_tokenizer, tmp_path,
                                                             doc_stride, name, is_training):
  """max_seq_length 128 with the original's doc_stride 128 or 64: accepted, and squad_lib's features."""
  path = str(DEMO_DATA / name)
  logging.set_verbosity(logging.WARNING)  # squad_lib logs its first 20 features at INFO
  reference = []
  squad_lib.convert_examples_to_features(
      squad_lib.read_squad_examples(path, is_training, False), demo_reference_tokenizer, 128, doc_stride, 64,
      is_training,
      output_fn=reference.append if is_training else lambda f, is_padding: None if is_padding else reference.append(f),
      batch_size=None if is_training else 64)
  examples, _ = squad.read_squad_examples(path, is_training, False)
  ours = features.convert_examples_to_features(
      examples, tokenization.FullTokenizer(str(minilm_dir / "vocab.txt"), True), 128, doc_stride, 64, is_training)
  assert len(ours) == len(reference) > len(examples)  # several windows per question
  for mine, theirs in zip(ours, reference):
    for field in ("unique_id", "example_index", "doc_span_index", "tokens", "token_to_orig_map",
                  "token_is_max_context", "input_ids", "input_mask", "segment_ids") + (
                      ("start_position", "end_position") if is_training else ()):
      assert getattr(mine, field) == getattr(theirs, field), (field, mine.unique_id)
  for example_index, example in enumerate(examples):
    covered = {word for f in ours if f.example_index == example_index for word in f.token_to_orig_map.values()}
    assert covered == set(range(len(example.doc_tokens))), example.qas_id


def _read_records(path, seq_length, is_training):
  """Each record of `path` as name -> int32 numpy value, parsed in batches as training and prediction parse it."""
  rows = []
  for serialized in tf.data.TFRecordDataset(path).batch(3):  # [batch] strings, the last batch shorter
    inputs, targets = input_pipeline.parse_records(serialized, seq_length, is_training)
    parsed = {**inputs, **targets}
    rows += [{name: value[i].numpy() for name, value in parsed.items()} for i in range(int(serialized.shape[0]))]
  return rows


@pytest.mark.parametrize("is_training", [True, False])
def test_tfrecord_round_trip_through_tf_data(tokenizer, tmp_path, is_training):
  examples = [_example(MILK, "What did he buy?", answer="milk"), _example(MILK, "Who?", impossible=True)]
  feats = features.convert_examples_to_features(examples, tokenizer, 16, 4, 8, is_training)
  path = str(tmp_path / "f.tf_record")
  assert feature_files.write_tfrecord(path, iter(feats), is_training) == len(feats) == 4
  records = _read_records(path, 16, is_training)
  assert len(records) == 4
  for feat, record in zip(feats, records):
    assert all(t.dtype == "int32" for t in record.values())
    assert record["unique_ids"] == feat.unique_id
    assert record["input_ids"].tolist() == feat.input_ids
    assert record["input_mask"].tolist() == feat.input_mask
    assert record["segment_ids"].tolist() == feat.segment_ids
    if is_training:
      assert (record["start_positions"], record["end_positions"], record["is_impossible"]) == (
          feat.start_position, feat.end_position, int(feat.is_impossible))
  raw = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(path))).numpy())
  names = {"unique_ids", "input_ids", "input_mask", "segment_ids"}
  if is_training:
    names |= {"start_positions", "end_positions", "is_impossible"}
  assert set(raw.features.feature) == names
  assert all(f.WhichOneof("kind") == "int64_list" for f in raw.features.feature.values())


def test_metadata_round_trip(tokenizer, tmp_path):
  feats = features.convert_examples_to_features([_example(MILK, "What did he buy?", answer="milk")], tokenizer,
                                                16, 4, 8, False)
  path = str(tmp_path / "f.metadata.jsonl")
  assert feature_files.write_feature_metadata(path, feats) == 2
  lines = (tmp_path / "f.metadata.jsonl").read_text(encoding="utf-8").splitlines()
  assert len(lines) == 2
  first = json.loads(lines[0])
  assert list(first) == ["unique_id", "example_index", "doc_span_index", "tokens", "token_to_orig_map",
                         "token_is_max_context"]
  assert first["token_to_orig_map"]["7"] == 0
  restored = feature_files.read_feature_metadata(path)
  for feat, back in zip(feats, restored):
    for name in feature_files.METADATA_FIELDS:
      assert getattr(back, name) == getattr(feat, name)
    assert all(isinstance(k, int) for k in back.token_to_orig_map)
    assert back.input_ids == []


def test_bad_metadata_line_is_located(tmp_path):
  path = tmp_path / "m.jsonl"
  path.write_text('{"unique_id": 1}\n', encoding="utf-8")
  with pytest.raises(InputError, match=r"m.jsonl: line 1: not a feature metadata line"):
    feature_files.read_feature_metadata(str(path))


def test_write_feature_files_leaves_nothing_on_failure(tokenizer, tmp_path):
  feats = features.convert_examples_to_features([_example(MILK, "What?")], tokenizer, 16, 4, 8, False)

  def failing():
    yield feats[0]
    raise RuntimeError("boom")

  with pytest.raises(RuntimeError):
    feature_files.write_feature_files(failing(), str(tmp_path / "f.tf_record"), str(tmp_path / "f.meta"), False)
  assert list(tmp_path.iterdir()) == []
  assert feature_files.write_feature_files(feats, str(tmp_path / "f.tf_record"), str(tmp_path / "f.meta"), False) == 2
  assert sorted(p.name for p in tmp_path.iterdir()) == ["f.meta", "f.tf_record"]


def test_features_info_round_trip(tmp_path):
  info = feature_files.FeaturesInfo(
      input_file="in.json", input_sha256="a" * 64, vocab_file="v.txt", vocab_sha256="b" * 64, do_lower_case=True,
      max_seq_length=384, doc_stride=128, max_query_length=64, is_training=True, version_2_with_negative=False,
      shuffle_seed=12345, num_examples=3, num_features=5, skipped_answers=1, multi_answer_questions=2)
  path = str(tmp_path / "info.json")
  feature_files.write_features_info(path, info)
  assert feature_files.read_features_info(path) == info
  assert json.loads((tmp_path / "info.json").read_text())["format_version"] == feature_files.FORMAT_VERSION


def test_cache_key_follows_contents_and_every_parameter(tmp_path, vocab_file):
  input_file = tmp_path / "in.json"
  input_file.write_text('{"data": []}')
  params = dict(input_file=str(input_file), vocab_file=vocab_file, do_lower_case=True, max_seq_length=384,
                doc_stride=128, max_query_length=64, is_training=True, version_2_with_negative=False,
                shuffle_seed=12345)
  key = feature_files.features_cache_key(**params)
  assert feature_files.features_cache_key(**params) == key
  moved = tmp_path / "moved.json"
  shutil.copy(input_file, moved)
  assert feature_files.features_cache_key(**{**params, "input_file": str(moved)}) == key
  changed = {"do_lower_case": False, "max_seq_length": 256, "doc_stride": 64, "max_query_length": 32,
             "is_training": False, "version_2_with_negative": True, "shuffle_seed": None}
  keys = {feature_files.features_cache_key(**{**params, name: value}) for name, value in changed.items()}
  assert len(keys) == len(changed) and key not in keys
  input_file.write_text('{"data": [] }')
  assert feature_files.features_cache_key(**params) != key


# --- Agreement with tf-models-official's squad_lib on synthetic data -----------


def _synthetic_squad(path, rng, num_paragraphs=24):
  """Long contexts (many windows), multi-piece words, one answer each, some impossible."""
  words = WORDS[:-7] + ["japanese", "(1895-1943).", "Smith,", "JOHN", "unknownish"]
  articles = []
  for p in range(num_paragraphs):
    context = " ".join(rng.choice(words) for _ in range(rng.randint(5, 140)))
    qas = []
    for q in range(3):
      qa = {"id": f"{p}-{q}", "question": " ".join(rng.choice(words) for _ in range(rng.randint(1, 25)))}
      if rng.random() < 0.25:
        qa.update(is_impossible=True, answers=[])
      else:
        doc_words = context.split(" ")
        first = rng.randrange(len(doc_words))
        last = min(len(doc_words) - 1, first + rng.randint(0, 4))
        start = len(" ".join(doc_words[:first])) + (1 if first else 0)
        qa.update(is_impossible=False, answers=[{"text": " ".join(doc_words[first:last + 1]), "answer_start": start}])
      qas.append(qa)
    articles.append({"title": str(p), "paragraphs": [{"context": context, "qas": qas}]})
  path.write_text(json.dumps({"data": articles}), encoding="utf-8")
  return str(path)


@pytest.mark.parametrize("is_training", [False, True])
def test_matches_tf_models_squad_lib_on_synthetic_data(tmp_path, vocab_file, is_training):
  path = _synthetic_squad(tmp_path / "synthetic.json", random.Random(3))
  logging.set_verbosity(logging.WARNING)  # squad_lib logs its first 20 features at INFO
  reference_examples = squad_lib.read_squad_examples(path, is_training, version_2_with_negative=True)
  reference_tokenizer = tfm_tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  reference = []
  squad_lib.convert_examples_to_features(
      reference_examples, reference_tokenizer, 64, 16, 16, is_training,
      output_fn=(reference.append if is_training else lambda f, is_padding: reference.append(f)), batch_size=1)
  examples, _ = squad.read_squad_examples(path, is_training, version_2_with_negative=True)
  ours = features.convert_examples_to_features(examples, tokenization.FullTokenizer(vocab_file, True), 64, 16, 16,
                                               is_training)
  assert len(ours) == len(reference) > 3 * len(examples)
  for mine, theirs in zip(ours, reference):
    for name in ("unique_id", "example_index", "doc_span_index", "tokens", "token_to_orig_map",
                 "token_is_max_context", "input_ids", "input_mask", "segment_ids"):
      assert getattr(mine, name) == getattr(theirs, name), name
    if is_training:
      assert (mine.start_position, mine.end_position) == (theirs.start_position, theirs.end_position)
      assert mine.is_impossible == examples[mine.example_index].is_impossible
