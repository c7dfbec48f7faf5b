"""io_utils.read_bytes: one reader for local paths and tf.io.gfile URLs, with the same errors."""
import pytest
import tensorflow as tf

from bert_squad import io_utils


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
