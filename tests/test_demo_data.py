"""The embedded demo dataset (`bert_squad/demo_data/`) is well-formed SQuAD v1.1 / v2.0.

Read with plain `json`, exactly as the official evaluators and the original
`run_squad.py` read SQuAD files. The files are located through the package, as
the demo flagfile does, so this also fails if they are moved out of the package.
"""
import collections
import json
import pathlib
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import bert_squad

DEMO_DIR = pathlib.Path(bert_squad.__file__).parent / "demo_data"
FILE_NAMES = ("squad1.1_demo_train.json", "squad1.1_demo_dev.json", "squad2.0_demo_train.json", "squad2.0_demo_dev.json")
VERSIONS = {"v1.1": "1.1", "v2.0": "v2.0"}  # the "version" field of the official releases
# Answerable questions per split: "a few hundred" in all, dev ~15% of it.
ANSWERABLE_RANGE = {"train": (400, 520), "dev": (60, 120)}
MAX_TOTAL_BYTES = 400 * 1024
# [CLS] question [SEP] paragraph [SEP] of every demo question fits this many
# WordPiece tokens (Google's uncased vocabulary), so the demo can train with
# max_seq_length=160 and see every paragraph whole, in one window.
DEMO_WINDOW_TOKENS = 160


def load(name: str) -> Dict[str, Any]:
  with open(DEMO_DIR / name, encoding="utf-8") as f:
    return json.load(f)


def questions(dataset: Dict[str, Any]) -> Iterator[Tuple[str, Dict[str, Any]]]:
  """Yields (context, qa) for every question of a SQuAD dataset."""
  for article in dataset["data"]:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        yield paragraph["context"], qa


def contexts(dataset: Dict[str, Any]) -> List[str]:
  return [p["context"] for a in dataset["data"] for p in a["paragraphs"]]


@pytest.fixture(scope="module")
def datasets() -> Dict[str, Dict[str, Any]]:
  return {name: load(name) for name in FILE_NAMES}


def test_exactly_the_four_files_are_shipped_and_small():
  shipped = sorted(p.name for p in DEMO_DIR.glob("*.json"))
  assert shipped == sorted(FILE_NAMES)
  assert sum((DEMO_DIR / n).stat().st_size for n in FILE_NAMES) < MAX_TOTAL_BYTES


@pytest.mark.parametrize("name", FILE_NAMES)
def test_squad_structure(datasets, name):
  dataset = datasets[name]
  is_v2 = name.startswith("squad2.0")
  assert set(dataset) == {"version", "data"}
  assert dataset["version"] == VERSIONS["v2.0" if is_v2 else "v1.1"]
  assert dataset["data"], name
  for article in dataset["data"]:
    assert isinstance(article["title"], str) and article["title"]
    assert article["paragraphs"]
    for paragraph in article["paragraphs"]:
      assert isinstance(paragraph["context"], str)
      assert paragraph["qas"]
      for qa in paragraph["qas"]:
        expected_keys = {"id", "question", "answers"} | ({"is_impossible"} if is_v2 else set())
        assert set(qa) == expected_keys, qa
        assert isinstance(qa["id"], str) and qa["id"]
        assert qa["question"].strip().endswith("?"), qa
        for answer in qa["answers"]:
          assert set(answer) == {"text", "answer_start"}
          assert isinstance(answer["answer_start"], int) and not isinstance(answer["answer_start"], bool)


def test_contexts_are_single_spaced_so_answers_map_to_whitespace_tokens(datasets):
  # The original run_squad.py splits contexts on whitespace and re-joins the
  # answer's words with single spaces before checking the answer is there.
  for name in FILE_NAMES:
    for context in contexts(datasets[name]):
      assert context == " ".join(context.split()), (name, context[:60])
      assert 60 <= len(context.split()) <= 140, (name, context[:60])


@pytest.mark.parametrize("name", FILE_NAMES)
def test_every_answer_is_the_exact_span_at_answer_start(datasets, name):
  for context, qa in questions(datasets[name]):
    for answer in qa["answers"]:
      start, text = answer["answer_start"], answer["text"]
      assert text and text == text.strip(), qa["id"]
      assert 0 <= start and context[start:start + len(text)] == text, (qa["id"], text)


@pytest.mark.parametrize("version", ["v1.1", "v2.0"])
def test_answer_counts(datasets, version):
  # Training needs exactly one answer per answerable question (the original
  # run_squad.py raises otherwise); dev questions carry 1-3 acceptable spans.
  for context, qa in questions(datasets[f"squad{version[1:]}_demo_train.json"]):
    if not qa.get("is_impossible", False):
      assert len(qa["answers"]) == 1, qa["id"]
  dev_counts = collections.Counter(
      len(qa["answers"]) for _, qa in questions(datasets[f"squad{version[1:]}_demo_dev.json"])
      if not qa.get("is_impossible", False))
  assert set(dev_counts) <= {1, 2, 3}
  assert dev_counts[2] + dev_counts[3] > 0, "dev should have alternative answers like the real dev set"


