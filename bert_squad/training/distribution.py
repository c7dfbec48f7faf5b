"""Choosing a `tf.distribute` strategy, and the checks that go with it.

name                    strategy                                 "auto" picks it when
tpu                     TPUStrategy on `tpu_address` (or the     a TPU name/address is given
                        TPU that TPU_NAME names)
multi_worker_mirrored   MultiWorkerMirroredStrategy (TF_CONFIG)  TF_CONFIG lists >1 worker
mirrored                MirroredStrategy over the local GPUs     more than one GPU is visible
one_device              OneDeviceStrategy on GPU 0, else CPU     otherwise

The global batch (e.g. `--train_batch_size`) is split evenly across all
replicas of the strategy.
"""
import json
import os
import re
import subprocess

import tensorflow as tf
import tf_keras

from bert_squad.common.errors import InputError

STRATEGY_NAMES = ("auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu")


def _tf_config() -> dict:
  """The parsed `TF_CONFIG` environment variable ({} when unset)."""
  raw = os.environ.get("TF_CONFIG", "")
  if not raw.strip():
    return {}
  try:
    config = json.loads(raw)
  except json.JSONDecodeError as e:
    raise InputError(f"TF_CONFIG: not valid JSON: {e}") from None
  if not isinstance(config, dict) or not isinstance(config.get("cluster", {}), dict):
    raise InputError("TF_CONFIG: expected an object with a 'cluster' object")
  return config


def num_workers_in_tf_config() -> int:
  """How many worker tasks (chief included) `TF_CONFIG` lists; 0 when unset."""
  cluster = _tf_config().get("cluster", {})
  return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def _local_devices(num_gpus: int | None) -> list[str]:
  """The local GPUs (the first `num_gpus`), or the logical CPUs if there is no GPU."""
  gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
  if num_gpus is not None:
    if num_gpus > len(gpus):
      raise InputError(f"--num_gpus={num_gpus}: only {len(gpus)} GPU(s) are visible")
    if num_gpus > 0:
      return gpus[:num_gpus]
  if gpus and num_gpus != 0:
    return gpus
  return [d.name for d in tf.config.list_logical_devices("CPU")]


def _tpu_strategy(tpu_address: str | None, tpu_zone: str | None, gcp_project: str | None,
                  tpu_flag: str) -> tf.distribute.TPUStrategy:
  """Without an address, TensorFlow's resolver looks in the environment (TPU_NAME, as the original)."""
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=tpu_address, zone=tpu_zone, project=gcp_project)
  except ValueError:
    if tpu_address:
      raise
    raise InputError(f"{tpu_flag} needs --tpu_name (a Cloud TPU's name or grpc:// address, or "
                     "local on a TPU VM) or --master; neither was given and TPU_NAME is not "
                     "set") from None
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def _resolve_auto(num_gpus: int | None, tpu_address: str | None) -> str:
  """What "auto" means on this machine (several CPUs alone never pick "mirrored")."""
  if tpu_address:
    return "tpu"
  if num_workers_in_tf_config() > 1:
    return "multi_worker_mirrored"
  devices = _local_devices(num_gpus)
  if len(devices) > 1 and "GPU" in devices[0].upper():
    return "mirrored"
  return "one_device"


def make_strategy(name: str = "auto",
                  num_gpus: int | None = None,
                  tpu_address: str | None = None,
                  tpu_zone: str | None = None,
                  gcp_project: str | None = None,
                  tpu_flag: str = "--distribution_strategy=tpu") -> tf.distribute.Strategy:
  """Builds the strategy `name` (see the module table).

  Args:
    name: one of `STRATEGY_NAMES`.
    num_gpus: use the first `num_gpus` GPUs (None: all; 0: CPU only).
      `mirrored` without a GPU mirrors over the logical CPU devices.
    tpu_address: TPU name or `grpc://` address (`--tpu_name` / `--master`).
    tpu_zone, gcp_project: for resolving a TPU by name.
    tpu_flag: the flag that asked for the TPU, for messages (e.g. "--use_tpu").

  Raises:
    InputError: unknown name, too few GPUs, a TPU strategy without address
      (none given, none in the environment), or a bad `TF_CONFIG`.
  """
  if name not in STRATEGY_NAMES:
    raise InputError(f"--distribution_strategy={name!r}: expected one of "
                     f"{', '.join(STRATEGY_NAMES)}")
  if name == "auto":
    name = _resolve_auto(num_gpus, tpu_address)
  if name == "tpu":
    return _tpu_strategy(tpu_address, tpu_zone, gcp_project, tpu_flag)
  if name == "multi_worker_mirrored":
    if num_workers_in_tf_config() == 0:
      raise InputError("--distribution_strategy=multi_worker_mirrored needs TF_CONFIG "
                       "to list the workers")
    return tf.distribute.MultiWorkerMirroredStrategy()
  devices = _local_devices(num_gpus)
  if name == "mirrored":
    return tf.distribute.MirroredStrategy(devices)
  return tf.distribute.OneDeviceStrategy(devices[0])


