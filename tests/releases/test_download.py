"""Tests for bert_squad.download and bert_squad/releases/ against HTTP servers on 127.0.0.1.

No test leaves the machine: every server is a thread of this process bound to
127.0.0.1 on an ephemeral port, proxies are switched off, and every socket
operation has a timeout. The servers can honour or ignore `Range`, cut a
response short, stall, or answer 404, and they record what they were asked and
how many body bytes they sent, so a resume is seen to send only the rest.
"""
import dataclasses
import functools
import hashlib
import http.server
import io
import os
import pathlib
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
import zipfile

import pytest

from bert_squad.common import io_utils
from bert_squad.common.errors import InputError
from bert_squad.releases import archives
from bert_squad.releases import registry
from bert_squad.releases import transfer

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CONTENT = bytes(range(256)) * 1200  # 307,200 bytes
SMALL_BERT = registry.REGISTRY["uncased_L-2_H-128_A-2"]
SMALL_BERT_PATH = "/storage.googleapis.com/bert_models/2020_02_20/uncased_L-2_H-128_A-2.zip"


@dataclasses.dataclass
class Served:
  """One request as the server saw it."""
  path: str
  range_header: str | None
  status: int
  body_bytes: int


class FakeServer:
  """A threaded HTTP server on 127.0.0.1 serving `files` with a chosen behaviour per path.

  Behaviours: "range" (honours `Range`), "ignore_range" (always 200 and the
  whole file), "truncate_once" (the first response claims the full length but
  stops after `cut` bytes, later ones honour Range), "stall_once" (sends `cut`
  bytes, then waits until the test ends).
  """

  def __init__(self):
    self.files: dict[str, bytes] = {}
    self.behaviour: dict[str, str] = {}
    self.cut = 100_000
    self.requests: list[Served] = []
    self.release = threading.Event()
    self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
    self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
    self._thread.start()

  @property
  def base(self) -> str:
    return f"http://127.0.0.1:{self._httpd.server_address[1]}"

  def add(self, path: str, data: bytes, behaviour: str = "range") -> str:
    self.files[path], self.behaviour[path] = data, behaviour
    return self.base + path

  def close(self) -> None:
    self.release.set()
    self._httpd.shutdown()
    self._httpd.server_close()

  def _handler_class(self):
    server = self

    class Handler(http.server.BaseHTTPRequestHandler):
      timeout = 10

      def log_message(self, *args):  # keep pytest output clean
        del args

      def do_GET(self):  # pylint: disable=invalid-name
        data = server.files.get(self.path)
        range_header = self.headers.get("Range")
        if data is None:
          server.requests.append(Served(self.path, range_header, 404, 0))
          self.send_error(404, "Not Found")
          return
        behaviour = server.behaviour[self.path]
        first_time = not any(r.path == self.path for r in server.requests)
        start = 0
        if range_header and behaviour != "ignore_range":
          start = int(range_header[len("bytes="):].rstrip("-"))
        if start >= len(data) and start:
          server.requests.append(Served(self.path, range_header, 416, 0))
          self.send_response(416)
          self.send_header("Content-Range", f"bytes */{len(data)}")
          self.send_header("Content-Length", "0")
          self.end_headers()
          return
        body = data[start:]
        status = 206 if start else 200
        sent = body[:server.cut] if first_time and behaviour.endswith("_once") else body
        server.requests.append(Served(self.path, range_header, status, len(sent)))
        self.send_response(status)
        if start:
          self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))  # the full length, even when cut
        self.end_headers()
        self.wfile.write(sent)
        self.wfile.flush()
        if first_time and behaviour == "stall_once":
          server.release.wait(10)
        self.close_connection = True

    return Handler


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
  """No proxy may carry the tests' requests off the machine."""
  for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    monkeypatch.delenv(var, raising=False)
  monkeypatch.setenv("no_proxy", "*")
  monkeypatch.delenv(registry.MIRROR_ENV, raising=False)
  urllib.request.install_opener(None)  # rebuilt from this environment on the next urlopen
  yield
  urllib.request.install_opener(None)


