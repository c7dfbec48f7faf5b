"""Worker-side tokenizing, windowing and encoding, and the worker processes."""
import json
import pathlib
import random
import subprocess
import sys

import pytest

from bert_squad.data import feature_files
from bert_squad.data import feature_workers
from bert_squad.data import features
from bert_squad.data import records
from bert_squad.data import squad
from bert_squad.data import tokenization

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
# Quotes and backslashes need JSON escapes; ##ße and 中 stay UTF-8 in the metadata.
WORDS = ['the', 'man', 'went', 'to', 'store', 'and', 'bought', 'milk', 'what', 'did', 'he', '"', '\\', 'ß', '中',
         'stra', '##ße', 'japan', '##ese', '(', ')', '1895', '-', '.', '?']
TEXT_WORDS = ['the', 'man', 'went', 'to', 'store', 'and', 'bought', 'milk', '"quoted"', 'back\\slash', 'Straße',
              '中文', 'Japanese', '(1895-1943).', 'unknownish', 'MILK?']


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
  path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  path.write_text("\n".join(SPECIALS + WORDS) + "\n", encoding="utf-8")
  return str(path)


def _squad_file(path, rng, num_paragraphs=12):
  """Contexts of 5-80 words (up to ~10 windows of 48 tokens), three questions each, some impossible."""
  articles = []
  for p in range(num_paragraphs):
    words = [rng.choice(TEXT_WORDS) for _ in range(rng.randint(5, 80))]
    context = " ".join(words)
    qas = []
    for q in range(3):
      qa = {"id": f"{p}-{q}", "question": " ".join(rng.choice(TEXT_WORDS) for _ in range(rng.randint(1, 15)))}
      if rng.random() < 0.25:
        qa.update(is_impossible=True, answers=[])
      else:
        first = rng.randrange(len(words))
        last = min(len(words) - 1, first + rng.randint(0, 3))
        start = len(" ".join(words[:first])) + (1 if first else 0)
        qa.update(is_impossible=False, answers=[{"text": " ".join(words[first:last + 1]), "answer_start": start}])
      qas.append(qa)
    articles.append({"title": str(p), "paragraphs": [{"context": context, "qas": qas}]})
  path.write_text(json.dumps({"data": articles}), encoding="utf-8")
  return str(path)


@pytest.fixture(scope="module")
def squad_file(tmp_path_factory):
  return _squad_file(tmp_path_factory.mktemp("squad") / "synthetic.json", random.Random(5))


def _settings(vocab_file, is_training, with_metadata=True):
  return feature_workers.EncodingSettings(
      vocab_tokens=list(tokenization.load_vocab(vocab_file)), do_lower_case=True, max_seq_length=48, doc_stride=8,
      max_query_length=12, is_training=is_training, with_metadata=with_metadata)


def _examples(squad_file, is_training):
  examples, _ = squad.read_squad_examples(squad_file, is_training, version_2_with_negative=True)
  return squad.shuffle_examples(examples) if is_training else examples


@pytest.mark.parametrize("is_training", [False, True])
def test_encoded_windows_equal_the_input_features_path(squad_file, vocab_file, is_training):
  examples = _examples(squad_file, is_training)
  expected = features.convert_examples_to_features(examples, tokenization.FullTokenizer(vocab_file, True), 48, 8,
                                                   12, is_training)
  encoder = feature_workers.ChunkEncoder(_settings(vocab_file, is_training))
  encoded = [window for chunk in feature_workers.example_chunks(examples, is_training, chunk_examples=4)
             for window in encoder.encode(chunk).windows]
  assert len(encoded) == len(expected) > 2 * len(examples)
  all_tokens = {token for f in expected for token in f.tokens}
  assert max(f.doc_span_index for f in expected) > 3 and {'"', "\\", "##ße", "中"} <= all_tokens
  for feature, (entries, metadata_tail) in zip(expected, encoded):
    assert records.finish_example(entries, feature.unique_id) == feature_files.serialize_feature(feature, is_training)
    metadata_line = records.metadata_head(feature.unique_id) + metadata_tail
    assert metadata_line == feature_files.feature_metadata_line(feature).encode("utf-8")


def test_without_metadata_only_records(squad_file, vocab_file):
  encoder = feature_workers.ChunkEncoder(_settings(vocab_file, False, with_metadata=False))
  (chunk,) = feature_workers.example_chunks(_examples(squad_file, False)[:3], False)
  assert all(tail is None and entries for entries, tail in encoder.encode(chunk).windows)


