"""The whole SQuAD job: features -> fine-tuning -> predictions -> scores.

`run(run_config.RunConfig)` is what `run_squad.py` does after parsing its flags. Each step
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
import functools
import json
import os
import sys

import tensorflow as tf
import tf_keras
from absl import logging

from bert_squad import run_config
from bert_squad.answers import evaluation
from bert_squad.answers import logits_io
from bert_squad.answers import metrics
from bert_squad.answers import prediction_files
from bert_squad.answers import rewrite
from bert_squad.common import io_utils
from bert_squad.common.io_utils import make_output_dir
from bert_squad.common.io_utils import write_json
from bert_squad.data import cache
from bert_squad.data import feature_files
from bert_squad.data import tokenization
from bert_squad.modeling import google_format
from bert_squad.modeling import hf_safetensors
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model
from bert_squad.modeling import training_state
from bert_squad.modeling import weight_map
from bert_squad.training import distribution
from bert_squad.training import input_pipeline
from bert_squad.training import length_buckets
from bert_squad.training import loop
from bert_squad.training import loop_config
from bert_squad.training import memory_estimate
from bert_squad.training import optimization
from bert_squad.training import prediction
from bert_squad.training import run_settings

EVAL_FILE = "eval.json"
PLOTS_DIR = "plots"




def run(config: run_config.RunConfig) -> dict:
  """Runs the job described by `config`; returns the eval scores ({} without do_eval).

  Raises:
    InputError: a user mistake (flags, files); nothing half-written is left.
  """
  run_config.validate_run_config(config)
  run_config.check_squad_version(config)
  make_output_dir(config.output_dir, "--output_dir")
  if config.cache_dir:
    make_output_dir(config.cache_dir, "--cache_dir")
  bert_config_file, vocab_file, init_checkpoint = run_config.resolve_pretrained(config)
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
  distribution.check_cloud_paths(distribution.remote_tpu_master(strategy), {
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




def _load_initial_weights(model: span_model.BertSpanModel, init_checkpoint: str | None) -> list[str]:
  """Loads --init_checkpoint (Google checkpoint or HF safetensors); returns the Google names loaded."""
  if not init_checkpoint:
    logging.warning("no --init_checkpoint: the encoder starts from random weights")
    return []
  if init_checkpoint.endswith(".safetensors"):
    return hf_safetensors.load_safetensors(model, init_checkpoint)
  return google_format.load_google_checkpoint(model, init_checkpoint)


def _train(config: run_config.RunConfig, strategy: tf.distribute.Strategy, bert_config: model_config.BertConfig,
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
    model = span_model.build_span_model(bert_config, config.max_seq_length,
                                        gradient_checkpointing=config.gradient_checkpointing)
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
  trimmed = _trims_training(config, strategy)
  dataset_fn = functools.partial(input_pipeline.make_dataset, train_record, config.max_seq_length,
                                 micro_batch, True, seed=config.seed, length_bucketing=trimmed,
                                 keep_padded_updates=config.trim_micro_batches,
                                 accumulation_steps=config.gradient_accumulation_steps)
  train_config = loop_config.TrainConfig(
      output_dir=config.output_dir, num_train_steps=num_steps,
      train_batch_size=config.train_batch_size,
      steps_per_loop=config.iterations_per_loop,
      save_checkpoints_steps=config.save_checkpoints_steps,
      keep_checkpoint_max=config.keep_checkpoint_max, log_steps=config.log_steps,
      gradient_accumulation_steps=config.gradient_accumulation_steps, dtype=config.dtype,
      use_xla=config.use_xla, mask_padding_logits=trimmed or config.mask_padding_in_loss,
      max_seq_length=config.max_seq_length if trimmed else None)
  if distribution.is_chief(strategy):
    run_settings.record(config.output_dir, settings, paths)
  _log_memory_estimate(config, strategy, bert_config)
  loop.train(model, optimizer, span_model.span_loss, dataset_fn, strategy, train_config)
  if distribution.is_chief(strategy):
    google_format.export_google_checkpoint(model, vocab_file, export_dir)
    logging.info("exported the fine-tuned model in Google's format to %s", export_dir)
  return model


def _trims_training(config: run_config.RunConfig, strategy: tf.distribute.Strategy) -> bool:
  """Whether training batches are trimmed: --length_bucketing or --trim_micro_batches, except on a TPU.

  A TPU compiles its whole host loop for one input shape, so there training
  keeps the original's static, padded batches (and its loss); prediction,
  which compiles each batch shape once, is still bucketed.
  """
  if not (config.length_bucketing or config.trim_micro_batches):
    return False
  if isinstance(strategy, tf.distribute.TPUStrategy):
    flag = "--length_bucketing" if config.length_bucketing else "--trim_micro_batches"
    logging.warning("%s: a TPU needs static shapes, so training pads every window to --max_seq_length=%d "
                    "as without the flag", flag, config.max_seq_length)
    return False
  if config.length_bucketing:
    logging.info("training in length buckets: each update's windows have similar lengths and are trimmed "
                 "to a multiple of %d; the loss ignores padding positions", length_buckets.DEFAULT_GRANULARITY)
  else:
    logging.info("training the original's updates in trimmed micro-batches: each update's windows are "
                 "sorted by length, and each micro-batch is trimmed to a multiple of %d that holds its "
                 "longest; the loss ignores padding positions", length_buckets.DEFAULT_GRANULARITY)
  return True


def _log_memory_estimate(config: run_config.RunConfig, strategy: tf.distribute.Strategy,
                         bert_config: model_config.BertConfig) -> None:
  """Logs the estimated memory of one device's training step; warns if it exceeds the GPU's.

  The warning names the --gradient_accumulation_steps values whose micro-batch
  fits, and without --gradient_checkpointing those that fit with it (see
  `training.memory_estimate`); without a GPU there is nothing to compare.
  """
  replicas = strategy.num_replicas_in_sync
  micro_batch = config.train_batch_size // (config.gradient_accumulation_steps * replicas)
  estimate = memory_estimate.estimate_memory(bert_config, config.max_seq_length, config.dtype,
                                            config.gradient_checkpointing)
  accumulating = config.gradient_accumulation_steps > 1
  total = estimate.total_bytes(micro_batch, accumulating)
  gb = lambda n: f"{n / memory_estimate.GIB:.2f} GB"  # noqa: E731
  logging.info("memory estimate: %s for micro-batch %d per device%s (weights %s, gradients %s, optimizer slots %s, "
               "workspace %s, activations %s)", gb(total), micro_batch,
               " with gradient checkpointing" if config.gradient_checkpointing else "",
               gb(estimate.weights + estimate.weight_copies), gb(estimate.gradients), gb(estimate.optimizer_slots),
               gb(estimate.workspace + (estimate.accumulators if accumulating else 0)),
               gb(micro_batch * estimate.per_example_bytes))
  gpu_bytes = distribution.gpu_memory_bytes()
  if gpu_bytes is None or total <= gpu_bytes:
    return
  advice = _fitting_settings(config, estimate, gpu_bytes, replicas)
  if not config.gradient_checkpointing:
    checkpointed = memory_estimate.estimate_memory(bert_config, config.max_seq_length, config.dtype, True)
    advice += "; with --gradient_checkpointing " + _fitting_settings(config, checkpointed, gpu_bytes, replicas)
  logging.warning("the memory estimate %s exceeds the GPU's %s: %s (python -m bert_squad.memory, docs/memory.md)",
                  gb(total), gb(gpu_bytes), advice)


def _fitting_settings(config: run_config.RunConfig, estimate: memory_estimate.MemoryEstimate, gpu_bytes: int,
                      replicas: int) -> str:
  """Which --gradient_accumulation_steps make `estimate` fit `gpu_bytes`, in words."""
  k = memory_estimate.gradient_accumulation_steps(estimate, config.train_batch_size, gpu_bytes, replicas)
  if k is None:
    return "not even one example per device fits: try a smaller --max_seq_length or --dtype=float16"
  fitting = [n for n in range(k, config.train_batch_size + 1) if not config.train_batch_size % (n * replicas)]
  return f"--gradient_accumulation_steps={' or '.join(map(str, fitting[:4]))} should fit"


def _run_settings(config: run_config.RunConfig, bert_config: model_config.BertConfig, vocab_file: str,
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
          "train_batch_size", "learning_rate", "num_train_epochs", "warmup_proportion", "seed",
          "length_bucketing", "mask_padding_in_loss", "trim_micro_batches")},
  }
  paths = {"train_file": config.train_file, "vocab_file": vocab_file, "init_checkpoint": init_checkpoint}
  return settings, paths


def _predict(config: run_config.RunConfig, strategy: tf.distribute.Strategy, bert_config: model_config.BertConfig,
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
  bucketed = config.length_bucketing or config.predict_length_bucketing
  logging.info("predicting %s%s%s", config.predict_file, " (XLA)" if use_xla else "",
               " in length buckets" if bucketed else "")
  unique_ids, start_logits, end_logits = prediction.predict_logits(
      model, dataset, _prediction_strategy(strategy), config.predict_batch_size,
      jit_compile=use_xla, num_features=info.num_features, log_stream=sys.stderr,
      length_bucketing=bucketed)
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


def _model_for_prediction(config: run_config.RunConfig, strategy: tf.distribute.Strategy,
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


def _evaluate(config: run_config.RunConfig, files: prediction_files.PredictionFiles) -> dict:
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