@pytest.fixture
def server():
  fake = FakeServer()
  yield fake
  fake.close()


@pytest.fixture
def closed_port() -> int:
  """A loopback port nothing listens on (connection refused)."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _file_source(url: str, sha256: str | None = None) -> registry.Source:
  return registry.Source("data.bin", url, registry.FILE, sha256)


def _fetch(source, target, **kwargs):
  kwargs.setdefault("timeout", 5)
  kwargs.setdefault("retries", 0)
  transfer.fetch(source.url, str(target), source, **kwargs)


def _zip_bytes(members: dict[str, bytes]) -> bytes:
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w") as zf:
    for name, data in members.items():
      zf.writestr(name, data)
  return buffer.getvalue()


CHECKPOINT_FILES = {"bert_config.json": b'{"hidden_size": 128}\n', "vocab.txt": b"[PAD]\n[UNK]\n",
                    "bert_model.ckpt.index": b"index", "bert_model.ckpt.data-00000-of-00001": b"w"}


def _run_cli(*args, env_extra=None):
  env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
  env.pop(registry.MIRROR_ENV, None)
  env.update({"no_proxy": "*", **(env_extra or {})})
  result = subprocess.run([sys.executable, "-m", "bert_squad.download", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, env=env)
  return result.returncode, result.stdout, result.stderr


def _error_line(stderr: str) -> str:
  """The CLI's error: exactly one line starting with `error:`."""
  errors = [line for line in stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1, stderr
  assert "Traceback" not in stderr
  return errors[0]


# --- plain files ---------------------------------------------------------------------------


def test_fetch_writes_the_file_and_checks_its_sha256(server, tmp_path):
  source = _file_source(server.add("/data.bin", CONTENT), _sha256(CONTENT))
  progress = io.StringIO()
  _fetch(source, tmp_path / "data.bin", progress=progress)
  assert (tmp_path / "data.bin").read_bytes() == CONTENT
  assert not (tmp_path / "data.bin.part").exists()
  assert [(r.range_header, r.status) for r in server.requests] == [(None, 200)]
  assert "data.bin: 307k/307k B 100% [" in progress.getvalue() and "\r" not in progress.getvalue()


def test_resume_asks_for_the_rest_and_gets_only_the_rest(server, tmp_path):
  source = _file_source(server.add("/data.bin", CONTENT), _sha256(CONTENT))
  (tmp_path / "data.bin.part").write_bytes(CONTENT[:70_000])
  progress = io.StringIO()
  _fetch(source, tmp_path / "data.bin", progress=progress)
  assert (tmp_path / "data.bin").read_bytes() == CONTENT
  assert server.requests == [Served("/data.bin", "bytes=70000-", 206, len(CONTENT) - 70_000)]
  assert "resuming data.bin at 70.0 kB" in progress.getvalue()


def test_a_server_that_ignores_range_is_downloaded_from_the_start(server, tmp_path):
  source = _file_source(server.add("/data.bin", CONTENT, "ignore_range"), _sha256(CONTENT))
  (tmp_path / "data.bin.part").write_bytes(b"x" * 5000)  # not even a prefix of the file
  progress = io.StringIO()
  _fetch(source, tmp_path / "data.bin", progress=progress)
  assert (tmp_path / "data.bin").read_bytes() == CONTENT
  assert server.requests == [Served("/data.bin", "bytes=5000-", 200, len(CONTENT))]
  assert "ignores Range requests: downloading from the start" in progress.getvalue()


def test_a_complete_part_file_is_finished_without_a_body(server, tmp_path):
  source = _file_source(server.add("/data.bin", CONTENT), _sha256(CONTENT))
  (tmp_path / "data.bin.part").write_bytes(CONTENT)
  _fetch(source, tmp_path / "data.bin")
  assert (tmp_path / "data.bin").read_bytes() == CONTENT
  assert [(r.status, r.body_bytes) for r in server.requests] == [(416, 0)]


def test_truncated_download_is_an_error_that_keeps_the_part_file(server, tmp_path):
  source = _file_source(server.add("/data.bin", CONTENT, "truncate_once"), _sha256(CONTENT))
  with pytest.raises(InputError, match=r"truncated download: got 100000 of 307200 bytes; the "
                     r"partial file .*data.bin.part is kept: run the same command again"):
    _fetch(source, tmp_path / "data.bin")
  assert (tmp_path / "data.bin.part").read_bytes() == CONTENT[:100_000]
  assert not (tmp_path / "data.bin").exists()
  _fetch(source, tmp_path / "data.bin")  # the next run resumes
  assert (tmp_path / "data.bin").read_bytes() == CONTENT
  assert server.requests[1] == Served("/data.bin", "bytes=100000-", 206, len(CONTENT) - 100_000)


def test_retries_resume_a_truncated_download_in_the_same_run(server, tmp_path):
  source = _file_source(server.add("/data.bin", CONTENT, "truncate_once"), _sha256(CONTENT))
  _fetch(source, tmp_path / "data.bin", retries=1)
  assert (tmp_path / "data.bin").read_bytes() == CONTENT
  assert [(r.range_header, r.body_bytes) for r in server.requests] == [
      (None, 100_000), ("bytes=100000-", len(CONTENT) - 100_000)]


def test_a_stalled_transfer_times_out_and_keeps_the_part_file(server, tmp_path):
  source = _file_source(server.add("/data.bin", CONTENT, "stall_once"))
  with pytest.raises(InputError, match=r"timed out after 100000 of 307200 bytes; the partial file"):
    _fetch(source, tmp_path / "data.bin", timeout=2)
  assert (tmp_path / "data.bin.part").read_bytes() == CONTENT[:100_000]


def test_wrong_sha256_removes_the_file(server, tmp_path):
  wrong = _sha256(b"something else")
  source = _file_source(server.add("/data.bin", CONTENT), wrong)
  with pytest.raises(InputError) as raised:
    _fetch(source, tmp_path / "data.bin")
  assert str(raised.value) == (f"{source.url}: sha256 mismatch: expected {wrong}, got "
                               f"{_sha256(CONTENT)}; the bad file was removed")
  assert list(tmp_path.iterdir()) == []


def test_http_error_names_status_and_url(server, tmp_path):
  source = _file_source(server.base + "/missing.bin")
  with pytest.raises(InputError, match=rf"^{source.url}: HTTP 404 Not Found; check the name"):
    _fetch(source, tmp_path / "data.bin")
  assert list(tmp_path.iterdir()) == []


def test_connection_refused_says_how_to_download_by_hand(closed_port, tmp_path):
  source = _file_source(f"http://127.0.0.1:{closed_port}/data.bin")
  target = tmp_path / "data.bin"
  with pytest.raises(InputError) as raised:
    _fetch(source, target)
  assert str(raised.value) == (f"network unreachable: {source.url}: Connection refused; download "
                               f"it by hand from {source.url} and put it in {target}")


def test_a_server_that_never_answers_times_out(tmp_path):
  with socket.socket() as listening:  # accepts connections (backlog) but never reads them
    listening.bind(("127.0.0.1", 0))
    listening.listen(1)
    source = _file_source(f"http://127.0.0.1:{listening.getsockname()[1]}/data.bin")
    with pytest.raises(InputError, match=r"^network unreachable: .*: timed out; download it by"):
      _fetch(source, tmp_path / "data.bin", timeout=0.5)


def test_dns_failure_message():
  source = _file_source("https://no-such-host.invalid/data.bin")
  error = transfer.network_error(source.url, socket.gaierror(-2, "Name or service not known"),
                                 source, "/out/data.bin")
  assert str(error) == ("network unreachable: https://no-such-host.invalid/data.bin: cannot "
                        "resolve the host (Name or service not known); download it by hand from "
                        "https://no-such-host.invalid/data.bin and put it in /out/data.bin")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux /dev/full")
def test_disk_full_is_a_clear_error(server, tmp_path):
  source = _file_source(server.add("/data.bin", CONTENT))
  (tmp_path / "data.bin.part").symlink_to("/dev/full")  # every write fails with ENOSPC
  with pytest.raises(InputError, match=r"^disk full while writing .*data.bin.part: No space left "
                     r"on device; free some space and run the same command again to resume$"):
    _fetch(source, tmp_path / "data.bin")


def test_not_enough_free_space_is_refused_before_downloading(server, tmp_path, monkeypatch):
  source = _file_source(server.add("/data.bin", CONTENT))
  usage = io_utils.shutil.disk_usage(tmp_path)
  monkeypatch.setattr(io_utils.shutil, "disk_usage",
                      lambda path: usage._replace(free=len(CONTENT) - 1))
  with pytest.raises(InputError, match=r"^disk full: data.bin needs 307.2 kB more in .*, only "
                     r"307.2 kB free$"):
    _fetch(source, tmp_path / "data.bin")
  assert not (tmp_path / "data.bin.part").exists()  # refused before writing anything


# --- checkpoints (zips) --------------------------------------------------------------------


@pytest.mark.parametrize("top_folder", ["", "uncased_L-2_H-128_A-2/"])
def test_checkpoint_is_unpacked_into_a_folder_named_after_it(server, tmp_path, top_folder):
  # Google's 2018 zips hold one top folder, the 2020 small BERTs none: both end up flat.
  archive = _zip_bytes({top_folder + name: data for name, data in CHECKPOINT_FILES.items()})
  server.add(SMALL_BERT_PATH, archive)
  result = transfer.download(SMALL_BERT, str(tmp_path), mirror=server.base, timeout=5, retries=0)
  folder = tmp_path / "uncased_L-2_H-128_A-2"
  assert result.path == str(folder)
  assert result.verification == "sha256 check skipped: no checksum is known"
  assert {p.name: p.read_bytes() for p in folder.iterdir()} == CHECKPOINT_FILES
  assert sorted(p.name for p in tmp_path.iterdir()) == ["uncased_L-2_H-128_A-2"]  # zip deleted
  assert registry.run_squad_flags(str(folder)) == [
      f"--vocab_file={folder}/vocab.txt", f"--bert_config_file={folder}/bert_config.json",
      f"--init_checkpoint={folder}/bert_model.ckpt"]


def test_member_sha256_are_checked(server, tmp_path):
  archive = _zip_bytes({"ckpt/" + name: data for name, data in CHECKPOINT_FILES.items()})
  published = {name: _sha256(data) for name, data in CHECKPOINT_FILES.items()
               if name.endswith((".json", ".txt"))}
  source = registry.Source("ckpt", server.add("/ckpt.zip", archive), registry.CHECKPOINT,
                           member_sha256=published)
  result = transfer.download(source, str(tmp_path / "good"), timeout=5, retries=0)
  assert result.verification == "sha256 of 2 unpacked files verified"

  tampered = dataclasses.replace(source, member_sha256=dict(published, **{"vocab.txt": "0" * 64}))
  with pytest.raises(archives.ArchiveError, match=r"ckpt.zip: vocab.txt: sha256 mismatch: "
                     rf"expected 0{{64}}, got {published['vocab.txt']}; the archive was removed"):
    transfer.download(tampered, str(tmp_path / "bad"), timeout=5, retries=0)
  assert list((tmp_path / "bad").iterdir()) == []  # no folder, no zip, no scratch folder


def test_zip_slip_is_refused(server, tmp_path):
  archive = _zip_bytes({"vocab.txt": b"a\n", "../escaped.txt": b"outside"})
  source = registry.Source("evil", server.add("/evil.zip", archive), registry.CHECKPOINT)
  out = tmp_path / "out"
  with pytest.raises(archives.ArchiveError, match=r"unsafe path in the archive: '../escaped.txt'"):
    transfer.download(source, str(out), timeout=5, retries=0)
  assert not (tmp_path / "escaped.txt").exists()
  assert list(out.iterdir()) == []


def test_a_corrupt_zip_is_removed_so_the_next_run_downloads_it_again(server, tmp_path):
  source = registry.Source("broken", server.add("/broken.zip", b"<html>error page</html>"),
                           registry.CHECKPOINT)
  with pytest.raises(archives.ArchiveError, match=r"broken.zip: not a valid zip archive"):
    transfer.download(source, str(tmp_path), timeout=5, retries=0)
  assert list(tmp_path.iterdir()) == []


def test_a_zip_left_by_an_earlier_run_is_unpacked_without_downloading(server, tmp_path):
  (tmp_path / "uncased_L-2_H-128_A-2.zip").write_bytes(_zip_bytes(CHECKPOINT_FILES))
  transfer.download(SMALL_BERT, str(tmp_path), mirror=server.base, timeout=5, retries=0)
  assert (tmp_path / "uncased_L-2_H-128_A-2" / "vocab.txt").read_bytes() == b"[PAD]\n[UNK]\n"
  assert server.requests == []


def test_a_file_put_there_by_hand_is_checked_against_the_published_sha256(server, tmp_path):
  source = _file_source(server.add("/data.bin", CONTENT), _sha256(CONTENT))
  (tmp_path / "data.bin").write_bytes(CONTENT)
  result = transfer.download(source, str(tmp_path), timeout=5, retries=0)
  assert result.verification == "already present, sha256 verified"
  (tmp_path / "data.bin").write_bytes(CONTENT[:-1])
  with pytest.raises(InputError, match=r"data.bin: sha256 mismatch: expected .*; delete it \(or "
                     r"pass --overwrite\) to download it again$"):
    transfer.download(source, str(tmp_path), timeout=5, retries=0)
  assert server.requests == []


def test_existing_results_are_kept_unless_overwrite(server, tmp_path):
  url = server.add("/data.bin", CONTENT)
  (tmp_path / "data.bin").write_bytes(b"old")
  result = transfer.download(_file_source(url), str(tmp_path), timeout=5, retries=0)
  assert result.verification.startswith("already present")
  assert (tmp_path / "data.bin").read_bytes() == b"old" and server.requests == []
  transfer.download(_file_source(url), str(tmp_path), timeout=5, retries=0, overwrite=True)
  assert (tmp_path / "data.bin").read_bytes() == CONTENT


# --- registry, mirror, names ---------------------------------------------------------------


def test_registry_holds_the_releases_of_the_original_readme():
  small = [s for s in registry.REGISTRY.values() if "/2020_02_20/" in s.url]
  assert len(small) == 24
  assert {s.url.rsplit("/", 1)[1] for s in small} == {
      f"uncased_L-{layers}_H-{hidden}_A-{hidden // 64}.zip"
      for layers in (2, 4, 6, 8, 10, 12) for hidden in (128, 256, 512, 768)}
  for name in ("uncased_L-12_H-768_A-12", "cased_L-12_H-768_A-12", "uncased_L-24_H-1024_A-16",
               "wwm_uncased_L-24_H-1024_A-16"):
    assert registry.REGISTRY[name].url.endswith(f"/{name}.zip")
  assert "/2018_10_18/" in registry.REGISTRY["uncased_L-12_H-768_A-12"].url
  for source in registry.REGISTRY.values():
    assert source.url.startswith("https://")
    for digest in [source.sha256 or "0" * 64, *source.member_sha256.values()]:
      assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")


# The releases google-research/bert's run_squad.py checks --do_lower_case against
# (tokenization.validate_case_matches_checkpoint): name -> lower-cased, and their release date.
ORIGINAL_CASE_CHECKED = {
    "uncased_L-24_H-1024_A-16": (True, "2018_10_18"), "uncased_L-12_H-768_A-12": (True, "2018_10_18"),
    "multilingual_L-12_H-768_A-12": (True, "2018_11_03"), "chinese_L-12_H-768_A-12": (True, "2018_11_03"),
    "cased_L-12_H-768_A-12": (False, "2018_10_18"), "cased_L-24_H-1024_A-16": (False, "2018_10_18"),
    "multi_cased_L-12_H-768_A-12": (False, "2018_11_23"),
}


@pytest.mark.parametrize("name", ORIGINAL_CASE_CHECKED)
def test_registry_holds_every_release_of_the_originals_case_check_with_its_casing(name):
  lower_cased, release = ORIGINAL_CASE_CHECKED[name]
  source = registry.REGISTRY[name]
  assert source.kind == registry.CHECKPOINT
  assert source.url == f"https://storage.googleapis.com/bert_models/{release}/{name}.zip"
  assert ("uncased" in source.description.lower()) == lower_cased, source.description


def test_resolve_names_expands_groups_once_and_rejects_unknown_names():
  names = [s.name for s in registry.resolve_names(["squad_v1.1", "dev-v1.1.json", "squad_v2.0"])]
  assert names == ["train-v1.1.json", "dev-v1.1.json", "evaluate-v1.1.py", "train-v2.0.json",
                   "dev-v2.0.json", "evaluate-v2.0.py"]
  with pytest.raises(InputError, match=r"--name=uncased_L-12_H-768: unknown name; did you mean "
                     r"uncased_L-12_H-768_A-12"):
    registry.resolve_names(["uncased_L-12_H-768"])


def test_mirror_keeps_host_and_path():
  source = registry.REGISTRY["evaluate-v1.1.py"]
  assert registry.mirrored_url(source.url, "http://mirror.example:8080/bert/") == (
      "http://mirror.example:8080/bert/worksheets.codalab.org/rest/bundles/"
      "0xbcd57bee090b421c982906709c8c27e1/contents/blob/")
  assert registry.mirrored_url(source.url, None) == source.url


def test_a_wget_x_copy_served_by_a_static_server_is_a_working_mirror(tmp_path):
  # `wget -x URL` saves the evaluator's ".../contents/blob/" URL as
  # ".../contents/blob/index.html"; the stock http.server serves it back at that URL.
  evaluator = registry.REGISTRY["evaluate-v1.1.py"]
  fake_script = b"print('evaluator')\n"
  saved = (tmp_path / "mirror" / "worksheets.codalab.org" /
           urllib.parse.urlsplit(evaluator.url).path.strip("/") / "index.html")
  saved.parent.mkdir(parents=True)
  saved.write_bytes(fake_script)
  handler = functools.partial(_QuietStaticHandler, directory=str(tmp_path / "mirror"))
  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
  try:
    source = dataclasses.replace(evaluator, sha256=_sha256(fake_script))
    result = transfer.download(source, str(tmp_path / "out"),
                               mirror=f"http://127.0.0.1:{httpd.server_address[1]}", timeout=5)
  finally:
    httpd.shutdown()
    httpd.server_close()
  assert result.path == str(tmp_path / "out" / "evaluate-v1.1.py")
  assert (tmp_path / "out" / "evaluate-v1.1.py").read_bytes() == fake_script


class _QuietStaticHandler(http.server.SimpleHTTPRequestHandler):
  timeout = 10

  def log_message(self, *args):
    del args


# --- the command line ----------------------------------------------------------------------


def test_cli_downloads_a_registry_name_from_the_mirror_variable(server, tmp_path):
  server.add(SMALL_BERT_PATH, _zip_bytes(CHECKPOINT_FILES))
  code, stdout, stderr = _run_cli("--name=uncased_L-2_H-128_A-2", f"--output_dir={tmp_path}",
                                  env_extra={registry.MIRROR_ENV: server.base})
  assert code == 0, stderr
  folder = tmp_path / "uncased_L-2_H-128_A-2"
  assert stdout.splitlines() == [f"--vocab_file={folder}/vocab.txt",
                                 f"--bert_config_file={folder}/bert_config.json",
                                 f"--init_checkpoint={folder}/bert_model.ckpt"]
  assert f"uncased_L-2_H-128_A-2: {folder} (sha256 check skipped: no checksum is known)" in stderr
  assert (folder / "bert_config.json").read_bytes() == CHECKPOINT_FILES["bert_config.json"]


def test_cli_truncated_download_then_resume(server, tmp_path):
  url = server.add("/data.bin", CONTENT, "truncate_once")
  args = (f"--url={url}", f"--sha256={_sha256(CONTENT)}", f"--output_dir={tmp_path}")
  code, _, stderr = _run_cli(*args, "--retries=0")
  assert code == 2
  assert _error_line(stderr) == (
      f"error: {url}: truncated download: got 100000 of 307200 bytes; the partial file "
      f"{tmp_path}/data.bin.part is kept: run the same command again to resume")
  code, stdout, stderr = _run_cli(*args, "--retries=0")
  assert code == 0, stderr
  assert stdout == f"{tmp_path}/data.bin\n"
  assert "data.bin: 307k/307k B 100% [" in stderr
  assert "data.bin: " + str(tmp_path / "data.bin") + " (sha256 verified)" in stderr
  assert (tmp_path / "data.bin").read_bytes() == CONTENT
  assert server.requests[-1] == Served("/data.bin", "bytes=100000-", 206, len(CONTENT) - 100_000)


@pytest.mark.parametrize("case", ["unknown_name", "http_404", "refused", "sha256", "no_output",
                                  "bad_sha256", "sha256_of_a_group", "not_published"])
def test_cli_errors_are_one_line_with_exit_code_2(server, closed_port, tmp_path, case):
  url = server.add("/data.bin", CONTENT)
  args, expected = {
      "unknown_name": (["--name=squad_v3"], "error: --name=squad_v3: unknown name; did you mean "),
      "http_404": ([f"--url={server.base}/nope.json"],
                   f"error: {server.base}/nope.json: HTTP 404 Not Found; "),
      "refused": ([f"--url=http://127.0.0.1:{closed_port}/x.json"],
                  f"error: network unreachable: http://127.0.0.1:{closed_port}/x.json: Connection "
                  f"refused; download it by hand from http://127.0.0.1:{closed_port}/x.json and "
                  f"put it in {tmp_path}/x.json"),
      "sha256": ([f"--url={url}", "--sha256=" + "ab" * 32],
                 f"error: {url}: sha256 mismatch: expected {'ab' * 32}, got {_sha256(CONTENT)}; "
                 "the bad file was removed"),
      "no_output": (["--name=dev-v1.1.json"], "error: --output_dir is required"),
      "bad_sha256": ([f"--url={url}", "--sha256=abc"], "error: --sha256=abc: not a sha256"),
      "sha256_of_a_group": (["--name=squad_v1.1", "--sha256=" + "ab" * 32],
                            "error: --sha256 needs exactly one file"),
      "not_published": (["--name=dev-v1.1.json", "--sha256=" + "ab" * 32],
                        f"error: --sha256={'ab' * 32}: dev-v1.1.json has the published sha256 "
                        f"{registry.REGISTRY['dev-v1.1.json'].sha256}"),
  }[case]
  output_dir = [] if case == "no_output" else [f"--output_dir={tmp_path}"]
  code, stdout, stderr = _run_cli(*args, *output_dir, "--retries=0", "--timeout=5")
  assert code == 2 and stdout == ""
  assert _error_line(stderr).startswith(expected)
  assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("under", ["a-file/models", "a-file"])
def test_cli_output_dir_under_a_file_is_one_line_before_downloading(server, tmp_path, under):
  url = server.add("/data.bin", CONTENT)
  (tmp_path / "a-file").write_text("x")
  code, stdout, stderr = _run_cli(f"--url={url}", f"--output_dir={tmp_path / under}", "--retries=0")
  assert code == 2 and stdout == ""
  assert _error_line(stderr) == (f"error: --output_dir={tmp_path / under}: not writable "
                                 f"({tmp_path / 'a-file'} is a file, not a folder)")
  assert server.requests == []


def test_cli_list_prints_every_name_and_url():
  code, stdout, _ = _run_cli("--list")
  assert code == 0
  for source in registry.REGISTRY.values():
    assert any(line.startswith(source.name + " ") and line.endswith(source.url)
               for line in stdout.splitlines()), source.name
  assert "squad_v1.1" in stdout and "squad_v2.0" in stdout


def test_importing_the_module_defines_no_flags():
  code = ("import absl.flags, bert_squad.download; "
          "print([f for f in ('name', 'output_dir', 'mirror') if f in absl.flags.FLAGS])")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60)
  assert result.stdout.strip() == "[]", result.stderr
