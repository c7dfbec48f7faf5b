"""Test helpers: Google-named random weights, a TF1 writer, a numpy BERT reference.

Written from Google's naming (google-research/bert `modeling.py`) and the
BERT formulas, independently of `bert_squad.modeling.weight_map` and `google_format`'s writer.
"""
import math

import numpy as np
import tensorflow as tf

from bert_squad.modeling import model_config


def google_shapes(config: model_config.BertConfig, with_squad_head: bool = True) -> dict[str, tuple]:
  """Name -> shape of every tensor of a Google BERT checkpoint for `config`."""
  h, i = config.hidden_size, config.intermediate_size
  shapes = {
      "bert/embeddings/word_embeddings": (config.vocab_size, h),
      "bert/embeddings/position_embeddings": (config.max_position_embeddings, h),
      "bert/embeddings/token_type_embeddings": (config.type_vocab_size, h),
      "bert/embeddings/LayerNorm/gamma": (h,),
      "bert/embeddings/LayerNorm/beta": (h,),
      "bert/pooler/dense/kernel": (h, h),
      "bert/pooler/dense/bias": (h,),
  }
  for n in range(config.num_hidden_layers):
    layer = f"bert/encoder/layer_{n}"
    for part in ("query", "key", "value"):
      shapes[f"{layer}/attention/self/{part}/kernel"] = (h, h)
      shapes[f"{layer}/attention/self/{part}/bias"] = (h,)
    shapes.update({
        f"{layer}/attention/output/dense/kernel": (h, h),
        f"{layer}/attention/output/dense/bias": (h,),
        f"{layer}/attention/output/LayerNorm/gamma": (h,),
        f"{layer}/attention/output/LayerNorm/beta": (h,),
        f"{layer}/intermediate/dense/kernel": (h, i),
        f"{layer}/intermediate/dense/bias": (i,),
        f"{layer}/output/dense/kernel": (i, h),
        f"{layer}/output/dense/bias": (h,),
        f"{layer}/output/LayerNorm/gamma": (h,),
        f"{layer}/output/LayerNorm/beta": (h,),
    })
  if with_squad_head:
    shapes["cls/squad/output_weights"] = (2, h)
    shapes["cls/squad/output_bias"] = (2,)
  return shapes


def random_tensors(shapes: dict[str, tuple], seed: int = 0) -> dict[str, np.ndarray]:
  """Random float32 values (LayerNorm gammas near 1), int64 for `global_step`."""
  rng = np.random.default_rng(seed)
  tensors = {}
  for name, shape in sorted(shapes.items()):
    if name == "global_step":
      tensors[name] = np.array(1234, np.int64)
    elif name.endswith("LayerNorm/gamma"):
      tensors[name] = (1.0 + 0.1 * rng.normal(size=shape)).astype(np.float32)
    else:
      tensors[name] = (0.2 * rng.normal(size=shape)).astype(np.float32)
  return tensors


def write_tf1_checkpoint(prefix: str, tensors: dict[str, np.ndarray]) -> str:
  """Writes `tensors` under their names with a TF1 graph-mode `Saver`."""
  with tf.Graph().as_default():
    variables = {name: tf.compat.v1.Variable(value, name=name.replace("/", "_"))
                 for name, value in tensors.items()}
    saver = tf.compat.v1.train.Saver(var_list=variables)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      saver.save(session, prefix, write_meta_graph=False, write_state=False)
  return prefix


def hf_tensors(tensors: dict[str, np.ndarray], prefix: str = "") -> dict[str, np.ndarray]:
  """Google-named BERT weights -> Hugging Face `BertModel` names and layouts.

  HF `nn.Linear.weight` is [out, in]: the transpose of Google's kernel;
  `qa_outputs` is Google's cls/squad head as is.
  """
  out = {}
  for name, value in tensors.items():
    if name.startswith("cls/squad/"):
      leaf = "weight" if name.endswith("output_weights") else "bias"
      out[f"qa_outputs.{leaf}"] = value
      continue
    hf = name.removeprefix("bert/").replace("/", ".").replace("layer_", "layer.")
    if hf.endswith("_embeddings"):
      hf += ".weight"
    elif hf.endswith("LayerNorm.gamma"):
      hf = hf.removesuffix("gamma") + "weight"
    elif hf.endswith("LayerNorm.beta"):
      hf = hf.removesuffix("beta") + "bias"
    elif hf.endswith(".kernel"):
      hf, value = hf.removesuffix("kernel") + "weight", value.T
    out[prefix + hf] = np.ascontiguousarray(value)
  return out


def _layer_norm(x, gamma, beta):
  mean = x.mean(-1, keepdims=True)
  variance = ((x - mean)**2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(variance + 1e-12) * gamma + beta


def _gelu(x, exact):
  if exact:
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
  return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def numpy_span_logits(t: dict[str, np.ndarray], config: model_config.BertConfig,
                      input_ids, input_mask, segment_ids) -> tuple[np.ndarray, np.ndarray]:
  """BERT + the SQuAD head in float64 numpy, as the original computes them."""
  ids, mask, segments = map(np.asarray, (input_ids, input_mask, segment_ids))
  seq = ids.shape[1]
  heads, size = config.num_attention_heads, config.hidden_size // config.num_attention_heads
  t = {name: value.astype(np.float64) for name, value in t.items()}  # float32 sums lose 1e-7
  x = (t["bert/embeddings/word_embeddings"][ids] + t["bert/embeddings/position_embeddings"][:seq] +
       t["bert/embeddings/token_type_embeddings"][segments])
  x = _layer_norm(x, t["bert/embeddings/LayerNorm/gamma"], t["bert/embeddings/LayerNorm/beta"])
  adder = (1.0 - mask[:, None, None, :]) * -10000.0
  for n in range(config.num_hidden_layers):
    p = f"bert/encoder/layer_{n}/"

    def split(y):
      return y.reshape(y.shape[0], seq, heads, size).transpose(0, 2, 1, 3)

    q, k, v = (split(x @ t[f"{p}attention/self/{part}/kernel"] +
                     t[f"{p}attention/self/{part}/bias"])
               for part in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + adder
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(x.shape)
    attention = (context @ t[p + "attention/output/dense/kernel"] +
                 t[p + "attention/output/dense/bias"])
    x = _layer_norm(x + attention, t[p + "attention/output/LayerNorm/gamma"],
                    t[p + "attention/output/LayerNorm/beta"])
    inner = _gelu(x @ t[p + "intermediate/dense/kernel"] + t[p + "intermediate/dense/bias"],
                  exact=config.hidden_act == "gelu_exact")
    output = inner @ t[p + "output/dense/kernel"] + t[p + "output/dense/bias"]
    x = _layer_norm(x + output, t[p + "output/LayerNorm/gamma"], t[p + "output/LayerNorm/beta"])
  logits = x @ t["cls/squad/output_weights"].T + t["cls/squad/output_bias"]
  return logits[..., 0], logits[..., 1]
