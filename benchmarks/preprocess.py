"""Times SQuAD JSON -> TFRecord for this project and for tf-models-official's squad_lib.

  python benchmarks/preprocess.py                       # dev-v2.0, prediction mode
  python benchmarks/preprocess.py --is_training --limit=2000

Both runs start from the same JSON and end with a TFRecord on disk, the
tokenizer's vocab load included: squad_lib as `read_squad_examples` +
`convert_examples_to_features` into its `FeatureWriter`; this project as
`preprocess.build_feature_files` (which also writes the metadata and info
files and hashes the inputs). In training mode both read a copy of the file
that keeps the first answer per question (squad_lib rejects several), and
this project's pre-shuffle is off, like squad_lib.
"""
import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import bert_squad  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from absl import logging  # noqa: E402
from official.nlp.data import squad_lib  # noqa: E402
from official.nlp.tools import tokenization as tfm_tokenization  # noqa: E402

from bert_squad import preprocess  # noqa: E402

SHARED_DATA = pathlib.Path(os.environ.get("BERT_SQUAD_SHARED", REPO_ROOT.parent / "shared")) / "data"


def parse_args() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--input_file", default=str(SHARED_DATA / "squad" / "dev-v2.0.rebuilt.json"))
  parser.add_argument("--vocab_file", default=str(SHARED_DATA / "bert" / "vocab-uncased.txt"))
  parser.add_argument("--is_training", action="store_true", help="training mode (default: prediction)")
  parser.add_argument("--version_2_with_negative", action=argparse.BooleanOptionalAction, default=None,
                      help="default: on when the file name contains 'v2'")
  parser.add_argument("--limit", type=int, default=0, help="only the first N questions (0: all)")
  parser.add_argument("--max_seq_length", type=int, default=384)
  parser.add_argument("--doc_stride", type=int, default=128)
  parser.add_argument("--max_query_length", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=1, help="runs of each; the fastest counts")
  return parser.parse_args()


def prepare_input(input_file: str, limit: int, first_answer_only: bool, out_path: pathlib.Path) -> int:
  """Writes the benchmark's input (first `limit` questions, first answers) and returns its question count."""
  data = json.loads(pathlib.Path(input_file).read_text(encoding="utf-8"))
  kept = 0
  for article in data["data"]:
    for paragraph in article["paragraphs"]:
      if limit:
        paragraph["qas"] = paragraph["qas"][:max(0, limit - kept)]
      for qa in paragraph["qas"]:
        if first_answer_only:
          qa["answers"] = qa.get("answers", [])[:1]
      kept += len(paragraph["qas"])
  out_path.write_text(json.dumps(data), encoding="utf-8")
  return kept


def run_squad_lib(args: argparse.Namespace, input_file: str, output_file: str, version_2: bool) -> int:
  tokenizer = tfm_tokenization.FullTokenizer(args.vocab_file, do_lower_case=True)
  examples = squad_lib.read_squad_examples(input_file, args.is_training, version_2)
  writer = squad_lib.FeatureWriter(output_file, args.is_training)
  if args.is_training:
    output_fn = writer.process_feature
  else:
    output_fn = lambda feature, is_padding: writer.process_feature(feature)  # noqa: E731
  squad_lib.convert_examples_to_features(examples, tokenizer, args.max_seq_length, args.doc_stride,
                                         args.max_query_length, args.is_training, output_fn, batch_size=1)
  writer.close()
  return writer.num_features


def run_bert_squad(args: argparse.Namespace, input_file: str, output_file: str, version_2: bool) -> int:
  info = preprocess.build_feature_files(
      input_file, output_file, args.vocab_file, do_lower_case=True, max_seq_length=args.max_seq_length,
      doc_stride=args.doc_stride, max_query_length=args.max_query_length, is_training=args.is_training,
      version_2_with_negative=version_2, shuffle=False)
  return info.num_features


def fastest(run, repeats: int) -> tuple[float, int]:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    count = run()
    times.append(time.perf_counter() - start)
  return min(times), count


def main() -> None:
  args = parse_args()
  logging.set_verbosity(logging.WARNING)  # squad_lib logs its first 20 features at INFO
  version_2 = args.version_2_with_negative
  if version_2 is None:
    version_2 = "v2" in pathlib.Path(args.input_file).name
  with tempfile.TemporaryDirectory() as tmp:
    tmp_dir = pathlib.Path(tmp)
    input_file = str(tmp_dir / "input.json")
    num_questions = prepare_input(args.input_file, args.limit, args.is_training, pathlib.Path(input_file))
    mode = "training" if args.is_training else "prediction"
    print(f"input: {args.input_file} ({num_questions} questions, {mode} mode, v2={version_2}, "
          f"max_seq_length={args.max_seq_length}, doc_stride={args.doc_stride}, "
          f"max_query_length={args.max_query_length})")
    reference_s, reference_count = fastest(
        lambda: run_squad_lib(args, input_file, str(tmp_dir / "squad_lib.tf_record"), version_2), args.repeats)
    print(f"squad_lib (tf-models-official): {reference_s:8.2f} s  {reference_count} features")
    ours_s, ours_count = fastest(
        lambda: run_bert_squad(args, input_file, str(tmp_dir / "bert_squad.tf_record"), version_2), args.repeats)
    extra = "info" if args.is_training else "metadata and info"
    print(f"bert_squad.preprocess:          {ours_s:8.2f} s  {ours_count} features (+ {extra})")
    if ours_count != reference_count:
      sys.exit(f"feature counts differ: {ours_count} vs {reference_count}")
    print(f"speed-up: {reference_s / ours_s:.1f}x")


if __name__ == "__main__":
  main()
