"""The official evaluators' rules and quirks, on small hand-made files.

Each expected number is worked out by hand in the comment beside it, from the
official scripts' definitions (evaluate-v2.0.py / evaluate-v1.1.py). The CLI
is run as a subprocess, as users run it.
"""
import collections
import json
import pathlib
import random
import subprocess
import sys

import pytest

from bert_squad.answers import evaluation
from bert_squad.answers import metrics
from bert_squad.answers import thresholds
from bert_squad.common import io_utils
from bert_squad.common.errors import InputError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CLI = REPO_ROOT / "evaluate_v2.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
V2_KEYS = ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
           "NoAns_exact", "NoAns_f1", "NoAns_total"]
BEST_KEYS = ["best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"]
PR_KEYS = ["pr_exact_ap", "pr_f1_ap", "pr_oracle_ap"]


def squad_json(questions, version="v2.0"):
  """A SQuAD file: `questions` is [(id, [answer texts])], one paragraph each."""
  return {"version": version, "data": [{"title": "t", "paragraphs": [
      {"context": "c", "qas": [{"id": qid, "question": "?", "answers": [
          {"text": t, "answer_start": 0} for t in answers]}]}
      for qid, answers in questions]}]}


def dataset(questions, version="v2.0"):
  return metrics.parse_dataset(squad_json(questions, version), "data.json")


def write(tmp_path, name, obj):
  path = tmp_path / name
  path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
  return str(path)


def run_cli(*args, cwd=None):
  return subprocess.run([sys.executable, str(CLI), *map(str, args)], capture_output=True,
                        text=True, cwd=cwd, check=False)


# --- Normalization ---------------------------------------------------------------


@pytest.mark.parametrize("text, normalized", [
    ("The  Cat!", "cat"),                        # lower, punctuation, article, spaces
    ("Theory of a thing", "theory of thing"),    # only whole words a/an/the
    ("cat's-hat", "catshat"),                    # punctuation is deleted, not spaced
    ("an-apple", "anapple"),                     # so a glued article survives
    ("the.", ""),                                # punctuation first, then the article
    ("«the cat»", "« cat»"),                     # only ASCII punctuation is removed
    ("A\u00a0b\tC", "b c"),                      # any Unicode whitespace separates
    ("ÉCOLE", "école"),
    ("1,000", "1000"),
])
def test_normalize_answer(text, normalized):
  assert metrics.normalize_answer(text) == normalized


# --- Per-question scores ---------------------------------------------------------


def test_f1_counts_each_shared_token_at_most_as_often_as_on_both_sides():
  # common = {x: 1, y: 1} -> 2 of 3 tokens on each side: precision = recall = 2/3.
  f1 = metrics.token_f1(["x", "x", "y"], ["x", "y", "y"])
  assert f1 == (2 * (2 / 3) * (2 / 3)) / (2 / 3 + 2 / 3)


def test_score_is_the_max_over_gold_answers():
  exact, f1 = metrics.score_v2("Black Cat", ["dog", "the black cat", "cat"])
  assert (exact, f1) == (1, 1.0)
  exact, f1 = metrics.score_v1("black cat", ["dog", "cat"])
  assert exact is False and f1 == (2 * 0.5 * 1.0) / (0.5 + 1.0)


def test_v2_empty_side_scores_int_agreement():
  # Either side empty ("no answer"): 1 if both are, else 0, both as int.
  assert metrics.score_v2("", []) == (1, 1)
  assert metrics.score_v2("The!", []) == (1, 1)       # normalizes to "" too
  assert metrics.score_v2("cat", []) == (0, 0)
  assert metrics.score_v2("", ["cat"]) == (0, 0)
  assert type(metrics.score_v2("cat", [])[1]) is int


def test_v2_drops_gold_answers_that_normalize_to_empty():
  # "the" would match the empty prediction; dropped, only "cat" is left.
  assert metrics.score_v2("", ["the", "cat"]) == (0, 0)
  # All dropped: the question keeps its answers but "" becomes the gold answer.
  assert metrics.score_v2("", ["a", "!"]) == (1, 1)


def test_v1_has_no_empty_rule_so_empty_matches_score_exact_but_not_f1():
  assert metrics.score_v1("the", ["a"]) == (True, 0)


# --- SQuAD v1.1 -----------------------------------------------------------------


