"""Google's released checkpoints and the SQuAD files: the library behind `python -m bert_squad.download`.

  registry   names -> Source (URL, kind, published sha256); groups, mirror URLs, run_squad flags
  transfer   one Source -> a local file or unpacked folder: HTTP resume, retries, size and sha256
  archives   a checkpoint zip -> its files in one folder: zip-slip check, member sha256, rename

No TensorFlow. Only a docstring: no re-exports, so importing one module never imports its siblings."""