def test_dev_alternative_answers_overlap_the_first(datasets):
  for context, qa in questions(datasets["squad1.1_demo_dev.json"]):
    first = qa["answers"][0]
    first_span = range(first["answer_start"], first["answer_start"] + len(first["text"]))
    for answer in qa["answers"][1:]:
      span = range(answer["answer_start"], answer["answer_start"] + len(answer["text"]))
      assert set(first_span) & set(span), (qa["id"], first["text"], answer["text"])


def test_v2_impossible_questions_have_no_answers(datasets):
  for split in ("train", "dev"):
    impossible = answerable = 0
    for _, qa in questions(datasets[f"squad2.0_demo_{split}.json"]):
      assert isinstance(qa["is_impossible"], bool)
      if qa["is_impossible"]:
        assert qa["answers"] == [], qa["id"]
        impossible += 1
      else:
        assert qa["answers"], qa["id"]
        answerable += 1
    # "About one extra unanswerable question for every three answerable ones."
    assert 0.25 * answerable <= impossible <= 0.45 * answerable, (split, impossible, answerable)


def test_v2_answerable_questions_are_the_v1_questions(datasets):
  for split in ("train", "dev"):
    v1 = {qa["id"]: (context, qa["question"], qa["answers"]) for context, qa in
          questions(datasets[f"squad1.1_demo_{split}.json"])}
    v2 = {qa["id"]: (context, qa["question"], qa["answers"]) for context, qa in
          questions(datasets[f"squad2.0_demo_{split}.json"]) if not qa["is_impossible"]}
    assert v1 == v2, split
    assert contexts(datasets[f"squad1.1_demo_{split}.json"]) == contexts(datasets[f"squad2.0_demo_{split}.json"])


def test_ids_are_unique(datasets):
  # Within each file, across train and dev, and impossible v2 ids never reuse a
  # v1 id (answerable v2 questions keep their v1 id, as in the real releases).
  for name in FILE_NAMES:
    ids = [qa["id"] for _, qa in questions(datasets[name])]
    assert len(ids) == len(set(ids)), name
  v2_ids = collections.Counter(
      qa["id"] for split in ("train", "dev") for _, qa in questions(datasets[f"squad2.0_demo_{split}.json"]))
  assert max(v2_ids.values()) == 1
  v1_ids = {qa["id"] for split in ("train", "dev") for _, qa in questions(datasets[f"squad1.1_demo_{split}.json"])}
  impossible_ids = {qa["id"] for split in ("train", "dev") for _, qa in
                    questions(datasets[f"squad2.0_demo_{split}.json"]) if qa["is_impossible"]}
  assert not v1_ids & impossible_ids
  assert len(v1_ids) == sum(1 for split in ("train", "dev") for _ in questions(datasets[f"squad1.1_demo_{split}.json"]))


def test_train_and_dev_are_disjoint_by_article_and_paragraph(datasets):
  for version in ("v1.1", "v2.0"):
    train, dev = datasets[f"squad{version[1:]}_demo_train.json"], datasets[f"squad{version[1:]}_demo_dev.json"]
    assert not {a["title"] for a in train["data"]} & {a["title"] for a in dev["data"]}
    assert not set(contexts(train)) & set(contexts(dev))
    for dataset in (train, dev):
      assert len(set(contexts(dataset))) == len(contexts(dataset))


def test_question_counts_are_in_the_expected_range(datasets):
  counts = {split: sum(1 for _ in questions(datasets[f"squad1.1_demo_{split}.json"])) for split in ("train", "dev")}
  for split, (low, high) in ANSWERABLE_RANGE.items():
    assert low <= counts[split] <= high, (split, counts[split])
  paragraphs = {split: len(contexts(datasets[f"squad1.1_demo_{split}.json"])) for split in ("train", "dev")}
  dev_share = paragraphs["dev"] / (paragraphs["train"] + paragraphs["dev"])
  assert 0.10 <= dev_share <= 0.20, paragraphs


def test_every_question_and_paragraph_fit_one_demo_window(datasets, minilm_dir):
  from official.nlp.tools import tokenization  # the reference port of Google's tokenizer
  tokenizer = tokenization.FullTokenizer(str(minilm_dir / "vocab.txt"), do_lower_case=True)
  context_tokens = {}
  for name in ("squad2.0_demo_train.json", "squad2.0_demo_dev.json"):
    for context, qa in questions(datasets[name]):
      if context not in context_tokens:
        context_tokens[context] = len(tokenizer.tokenize(context))
      length = len(tokenizer.tokenize(qa["question"])) + context_tokens[context] + 3
      assert length <= DEMO_WINDOW_TOKENS, (qa["id"], length)
