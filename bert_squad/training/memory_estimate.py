"""How much accelerator memory fine-tuning takes: `BertConfig`, seq, dtype -> bytes, and the batch that fits.

`estimate_memory(config, max_seq_length, dtype, gradient_checkpointing)` ->
`MemoryEstimate` (bytes, ints): the fixed parts (weights, their 16-bit copies,
gradients, gradient accumulators, AdamWeightDecay's slots, a workspace) and the
per-example parts (what the backward pass keeps, the layer it recomputes with
gradient checkpointing, and the gradients in flight while it runs).
`max_train_batch_size(gpu_bytes)` is the largest micro-batch per device that
fits; `gradient_accumulation_steps(...)` the smallest k that makes
`train_batch_size / k / replicas` fit. Pure Python: it reads shapes, builds nothing.

The per-example activations are the tensors that the gradient ops of the
training step read, found by listing, for a one-layer model, every forward
tensor that an op reachable from the gradients consumes (tf-models-official's
`TransformerEncoderBlock`, post-norm; tf_keras's non-fused `LayerNormalization`,
since epsilon 1e-12 rules out the fused kernel; TF 2.20's composite tanh GELU;
dropout as `select(uniform >= rate, x / (1 - rate), 0)` with a bool mask):

  per layer, s = seq, H = hidden, I = intermediate, h = heads,
  c = compute bytes (4 float32, 2 float16/bfloat16), g = GELU bytes (4 under
  mixed_bfloat16, whose block runs the activation in float32; else c):
    layer_input            s*H*c      Q/K/V kernel gradients
    query_key_value        3*s*H*c    scaled Q, K (score gradient), V (context gradient)
    attention_probs        h*s*s*c    softmax gradient (its output)
    attention_dropout      h*s*s*(1 + c)   bool mask + dropped probs (context gradient); 0 without dropout
    attention_context      s*H*c      attention output kernel gradient
    hidden_dropout_masks   2*s*H*1    bool masks after attention and FFN output; 0 without dropout
    layer_norms            2*(2*s*H*4 + 2*s*4)   per LayerNorm (float32): input, rsqrt(var)*gamma [s, H], mean, rsqrt
    intermediate_input     s*H*c      intermediate kernel gradient
    activation             n*s*I*g    GELU: n = 4 (input, tanh, x/2, 1 + tanh); exact GELU 3; relu/tanh 0 (1 if g != c)
    output_input           s*I*c      output kernel gradient
  embeddings: LayerNorm (2*s*H*4 + 2*s*4) + dropout mask s*H + type one-hot s*T*c + ids s*4
  head (float32): its input s*H*4 + the two cross-entropy gradients 2*s*4

The layer input of layer 0 is the embeddings' output; the last layer's output
is the head's input. Not counted: the attention mask [s, s] (dead before the
backward pass starts) and tensors of fewer than s elements.

With gradient checkpointing (`modeling.recompute`) a layer keeps only what its
recomputation starts from: its input x, s*H*c, plus the attention mask [s, s]
in the compute dtype (s*s*c, one for all layers); the embeddings and the head
keep what they keep without it. While a layer's backward pass runs, its
activations (the table above) are computed again and live besides the
gradients in flight: `recomputed_per_example`, one layer's worth.
"""
import dataclasses

from bert_squad.common.errors import InputError
from bert_squad.modeling import model_config

DTYPES = ("float32", "float16", "bfloat16")  # run_squad.py's --dtype values (loop_config.PRECISION_POLICIES)
GIB = 2**30

# CUDA context, cuBLAS/cuDNN handles and workspaces, loaded kernels: memory of the card that TF's allocator
# never gets. A round allowance typical of current NVIDIA drivers (0.3-0.6 GB), not measured here.
RUNTIME_RESERVE_BYTES = GIB // 2

