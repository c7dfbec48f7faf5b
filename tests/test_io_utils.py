"""io_utils: one reader for local paths and tf.io.gfile URLs, with the same errors; output folders checked up front."""
import os

import pytest
import tensorflow as tf

from bert_squad.common import io_utils
from bert_squad.common.errors import InputError


@pytest.mark.parametrize("scheme", ["", "file://", "ram://"])
def test_reads_local_and_gfile_paths(tmp_path, scheme):
  path = f"{scheme}{tmp_path}/data.bin" if scheme != "ram://" else "ram://bert_squad_test_io/data.bin"
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(b"\xef\xbb\xbf{}\x00")
  assert io_utils.read_bytes(path) == b"\xef\xbb\xbf{}\x00"


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_a_missing_file_is_file_not_found_either_way(tmp_path, scheme):
  with pytest.raises(FileNotFoundError) as raised:
    io_utils.read_bytes(f"{scheme}{tmp_path}/missing.json")
  assert raised.value.strerror == "No such file or directory"
  assert raised.value.filename.endswith("missing.json")


def test_a_folder_is_an_os_error(tmp_path):
  for path in (str(tmp_path), f"file://{tmp_path}"):
    with pytest.raises(OSError):
      io_utils.read_bytes(path)


def test_make_output_dir_creates_missing_parents_on_disk_and_in_gfile(tmp_path):
  for folder in (f"{tmp_path}/a/b", "ram://bert_squad_test_io/made/here"):
    io_utils.make_output_dir(folder, "--output_dir")
    assert tf.io.gfile.isdir(folder)
    assert tf.io.gfile.listdir(folder) == []  # the write test leaves nothing


@pytest.mark.parametrize("under", ["a-file/out/deeper", "a-file/out", "a-file"])
def test_make_output_dir_under_a_file_names_the_flag_and_the_file(tmp_path, under):
  (tmp_path / "a-file").write_text("x")
  with pytest.raises(InputError) as raised:
    io_utils.make_output_dir(f"{tmp_path}/{under}", "--output_dir")
  assert str(raised.value) == f"--output_dir={tmp_path}/{under}: not writable ({tmp_path}/a-file is a file, not a folder)"


def test_make_output_dir_for_a_file_names_the_file_flag(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "a-file").write_text("x")
  with pytest.raises(InputError, match=r"^--output_file=a-file/f\.tf_record: not writable \(a-file is a "
                     r"file, not a folder\)$"):
    io_utils.make_output_dir("a-file", "--output_file", "a-file/f.tf_record")


def test_make_output_dir_in_gfile_under_a_file_gives_the_filesystems_reason(tmp_path):
  (tmp_path / "a-file").write_text("x")
  with pytest.raises(InputError, match=rf"^--export_dir=file://{tmp_path}/a-file/sm: not writable \(.+\)$"):
    io_utils.make_output_dir(f"file://{tmp_path}/a-file/sm", "--export_dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_make_output_dir_without_write_permission(tmp_path):
  (tmp_path / "locked").mkdir(mode=0o500)
  with pytest.raises(InputError, match=r": not writable \(Permission denied\)$"):
    io_utils.make_output_dir(f"{tmp_path}/locked", "--cache_dir")


def test_atomic_open_under_a_file_names_the_path_not_its_temporary_name(tmp_path):
  (tmp_path / "a-file").write_text("x")
  with pytest.raises(NotADirectoryError) as raised:
    with io_utils.atomic_open(f"{tmp_path}/a-file/eval.json") as f:
      f.write("{}")
  assert raised.value.filename == f"{tmp_path}/a-file/eval.json"
