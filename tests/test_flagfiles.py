"""Every flagfile in flags/ is valid input for `run_squad.py --flagfile=...`.

Each file is read twice: by a small line parser (the syntax and the flag names)
and by absl itself, into a private `FlagValues` holding flags of the same names
and types as run_squad.py (so a wrong value type fails as it would at start-up).
"""
import pathlib
import re
from typing import Dict, List, Tuple

from absl import flags
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
FLAGS_DIR = REPO_ROOT / "flags"

# The flags run_squad.py must accept, with their kind and default: Google's
# original run_squad.py flags (same names and defaults), then this project's
# additions (defaults left as None here: only names and types are checked).
# run_squad.py's flags: Google's original ones with their original defaults, then the new
# ones (default None here: only their name and type are pinned). The test
# `test_run_squad_defines_exactly_these_flags` keeps this table and run_squad.py in step.
ENUMS = {
    "distribution_strategy": ["auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu"],
    "dtype": ["float32", "float16", "bfloat16"],
}
RUN_SQUAD_FLAGS: Dict[str, Tuple[str, object]] = {
    "bert_config_file": ("string", None),
    "vocab_file": ("string", None),
    "output_dir": ("string", None),
    "train_file": ("string", None),
    "predict_file": ("string", None),
    "init_checkpoint": ("string", None),
    "do_lower_case": ("bool", True),
    "max_seq_length": ("integer", 384),
    "doc_stride": ("integer", 128),
    "max_query_length": ("integer", 64),
    "do_train": ("bool", False),
    "do_predict": ("bool", False),
    "train_batch_size": ("integer", 32),
    "predict_batch_size": ("integer", 8),
    "learning_rate": ("float", 5e-5),
    "num_train_epochs": ("float", 3.0),
    "warmup_proportion": ("float", 0.1),
    "save_checkpoints_steps": ("integer", 1000),
    "iterations_per_loop": ("integer", 1000),
    "n_best_size": ("integer", 20),
    "max_answer_length": ("integer", 30),
    "use_tpu": ("bool", False),
    "tpu_name": ("string", None),
    "tpu_zone": ("string", None),
    "gcp_project": ("string", None),
    "master": ("string", None),
    "num_tpu_cores": ("integer", 8),
    "verbose_logging": ("bool", False),
    "version_2_with_negative": ("bool", False),
    "null_score_diff_threshold": ("float", 0.0),
    "do_eval": ("bool", None),
    "distribution_strategy": ("enum", None),
    "num_gpus": ("integer", None),
    "dtype": ("enum", None),
    "use_xla": ("bool", None),
    "predict_use_xla": ("bool", None),
    "gradient_accumulation_steps": ("integer", None),
    "gradient_checkpointing": ("bool", None),
    "seed": ("integer", None),
    "deterministic": ("bool", None),
    "keep_checkpoint_max": ("integer", None),
    "log_steps": ("integer", None),
    "cache_dir": ("string", None),
    "overwrite_cache": ("bool", None),
    "overwrite_output_dir": ("bool", None),
    "length_bucketing": ("bool", None),
    "predict_length_bucketing": ("bool", None),
    "mask_padding_in_loss": ("bool", None),
    "trim_micro_batches": ("bool", None),
}
BOOL_FLAGS = {name for name, (kind, _) in RUN_SQUAD_FLAGS.items() if kind == "bool"}
RECIPES = (
    "squad_v1_base_gpu.cfg", "squad_v2_base_gpu.cfg", "squad_v1_large_gpu.cfg", "squad_v2_large_gpu.cfg",
    "squad_v1_base_multi_gpu.cfg", "squad_v1_large_tpu.cfg", "squad_v2_large_tpu.cfg",
    "squad_v1_base_cpu_small.cfg")
LINE = re.compile(r"--(?P<name>[a-z][a-z0-9_]*)(?:=(?P<value>.*))?")


def flagfiles() -> List[pathlib.Path]:
  return sorted(FLAGS_DIR.glob("*.cfg"))


def parse_flagfile(path: pathlib.Path) -> Dict[str, str]:
  """Returns {name: value} of a flagfile; `--flag` / `--noflag` give "true" / "false"."""
  parsed = {}
  for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
    line = raw.strip()
    if not line or line.startswith("#"):
      continue
    where = f"{path.name}:{number}"
    match = LINE.fullmatch(line)
    assert match, f"{where}: not --name=value, --name or --noname: {raw!r}"
    name, value = match["name"], match["value"]
    if value is None:
      if name not in RUN_SQUAD_FLAGS and name.startswith("no") and name[2:] in BOOL_FLAGS:
        name, value = name[2:], "false"
      else:
        assert name in BOOL_FLAGS, f"{where}: --{name} without a value is only for boolean flags"
        value = "true"
    assert name in RUN_SQUAD_FLAGS, f"{where}: run_squad.py has no flag --{name}"
    assert name not in parsed, f"{where}: --{name} given twice"
    parsed[name] = value
  return parsed


def run_squad_flag_values() -> flags.FlagValues:
  """A private FlagValues with run_squad.py's flag names, kinds and defaults."""
  values = flags.FlagValues()
  for name, (kind, default) in RUN_SQUAD_FLAGS.items():
    if kind == "enum":
      flags.DEFINE_enum(name, default, ENUMS[name], name, flag_values=values)
    else:
      getattr(flags, f"DEFINE_{kind}")(name, default, name, flag_values=values)
  return values


