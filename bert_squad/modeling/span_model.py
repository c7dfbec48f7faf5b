"""The SQuAD span model: tf-models-official's `BertEncoder` + the original head, and its loss.

int32 `input_ids`, `input_mask`, `segment_ids` [batch, seq] -> float32
`start_logits`, `end_logits` [batch, seq]; `span_loss` turns int positions
[batch] and those logits into a per-example loss [batch].

The encoder is configured from a `model_config.BertConfig`; the head is that
of the original `run_squad.py`: one dense layer `[hidden, 2]` (Google's
`cls/squad/output_weights` `[2, hidden]`, `cls/squad/output_bias` `[2]`) whose
two outputs are the start and end logits.
"""
import tensorflow as tf
import tf_keras
from official.nlp.modeling import networks

from bert_squad.data import records
from bert_squad.modeling import model_config
from bert_squad.modeling import recompute

# The original head's initializer: truncated normal with a fixed stddev 0.02
# (not `initializer_range`), bias zeros.
_SQUAD_HEAD_STDDEV = 0.02

# What `mask_padding_logits` puts at padding positions: exp(-1e30 - max) is
# exactly 0 in float32, so a softmax gives them no weight and no gradient.
MASKED_LOGIT = -1e30


def build_encoder(config: model_config.BertConfig) -> networks.BertEncoder:
  """tf-models-official's `BertEncoder` for `config` (dict outputs)."""
  return networks.BertEncoder(
      vocab_size=config.vocab_size,
      hidden_size=config.hidden_size,
      num_layers=config.num_hidden_layers,
      num_attention_heads=config.num_attention_heads,
      max_sequence_length=config.max_position_embeddings,
      type_vocab_size=config.type_vocab_size,
      inner_dim=config.intermediate_size,
      inner_activation=model_config.ACTIVATIONS[config.hidden_act],
      output_dropout=config.hidden_dropout_prob,
      attention_dropout=config.attention_probs_dropout_prob,
      initializer=tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range),
      dict_outputs=True)


class BertSpanModel(tf_keras.Model):
  """`BertEncoder` + the original SQuAD head.

  Call with a dict of int32 `input_ids`, `input_mask`, `segment_ids`
  ([batch, seq]); returns `{"start_logits", "end_logits"}`, each float32
  [batch, seq] (the head runs in float32 under a mixed-precision policy).

  Attributes:
    bert_config: the `BertConfig` it was built from.
    encoder: the `BertEncoder`.
    span_head: the `Dense(2)` head; kernel [hidden, 2], bias [2].
  """

  def __init__(self, config: model_config.BertConfig, max_seq_length: int | None = None, **kwargs):
    encoder = build_encoder(config)
    span_head = tf_keras.layers.Dense(
        2, kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=_SQUAD_HEAD_STDDEV),
        name="squad_logits", dtype="float32")
    inputs = {key: tf_keras.Input(shape=(max_seq_length,), dtype=tf.int32, name=key)
              for key in records.INPUT_KEYS}
    sequence_output = encoder(
        [inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"]])["sequence_output"]
    logits = span_head(sequence_output)  # [batch, seq, 2]
    start_logits, end_logits = tf.unstack(logits, num=2, axis=-1)
    super().__init__(inputs=inputs,
                     outputs={"start_logits": start_logits, "end_logits": end_logits},
                     **kwargs)
    self.bert_config = config
    self.encoder = encoder
    self.span_head = span_head


def build_span_model(config: model_config.BertConfig,
                     max_seq_length: int | None = None,
                     gradient_checkpointing: bool = False) -> BertSpanModel:
  """The span model for `config`, its variables created (randomly initialized).

  Args:
    config: the BERT configuration.
    max_seq_length: static sequence length of the inputs, or None for any
      length up to `max_position_embeddings`.
    gradient_checkpointing: recompute each transformer layer's activations in
      the backward pass instead of keeping them (`recompute`): the same
      gradients, with one layer's activations in memory instead of all.
      Its dropout layers then draw from `tf.random.Generator`s.
  """
  model_config.validate_config(config, max_seq_length, vocab_file=None)
  if not gradient_checkpointing:
    return BertSpanModel(config, max_seq_length, name="bert_span_model")
  with recompute.replayable_dropout():
    model = BertSpanModel(config, max_seq_length, name="bert_span_model")
  recompute.recompute_layers(model.encoder)
  return model


def span_loss(start_positions: tf.Tensor, end_positions: tf.Tensor,
              start_logits: tf.Tensor, end_logits: tf.Tensor) -> tf.Tensor:
  """Per-example loss [batch]: (cross-entropy(start) + cross-entropy(end)) / 2.

  Positions are int [batch], logits [batch, seq]. The original averages this
  over the batch; under a distribution strategy divide the sum by the GLOBAL
  batch size instead (`tf.nn.compute_average_loss`).
  """

  def cross_entropy(positions, logits):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(positions, tf.int32), logits=tf.cast(logits, tf.float32))

  return (cross_entropy(start_positions, start_logits) +
          cross_entropy(end_positions, end_logits)) / 2.0


def span_loss_mean(start_positions: tf.Tensor, end_positions: tf.Tensor,
                   start_logits: tf.Tensor, end_logits: tf.Tensor) -> tf.Tensor:
  """The original's scalar loss: `span_loss` averaged over the batch."""
  return tf.reduce_mean(span_loss(start_positions, end_positions, start_logits, end_logits))


def mask_padding_logits(logits: tf.Tensor, input_mask: tf.Tensor) -> tf.Tensor:
  """[batch, seq] float32 logits -> the same with `MASKED_LOGIT` where input_mask [batch, seq] is 0.

  The original's loss is a softmax over all max_seq_length positions, padding
  included: the padding positions' logits (the head applied to hidden states
  of positions no real token attends to) enter the normaliser, and the loss
  pushes them down. A batch trimmed to a shorter width drops some of those
  terms, so its loss would depend on the width. With the padding masked the
  softmax runs over the real positions only; their logits do not depend on
  the padding (real tokens never attend to it), so the loss and its
  gradients are the same at any width -- padded or trimmed -- up to float
  rounding. Against the original it lacks the term log(1 + sum_pad exp(l) /
  sum_real exp(l)) >= 0 per position softmax, which the original drives
  towards 0 anyway as padding logits fall.
  """
  return tf.where(tf.cast(input_mask, tf.bool), logits, tf.constant(MASKED_LOGIT, logits.dtype))
