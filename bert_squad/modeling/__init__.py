"""The BERT config, the span model on tf-models-official's BertEncoder, checkpoints in and out.

Only a docstring: no re-exports, so importing one module never imports its siblings."""
