"""Strategy choice and its checks. Strategies over several devices or workers are
exercised for real (in their own processes) by tests/training/test_training.py."""
import json
import types

import pytest
import tensorflow as tf

from bert_squad.common.errors import InputError
from bert_squad.training import distribution


@pytest.fixture
def no_tf_config(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)


def _set_tf_config(monkeypatch, workers: int, chief: bool = False) -> None:
  cluster = {"worker": [f"127.0.0.1:{2000 + i}" for i in range(workers)]}
  if chief:
    cluster["chief"] = ["127.0.0.1:1999"]
  monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                              "task": {"type": "worker", "index": 0}}))


def test_auto_on_a_cpu_machine_is_one_device(no_tf_config):
  strategy = distribution.make_strategy("auto")
  assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
  assert strategy.num_replicas_in_sync == 1
  assert distribution.is_chief(strategy)


def test_mirrored_without_gpus_mirrors_the_cpu_devices(no_tf_config):
  strategy = distribution.make_strategy("mirrored", num_gpus=0)
  assert isinstance(strategy, tf.distribute.MirroredStrategy)
  assert strategy.num_replicas_in_sync == len(tf.config.list_logical_devices("CPU"))


def test_unknown_strategy_and_missing_settings_are_input_errors(no_tf_config):
  with pytest.raises(InputError, match=r"--distribution_strategy='gpus'"):
    distribution.make_strategy("gpus")
  with pytest.raises(InputError, match="needs TF_CONFIG"):
    distribution.make_strategy("multi_worker_mirrored")
  with pytest.raises(InputError, match=r"--num_gpus=4: only \d+ GPU"):
    distribution.make_strategy("mirrored", num_gpus=4)


def test_tpu_without_an_address_names_the_flag_that_asked_for_it(no_tf_config, monkeypatch):
  for name in ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS", "TPU_CONFIG"):
    monkeypatch.delenv(name, raising=False)  # where TensorFlow's resolver looks without an address
  with pytest.raises(InputError) as raised:
    distribution.make_strategy("tpu", tpu_flag="--use_tpu")
  assert str(raised.value) == ("--use_tpu needs --tpu_name (a Cloud TPU's name or grpc:// address, or "
                               "local on a TPU VM) or --master; neither was given and TPU_NAME is not set")
  with pytest.raises(InputError, match=r"^--distribution_strategy=tpu needs --tpu_name \("):
    distribution.make_strategy("tpu")


def test_tf_config_counts_workers_and_chief(monkeypatch):
  _set_tf_config(monkeypatch, 2)
  assert distribution.num_workers_in_tf_config() == 2
  _set_tf_config(monkeypatch, 3, chief=True)
  assert distribution.num_workers_in_tf_config() == 4
  monkeypatch.setenv("TF_CONFIG", "{not json")
  with pytest.raises(InputError, match="^TF_CONFIG: not valid JSON"):
    distribution.make_strategy("auto")


def test_single_worker_tf_config_stays_on_one_device(monkeypatch):
  _set_tf_config(monkeypatch, 1)
  assert isinstance(distribution.make_strategy("auto"), tf.distribute.OneDeviceStrategy)


def test_batch_must_split_evenly_over_replicas_and_micro_batches(no_tf_config):
  strategy = distribution.make_strategy("one_device")
  assert distribution.check_batch_size(32, strategy) == 32
  assert distribution.check_batch_size(32, strategy, gradient_accumulation_steps=4) == 8
  with pytest.raises(InputError, match=r"^--train_batch_size=30: must be a positive multiple of "
                                       r"1 replica\(s\) x --gradient_accumulation_steps=4 = 4$"):
    distribution.check_batch_size(30, strategy, gradient_accumulation_steps=4)
  with pytest.raises(InputError, match=r"^--predict_batch_size=0:"):
    distribution.check_batch_size(0, strategy, flag="--predict_batch_size")


class _FakeTPUStrategy(tf.distribute.TPUStrategy):
  """A TPUStrategy type with only a resolver's master (no TPU here)."""

  def __init__(self, master: str):  # pylint: disable=super-init-not-called
    self._fake_master = master

  @property
  def cluster_resolver(self):
    return types.SimpleNamespace(master=lambda: self._fake_master)


@pytest.mark.parametrize("strategy,master", [
    (_FakeTPUStrategy("grpc://10.0.0.2:8470"), "grpc://10.0.0.2:8470"),  # a TPU Node, also via TPU_NAME
    (_FakeTPUStrategy(""), None),  # a TPU VM, --tpu_name=local
    (tf.distribute.OneDeviceStrategy("/cpu:0"), None)])
def test_only_a_remote_tpu_needs_cloud_paths(strategy, master):
  assert distribution.remote_tpu_master(strategy) == master
  paths = {"--output_dir": "gs://bucket/out", "--predict_file": "/home/me/dev.json", "--cache_dir": None}
  if master is None:
    distribution.check_cloud_paths(master, paths)
  else:
    with pytest.raises(InputError, match=r"^--predict_file=/home/me/dev.json: a TPU reads and writes only "
                                         r"gs:// paths \(grpc://10.0.0.2:8470 cannot see"):
      distribution.check_cloud_paths(master, paths)
    distribution.check_cloud_paths(master, {"--output_dir": "gs://bucket/out", "--cache_dir": None})
