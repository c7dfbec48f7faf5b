"""Everything in-graph: the SavedModel for TF Serving, and answers from an exported model.

- answer_settings: `AnswerSettings`, what the `answer` signature does.
- text_tokenizer: the original `FullTokenizer` in graph ops, with raw-text offsets.
- graph_windows: the original's doc-stride windows in graph ops.
- graph_spans: the original n-best search and SQuAD 2.0 null score in graph ops.
- serving_module: the `tf.Module` with the `logits` and `answer` functions.
- saved_model: writes the SavedModel (from a model or a fine-tuned checkpoint folder).
- answer_requests: JSON-lines requests answered by an exported model's `answer` signature.

Only a docstring: no re-exports, so importing one module never imports its siblings."""
