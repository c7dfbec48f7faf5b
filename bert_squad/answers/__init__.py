"""From logits to answers and scores: n-best spans, final text, prediction files, the official metrics.

Only a docstring: no re-exports, so importing one module never imports its siblings."""
