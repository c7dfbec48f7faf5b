"""The `tf.Module` behind the SavedModel: the span model plus its `logits` and `answer` functions.

`logits`: int32 input_ids, input_mask, segment_ids [batch, seq] -> float32
start_logits, end_logits [batch, seq]. `answer`: string question, context
[batch] -> answer string, score, null_score float32, start_char, end_char,
num_windows, window_width int32, each [batch] (see `bert_squad/export.py`).
`answer_trimmed`: the same with the model run only on the first
`window_width` positions of every window: the batch's longest window
rounded up to a multiple of `trim_granularity` (`length_buckets.batch_width`).

Why a second signature rather than trimming inside `answer`: `answer` is
the original computation (every window padded to max_seq_length), and stays
so for every client; `answer_trimmed` is the opt-in fast path that
`python -m bert_squad.predict --length_bucketing` feeds with questions of
similar length. Trimming never changes a real position's logits (the
attention mask already hides the padding), but the n-best search then no
longer sees the padding's logits: where the padded run let a padding
position take one of a window's n_best_size start or end slots, the trimmed
run keeps one more real candidate there, which can change the best span
(`length_buckets` and docs/training.md say the same of run_squad.py).
"""
import tensorflow as tf

from bert_squad.data import records
from bert_squad.modeling import span_model
from bert_squad.serving import answer_settings
from bert_squad.serving import graph_spans
from bert_squad.serving import graph_windows
from bert_squad.serving import text_tokenizer
from bert_squad.training import length_buckets

LOGITS_SIGNATURE = "logits"
ANSWER_SIGNATURE = "answer"
ANSWER_TRIMMED_SIGNATURE = "answer_trimmed"
# The original's nonce prediction when no span is valid (SQuAD 1.1 models).
NO_SPAN_TEXT = "empty"


class SquadServingModule(tf.Module):
  """The span model with the `logits` and `answer` functions (see the module docstring)."""

  def __init__(self, model: span_model.BertSpanModel, vocab_file: str,
               settings: answer_settings.AnswerSettings, answer_signature: bool = True,
               trim_granularity: int = length_buckets.DEFAULT_GRANULARITY):
    super().__init__()
    self._settings = settings
    self._trim_granularity = trim_granularity
    # The Keras model is only called, never tracked: the SavedModel holds its
    # variables and the traced graphs, not Keras objects, so loading needs
    # neither Keras nor this project.
    self._call_model = lambda inputs: model(inputs, training=False)
    self.model_variables = list(model.variables)
    self.vocab_file = tf.saved_model.Asset(vocab_file)
    ids_spec = tf.TensorSpec([None, None], tf.int32)
    self.logits = tf.function(
        self._logits, input_signature=[ids_spec] * len(records.INPUT_KEYS))
    if answer_signature:
      self.tokenizer = text_tokenizer.WordpieceTokenizerWithOffsets(self.vocab_file,
                                                                    settings.do_lower_case)
      text_spec = [tf.TensorSpec([None], tf.string, name="question"),
                   tf.TensorSpec([None], tf.string, name="context")]
      self.answer = tf.function(self._answer, input_signature=text_spec)
      self.answer_trimmed = tf.function(self._answer_trimmed, input_signature=text_spec)

  def serving_signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """Signature name -> concrete function, for `tf.saved_model.save`."""
    logits = self.logits.get_concrete_function()
    signatures = {tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: logits,
                  LOGITS_SIGNATURE: logits}
    if hasattr(self, "answer"):
      signatures[ANSWER_SIGNATURE] = self.answer.get_concrete_function()
      signatures[ANSWER_TRIMMED_SIGNATURE] = self.answer_trimmed.get_concrete_function()
    return signatures

  def _logits(self, input_ids: tf.Tensor, input_mask: tf.Tensor,
              segment_ids: tf.Tensor) -> dict[str, tf.Tensor]:
    """int32 [batch, seq] each -> float32 `start_logits`, `end_logits` [batch, seq]."""
    return self._call_model({"input_ids": input_ids, "input_mask": input_mask,
                             "segment_ids": segment_ids})

  def _window_logits(self, inputs: dict[str, tf.Tensor],
                     trim: bool) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """int32 [W, max_seq_length] each -> (logits [W, max_seq_length], int32 width computed).

    With `trim`, the model runs on the first width positions only
    (`length_buckets.batch_width`) and the positions past it get
    `length_buckets.FILL_LOGIT`, below any real logit, so they never rank
    among a window's best.
    """
    max_seq_length = self._settings.max_seq_length
    if not trim:
      return self._call_model(inputs), tf.constant(max_seq_length, tf.int32)
    width = length_buckets.batch_width(inputs["input_mask"], max_seq_length,
                                       self._trim_granularity)
    logits = self._call_model({name: value[:, :width] for name, value in inputs.items()})
    fill = [[0, 0], [0, max_seq_length - width]]
    return {name: tf.ensure_shape(tf.pad(value, fill, constant_values=length_buckets.FILL_LOGIT),
                                  [None, max_seq_length])
            for name, value in logits.items()}, width

  def _answer_trimmed(self, question: tf.Tensor, context: tf.Tensor) -> dict[str, tf.Tensor]:
    """`_answer` with the windows trimmed to the batch's longest (see the module docstring)."""
    return self._answer(question, context, trim=True)

  def _answer(self, question: tf.Tensor, context: tf.Tensor,
              trim: bool = False) -> dict[str, tf.Tensor]:
    """string [batch] each -> answer, score, null_score, start_char, end_char, num_windows, window_width [batch]."""
    settings = self._settings
    tf.debugging.assert_equal(tf.size(question), tf.size(context),
                              message="question and context must have the same length")
    query = self.tokenizer.tokenize_with_offsets(question).ids[:, :settings.max_query_length]
    doc = self.tokenizer.tokenize_with_offsets(context)
    windows = graph_windows.build_windows(query, doc.ids, self.tokenizer.cls_id,
                                          self.tokenizer.sep_id, settings.max_seq_length,
                                          settings.doc_stride)
    logits, width = self._window_logits(windows.inputs, trim)
    spans = graph_spans.best_span_per_example(
        graph_spans.best_span_per_window(logits["start_logits"], logits["end_logits"], windows,
                                         settings),
        windows.num_windows)
    null_score = graph_spans.null_score_per_example(logits["start_logits"], logits["end_logits"],
                                                    windows.num_windows)
    is_span = spans.found
    if settings.version_2_with_negative:
      # The original compares (null - start) - end, in this order.
      is_span &= (null_score - spans.start_logit - spans.end_logit <=
                  settings.null_score_diff_threshold)
    first = tf.cast(doc.ids.row_starts(), tf.int32)
    start = first + spans.start_token
    end = first + spans.end_token
    begin_byte = graph_spans.gather_or_default(doc.begin_byte.flat_values, start, is_span, 0)
    end_byte = graph_spans.gather_or_default(doc.end_byte.flat_values, end, is_span, 0)
    no_answer = "" if settings.version_2_with_negative else NO_SPAN_TEXT
    return {
        "answer": tf.where(is_span, tf.strings.substr(context, begin_byte, end_byte - begin_byte),
                           no_answer),
        "score": tf.cast(spans.start_logit + spans.end_logit, tf.float32),
        "null_score": tf.cast(null_score, tf.float32),
        "start_char": graph_spans.gather_or_default(doc.begin_char.flat_values, start, is_span,
                                                    -1),
        "end_char": graph_spans.gather_or_default(doc.end_char.flat_values, end, is_span, -1),
        "num_windows": windows.num_windows,
        "window_width": tf.fill(tf.shape(question), width),
    }
