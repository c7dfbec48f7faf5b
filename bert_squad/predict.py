r"""Quick answers from a SavedModel written by `python -m bert_squad.export`.

  python -m bert_squad.predict --model_dir=serving/bert_squad/1 \
      --question="Who wrote Emma?" --context="Emma is a novel by Jane Austen."
  # {"answer": "Jane Austen", "score": 7.83}

  # JSON lines in, JSON lines out (in input order):
  python -m bert_squad.predict --model_dir=serving/bert_squad/1 < questions.jsonl
  # in:  {"id": "q1", "question": "...", "context": "..."}
  # out: {"id": "q1", "answer": "...", "score": 7.83}

It runs the SavedModel's `answer` signature (see `bert_squad/export.py`); the
score is the answer span's start + end logit. With --length_bucketing the
questions are answered in batches of similar length by the `answer_trimmed`
signature, which runs the model only up to each batch's longest window
(rounded up to 64 tokens) instead of max_seq_length; the lines still come out
in input order, all at the end, and stderr says what was saved:
`predict: computed X of Y tokens (Z× fewer)`. With JSON lines stderr shows
the questions answered so far, their rate and the time left. All input lines are checked
before any is answered: a line that is not a JSON object with string
"question" and "context" stops with one error naming its line number (exit 2).
An empty or blank question or context is never answered: with --question and
--context it is one error line (exit 2); in JSON lines its output line is
`{"id": "q1", "error": "stdin: line 3: \"context\" is empty"}`, in its place.
Flags are defined only when this module runs as a program.
"""
import sys
from typing import Sequence

from absl import flags

from bert_squad.common import cli
from bert_squad.common.errors import InputError
from bert_squad.serving import answer_requests
from bert_squad.training import length_buckets

FLAGS = flags.FLAGS


def _define_flags() -> None:
  flags.DEFINE_string("model_dir", None, "SavedModel folder written by bert_squad.export.")
  flags.DEFINE_string("question", None, "A question; without it, JSON lines are read from stdin.")
  flags.DEFINE_string("context", None, "The paragraph to answer --question from.")
  flags.DEFINE_integer("batch_size", 16, "Questions per call of the model (stdin mode).")
  flags.DEFINE_bool("length_bucketing", False,
                    "Batch questions of similar length and run the model only up to each batch's "
                    "longest window (rounded up to 64 tokens), not max_seq_length: about 2x faster "
                    "on SQuAD-like text. The logits of real tokens are the same; an answer can "
                    "differ only where the padded run let a padding position take one of the "
                    "n_best_size start/end candidates (docs/training.md). Needs a SavedModel "
                    "exported with the 'answer_trimmed' signature (this version's export).")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise InputError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.model_dir:
    raise InputError("--model_dir is required")
  if (FLAGS.question is None) != (FLAGS.context is None):
    raise InputError("give --question and --context together, or neither to read JSON lines "
                     "from stdin")
  if FLAGS.batch_size < 1:
    raise InputError(f"--batch_size={FLAGS.batch_size}: must be at least 1")
  if FLAGS.question is not None:
    problem = answer_requests.blank_text_problem(FLAGS.question, FLAGS.context, "--question",
                                                 "--context")
    if problem:
      raise InputError(problem)
    requests = [answer_requests.Request(question=FLAGS.question, context=FLAGS.context)]
  else:
    requests = answer_requests.read_requests(sys.stdin)
  answer_fn = answer_requests.load_answer_fn(FLAGS.model_dir, FLAGS.length_bucketing)
  work = answer_requests.write_answers(answer_fn, requests, sys.stdout, FLAGS.batch_size,
                                       FLAGS.length_bucketing,
                                       progress_stream=sys.stderr if FLAGS.question is None else None)
  if FLAGS.length_bucketing and work.windows:
    max_seq_length = answer_requests.export_settings(FLAGS.model_dir).get("max_seq_length")
    if max_seq_length:
      print(length_buckets.TokenCounts(work.positions, work.windows * max_seq_length).summary(),
            file=sys.stderr)


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
