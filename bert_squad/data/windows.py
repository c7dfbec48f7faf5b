"""One example (question + tokenized context) -> its doc-stride windows (`ExampleWindows`), without TensorFlow.

This is the algorithm of `convert_examples_to_features` in google-research/bert
run_squad.py, step by step:

  * the query is cut to `max_query_length` wordpieces; each window is
    `[CLS] query [SEP] doc [SEP]` with up to `max_seq_length - len(query) - 3`
    document wordpieces;
  * windows start every `doc_stride` document tokens: the stride is the *step*
    between window starts, not the overlap (HF's `doc_stride` is the overlap);
    a step is never longer than the window, so no document token is skipped;
  * `improve_answer_span` and `max_context_spans` (the original's
    `_improve_answer_span` and `_check_is_max_context`) are the original rules;
  * training: a window that does not hold the whole answer, and every window of
    an impossible question, gets start = end = 0.

`plan_example_windows` computes all of this for one example once; callers turn
the plan into `features.InputFeatures` or, in the preprocessing workers,
straight into record bytes (`records.WindowEncoder`). The module imports no
TensorFlow, so worker processes start fast.
"""
from typing import Any, NamedTuple, Sequence

from bert_squad.common.errors import InputError

# Named tuples rather than dataclasses here: lighter, and `dataclasses` imports
# `inspect`, which costs each worker process ~20 ms and 3 MB at start.


class DocSpan(NamedTuple):
  """A window over the doc tokens: the first token's position and the number of tokens."""
  start: int
  length: int


class TokenizedDoc(NamedTuple):
  """A context after WordPiece, shared by the questions of one paragraph.

  Attributes:
    tokens: all wordpieces of the context (the original's `all_doc_tokens`).
    token_ids: their vocabulary ids.
    tok_to_orig_index: wordpiece position -> index into the whitespace words.
    orig_to_tok_index: whitespace word index -> its first wordpiece position.
  """
  tokens: list[str]
  token_ids: list[int]
  tok_to_orig_index: list[int]
  orig_to_tok_index: list[int]


class TrainingAnswer(NamedTuple):
  """The answer fields of a training `squad.SquadExample`.

  Attributes:
    orig_answer_text: the answer as written ("" if impossible).
    start_position, end_position: whitespace-word positions (-1 if impossible).
    is_impossible: SQuAD 2.0 question without an answer.
  """
  orig_answer_text: str
  start_position: int
  end_position: int
  is_impossible: bool


class ExampleWindows(NamedTuple):
  """Everything the windows of one example are built from.

  Attributes:
    query_tokens, query_ids: the (cut) question wordpieces and their ids.
    doc: the tokenized context.
    doc_spans: the windows over `doc.tokens`.
    max_context_span: doc token position -> index of the window in which it
      has the most context.
    answer_span: the answer's first and last doc wordpiece positions, (-1, -1)
      if impossible; None in prediction mode.
    doc_offset: position of the first doc token in a window, after [CLS],
      the query and [SEP].
    num_question_tokens: the question's wordpieces before the cut to
      max_query_length (the original drops the rest silently; callers report it).
  """
  query_tokens: list[str]
  query_ids: list[int]
  doc: TokenizedDoc
  doc_spans: list[DocSpan]
  max_context_span: list[int]
  answer_span: tuple[int, int] | None
  doc_offset: int
  num_question_tokens: int = 0


def training_answer(example: Any) -> TrainingAnswer:
  """The answer fields of a training `squad.SquadExample`."""
  return TrainingAnswer(orig_answer_text=example.orig_answer_text, start_position=example.start_position,
                        end_position=example.end_position, is_impossible=example.is_impossible)


def validate_window_params(max_seq_length: int, doc_stride: int, max_query_length: int) -> None:
  """Raises `InputError`, naming the flag, for settings that cannot make windows (the original's rules).

  Any `doc_stride` >= 1 is accepted, as by the original: a window never starts
  after the end of the one before (`doc_spans`), so no document text is
  skipped; a stride of at least a window's document tokens makes the windows
  meet without overlap.
  """
  if max_query_length < 1:
    raise InputError(f"--max_query_length={max_query_length}: must be at least 1")
  if doc_stride < 1:
    raise InputError(f"--doc_stride={doc_stride}: must be at least 1")
  if max_seq_length <= max_query_length + 3:
    raise InputError(
        f"--max_seq_length={max_seq_length}: must be greater than max_query_length + 3 = {max_query_length + 3}, "
        f"so that a window with the longest question holds a document token ([CLS] query [SEP] doc [SEP])")


