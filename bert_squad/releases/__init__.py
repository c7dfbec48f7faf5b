"""Google's released checkpoints and the SQuAD files: the library of bert_squad.download.

registry.py  names -> Source (URL, kind, published sha256); groups, mirror URLs, run_squad flags
transfer.py  one Source -> a local file or unpacked folder: HTTP resume, retries, size and sha256
archives.py  a checkpoint zip -> its files in one folder: zip-slip check, member sha256, rename

Only a docstring: no re-exports, so importing one module never imports its siblings."""
