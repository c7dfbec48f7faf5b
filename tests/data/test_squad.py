"""Reading SQuAD JSON into examples: the original's rules and the InputError cases."""
import json
import random
import re

import pytest
import tensorflow as tf

from bert_squad.common.errors import InputError
from bert_squad.data import squad


def _squad_file(tmp_path, articles, name="train.json"):
  path = tmp_path / name
  path.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
  return str(path)


def _article(context, qas, title="T"):
  return {"title": title, "paragraphs": [{"context": context, "qas": qas}]}


def _qa(qid, question, answers=None, **extra):
  qa = {"id": qid, "question": question, "answers": answers or []}
  qa.update(extra)
  return qa


def test_context_split_on_original_whitespace_only():
  # Space, tab, CR, LF and U+202F split words; U+00A0 (no-break space) and
  # U+2009 (thin space) do not, exactly as the original reader.
  context = "a b\tc\rd\ne\u202ff g\u00a0h i\u2009j  k"
  doc_tokens, word_starts = squad.split_context(context)
  assert doc_tokens == ["a", "b", "c", "d", "e", "f", "g\u00a0h", "i\u2009j", "k"]
  assert word_starts == [0, 2, 4, 6, 8, 10, 12, 16, 21]


def test_char_to_word_index_maps_whitespace_to_previous_word():
  _, word_starts = squad.split_context("  ab cd")
  assert [squad.char_to_word_index(word_starts, c) for c in range(7)] == [-1, -1, 0, 0, 0, 1, 1]


def test_training_answer_positions_from_answer_start(tmp_path):
  context = "The leader was John Smith (1895-1943).\u202fHe died."
  answer_start = context.index("1895")
  path = _squad_file(tmp_path, [_article(context, [
      _qa("q1", "When was he born?", [{"text": "1895", "answer_start": answer_start}]),
      _qa("q2", "Who?", [{"text": "John Smith", "answer_start": context.index("John")}]),
      _qa("q3", "Then?", [{"text": "He died.", "answer_start": context.index("He")}]),
  ])])
  examples, stats = squad.read_squad_examples(path, is_training=True, version_2_with_negative=False)
  assert [(e.qas_id, e.start_position, e.end_position, e.orig_answer_text) for e in examples] == [
      ("q1", 5, 5, "1895"), ("q2", 3, 4, "John Smith"), ("q3", 6, 7, "He died.")]
  assert examples[0].doc_tokens == ["The", "leader", "was", "John", "Smith", "(1895-1943).", "He", "died."]
  assert stats.num_examples == 3 and stats.skipped_answers == 0 and stats.multi_answer_questions == 0


def test_prediction_mode_ignores_answers_and_shares_paragraphs(tmp_path):
  path = _squad_file(tmp_path, [
      {"title": "A", "paragraphs": [
          {"context": "one two", "qas": [_qa("a", "q?"), _qa("b", "r?", answers=[{"text": 3}])]},
          {"context": "three", "qas": [_qa("c", "s?")]}]},
      _article("four five", [_qa("d", "t?")]),
  ])
  examples, stats = squad.read_squad_examples(path, is_training=False, version_2_with_negative=True)
  assert [e.paragraph_index for e in examples] == [0, 0, 1, 2]
  assert examples[0].doc_tokens is examples[1].doc_tokens
  assert all(e.orig_answer_text is None and e.start_position is None and not e.is_impossible for e in examples)
  assert (stats.num_articles, stats.num_paragraphs, stats.num_questions, stats.num_examples) == (2, 3, 4, 4)


def test_answer_not_found_is_skipped_and_counted(tmp_path, caplog):
  # The text is at answer_start, but the original's word check misses it: U+00A0 stays
  # inside a context word, while the answer's str.split() turns it into a space.
  context = "alpha beta\u00a0gamma delta"
  path = _squad_file(tmp_path, [_article(context, [
      _qa("good", "q?", [{"text": "delta", "answer_start": 17}]),
      _qa("bad", "q?", [{"text": "beta\u00a0gamma", "answer_start": 6}]),
  ])])
  examples, stats = squad.read_squad_examples(path, is_training=True, version_2_with_negative=False)
  assert [e.qas_id for e in examples] == ["good"]
  assert stats.skipped_answers == 1 and stats.num_questions == 2 and stats.num_examples == 1
  assert "'bad': could not find answer 'beta\\xa0gamma'" in caplog.text