def check_batch_size(global_batch_size: int, strategy: tf.distribute.Strategy,
                     flag: str = "--train_batch_size",
                     gradient_accumulation_steps: int = 1) -> int:
  """The per-replica micro-batch size; raises if the global batch does not split evenly.

  Args:
    global_batch_size: examples per optimizer update, over all replicas.
    strategy: the strategy whose replicas share the batch.
    flag: the flag to name in the error.
    gradient_accumulation_steps: micro-batches per update.

  Raises:
    InputError: naming `flag`, when the batch is not a positive multiple of
      replicas x accumulation steps.
  """
  replicas = strategy.num_replicas_in_sync
  share = replicas * gradient_accumulation_steps
  if global_batch_size <= 0 or global_batch_size % share:
    detail = f"{replicas} replica(s)"
    if gradient_accumulation_steps > 1:
      detail += f" x --gradient_accumulation_steps={gradient_accumulation_steps}"
    raise InputError(f"{flag}={global_batch_size}: must be a positive multiple of "
                     f"{detail} = {share}")
  return global_batch_size // share


def remote_tpu_master(strategy: tf.distribute.Strategy) -> str | None:
  """The `grpc://` master of a TPU on other hosts (a TPU Node or a pod slice); None for any other strategy.

  A TPU VM (`--tpu_name=local`) has an empty master: its TPU reads this
  machine's disk. The master comes from the resolver, so it is right also
  when the TPU was found through TPU_NAME rather than a flag.
  """
  if not isinstance(strategy, tf.distribute.TPUStrategy):
    return None
  master = strategy.cluster_resolver.master()
  return master if master and master != "local" else None


def check_cloud_paths(tpu_master: str | None, paths: dict[str, str | None]) -> None:
  """On a remote TPU (`remote_tpu_master`), every input and output must be on gs:// (its hosts cannot see local disks).

  Args:
    tpu_master: the remote TPU's master, or None (nothing to check).
    paths: flag name -> path, e.g. {"--output_dir": output_dir}; None is skipped.

  Raises:
    InputError: naming the first flag whose path is local while on a remote TPU.
  """
  if not tpu_master:
    return
  for flag, path in paths.items():
    if path and not path.startswith("gs://"):
      raise InputError(f"{flag}={path}: a TPU reads and writes only gs:// paths ({tpu_master} "
                       "cannot see this machine's disk)")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the shared outputs (checkpoints, logs, plots)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return task_type in (None, "chief") or (not has_chief and task_type == "worker" and task_id == 0)


def gpu_memory_bytes() -> int | None:
  """Memory of the smallest visible GPU in bytes; None without a GPU, or where nvidia-smi cannot tell.

  TensorFlow 2.20 reports a GPU's current and peak use (`get_memory_info`) and
  its name and compute capability (`get_device_details`), not its size, so
  this asks `nvidia-smi` (restricted to CUDA_VISIBLE_DEVICES when that lists indices).
  """
  if not tf.config.list_physical_devices("GPU"):
    return None
  command = ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"]
  visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
  if re.fullmatch(r"[0-9]+(,[0-9]+)*", visible):
    command += ["-i", visible]
  try:
    output = subprocess.run(command, capture_output=True, text=True, timeout=20, check=True).stdout
    sizes_mib = [int(float(line)) for line in output.split()]
  except (OSError, subprocess.SubprocessError, ValueError):
    return None
  return min(sizes_mib) * 2**20 if sizes_mib else None


def set_determinism(seed: int) -> None:
  """Makes a run repeatable: seeds Python, NumPy and TF; makes TF ops deterministic.

  Call before building the model. Keras dropout then draws from
  `tf.random.Generator`s whose state lives in the model's variables, so a
  run resumed from a checkpoint draws the same dropout masks as a run that
  was never interrupted.
  """
  tf_keras.utils.set_random_seed(seed)
  tf_keras.backend.experimental.enable_tf_random_generator()
  tf.config.experimental.enable_op_determinism()
