"""SQuAD JSON -> tokens -> doc-stride windows -> features -> TFRecord, without TensorFlow.

Only a docstring: no re-exports, so importing one module never imports its siblings."""
