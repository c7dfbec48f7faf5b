r"""Quick answers from a SavedModel written by `python -m bert_squad.export`.

  python -m bert_squad.predict --model_dir=serving/bert_squad/1 \
      --question="Who wrote Emma?" --context="Emma is a novel by Jane Austen."
  # {"answer": "Jane Austen", "score": 7.83}

  # JSON lines in, JSON lines out (in input order):
  python -m bert_squad.predict --model_dir=serving/bert_squad/1 < questions.jsonl
  # in:  {"id": "q1", "question": "...", "context": "..."}
  # out: {"id": "q1", "answer": "...", "score": 7.83}

It runs the SavedModel's `answer` signature (see `bert_squad/export.py`); the
score is the answer span's start + end logit. All input lines are checked
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

FLAGS = flags.FLAGS


def _define_flags() -> None:
  flags.DEFINE_string("model_dir", None, "SavedModel folder written by bert_squad.export.")
  flags.DEFINE_string("question", None, "A question; without it, JSON lines are read from stdin.")
  flags.DEFINE_string("context", None, "The paragraph to answer --question from.")
  flags.DEFINE_integer("batch_size", 16, "Questions per call of the model (stdin mode).")


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
  answer_requests.write_answers(answer_requests.load_answer_fn(FLAGS.model_dir), requests,
                                sys.stdout, FLAGS.batch_size)


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