def tokenize_doc(doc_tokens: Sequence[str], tokenizer: Any,
                 word_pieces: dict[str, tuple[tuple[str, ...], tuple[int, ...]]]) -> TokenizedDoc:
  """WordPiece-splits each whitespace word of a context, with both index maps.

  `word_pieces` remembers each word's pieces and their ids across calls.
  """
  tokens = []
  token_ids = []
  tok_to_orig_index = []
  orig_to_tok_index = []
  for orig_index, word in enumerate(doc_tokens):
    orig_to_tok_index.append(len(tokens))
    pieces_and_ids = word_pieces.get(word)
    if pieces_and_ids is None:
      pieces = tokenizer.tokenize(word)
      pieces_and_ids = word_pieces[word] = (tuple(pieces), tuple(tokenizer.convert_tokens_to_ids(pieces)))
    pieces, ids = pieces_and_ids
    tokens.extend(pieces)
    token_ids.extend(ids)
    tok_to_orig_index.extend([orig_index] * len(pieces))
  return TokenizedDoc(tokens=tokens, token_ids=token_ids, tok_to_orig_index=tok_to_orig_index,
                      orig_to_tok_index=orig_to_tok_index)


def plan_example_windows(question_text: str, doc: TokenizedDoc, tokenizer: Any, max_seq_length: int,
                         doc_stride: int, max_query_length: int,
                         answer: TrainingAnswer | None) -> ExampleWindows:
  """Tokenizes the question and lays out the example's windows (parameters already validated).

  Args:
    question_text: the question as written.
    doc: the example's tokenized context (`tokenize_doc`).
    tokenizer: a `tokenization.FullTokenizer`.
    max_seq_length, doc_stride, max_query_length: window geometry.
    answer: the training answer, or None in prediction mode.
  """
  all_query_tokens = tokenizer.tokenize(question_text)
  query_tokens = all_query_tokens[:max_query_length]
  # The -3 accounts for [CLS] and the two [SEP].
  spans = doc_spans(len(doc.tokens), max_seq_length - len(query_tokens) - 3, doc_stride)
  return ExampleWindows(
      query_tokens=query_tokens, query_ids=tokenizer.convert_tokens_to_ids(query_tokens), doc=doc,
      doc_spans=spans, max_context_span=max_context_spans(spans, len(doc.tokens)),
      answer_span=None if answer is None else answer_token_span(answer, doc, tokenizer),
      doc_offset=len(query_tokens) + 2,
      num_question_tokens=len(all_query_tokens))


def answer_token_span(answer: TrainingAnswer, doc: TokenizedDoc, tokenizer: Any) -> tuple[int, int]:
  """The answer's first and last wordpiece positions in the context; (-1, -1) if impossible."""
  if answer.is_impossible:
    return -1, -1
  tok_start_position = doc.orig_to_tok_index[answer.start_position]
  if answer.end_position < len(doc.orig_to_tok_index) - 1:
    tok_end_position = doc.orig_to_tok_index[answer.end_position + 1] - 1
  else:
    tok_end_position = len(doc.tokens) - 1
  return improve_answer_span(doc.tokens, tok_start_position, tok_end_position, tokenizer, answer.orig_answer_text)


def improve_answer_span(doc_tokens: list[str], input_start: int, input_end: int, tokenizer: Any,
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


def doc_spans(num_doc_tokens: int, max_tokens_for_doc: int, doc_stride: int) -> list[DocSpan]:
  """Windows of up to `max_tokens_for_doc` tokens starting every `doc_stride` tokens.

  The last window ends at the last token; e.g. 10 tokens, 4 per window,
  stride 3 -> (0, 4), (3, 4), (6, 4). The step is min(window length,
  doc_stride), as in the original: a window starts at the latest where the one
  before ended, so a stride of 4 or more gives (0, 4), (4, 4), (8, 2).
  """
  spans = []
  start = 0
  while start < num_doc_tokens:
    length = min(num_doc_tokens - start, max_tokens_for_doc)
    spans.append(DocSpan(start=start, length=length))
    if start + length == num_doc_tokens:
      break
    start += min(length, doc_stride)
  return spans


def max_context_spans(spans: Sequence[DocSpan], num_doc_tokens: int) -> list[int]:
  """For each doc token, the window in which it has the most context (the original's `_check_is_max_context`).

  A token's context in a window is min(left, right) neighbours within that
  window, plus 0.01 * window length to break ties towards longer windows; the
  first window with the best score wins. Computed for all tokens at once
  rather than per token and window, with the original's arithmetic.
  """
  if len(spans) == 1:
    return [0] * num_doc_tokens  # a lone window is every token's best
  best_scores: list[float | None] = [None] * num_doc_tokens
  best_spans = [0] * num_doc_tokens
  for span_index, span in enumerate(spans):
    end = span.start + span.length - 1
    length_bonus = 0.01 * span.length
    for position in range(span.start, end + 1):
      score = min(position - span.start, end - position) + length_bonus
      best_score = best_scores[position]
      if best_score is None or score > best_score:
        best_scores[position] = score
        best_spans[position] = span_index
  return best_spans


def window_answer_positions(answer_span: tuple[int, int], span: DocSpan, doc_offset: int) -> tuple[int, int]:
  """Training labels of one window: the answer's token positions, or (0, 0) at [CLS].

  (0, 0) when the example is impossible or the window does not hold the
  whole answer.
  """
  tok_start_position, tok_end_position = answer_span
  if tok_start_position < 0:
    return 0, 0
  doc_end = span.start + span.length - 1
  if tok_start_position < span.start or tok_end_position > doc_end:
    return 0, 0
  return tok_start_position - span.start + doc_offset, tok_end_position - span.start + doc_offset