def test_v1_missing_prediction_scores_zero_and_counts_in_total():
  data = dataset([("q1", ["cat"]), ("q2", ["dog"])], "1.1")
  result = metrics.evaluate_v1(data, {"q1": "cat", "extra": "ignored"})
  assert result == {"exact_match": 50.0, "f1": 50.0}
  assert list(result) == ["exact_match", "f1"]
  assert metrics.missing_predictions(data, {"q1": "cat"}) == ["q2"]


def test_v1_counts_duplicate_question_ids_each_time_v2_once():
  data = dataset([("q1", ["cat"]), ("q1", ["cat"]), ("q2", ["dog"])], "1.1")
  predictions = {"q1": "cat", "q2": "bird"}
  assert metrics.evaluate_v1(data, predictions)["exact_match"] == 100.0 * 2 / 3
  v2 = evaluation.evaluate_v2(data, predictions)
  assert (v2["exact"], v2["total"]) == (50.0, 2)


def test_v1_rejects_a_predicted_question_without_gold_answers():
  with pytest.raises(InputError, match=r"data.json: question 'q1'.*--squad-version 2.0"):
    metrics.evaluate_v1(dataset([("q1", [])]), {"q1": "x"})


def test_version_warning():
  assert evaluation.version_warning(dataset([("q", ["x"])], "1.1")) is None
  assert (evaluation.version_warning(dataset([("q", ["x"])], "v2.0"))
          == "Evaluation expects v-1.1, but got dataset with v-v2.0")


# --- SQuAD v2.0 -----------------------------------------------------------------

# q1, q3 answerable; q2, q4 not. Predictions: q1 right, q2 right (""), q3 half
# right (F1 0.5), q4 wrong (non-empty).
V2_QUESTIONS = [("q1", ["cat"]), ("q2", []), ("q3", ["x y"]), ("q4", [])]
V2_PREDICTIONS = {"q1": "cat", "q2": "", "q3": "x z", "q4": "dog"}


def test_v2_scores_keys_and_types():
  result = evaluation.evaluate_v2(dataset(V2_QUESTIONS), V2_PREDICTIONS)
  assert list(result) == V2_KEYS
  assert result == {
      "exact": 100.0 * 2 / 4, "f1": 100.0 * 2.5 / 4, "total": 4,
      "HasAns_exact": 100.0 * 1 / 2, "HasAns_f1": 100.0 * 1.5 / 2, "HasAns_total": 2,
      "NoAns_exact": 100.0 * 1 / 2, "NoAns_f1": 100.0 * 1 / 2, "NoAns_total": 2}


def test_v2_leaves_missing_predictions_out_and_ignores_extra_ids():
  predictions = {"q1": "cat", "q2": "", "unknown": "x"}
  result = evaluation.evaluate_v2(dataset(V2_QUESTIONS), predictions)
  assert result == {"exact": 100.0, "f1": 100.0, "total": 2,
                    "HasAns_exact": 100.0, "HasAns_f1": 100.0, "HasAns_total": 1,
                    "NoAns_exact": 100.0, "NoAns_f1": 100.0, "NoAns_total": 1}


def test_v2_groups_without_questions_are_left_out():
  result = evaluation.evaluate_v2(dataset([("q1", ["cat"])]), {"q1": "cat"})
  assert list(result) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total"]


def test_no_answer_threshold_turns_predictions_into_no_answer():
  # na > 0.5 for q1 (right answer, now wrong: 0.0) and q4 (wrong, now right: 1.0).
  na_probs = {"q1": 0.9, "q2": 0.1, "q3": 0.5, "q4": 0.7}
  result = evaluation.evaluate_v2(dataset(V2_QUESTIONS), V2_PREDICTIONS, na_probs,
                                  na_prob_thresh=0.5)
  assert result["exact"] == 100.0 * (0.0 + 1 + 0 + 1.0) / 4
  assert result["HasAns_f1"] == 100.0 * (0.0 + 0.5) / 2
  # Without a file every na_prob is 0.0: a negative threshold blanks everything.
  blank = evaluation.evaluate_v2(dataset(V2_QUESTIONS), V2_PREDICTIONS, na_prob_thresh=-1.0)
  assert (blank["HasAns_exact"], blank["NoAns_exact"]) == (0.0, 100.0)
  assert list(evaluation.evaluate_v2(dataset(V2_QUESTIONS), V2_PREDICTIONS, na_probs)) \
      == V2_KEYS + BEST_KEYS


