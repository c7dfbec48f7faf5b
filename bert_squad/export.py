r"""Exports a fine-tuned span model as a SavedModel for TF Serving and `tf.saved_model.load`.

  python -m bert_squad.export --checkpoint_dir=squad_model --max_seq_length=384 \
      --do_lower_case --export_dir=serving/bert_squad/1

`--checkpoint_dir` is a Google-format folder (`bert_model.ckpt` with the
`cls/squad/*` head, `bert_config.json`, `vocab.txt`): the `export/` folder of a
run_squad.py output_dir, or one from `python -m bert_squad.convert
--training_checkpoint=...`. Signatures:

  * `logits` (also `serving_default`): int32 `input_ids`, `input_mask`,
    `segment_ids` [batch, seq] (the TFRecord features) -> float32
    `start_logits`, `end_logits` [batch, seq]. Core TensorFlow ops only.
  * `answer`: string `question`, `context` [batch] -> `answer` string [batch],
    `score` float32 [batch] (start + end logit of the best span; 0 if none),
    `null_score` float32 [batch] (the SQuAD 2.0 no-answer score), `start_char`,
    `end_char` int32 [batch] (code-point span of the answer in the context,
    end exclusive; -1 when the answer is not a span), `num_windows` int32
    [batch] (the context's doc-stride windows), `window_width` int32 [batch]
    (positions the model computed per window: max_seq_length). Tokenization, the
    original's doc-stride windows, the n-best search and the mapping back to
    the context all run in the graph; it needs `import tensorflow_text`.
  * `answer_trimmed`: the same inputs and outputs; the model runs only on
    the first `window_width` positions of every window, the batch's longest
    window rounded up to 64 tokens, so a batch of short questions costs a fraction
    of max_seq_length. Meant for batches of similar length (`python -m
    bert_squad.predict --length_bucketing` sorts them); where the original's
    n-best search let a padding position take a start/end slot, its answer
    can differ (docs/training.md, "Length bucketing").

The vocabulary is a SavedModel asset (`assets/vocab.txt`), so the export loads
anywhere. Flags are defined only when this module runs as a program.
"""
import dataclasses
from typing import Sequence

from absl import flags
from absl import logging

from bert_squad.common import cli
from bert_squad.common.errors import InputError
from bert_squad.serving import answer_settings
from bert_squad.serving import saved_model

FLAGS = flags.FLAGS


def _define_flags() -> None:
  defaults = answer_settings.AnswerSettings()
  flags.DEFINE_string("checkpoint_dir", None, "Google-format folder of the fine-tuned model "
                      "(bert_model.ckpt with cls/squad/*, bert_config.json, vocab.txt), e.g. "
                      "OUTPUT_DIR/export of a run_squad.py run.")
  flags.DEFINE_string("export_dir", None, "SavedModel folder to create, e.g. models/bert_squad/1 "
                      "for TF Serving; must not exist.")
  flags.DEFINE_integer("max_seq_length", defaults.max_seq_length, "Tokens per window.")
  flags.DEFINE_integer("doc_stride", defaults.doc_stride, "Step between window starts.")
  flags.DEFINE_integer("max_query_length", defaults.max_query_length, "Question wordpieces kept.")
  flags.DEFINE_bool("do_lower_case", defaults.do_lower_case, "Lower-case and strip accents "
                    "(uncased models); checked against the vocabulary.")
  flags.DEFINE_integer("n_best_size", defaults.n_best_size, "Start/end candidates per window.")
  flags.DEFINE_integer("max_answer_length", defaults.max_answer_length, "Longest answer in tokens.")
  flags.DEFINE_bool("version_2_with_negative", defaults.version_2_with_negative,
                    "SQuAD 2.0 model: answer '' when the null score wins.")
  flags.DEFINE_float("null_score_diff_threshold", defaults.null_score_diff_threshold,
                     "SQuAD 2.0: answer '' if null_score - score > this.")
  flags.DEFINE_bool("answer_signature", True, "Also export the 'answer' and 'answer_trimmed' signatures (raw strings; "
                    "needs tensorflow-text ops where it is loaded).")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise InputError(f"unexpected arguments: {' '.join(argv[1:])}")
  for name in ("checkpoint_dir", "export_dir"):
    if not FLAGS[name].value:
      raise InputError(f"--{name} is required")
  settings = answer_settings.AnswerSettings(**{
      field.name: FLAGS[field.name].value
      for field in dataclasses.fields(answer_settings.AnswerSettings)})
  export_dir = saved_model.export_checkpoint(FLAGS.checkpoint_dir, FLAGS.export_dir, settings,
                                             FLAGS.answer_signature)
  logging.info("wrote %s", export_dir)
  print(export_dir)


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
