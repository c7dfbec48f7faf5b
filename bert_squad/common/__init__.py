"""Shared by every stage, no TensorFlow at import: errors, file I/O, the CLI glue, progress.

Only a docstring: no re-exports, so importing one module never imports its siblings."""