def test_chunks_end_where_a_paragraph_ends(squad_file):
  examples = _examples(squad_file, False)
  consumed = list(examples)
  chunks = list(feature_workers.example_chunks(consumed, False, chunk_examples=4))
  assert consumed == [None] * len(examples)  # handed over to the chunks
  # Three questions per paragraph: 4 examples round up to the paragraph's end.
  assert [len(c.examples) for c in chunks] == [6] * 6
  assert [c.first_example_index for c in chunks] == list(range(0, 36, 6))
  for chunk in chunks:
    for offset, (key, question_text, answer) in enumerate(chunk.examples):
      example = examples[chunk.first_example_index + offset]
      assert (key, question_text, answer) == (example.paragraph_index, example.question_text, None)
      assert chunk.contexts[key].split(" ") == example.doc_tokens
  # Shuffled: 4 examples, more only to finish a run of one paragraph's examples.
  shuffled = _examples(squad_file, True)
  chunks = list(feature_workers.example_chunks(list(shuffled), True, chunk_examples=4))
  assert sum(len(c.examples) for c in chunks) == len(shuffled) and len(chunks) > 5
  for chunk, next_chunk in zip(chunks, chunks[1:]):
    last = chunk.first_example_index + len(chunk.examples) - 1
    assert next_chunk.first_example_index == last + 1
    assert len(chunk.examples) == 4 or shuffled[last].paragraph_index == shuffled[last - 1].paragraph_index
    assert shuffled[last].paragraph_index != shuffled[last + 1].paragraph_index


@pytest.fixture
def started_workers(monkeypatch):
  """The worker processes the test starts, to check that none is left running."""
  started = []
  real_popen = subprocess.Popen

  def recording_popen(*args, **kwargs):
    started.append(real_popen(*args, **kwargs))
    return started[-1]

  monkeypatch.setattr(feature_workers.subprocess, "Popen", recording_popen)
  return started


@pytest.mark.parametrize("num_workers", [2, 3, 4])
def test_workers_return_every_chunk_in_order(squad_file, vocab_file, started_workers, num_workers):
  settings = _settings(vocab_file, True)
  chunks = list(feature_workers.example_chunks(_examples(squad_file, True), True, chunk_examples=5))
  with feature_workers.chunk_encoding(settings, 1) as encode:
    expected = list(encode(chunks))
  with feature_workers.chunk_encoding(settings, num_workers) as encode:
    assert list(encode(chunks)) == expected
  # This process encodes its share: num_workers - 1 worker processes.
  assert len(started_workers) == num_workers - 1 and all(p.returncode == 0 for p in started_workers)


def test_worker_failure_is_raised_and_workers_are_stopped(vocab_file, started_workers):
  good = feature_workers.ExampleChunk(first_example_index=0, contexts={0: "the man"}, examples=[(0, "what?", None)])
  broken = feature_workers.ExampleChunk(first_example_index=1, contexts={}, examples=[(7, "what?", None)])
  received = []
  with pytest.raises(RuntimeError, match=r"preprocessing worker \d+ failed:(.|\n)*KeyError: 7"):
    with feature_workers.chunk_encoding(_settings(vocab_file, False), 2) as encode:
      # Turns: this process, the worker, the worker, this process, ...
      received.extend(encode([good, good, broken] + [good] * 10))
  assert len(received) == 2
  assert len(started_workers) == 1 and all(p.poll() is not None for p in started_workers)


def test_failure_in_this_process_stops_the_workers(vocab_file, started_workers):
  good = feature_workers.ExampleChunk(first_example_index=0, contexts={0: "the man"}, examples=[(0, "what?", None)])
  broken = feature_workers.ExampleChunk(first_example_index=1, contexts={}, examples=[(7, "what?", None)])
  with pytest.raises(KeyError):
    with feature_workers.chunk_encoding(_settings(vocab_file, False), 3) as encode:
      # Turns: this process, worker 1, worker 2, worker 1, worker 2, this process, ...
      list(encode([good] * 5 + [broken] + [good] * 20))
  assert len(started_workers) == 2 and all(p.poll() is not None for p in started_workers)


def test_chunk_iterator_error_is_raised(squad_file, vocab_file, started_workers):
  chunks = feature_workers.example_chunks(_examples(squad_file, False), False, chunk_examples=3)

  def failing_chunks():
    yield next(chunks)
    raise ValueError("no more chunks today")

  with pytest.raises(ValueError, match="no more chunks today"):
    with feature_workers.chunk_encoding(_settings(vocab_file, False), 2) as encode:
      list(encode(failing_chunks()))
  assert all(p.poll() is not None for p in started_workers)


def test_no_chunks_no_results(vocab_file):
  with feature_workers.chunk_encoding(_settings(vocab_file, False), 2) as encode:
    assert not list(encode([]))


def test_worker_imports_no_tensorflow():
  code = ("import sys; from bert_squad.data import feature_workers; "
          "assert not {'tensorflow', 'official', 'google.protobuf'} & set(sys.modules), sorted(sys.modules)")
  result = subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO_ROOT)}, timeout=120)
  assert result.returncode == 0, result.stderr