# Tensors saved by the activation function, in units of s*I (see the module docstring).
_ACTIVATION_SAVED = {"gelu": 4, "gelu_exact": 3, "relu": 0, "tanh": 0, "linear": 0}


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
  """Bytes of one device's training step; fixed parts and per-example parts.

  Attributes:
    num_parameters: trainable values of the span model (encoder, pooler, head).
    weights: float32 variables.
    weight_copies: the 16-bit copies of the weights that mixed precision's
      matmuls read and the backward pass keeps (0 in float32).
    gradients: float32 gradients of the variables that get one (not the pooler).
    accumulators: float32 accumulators of `--gradient_accumulation_steps` > 1 (one per variable).
    optimizer_slots: AdamWeightDecay's m and v, float32, per variable with a gradient.
    workspace: `RUNTIME_RESERVE_BYTES` + one float32 copy of the gradients (the
      clipped gradients of the update; float16 adds the unscaled copy of loss scaling).
    activations_per_example: what the backward pass keeps for one example (module docstring).
    backward_per_example: gradients in flight during the backward pass: one layer's activations' worth.
    recomputed_per_example: with gradient checkpointing, the activations of the layer whose
      backward pass runs (one layer's worth); 0 without.
  """
  num_parameters: int
  weights: int
  weight_copies: int
  gradients: int
  accumulators: int
  optimizer_slots: int
  workspace: int
  activations_per_example: int
  backward_per_example: int
  recomputed_per_example: int = 0

  def fixed_bytes(self, accumulating: bool = False) -> int:
    """The bytes that do not grow with the batch; `accumulating`: k > 1 adds the accumulators."""
    return (self.weights + self.weight_copies + self.gradients + self.optimizer_slots + self.workspace +
            (self.accumulators if accumulating else 0))

  @property
  def per_example_bytes(self) -> int:
    return self.activations_per_example + self.backward_per_example + self.recomputed_per_example

  def total_bytes(self, micro_batch: int, accumulating: bool = False) -> int:
    """Bytes of a step with `micro_batch` examples per device."""
    return self.fixed_bytes(accumulating) + micro_batch * self.per_example_bytes

  def max_train_batch_size(self, gpu_bytes: int, accumulating: bool = False) -> int:
    """The largest micro-batch per device that fits in `gpu_bytes` (0 if not even one)."""
    return max(0, (gpu_bytes - self.fixed_bytes(accumulating)) // self.per_example_bytes)


def parameter_counts(config: model_config.BertConfig) -> dict[str, int]:
  """Trainable values of the span model by part: embeddings, layers, pooler, head."""
  hidden, inner = config.hidden_size, config.intermediate_size
  layer_norm = 2 * hidden
  embeddings = (config.vocab_size + config.max_position_embeddings + config.type_vocab_size) * hidden + layer_norm
  layer = (4 * (hidden * hidden + hidden)  # query, key, value, attention output
           + hidden * inner + inner + inner * hidden + hidden + 2 * layer_norm)
  return {"embeddings": embeddings, "layers": config.num_hidden_layers * layer,
          "pooler": hidden * hidden + hidden, "head": 2 * hidden + 2}


def compute_bytes(dtype: str) -> int:
  """Bytes per activation value under `dtype` (run_squad.py's --dtype)."""
  if dtype not in DTYPES:
    raise InputError(f"--dtype={dtype}: expected one of {', '.join(DTYPES)}")
  return 4 if dtype == "float32" else 2


def layer_activation_terms(config: model_config.BertConfig, seq: int, dtype: str) -> dict[str, int]:
  """Bytes one transformer layer keeps for its backward pass, per example, by named term (module docstring)."""
  c = compute_bytes(dtype)
  g = 4 if dtype == "bfloat16" else c
  s, hidden, inner, heads = seq, config.hidden_size, config.intermediate_size, config.num_attention_heads
  attention_dropout = config.attention_probs_dropout_prob > 0
  hidden_dropout = config.hidden_dropout_prob > 0
  activation = _ACTIVATION_SAVED[config.hidden_act]
  if config.hidden_act in ("relu", "tanh") and g != c:
    activation = 1  # its float32 output is kept besides the 16-bit copy the output dense reads
  return {
      "layer_input": s * hidden * c,
      "query_key_value": 3 * s * hidden * c,
      "attention_probs": heads * s * s * c,
      "attention_dropout": heads * s * s * (1 + c) if attention_dropout else 0,
      "attention_context": s * hidden * c,
      "hidden_dropout_masks": 2 * s * hidden if hidden_dropout else 0,
      "layer_norms": 2 * _layer_norm_bytes(s, hidden),
      "intermediate_input": s * hidden * c,
      "activation": activation * s * inner * g,
      "output_input": s * inner * c,
  }


def _layer_norm_bytes(seq: int, hidden: int) -> int:
  """One non-fused float32 LayerNorm: input and rsqrt(var)*gamma [s, H], mean and rsqrt [s]."""
  return 2 * seq * hidden * 4 + 2 * seq * 4


def activation_terms(config: model_config.BertConfig, seq: int, dtype: str,
                     gradient_checkpointing: bool = False) -> dict[str, int]:
  """Bytes kept for the backward pass per example: embeddings, all layers, head (+ the attention mask).

  With `gradient_checkpointing` each layer keeps only its input, and the
  attention mask [s, s] that every recomputation reads is kept too.
  """
  c = compute_bytes(dtype)
  s, hidden = seq, config.hidden_size
  embeddings = (_layer_norm_bytes(s, hidden) + (s * hidden if config.hidden_dropout_prob > 0 else 0)
                + s * config.type_vocab_size * c + s * 4)
  layer = layer_activation_terms(config, seq, dtype)
  per_layer = layer["layer_input"] if gradient_checkpointing else sum(layer.values())
  terms = {"embeddings": embeddings, "layers": config.num_hidden_layers * per_layer,
           "head": s * hidden * 4 + 2 * s * 4}
  if gradient_checkpointing:
    terms["attention_mask"] = s * s * c
  return terms


def estimate_memory(config: model_config.BertConfig, max_seq_length: int, dtype: str,
                    gradient_checkpointing: bool = False) -> MemoryEstimate:
  """The memory of one device's training step of the span model with AdamWeightDecay.

  Args:
    gradient_checkpointing: as `build_span_model(gradient_checkpointing=True)`
      (run_squad.py --gradient_checkpointing): layers keep their input only and
      one layer is recomputed at a time.

  Raises:
    InputError: `max_seq_length` not positive or over `max_position_embeddings`, or an unknown dtype.
  """
  if max_seq_length <= 0:
    raise InputError(f"--max_seq_length={max_seq_length}: must be positive")
  model_config.validate_config(config, max_seq_length, vocab_file=None)
  c = compute_bytes(dtype)
  counts = parameter_counts(config)
  num_parameters = sum(counts.values())
  with_gradient = num_parameters - counts["pooler"]  # the span model never uses the pooler
  gradients = 4 * with_gradient
  update_copies = 2 if dtype == "float16" else 1
  one_layer = sum(layer_activation_terms(config, max_seq_length, dtype).values())
  return MemoryEstimate(
      num_parameters=num_parameters,
      weights=4 * num_parameters,
      weight_copies=0 if c == 4 else c * num_parameters,
      gradients=gradients,
      accumulators=4 * num_parameters,
      optimizer_slots=2 * 4 * with_gradient,
      workspace=RUNTIME_RESERVE_BYTES + update_copies * gradients,
      activations_per_example=sum(activation_terms(config, max_seq_length, dtype,
                                                   gradient_checkpointing).values()),
      backward_per_example=one_layer,
      recomputed_per_example=one_layer if gradient_checkpointing else 0)


def gradient_accumulation_steps(estimate: MemoryEstimate, train_batch_size: int, gpu_bytes: int,
                                num_replicas: int = 1) -> int | None:
  """The smallest k dividing the batch whose micro-batch per device fits; None if none does.

  k = 1 needs no accumulators; k > 1 adds them (`MemoryEstimate.accumulators`).
  The micro-batch per device is `train_batch_size / k / num_replicas`, so k
  must make that a whole number.
  """
  if train_batch_size <= 0:
    raise InputError(f"--train_batch_size={train_batch_size}: must be positive")
  for k in range(1, train_batch_size + 1):
    if train_batch_size % (k * num_replicas):
      continue
    micro_batch = train_batch_size // (k * num_replicas)
    if micro_batch <= estimate.max_train_batch_size(gpu_bytes, accumulating=k > 1):
      return k
  return None
