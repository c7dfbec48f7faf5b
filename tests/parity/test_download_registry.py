"""The registry's published checksums against the real files in ../shared.

`dev-v1.1.json` there is byte-identical to the release, and the uncased
`vocab.txt` and BERT-Base `bert_config.json` are Google's: downloading them by
registry name from a loopback mirror must pass the published sha256 checks.
"""
import dataclasses
import functools
import http.server
import io
import os
import pathlib
import subprocess
import sys
import threading
import urllib.request
import zipfile

import pytest

from bert_squad.releases import registry
from bert_squad.releases import transfer

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
BASE_CONFIG = "google-checkpoints/uncased_L-12_H-768_A-12-with-optimizer-slots/bert_config.json"


class _QuietStaticHandler(http.server.SimpleHTTPRequestHandler):
  timeout = 10

  def log_message(self, *args):
    del args


@pytest.fixture
def mirror(tmp_path, monkeypatch):
  """(folder, base URL) of a static server on 127.0.0.1 laid out as `wget -x` saves files."""
  monkeypatch.setenv("no_proxy", "*")  # loopback only, whatever proxy is configured
  urllib.request.install_opener(None)
  folder = tmp_path / "mirror"
  folder.mkdir()
  handler = functools.partial(_QuietStaticHandler, directory=str(folder))
  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
  yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
  httpd.shutdown()
  httpd.server_close()


def _mirror_path(folder: pathlib.Path, source: registry.Source) -> pathlib.Path:
  path = folder / registry.mirrored_url(source.url, "x").removeprefix("x/")
  path.parent.mkdir(parents=True, exist_ok=True)
  return path


def test_real_dev_v11_passes_the_published_sha256(shared_data, mirror, tmp_path):
  folder, base = mirror
  real = shared_data / "squad" / "dev-v1.1.json"
  _mirror_path(folder, registry.REGISTRY["dev-v1.1.json"]).symlink_to(real)
  env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
  env.update({"no_proxy": "*", registry.MIRROR_ENV: base})
  result = subprocess.run([sys.executable, "-m", "bert_squad.download", "--name=dev-v1.1.json",
                           f"--output_dir={tmp_path / 'out'}", "--retries=0", "--timeout=10"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env)
  assert result.returncode == 0, result.stderr
  assert "(sha256 verified)" in result.stderr
  assert (tmp_path / "out" / "dev-v1.1.json").read_bytes() == real.read_bytes()


def test_google_vocab_and_config_pass_the_published_member_sha256(shared_data, mirror, tmp_path):
  folder, base = mirror
  base_uncased = registry.REGISTRY["uncased_L-12_H-768_A-12"]
  real_files = {"vocab.txt": shared_data / "bert" / "vocab-uncased.txt",
                "bert_config.json": shared_data / "bert" / BASE_CONFIG}
  buffer = io.BytesIO()  # laid out like Google's 2018 zip: one top folder
  with zipfile.ZipFile(buffer, "w") as zf:
    for name, path in real_files.items():
      zf.write(path, f"uncased_L-12_H-768_A-12/{name}")
  _mirror_path(folder, base_uncased).write_bytes(buffer.getvalue())
  # The weights are not in ../shared: check the two members that are.
  published = {name: base_uncased.member_sha256[name] for name in real_files}
  source = dataclasses.replace(base_uncased, member_sha256=published)
  result = transfer.download(source, str(tmp_path / "out"), mirror=base, timeout=10, retries=0)
  assert result.verification == "sha256 of 2 unpacked files verified"
  assert registry.REGISTRY["uncased_L-24_H-1024_A-16"].member_sha256["vocab.txt"] == (
      published["vocab.txt"])
