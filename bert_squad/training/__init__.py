"""Fine-tuning: the optimizer, the tf.data input, distribution strategies, the loop, batched prediction.

  optimization     AdamWeightDecay with BERT's warmup + linear decay, global-norm clipping.
  input_pipeline   feature TFRecords -> tf.data batches of (inputs, targets) int32 dicts.
  bucketed_training  training examples -> updates of similar length, trimmed, split into micro-batches.
  distribution     choosing the tf.distribute strategy; batch-split checks; determinism; GPU size.
  run_settings     the settings that define a run (run_settings.json); resume only the same one.
  loop_config      TrainConfig in, TrainResult out; output file names; set_precision; errors.
  update_step      one optimizer update (gradient accumulation, loss scaling) and the compiled loop.
  checkpointing    saving / restoring ckpt-<step> in output_dir, on every worker.
  train_log        progress bar, TensorBoard, train_history.json and training_curves.png.
  signals          SIGINT/SIGTERM: stop between compiled calls, agreed across workers.
  loop             train(): the custom training loop, resuming from output_dir.
  prediction       predict_logits(): features -> unique_ids, start/end logits, in order.
  length_buckets   bucketed prediction batches: similar lengths, trimmed to multiples of 64, back in order.
  memory_estimate  BertConfig, seq, dtype -> bytes of a training step; the micro-batch and accumulation that fit.

Only a docstring: no re-exports, so importing one module never imports its siblings."""
