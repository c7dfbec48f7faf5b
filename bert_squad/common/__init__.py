"""Shared by every stage, no TensorFlow at import.

  errors    InputError (a user's mistake: one line, exit 2), located, first_line, disk_full_message
  io_utils  local and gs:// files: atomic writes, output folders, sha256, free space
  cli       absl entry-point glue: InputError -> one line and exit 2, closed stdout -> exit 141
  progress  the one progress display (tqdm): redrawn on a terminal, a line now and then in a log
  gc_utils  pausing Python's cyclic garbage collector around allocation-heavy loops

Only a docstring: no re-exports, so importing one module never imports its siblings."""