def test_best_threshold_counts_a_nonempty_no_answer_prediction_as_wrong():
  # q2 is unanswerable; "the" normalizes to "" so its exact score is 1, but the
  # search charges -1 for any non-empty string. Start: 1 (q2 right when blank).
  # t=0.05: answer q2 -> 0.  t=0.1: answer q1 too -> 1, not > 1: best stays 1 at 0.0.
  data = dataset([("q1", ["cat"]), ("q2", [])])
  predictions = {"q1": "cat", "q2": "the"}
  best = thresholds.find_best_thresholds(data, predictions, {"q2": 0.05, "q1": 0.1})
  assert best == {"best_exact": 100.0 * 1 / 2, "best_exact_thresh": 0.0,
                  "best_f1": 100.0 * 1 / 2, "best_f1_thresh": 0.0}
  assert list(best) == BEST_KEYS
  # With "" for q2 the answered q1 lifts the count to 2 at t=0.1.
  best = thresholds.find_best_thresholds(data, {"q1": "cat", "q2": ""}, {"q2": 0.05, "q1": 0.1})
  assert (best["best_exact"], best["best_exact_thresh"]) == (100.0, 0.1)


def test_best_threshold_adds_partial_f1_and_keeps_the_raw_na_prob_value():
  # Start 2 (q2, q4). Rising na: q1 +1 -> 3 (t=-2); q3 +0.5 -> 3.5 (t=3);
  # q4 "dog" -1 -> 2.5; q2 "" +0 -> 2.5. Best F1 3.5 at 3 (an int stays an int).
  na_probs = {"q1": -2, "q2": 9.5, "q3": 3, "q4": 4.0}
  best = thresholds.find_best_thresholds(dataset(V2_QUESTIONS), V2_PREDICTIONS, na_probs)
  assert best == {"best_exact": 100.0 * 3 / 4, "best_exact_thresh": -2,
                  "best_f1": 100.0 * 3.5 / 4, "best_f1_thresh": 3}
  assert type(best["best_f1_thresh"]) is int


def test_precision_recall_curve_puts_points_only_between_distinct_na_probs():
  # Rising na: q1 (0.1, answerable, exact 1), then q2 (no answer) and q3
  # (answerable, exact 0) tied at 0.2: one point after q1, one after the tie.
  raw = metrics.raw_scores_v2(dataset(V2_QUESTIONS[:3]), V2_PREDICTIONS)
  na_probs = {"q1": 0.1, "q2": 0.2, "q3": 0.2}
  curve = thresholds.precision_recall_curve(raw.exact, na_probs, raw.has_answer)
  assert curve.recalls == [0.0, 0.5, 0.5]
  assert curve.precisions == [1.0, 1.0, 1 / 3]
  assert curve.average_precision == 100.0 * (1.0 * 0.5)
  f1_curve = thresholds.precision_recall_curve(raw.f1, na_probs, raw.has_answer)
  assert f1_curve.average_precision == 100.0 * (1.0 * 0.5 + (1.5 / 3) * (0.75 - 0.5))


def test_image_dir_adds_ap_keys_and_writes_five_pngs(tmp_path):
  na_probs = {"q1": 0.1, "q2": 0.8, "q3": 0.2, "q4": 0.3}
  out_dir = tmp_path / "images" / "nested"
  result = evaluation.evaluate_v2(dataset(V2_QUESTIONS), V2_PREDICTIONS, na_probs,
                                  out_image_dir=str(out_dir))
  assert list(result) == V2_KEYS + BEST_KEYS + PR_KEYS
  # Oracle: q1 answerable first (p 1, r .5), q3 next (p 1, r 1): AP 100.
  assert result["pr_oracle_ap"] == 100.0
  names = sorted(p.name for p in out_dir.iterdir())
  assert names == ["na_prob_hist_hasAns.png", "na_prob_hist_noAns.png",
                   "pr_exact.png", "pr_f1.png", "pr_oracle.png"]
  assert all((out_dir / n).read_bytes().startswith(PNG_MAGIC) for n in names)


def test_image_dir_without_answerable_questions_writes_only_the_no_answer_histogram(tmp_path):
  result = evaluation.evaluate_v2(dataset([("q2", [])]), {"q2": ""}, {"q2": 0.4},
                                  out_image_dir=str(tmp_path))
  assert list(result) == ["exact", "f1", "total", "NoAns_exact", "NoAns_f1", "NoAns_total"] \
      + BEST_KEYS
  assert [p.name for p in tmp_path.iterdir()] == ["na_prob_hist_noAns.png"]


# --- Against tf-models-official's port of the official scripts ----------------------

