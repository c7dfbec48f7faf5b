"""bert-squad: Google's BERT SQuAD pipeline on TensorFlow 2 / tf_keras.

The whole project runs on Keras 2 (`tf_keras`), because tf-models-official builds
Keras 2 objects. `TF_USE_LEGACY_KERAS=1` must be set before TensorFlow is first
imported: otherwise a Keras 3 model holding a `BertEncoder` tracks only 2 of its
variables, so the encoder is silently never trained or saved.
"""
import os
import sys

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise ImportError(
        "bert_squad needs TF_USE_LEGACY_KERAS=1 set before TensorFlow is imported "
        "(export it, or import bert_squad first).")
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# Level 3 hides C++ log lines such as "failed call to cuInit" on machines without a GPU, which
# would otherwise follow every one-line error message. Export it lower to debug TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