def test_answer_found_by_whitespace_normalised_substring(tmp_path):
  # The original compares " ".join(words) with the whitespace-normalised answer,
  # so an answer with doubled spaces that lies inside its words is kept.
  context = "New  York City"
  path = _squad_file(tmp_path, [_article(context, [
      _qa("q", "where?", [{"text": "New  York", "answer_start": 0}])])])
  examples, _ = squad.read_squad_examples(path, is_training=True, version_2_with_negative=False)
  assert (examples[0].start_position, examples[0].end_position) == (0, 1)


def test_multiple_answers_use_first_and_are_counted(tmp_path):
  context = "red green blue"
  path = _squad_file(tmp_path, [_article(context, [
      _qa("q1", "which?", [{"text": "green", "answer_start": 4}, {"text": "blue", "answer_start": 10}]),
      _qa("q2", "which?", [{"text": "red", "answer_start": 0}]),
  ])])
  examples, stats = squad.read_squad_examples(path, is_training=True, version_2_with_negative=False)
  assert [e.orig_answer_text for e in examples] == ["green", "red"]
  assert stats.multi_answer_questions == 1


def test_v2_impossible_questions(tmp_path):
  context = "red green blue"
  path = _squad_file(tmp_path, [_article(context, [
      _qa("imp", "which?", [], is_impossible=True),
      _qa("pos", "which?", [{"text": "blue", "answer_start": 10}], is_impossible=False),
      _qa("old", "which?", [{"text": "red", "answer_start": 0}]),
  ])])
  examples, stats = squad.read_squad_examples(path, is_training=True, version_2_with_negative=True)
  assert [(e.is_impossible, e.start_position, e.end_position, e.orig_answer_text) for e in examples] == [
      (True, -1, -1, ""), (False, 2, 2, "blue"), (False, 0, 0, "red")]
  assert stats.num_impossible == 1
  # Without the v2 flag, is_impossible is not read: the empty answer list is an error.
  with pytest.raises(InputError, match=r"'imp'.*no answers.*version_2_with_negative"):
    squad.read_squad_examples(path, is_training=True, version_2_with_negative=False)


def test_unanswerable_questions_are_those_with_an_empty_answer_list(tmp_path):
  context = "red green blue"
  path = _squad_file(tmp_path, [
      _article(context, [_qa("old", "which?", [{"text": "red", "answer_start": 0}]),
                         _qa("kept", "which?", [{"text": "red", "answer_start": 0}], is_impossible=True)]),
      "not an article",
      _article(context, [_qa("imp", "which?", [], is_impossible=True), _qa("bare", "which?", [])], title="Two"),
  ])
  assert squad.unanswerable_questions(path) == (2, "article 2 ('Two'), question 'imp'")
  assert squad.unanswerable_questions(_squad_file(tmp_path, [_article(context, [
      _qa("old", "which?", [{"text": "red", "answer_start": 0}])])], name="v1.json")) == (0, None)


def test_reads_through_tf_gfile():
  path = "ram://bert_squad_test_squad/dev.json"
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(json.dumps({"data": [_article("x y", [_qa("q", "y?")])]}))
  examples, _ = squad.read_squad_examples(path, is_training=False, version_2_with_negative=False)
  assert examples[0].doc_tokens == ["x", "y"]


def test_shuffle_examples_is_the_originals_seeded_shuffle():
  examples = [squad.SquadExample(qas_id=str(i), question_text="q", doc_tokens=["d"]) for i in range(50)]
  expected = list(range(50))
  random.Random(12345).shuffle(expected)
  shuffled = squad.shuffle_examples(examples)
  assert [int(e.qas_id) for e in shuffled] == expected
  assert [e.qas_id for e in examples] == [str(i) for i in range(50)]  # input untouched


def _good_article():
  return _article("alpha beta", [_qa("q1", "what?", [{"text": "beta", "answer_start": 6}])])