# Words that exercise every normalization rule, including ones that vanish.
WORDS = ["a", "an", "the", "The", "cat", "Cat", "dogs", "x", "1,000", "an-apple", "the.",
         "", "!!", "É", "ß", "naïve", "o'clock", "theory", "A.", "\u00a0", "«the»"]


def random_case(seed):
  """A random small SQuAD file (duplicate ids, empty and vanishing answers),
  predictions with missing and extra ids, and na_probs with ties."""
  rng = random.Random(seed)

  def text():
    return rng.choice(["", " "]).join(rng.choice(WORDS) for _ in range(rng.randint(0, 4)))

  questions = [(f"q{rng.randint(0, 9)}",
                [] if rng.random() < 0.4 else [text() for _ in range(rng.randint(1, 3))])
               for _ in range(rng.randint(1, 12))]
  predictions = {qid: text() for qid, _ in questions if rng.random() < 0.85}
  predictions.update({f"extra{i}": text() for i in range(rng.randint(0, 2))})
  predicted = [qid for qid in dict(questions) if qid in predictions]
  rng.shuffle(predicted)
  na_probs = {qid: rng.choice([0.0, 0.25, 0.5, 1, rng.random()]) for qid in predicted}
  return squad_json(questions), predictions, na_probs


def test_v2_matches_tf_models_official_on_random_files():
  # Its evaluate() also leaves unpredicted questions out, always runs the
  # best-threshold search (as final_*) and the PR analysis, at threshold 1.0.
  reference = pytest.importorskip("official.nlp.tools.squad_evaluate_v2_0")
  renamed = {f"final_{k}": f"best_{k}" for k in ("exact", "exact_thresh", "f1", "f1_thresh")}
  compared = 0
  for seed in range(400):
    data, predictions, na_probs = random_case(seed)
    if not na_probs:
      continue
    want = reference.evaluate(data["data"], predictions, na_probs)
    want = [(renamed.get(k, k), v) for k, v in want.items()]
    got = evaluation.evaluate_v2(metrics.parse_dataset(data), predictions, na_probs)
    got.update((f"pr_{name}_ap", curve.average_precision) for name, curve in
               thresholds.precision_recall_curves(
                   metrics.raw_scores_v2(metrics.parse_dataset(data), predictions),
                   na_probs).items())
    assert list(got.items()) == want, seed  # exact values, types and key order
    compared += 1
  assert compared > 300


def test_v1_matches_tf_models_official_on_random_files():
  # Its v1.1 port returns fractions (no * 100.0), so only close, not identical.
  reference = pytest.importorskip("official.nlp.tools.squad_evaluate_v1_1")
  compared = 0
  for seed in range(400):
    data, predictions, _ = random_case(seed)
    if any(not answers for qid, answers in
           ((qa["id"], qa["answers"]) for qa in _qas(data)) if qid in predictions):
      continue
    want = reference.evaluate(data["data"], predictions)
    got = metrics.evaluate_v1(metrics.parse_dataset(data), predictions)
    assert got == pytest.approx({"exact_match": 100 * want["exact_match"],
                                 "f1": 100 * want["final_f1"]}, rel=1e-12, abs=1e-12), seed
    compared += 1
  assert compared > 20


def _qas(data):
  return [qa for article in data["data"] for p in article["paragraphs"] for qa in p["qas"]]


# --- Bad input (library) ------------------------------------------------------------


def test_v2_without_any_matching_prediction_is_an_error():
  with pytest.raises(InputError, match=r"^pred.json: none of its 1 predictions .*data.json"):
    evaluation.evaluate_v2(dataset(V2_QUESTIONS), {"zzz": "x"}, predictions_name="pred.json")


def test_na_probs_must_cover_every_predicted_question():
  with pytest.raises(InputError, match=r"^na.json: no no-answer probability for 2 .*'q3'"):
    evaluation.evaluate_v2(dataset(V2_QUESTIONS), V2_PREDICTIONS, {"q1": 0.0, "q2": 0.0},
                           na_probs_name="na.json")


@pytest.mark.parametrize("structure, where", [
    ({"version": "v2.0"}, "'data' must be a JSON array, got null"),
    ({"data": [{"paragraphs": [{"context": "c"}]}]}, "article 0, paragraph 0: 'qas'"),
    ({"data": [{"paragraphs": [{"qas": [{"id": 7, "answers": []}]}]}]},
     "question 0: 'id' must be a JSON string, got number"),
    ({"data": [{"paragraphs": [{"qas": [{"id": "q", "answers": [{"text": None}]}]}]}]},
     "question 0 \\('q'\\), answer 0: 'text'"),
    ({"data": []}, "holds no questions"),
])
def test_dataset_structure_errors_name_the_place(structure, where):
  with pytest.raises(InputError, match=f"^data.json: .*{where}"):
    metrics.parse_dataset(structure, "data.json")