def test_all_recipes_are_present():
  names = {path.name for path in flagfiles()}
  assert set(RECIPES) <= names, set(RECIPES) - names


@pytest.mark.parametrize("path", flagfiles(), ids=lambda p: p.name)
def test_flagfile_syntax_and_names(path):
  assert parse_flagfile(path)


@pytest.mark.parametrize("path", flagfiles(), ids=lambda p: p.name)
def test_absl_reads_the_flagfile_with_run_squad_types(path):
  values = run_squad_flag_values()
  values([__file__, f"--flagfile={path}"])  # raises on an unknown flag or a bad value
  parsed = parse_flagfile(path)
  for name, text in parsed.items():
    kind, _ = RUN_SQUAD_FLAGS[name]
    if kind == "bool":
      assert values[name].value is (text.lower() in ("true", "1")), (path.name, name)
    elif kind != "string":
      assert values[name].present, (path.name, name)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_is_complete_and_documented(name):
  path = FLAGS_DIR / name
  text = path.read_text(encoding="utf-8")
  assert text.startswith("#"), f"{name} must start with comments saying where its numbers come from"
  assert "environment variables" in text, f"{name} must warn that flagfiles do not expand $VARS"
  parsed = parse_flagfile(path)
  assert not any("$" in value for value in parsed.values()), f"{name}: absl does not expand $VARS"
  for required in ("vocab_file", "bert_config_file", "init_checkpoint", "output_dir", "train_file",
                   "predict_file"):
    assert parsed.get(required), f"{name} must set --{required}"
  assert parsed["do_train"] == parsed["do_predict"] == "true"
  is_v2 = name.startswith("squad_v2")
  assert (parsed.get("version_2_with_negative") == "true") == is_v2, name
  for data_flag in ("train_file", "predict_file"):
    assert parsed[data_flag].endswith("-v2.0.json" if is_v2 else "-v1.1.json"), (name, data_flag)
  # What run_config refuses at start-up: micro-batches that do not split the batch, two ways to trim.
  assert int(parsed["train_batch_size"]) % int(parsed.get("gradient_accumulation_steps", 1)) == 0, name
  assert not (parsed.get("length_bucketing") == parsed.get("trim_micro_batches") == "true"), name


@pytest.mark.parametrize("name", [n for n in RECIPES if "tpu" in n])
def test_tpu_recipes_use_cloud_storage(name):
  parsed = parse_flagfile(FLAGS_DIR / name)
  assert parsed["use_tpu"] == "true" and parsed["distribution_strategy"] == "tpu" and parsed["tpu_name"]
  for path_flag in ("vocab_file", "bert_config_file", "init_checkpoint", "train_file", "predict_file",
                    "output_dir"):
    assert parsed[path_flag].startswith("gs://"), (name, path_flag)
  assert int(parsed["train_batch_size"]) % int(parsed.get("num_tpu_cores", 8)) == 0


def test_multi_gpu_batch_splits_evenly_across_replicas():
  parsed = parse_flagfile(FLAGS_DIR / "squad_v1_base_multi_gpu.cfg")
  assert parsed["distribution_strategy"] == "mirrored"
  assert int(parsed["num_gpus"]) > 1
  assert int(parsed["train_batch_size"]) % int(parsed["num_gpus"]) == 0


def test_parser_rejects_unknown_and_malformed_lines(tmp_path):
  for bad in ("--no_such_flag=1", "train_batch_size=12", "--do_train true", "--nolearning_rate",
              "--learning_rate"):
    path = tmp_path / "bad.cfg"
    path.write_text(f"# comment\n{bad}\n", encoding="utf-8")
    with pytest.raises(AssertionError):
      parse_flagfile(path)
  path = tmp_path / "good.cfg"
  path.write_text("# c\n\n--nodo_train\n--use_tpu\n--learning_rate=3e-5\n", encoding="utf-8")
  assert parse_flagfile(path) == {"do_train": "false", "use_tpu": "true", "learning_rate": "3e-5"}


def test_absl_rejects_values_of_the_wrong_type(tmp_path):
  for bad in ("--train_batch_size=twelve", "--dtype=float64", "--distribution_strategy=gpu",
              "--do_train=maybe"):
    path = tmp_path / "bad.cfg"
    path.write_text(f"{bad}\n", encoding="utf-8")
    with pytest.raises(flags.Error):
      run_squad_flag_values()([__file__, f"--flagfile={path}"])


def test_run_squad_defines_exactly_these_flags_with_the_original_defaults():
  import run_squad  # pylint: disable=import-outside-toplevel  # defines its flags on import

  defined = {flag.name: flag for flag in flags.FLAGS.get_key_flags_for_module(run_squad)}
  assert set(defined) == set(RUN_SQUAD_FLAGS)
  for name, (kind, original_default) in RUN_SQUAD_FLAGS.items():
    assert defined[name].flag_type() == {"integer": "int", "enum": "string enum"}.get(kind, kind), name
    if original_default is not None:
      assert defined[name].default == original_default, name
  for name, choices in ENUMS.items():
    assert defined[name].parser.enum_values == choices, name