def _with(change):
  article = _good_article()
  change(article)
  return {"data": [article]}


BAD_INPUTS = {
    "not_json": (b"{\"data\": [", r"not valid JSON"),
    "not_utf8": (b"{\"data\": [\"\xff\xfe\"]}", r"not valid UTF-8"),
    "top_level_list": ([], r"top level.*array"),
    "no_data": ({"version": "1.1"}, r"top level: has no 'data'"),
    "data_not_list": ({"data": {}}, r"'data' is a JSON object, expected a JSON array"),
    "article_not_object": ({"data": [3]}, r"article 0: is a JSON integer"),
    "no_paragraphs": ({"data": [{"title": "Art"}]}, r"article 0 \('Art'\): has no 'paragraphs'"),
    "no_context": (_with(lambda a: a["paragraphs"][0].pop("context")), r"paragraph 0: has no 'context'"),
    "context_not_string": (_with(lambda a: a["paragraphs"][0].update(context=7)), r"'context' is a JSON integer"),
    "empty_context": (_with(lambda a: a["paragraphs"][0].update(context=" \n\u202f")), r"context is empty"),
    "no_qas": (_with(lambda a: a["paragraphs"][0].pop("qas")), r"has no 'qas'"),
    "no_id": (_with(lambda a: a["paragraphs"][0]["qas"][0].pop("id")), r"question 0: has no 'id'"),
    "id_not_string": (_with(lambda a: a["paragraphs"][0]["qas"][0].update(id=5)), r"'id' is a JSON integer"),
    "no_question": (_with(lambda a: a["paragraphs"][0]["qas"][0].pop("question")),
                    r"question 'q1': has no 'question'"),
    "empty_question": (_with(lambda a: a["paragraphs"][0]["qas"][0].update(question="  ")),
                       r"question 'q1': question is empty"),
    "duplicate_id": (_with(lambda a: a["paragraphs"][0]["qas"].append(dict(a["paragraphs"][0]["qas"][0]))),
                     r"question 'q1': duplicate question id"),
    "answer_start_too_large": (_with(lambda a: a["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=8)),
                               r"question 'q1', answer 0: answer_start 8 .* out of range"),
    "answer_start_negative": (_with(lambda a: a["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=-1)),
                              r"answer_start -1 .* out of range"),
    "answer_start_at_other_text": (
        _with(lambda a: a["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=0)),
        r"question 'q1', answer 0: answer_start 0 points at 'alph', not at the answer text 'beta'"),
    "answer_start_string": (_with(lambda a: a["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start="6")),
                            r"'answer_start' is a JSON string, expected a JSON integer"),
    "answer_start_float": (_with(lambda a: a["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=6.0)),
                           r"'answer_start' is a JSON number"),
    "answer_start_bool": (_with(lambda a: a["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=True)),
                          r"'answer_start' is a JSON boolean"),
    "answer_text_missing": (_with(lambda a: a["paragraphs"][0]["qas"][0]["answers"][0].pop("text")),
                            r"answer 0: has no 'text'"),
    "answer_text_empty": (_with(lambda a: a["paragraphs"][0]["qas"][0]["answers"][0].update(text="")),
                          r"answer text is empty"),
    "answers_not_list": (_with(lambda a: a["paragraphs"][0]["qas"][0].update(answers="beta")),
                         r"'answers' is a JSON string"),
    "is_impossible_not_bool": (_with(lambda a: a["paragraphs"][0]["qas"][0].update(is_impossible="no")),
                               r"'is_impossible' is a JSON string"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_raises_one_located_error(tmp_path, case):
  content, pattern = BAD_INPUTS[case]
  path = tmp_path / f"{case}.json"
  path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode("utf-8"))
  with pytest.raises(InputError) as raised:
    squad.read_squad_examples(str(path), is_training=True, version_2_with_negative=True)
  message = str(raised.value)
  assert message.startswith(f"{path}: ")
  assert "\n" not in message
  assert re.search(pattern, message), message


def test_missing_file_is_an_input_error(tmp_path):
  with pytest.raises(InputError, match="file not found"):
    squad.read_squad_examples(str(tmp_path / "nope.json"), is_training=False, version_2_with_negative=False)