def test_url_paths_are_read_and_written_through_tf_io_gfile(tmp_path):
  # file:// takes the gs:// code path (tf.io.gfile) without a network.
  url = f"file://{write(tmp_path, 'data.json', squad_json(V2_QUESTIONS))}"
  data = metrics.load_dataset(url)
  assert [q.qid for q in data.questions] == ["q1", "q2", "q3", "q4"]
  with pytest.raises(InputError, match="^file://.*missing.json: cannot read it"):
    metrics.load_predictions(f"file://{tmp_path}/missing.json")
  with io_utils.atomic_open(f"file://{tmp_path}/out.json") as f:
    f.write("{}")
  assert (tmp_path / "out.json").read_text() == "{}"
  assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --- CLI -------------------------------------------------------------------------


@pytest.fixture
def v2_files(tmp_path):
  return (write(tmp_path, "data.json", squad_json(V2_QUESTIONS)),
          write(tmp_path, "pred.json", V2_PREDICTIONS))


def test_cli_prints_indented_json_in_official_key_order(v2_files):
  done = run_cli(*v2_files)
  assert done.returncode == 0 and done.stderr == ""
  result = json.loads(done.stdout, object_pairs_hook=collections.OrderedDict)
  assert list(result) == V2_KEYS
  assert done.stdout == json.dumps(result, indent=2) + "\n"
  assert result["f1"] == 100.0 * 2.5 / 4


def test_cli_na_prob_file_threshold_images_and_out_file(tmp_path, v2_files):
  na_file = write(tmp_path, "na.json", {"q1": 0.9, "q2": 0.1, "q3": 0.5, "q4": 0.7})
  out_file = tmp_path / "eval.json"
  done = run_cli(*v2_files, "--na-prob-file", na_file, "-t", "0.5", "-o", out_file,
                 "-p", tmp_path / "img")
  assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
  text = out_file.read_text()
  result = json.loads(text, object_pairs_hook=collections.OrderedDict)
  assert text == json.dumps(result)  # compact and without newline, as json.dump writes
  assert list(result) == V2_KEYS + BEST_KEYS + PR_KEYS
  assert result["exact"] == 100.0 * 2.0 / 4
  assert len(list((tmp_path / "img").glob("*.png"))) == 5


def test_cli_image_dir_without_na_prob_file_warns_and_writes_nothing(tmp_path, v2_files):
  done = run_cli(*v2_files, "-p", tmp_path / "img")
  assert done.returncode == 0 and "needs --na-prob-file" in done.stderr
  assert list(json.loads(done.stdout)) == V2_KEYS and not (tmp_path / "img").exists()


def test_cli_v2_warns_about_missing_predictions_on_stderr(tmp_path, v2_files):
  pred = write(tmp_path, "few.json", {"q1": "cat"})
  done = run_cli(v2_files[0], pred)
  assert done.returncode == 0 and json.loads(done.stdout)["total"] == 1
  assert done.stderr.count("\n") == 1 and "3 question(s)" in done.stderr
  verbose = run_cli(v2_files[0], pred, "--verbose")
  assert [line for line in verbose.stderr.splitlines() if "'q" in line] == [
      f"{pred}: no prediction for question '{q}': left out of every total"
      for q in ("q2", "q3", "q4")]


def test_cli_squad_v1(tmp_path):
  data = write(tmp_path, "data.json", squad_json([("q1", ["cat"]), ("q2", ["dog"])], "1.1"))
  pred = write(tmp_path, "pred.json", {"q1": "the cat"})
  done = run_cli("--squad-version", "1.1", data, pred)
  assert done.returncode == 0
  assert done.stdout == '{"exact_match": 50.0, "f1": 50.0}\n'
  assert "'q2'" in done.stderr and "scores 0" in done.stderr
  data_v2 = write(tmp_path, "v2.json", squad_json([("q1", ["cat"])], "v2.0"))
  done = run_cli("--squad-version", "1.1", data_v2, pred)
  assert done.stderr == "Evaluation expects v-1.1, but got dataset with v-v2.0\n"
  assert json.loads(done.stdout) == {"exact_match": 100.0, "f1": 100.0}


