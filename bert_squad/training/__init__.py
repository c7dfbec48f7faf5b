"""Fine-tuning: the optimizer, the tf.data input, distribution strategies, the loop, batched prediction.

Only a docstring: no re-exports, so importing one module never imports its siblings."""
