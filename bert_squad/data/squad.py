"""SQuAD v1.1 / v2.0 JSON file -> list[SquadExample] + ReadStats counts (the original `read_squad_examples`).

The rules are the original's: the context is split on whitespace (space, tab,
CR, LF and U+202F only), each character maps to the word it falls in, and an
answer's `answer_start` is mapped through that table to word positions. In
training mode an answer whose text cannot be found in those words is skipped
with a warning; these are counted in `ReadStats.skipped_answers`.

Two deliberate departures, for inputs the original crashed on or silently dropped:
  * Training files with several answers per question (the dev sets) use the
    first answer instead of raising; `ReadStats.multi_answer_questions` counts
    the questions this affected.
  * Malformed input raises one `InputError` naming the file and the place
    (article, paragraph, question id) instead of a KeyError or IndexError;
    so does an `answer_start` that points at other text than the answer
    (the original skips such an answer with a warning).
"""
import bisect
import dataclasses
import json
import random
import re
from typing import Any, Iterator

from absl import logging

from bert_squad.common import io_utils
from bert_squad.common.errors import located

# The original shuffles the training examples once with this seed before
# converting them to features (google-research/bert run_squad.py).
TRAIN_SHUFFLE_SEED = 12345

# The original's `is_whitespace` for contexts: space, \t, \r, \n and U+202F
# (narrow no-break space). Other Unicode spaces stay inside words.
_WORD_PATTERN = re.compile("[^ \t\r\n\u202f]+")


@dataclasses.dataclass
class SquadExample:
  """One question about one paragraph, as the original `SquadExample`.

  Attributes:
    qas_id: the question id from the JSON.
    question_text: the question as written.
    doc_tokens: the context split on whitespace (the original's rule).
    orig_answer_text: the (first) answer's text; None in prediction mode.
    start_position: index into `doc_tokens` of the answer's first word.
    end_position: index into `doc_tokens` of the answer's last word.
    is_impossible: SQuAD 2.0 question without an answer.
    paragraph_index: running index of the paragraph in the file, so that
      questions about the same context can share its tokenization.
  """
  qas_id: str
  question_text: str
  doc_tokens: list[str]
  orig_answer_text: str | None = None
  start_position: int | None = None
  end_position: int | None = None
  is_impossible: bool = False
  paragraph_index: int = -1


@dataclasses.dataclass
class ReadStats:
  """Counts from one `read_squad_examples` call.

  Attributes:
    num_articles, num_paragraphs, num_questions: what the file holds.
    num_examples: examples returned (questions minus skipped answers).
    num_impossible: examples with `is_impossible` (training, v2.0 only).
    skipped_answers: training answers whose text was not found at
      `answer_start`; those questions are left out, as in the original.
    multi_answer_questions: training questions with more than one answer, of
      which only the first was used.
  """
  num_articles: int = 0
  num_paragraphs: int = 0
  num_questions: int = 0
  num_examples: int = 0
  num_impossible: int = 0
  skipped_answers: int = 0
  multi_answer_questions: int = 0


def split_context(context: str) -> tuple[list[str], list[int]]:
  """Splits a context into words the way the original reader does.

  Returns:
    doc_tokens: the whitespace-separated words.
    word_starts: the character offset where each word starts (ascending).
  """
  doc_tokens = []
  word_starts = []
  for match in _WORD_PATTERN.finditer(context):
    doc_tokens.append(match.group())
    word_starts.append(match.start())
  return doc_tokens, word_starts


def char_to_word_index(word_starts: list[int], char_offset: int) -> int:
  """The original's `char_to_word_offset[char_offset]`: the word holding that character.

  A whitespace character maps to the word before it (-1 before the first).
  """
  return bisect.bisect_right(word_starts, char_offset) - 1


def shuffle_examples(examples: list[SquadExample],
                     seed: int = TRAIN_SHUFFLE_SEED) -> list[SquadExample]:
  """Returns the examples in the original's pre-shuffled training order."""
  shuffled = list(examples)
  random.Random(seed).shuffle(shuffled)
  return shuffled