def test_cli_v2_scoring_of_a_v1_file_says_so_and_points_to_squad_version_1(tmp_path):
  data = write(tmp_path, "data.json", squad_json([("q1", ["cat"]), ("q2", ["dog"])], "1.1"))
  pred = write(tmp_path, "pred.json", {"q1": "the cat", "q2": "dog"})
  done = run_cli(data, pred)
  assert done.returncode == 0
  assert json.loads(done.stdout)["exact"] == 100.0  # evaluate-v2.0.py's numbers, as that script gives them
  assert done.stderr == (f"{data}: a SQuAD v1.1 file (\"version\": \"1.1\") scored as evaluate-v2.0.py "
                         "does: questions without a prediction are left out, not counted 0; for "
                         "evaluate-v1.1.py's scores use --squad-version 1.1\n")


def test_cli_without_arguments_prints_help_and_exits_1():
  done = run_cli()
  assert done.returncode == 1 and "--na-prob-file" in done.stdout


def test_cli_imports_neither_tensorflow_nor_matplotlib(v2_files):
  code = ("import sys, evaluate_v2; evaluate_v2.main(sys.argv[1:]); "
          "sys.stderr.write(str(sorted(m for m in ('tensorflow', 'matplotlib') "
          "if m in sys.modules)))")
  done = subprocess.run([sys.executable, "-c", code, *v2_files], capture_output=True,
                        text=True, cwd=REPO_ROOT, check=False)
  assert done.returncode == 0 and done.stderr == "[]"


BAD_INPUTS = [
    # (file to replace, its content, message after "<file>: ")
    ("data.json", None, "cannot read it (No such file or directory)"),
    ("data.json", "{not json", "not valid JSON"),
    ("data.json", {"data": [{"paragraphs": [{}]}]}, "article 0, paragraph 0: 'qas'"),
    ("pred.json", "", "the file is empty"),
    ("pred.json", b"\xff\xfe{}", "not UTF-8 text"),
    ("pred.json", ["cat"], "predictions (question id -> answer text) must be a JSON object"),
    ("pred.json", {"q1": 3}, "question 'q1': the predicted answer must be a JSON string"),
    ("pred.json", {"q1": None}, "question 'q1': the predicted answer must be a JSON string"),
    ("pred.json", {}, "holds no predictions"),
    ("pred.json", {"other": "x"}, "none of its 1 predictions is for a question"),
    ("na.json", {"q1": 0.5}, "no no-answer probability for 3 predicted question(s), e.g. 'q2'"),
    ("na.json", {"q1": 0, "q2": "high", "q3": 0, "q4": 0},
     "question 'q2': the no-answer probability must be a number, got string"),
    ("na.json", {"q1": True, "q2": 0, "q3": 0, "q4": 0},
     "question 'q1': the no-answer probability must be a number, got boolean"),
    ("na.json", [0.5], "must be a JSON object"),
]


@pytest.mark.parametrize("name, content, message", BAD_INPUTS)
def test_cli_bad_input_gives_one_line_naming_the_file_and_exit_2(tmp_path, name, content,
                                                                 message):
  files = {"data.json": squad_json(V2_QUESTIONS), "pred.json": V2_PREDICTIONS,
           "na.json": {q: 0.0 for q in V2_PREDICTIONS}}
  paths = {n: write(tmp_path, n, c) for n, c in files.items()}
  if content is None:
    pathlib.Path(paths[name]).unlink()
  elif isinstance(content, bytes):
    pathlib.Path(paths[name]).write_bytes(content)
  else:
    write(tmp_path, name, content)
  done = run_cli(paths["data.json"], paths["pred.json"], "-n", paths["na.json"])
  assert done.returncode == 2, done.stderr
  assert done.stdout == ""
  assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
  assert done.stderr.startswith(f"error: {paths[name]}: ")
  assert message in done.stderr


def test_cli_flag_misuse_and_unwritable_output_exit_2(tmp_path, v2_files):
  done = run_cli("--squad-version", "1.1", *v2_files, "-n", "na.json")
  assert done.returncode == 2 and "apply to --squad-version 2.0 only" in done.stderr
  out_file = tmp_path / "missing-dir" / "eval.json"
  done = run_cli(*v2_files, "-o", out_file)
  assert done.returncode == 2 and done.stderr.count("\n") == 1
  assert "cannot write it (No such file or directory)" in done.stderr
