"""SquadExamples -> `InputFeatures`, one per doc-stride window (the original `convert_examples_to_features`).

Takes `squad.SquadExample`s and a `FullTokenizer`; gives `InputFeatures`
with tokens [<= max_seq_length], input_ids/input_mask/segment_ids
[max_seq_length] int, and the maps postprocessing needs. Writing them to
files is `feature_files`.

The windowing is the original `convert_examples_to_features` (google-research/bert
run_squad.py), unchanged in meaning; its steps live in `windows` (see there).
`is_impossible` is the EXAMPLE's flag, as in the original (tf-models-official's
squad_lib sets it per window to "window lacks the answer", a known divergence).

What is new is speed, not meaning: a paragraph's context is tokenized once and
shared by all its questions (`SquadExample.paragraph_index`), each distinct
word is tokenized once, and windows are built from slices of precomputed ids.
The TFRecord payloads are encoded by `records` (deterministic bytes); the
preprocessing workers write the same bytes without building `InputFeatures`.
"""
import dataclasses
from typing import Any, Iterable, Iterator, Sequence

from absl import logging

from bert_squad.data import records
from bert_squad.data import windows
from bert_squad.data.squad import SquadExample

MAX_CUT_QUESTION_WARNINGS = 5  # per file; then one line with the total


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
      `windows.validate_window_params`.
    is_training: set start/end positions and `is_impossible`.

  Returns:
    An iterator of `InputFeatures` with unique ids from 1000000000 and
    `example_index` the position of the example in `examples`.

  Raises:
    InputError: at once (not at the first `next`) for bad window parameters.
  """
  windows.validate_window_params(max_seq_length, doc_stride, max_query_length)
  return _generate_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length, is_training)


def _generate_features(examples: Iterable[SquadExample], tokenizer: Any, max_seq_length: int, doc_stride: int,
                       max_query_length: int, is_training: bool) -> Iterator[InputFeatures]:
  """The body of `iter_features`, after the parameters were checked."""
  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
  docs_by_paragraph: dict[int, windows.TokenizedDoc] = {}
  word_pieces: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}
  unique_id = records.FIRST_UNIQUE_ID
  cut_questions = 0
  for example_index, example in enumerate(examples):
    doc = _shared_tokenized_doc(example, tokenizer, docs_by_paragraph, word_pieces)
    plan = windows.plan_example_windows(example.question_text, doc, tokenizer, max_seq_length, doc_stride,
                                        max_query_length, windows.training_answer(example) if is_training else None)
    if plan.num_question_tokens > max_query_length:
      cut_questions += 1
      if cut_questions <= MAX_CUT_QUESTION_WARNINGS:
        warn_cut_question(example.qas_id, plan.num_question_tokens, max_query_length)
    for doc_span_index, doc_span in enumerate(plan.doc_spans):
      feature = InputFeatures(
          unique_id=unique_id,
          example_index=example_index,
          doc_span_index=doc_span_index,
          **_window_inputs(plan, doc_span_index, max_seq_length, cls_id, sep_id))
      if is_training:
        feature.start_position, feature.end_position = windows.window_answer_positions(
            plan.answer_span, doc_span, plan.doc_offset)
        feature.is_impossible = example.is_impossible
      yield feature
      unique_id += 1
  warn_cut_questions(cut_questions, max_query_length)


def warn_cut_question(qas_id: str, num_tokens: int, max_query_length: int) -> None:
  """The original silently keeps the first max_query_length wordpieces; this says so.

  Callers warn for the first `MAX_CUT_QUESTION_WARNINGS` questions of a file, then
  `warn_cut_questions` gives the total.
  """
  logging.warning("question %r has %d wordpieces; only the first max_query_length=%d are used",
                  qas_id, num_tokens, max_query_length)


def warn_cut_questions(count: int, max_query_length: int) -> None:
  """One summary line for the questions cut to max_query_length (none: no line)."""
  if count:
    logging.warning("%d question(s) longer than max_query_length=%d wordpieces were cut to that length",
                    count, max_query_length)


def convert_examples_to_features(examples: Sequence[SquadExample], tokenizer: Any, max_seq_length: int = 384,
                                 doc_stride: int = 128, max_query_length: int = 64,
                                 is_training: bool = False) -> list[InputFeatures]:
  """`iter_features` collected into a list (the original's result)."""
  return list(iter_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length, is_training))


def _shared_tokenized_doc(example: SquadExample, tokenizer: Any,
                          docs_by_paragraph: dict[int, windows.TokenizedDoc],
                          word_pieces: dict[str, tuple[tuple[str, ...], tuple[int, ...]]]) -> windows.TokenizedDoc:
  """The example's tokenized context, computed once per paragraph."""
  if example.paragraph_index < 0:
    return windows.tokenize_doc(example.doc_tokens, tokenizer, word_pieces)
  doc = docs_by_paragraph.get(example.paragraph_index)
  if doc is None:
    doc = windows.tokenize_doc(example.doc_tokens, tokenizer, word_pieces)
    docs_by_paragraph[example.paragraph_index] = doc
  return doc


def _window_inputs(plan: windows.ExampleWindows, doc_span_index: int, max_seq_length: int, cls_id: int,
                   sep_id: int) -> dict[str, Any]:
  """Tokens, maps and padded model inputs of `[CLS] query [SEP] doc-window [SEP]`."""
  doc, doc_span, doc_offset = plan.doc, plan.doc_spans[doc_span_index], plan.doc_offset
  doc_begin, doc_end = doc_span.start, doc_span.start + doc_span.length
  positions = range(doc_offset, doc_offset + doc_span.length)
  tokens = ["[CLS]", *plan.query_tokens, "[SEP]", *doc.tokens[doc_begin:doc_end], "[SEP]"]
  input_ids = [cls_id, *plan.query_ids, sep_id, *doc.token_ids[doc_begin:doc_end], sep_id]
  num_padding = max_seq_length - len(input_ids)
  is_max_context = [best == doc_span_index for best in plan.max_context_span[doc_begin:doc_end]]
  return dict(
      tokens=tokens,
      token_to_orig_map=dict(zip(positions, doc.tok_to_orig_index[doc_begin:doc_end])),
      token_is_max_context=dict(zip(positions, is_max_context)),
      input_ids=input_ids + [0] * num_padding,
      input_mask=[1] * len(input_ids) + [0] * num_padding,
      segment_ids=[0] * doc_offset + [1] * (doc_span.length + 1) + [0] * num_padding)