def load_squad_json(input_file: str) -> dict[str, Any]:
  """Reads and decodes a JSON file (local or gs://), raising `InputError` on bad bytes."""
  try:
    raw = io_utils.read_bytes(input_file)
  except FileNotFoundError:
    raise located(input_file, "", "file not found") from None
  except OSError as e:
    raise located(input_file, "", f"cannot read it ({e.strerror or e})") from None
  try:
    text = raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise located(input_file, "", f"not valid UTF-8 (byte {e.start})") from None
  del raw  # not needed while the text is parsed
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise located(input_file, "", f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
  if not isinstance(data, dict):
    raise located(input_file, "", f"top level is a JSON {_json_type(data)}, expected an object with 'data'")
  return data


def read_squad_examples(input_file: str, is_training: bool,
                        version_2_with_negative: bool) -> tuple[list[SquadExample], ReadStats]:
  """Reads a SQuAD v1.1 / v2.0 file into examples, as the original reader.

  Args:
    input_file: local path or gs:// URL of the SQuAD JSON.
    is_training: read answers (first answer per question) and positions.
    version_2_with_negative: read `is_impossible` (training only, as the
      original; a missing field counts as False).

  Returns:
    The examples in file order and the counts (`ReadStats`).

  Raises:
    InputError: the file is missing, not UTF-8 JSON, or does not have the
      SQuAD structure; the message names the file and the place.
  """
  data = load_squad_json(input_file)
  articles = _field(data, "data", list, input_file, "top level")
  stats = ReadStats(num_articles=len(articles))
  examples = []
  seen_ids: dict[str, str] = {}
  for article_index, article in enumerate(articles):
    # Each article's JSON is freed once read: the examples keep what they need.
    articles[article_index] = None
    article_where = f"article {article_index}"
    if not isinstance(article, dict):
      raise located(input_file, article_where, f"is a JSON {_json_type(article)}, expected an object")
    if isinstance(article.get("title"), str):
      article_where += f" ({article['title']!r})"
    paragraphs = _field(article, "paragraphs", list, input_file, article_where)
    examples.extend(_paragraph_examples(paragraphs, article_where, input_file, is_training,
                                        version_2_with_negative, stats, seen_ids))
  if not stats.num_questions:
    raise located(input_file, "", "holds no questions")
  stats.num_examples = len(examples)
  _log_read_stats(input_file, stats)
  return examples, stats


def _paragraph_examples(paragraphs: list, article_where: str, input_file: str, is_training: bool,
                        version_2_with_negative: bool, stats: ReadStats,
                        seen_ids: dict[str, str]) -> Iterator[SquadExample]:
  """The examples of one article's paragraphs, in file order; counts into `stats`.

  Args:
    paragraphs: the article's `paragraphs` JSON list.
    article_where: "article N ('title')", for messages.
    seen_ids: question id -> the article it was first seen in, updated here.

  Raises:
    InputError: a malformed paragraph or question, an empty context or
      question, a duplicate question id, a bad training answer.
  """
  for paragraph_number, paragraph in enumerate(paragraphs):
    paragraph_where = f"{article_where}, paragraph {paragraph_number}"
    if not isinstance(paragraph, dict):
      raise located(input_file, paragraph_where, f"is a JSON {_json_type(paragraph)}, expected an object")
    context = _field(paragraph, "context", str, input_file, paragraph_where)
    if is_training:
      doc_tokens, word_starts = split_context(context)
    else:  # no answers to place: the words alone, in one C-level pass
      doc_tokens, word_starts = _WORD_PATTERN.findall(context), []
    if not doc_tokens:
      raise located(input_file, paragraph_where, "context is empty")
    qas = _field(paragraph, "qas", list, input_file, paragraph_where)
    paragraph_index = stats.num_paragraphs
    stats.num_paragraphs += 1
    for qa_number, qa in enumerate(qas):
      if not isinstance(qa, dict):
        raise located(input_file, f"{paragraph_where}, question {qa_number}",
                      f"is a JSON {_json_type(qa)}, expected an object")
      qas_id = _field(qa, "id", str, input_file, f"{paragraph_where}, question {qa_number}")
      where = f"{article_where}, question {qas_id!r}"
      if qas_id in seen_ids:
        raise located(input_file, where, f"duplicate question id (first seen in {seen_ids[qas_id]})")
      seen_ids[qas_id] = article_where
      question_text = _field(qa, "question", str, input_file, where)
      if not question_text.strip():
        raise located(input_file, where, "question is empty")
      stats.num_questions += 1
      example = SquadExample(qas_id=qas_id, question_text=question_text, doc_tokens=doc_tokens,
                             paragraph_index=paragraph_index)
      if is_training and not _set_training_answer(example, qa, context, word_starts,
                                                  version_2_with_negative, stats, input_file, where):
        continue
      yield example


def _log_read_stats(input_file: str, stats: ReadStats) -> None:
  """The warning for skipped answers and the note on multi-answer questions (none: no line)."""
  if stats.skipped_answers:
    logging.warning("%s: skipped %d questions whose answer text was not found at answer_start",
                    input_file, stats.skipped_answers)
  if stats.multi_answer_questions:
    logging.info("%s: %d questions have several answers; training uses the first",
                 input_file, stats.multi_answer_questions)


def unanswerable_questions(input_file: str) -> tuple[int, str | None]:
  """Counts the SQuAD 2.0 questions without an answer (an empty `answers` list) in a file.

  What the original cannot use without `version_2_with_negative`: training
  raises on them, and SQuAD v1.1 scoring has no gold answer for them. Parts
  that are not SQuAD-shaped are passed over (`read_squad_examples` names them).

  Returns:
    (how many, "article <i> ('<title>'), question '<id>'" of the first, or None).
  """
  data = load_squad_json(input_file)
  count, first = 0, None
  articles = data.get("data")
  for article_index, article in enumerate(articles if isinstance(articles, list) else []):
    paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
    for paragraph in paragraphs if isinstance(paragraphs, list) else []:
      qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
      for qa in qas if isinstance(qas, list) else []:
        if isinstance(qa, dict) and qa.get("answers") == []:
          count += 1
          if first is None:
            title = f" ({article['title']!r})" if isinstance(article.get("title"), str) else ""
            first = f"article {article_index}{title}, question {qa.get('id')!r}"
  return count, first


def _set_training_answer(example: SquadExample, qa: dict[str, Any], context: str,
                         word_starts: list[int], version_2_with_negative: bool,
                         stats: ReadStats, input_file: str, where: str) -> bool:
  """Fills the answer fields of a training example; False if the original skips it."""
  is_impossible = False
  if version_2_with_negative and "is_impossible" in qa:
    is_impossible = qa["is_impossible"]
    if not isinstance(is_impossible, bool):
      raise located(input_file, where, f"'is_impossible' is a JSON {_json_type(is_impossible)}, expected true/false")
  if is_impossible:
    example.is_impossible = True
    example.orig_answer_text = ""
    example.start_position = -1
    example.end_position = -1
    stats.num_impossible += 1
    return True
  answers = _field(qa, "answers", list, input_file, where)
  if not answers:
    hint = "" if version_2_with_negative else " (a SQuAD v2.0 file? set --version_2_with_negative)"
    raise located(input_file, where, f"has no answers{hint}")
  for answer_number, answer in enumerate(answers):
    _check_answer(answer, context, input_file, f"{where}, answer {answer_number}")
  if len(answers) > 1:
    stats.multi_answer_questions += 1
  answer = answers[0]
  answer_text = answer["text"]
  answer_start = answer["answer_start"]
  start_position = char_to_word_index(word_starts, answer_start)
  end_position = char_to_word_index(word_starts, answer_start + len(answer_text) - 1)
  if not _answer_matches_words(example.doc_tokens, start_position, end_position, answer_text):
    stats.skipped_answers += 1
    logging.warning("%s: %s: could not find answer %r at answer_start %d; skipped",
                    input_file, where, answer_text, answer_start)
    return False
  example.orig_answer_text = answer_text
  example.start_position = start_position
  example.end_position = end_position
  return True


def _answer_matches_words(doc_tokens: list[str], start_position: int, end_position: int,
                          answer_text: str) -> bool:
  """The original's check: the whitespace-normalised answer occurs in its words."""
  actual_text = " ".join(doc_tokens[start_position:end_position + 1])
  cleaned_answer_text = " ".join(answer_text.split())
  return actual_text.find(cleaned_answer_text) != -1


def _check_answer(answer: Any, context: str, input_file: str, where: str) -> None:
  """Raises `InputError` unless `answer` is {text: non-empty str, answer_start: int in range}
  and the context holds exactly that text at answer_start.

  The original only skips an answer whose words do not contain its text; an
  answer_start that points at other characters is a broken file (the SQuAD
  releases have none), so it stops the run instead of silently losing data.
  """
  if not isinstance(answer, dict):
    raise located(input_file, where, f"is a JSON {_json_type(answer)}, expected an object")
  text = _field(answer, "text", str, input_file, where)
  start = _field(answer, "answer_start", int, input_file, where)
  if not text.strip():
    raise located(input_file, where, "answer text is empty")
  if start < 0 or start + len(text) > len(context):
    raise located(input_file, where,
                  f"answer_start {start} with an answer of {len(text)} characters is out of range "
                  f"(the context has {len(context)} characters)")
  found = context[start:start + len(text)]
  if found != text:
    raise located(input_file, where,
                  f"answer_start {start} points at {_excerpt(found)}, not at the answer text {_excerpt(text)}")


def _excerpt(text: str, limit: int = 40) -> str:
  return repr(text if len(text) <= limit else text[:limit] + "...")


def _field(obj: dict[str, Any], key: str, expected: type, input_file: str, where: str) -> Any:
  """`obj[key]`, raising `InputError` if it is missing or not of the expected JSON type."""
  if key not in obj:
    raise located(input_file, where, f"has no {key!r}")
  value = obj[key]
  # bool is a subclass of int in Python, but `true` is not a JSON number.
  if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
    raise located(input_file, where,
                  f"{key!r} is a JSON {_json_type(value)}, expected a JSON {_json_type_name(expected)}")
  return value


_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", int: "integer", float: "number",
                    bool: "boolean", type(None): "null"}


def _json_type_name(python_type: type) -> str:
  return _JSON_TYPE_NAMES.get(python_type, python_type.__name__)


def _json_type(value: Any) -> str:
  return _json_type_name(type(value))
