"""Everything in-graph: the SavedModel for TF Serving, and answers from an exported model.

  answer_settings   AnswerSettings: what the `answer` signature does (window, n-best, null threshold)
  text_tokenizer    question/context strings -> WordPiece ids + raw-text offsets, in graph ops
  graph_windows     token ids [batch, None] -> the original's doc-stride windows [W, max_seq_length]
  graph_spans       start/end logits [W, seq] -> best span per example [batch]; the v2.0 null score
  serving_module    the tf.Module with the `logits` and `answer` functions
  saved_model       a span model or a fine-tuned checkpoint folder -> a SavedModel folder
  answer_requests   JSON-lines requests -> answers from an exported model's `answer` signature

Only a docstring: no re-exports, so importing one module never imports its siblings."""
