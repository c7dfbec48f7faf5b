"""Downloads one registry `Source` over HTTP: resumable, size- and sha256-checked.

`registry.Source` + local output folder (+ optional mirror base URL) ->
`registry.Downloaded`: the file, or for a checkpoint zip the folder it was
unpacked into. Bytes go to `<file>.part` first: an interrupted transfer
resumes from there with an HTTP `Range` request, and the final name appears
only once the size and, where one is published, the sha256 matched. Only the
standard library speaks HTTP here (urllib).
"""
import errno
import http.client
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from typing import IO

from bert_squad import __version__
from bert_squad.common import io_utils
from bert_squad.common import progress as progress_lib
from bert_squad.common.errors import InputError
from bert_squad.releases import archives
from bert_squad.releases import registry

_CHUNK_BYTES = 1 << 20


class _Interrupted(Exception):
  """The transfer stopped early; the `.part` file holds what arrived."""


def _by_hand_hint(source: registry.Source, target: str) -> str:
  return f"download it by hand from {source.url} and put it in {target}"


def network_error(url: str, reason: object, source: registry.Source, target: str) -> InputError:
  """`network unreachable: <url>: <why>; download it by hand ...` for a failed connection."""
  if isinstance(reason, socket.gaierror):
    what = f"cannot resolve the host ({reason.strerror})"
  elif isinstance(reason, (TimeoutError, socket.timeout)):
    what = "timed out"
  elif isinstance(reason, OSError) and reason.strerror:
    what = reason.strerror
  else:
    what = str(reason)
  return InputError(f"network unreachable: {url}: {what}; {_by_hand_hint(source, target)}")


def _content_range(value: str | None) -> tuple[int | None, int | None]:
  """`bytes 100-199/1000` -> (100, 1000); `bytes */1000` -> (None, 1000)."""
  if not value or not value.startswith("bytes "):
    return None, None
  span, _, total = value[len("bytes "):].partition("/")
  start = span.split("-")[0]
  return (int(start) if start.isdigit() else None), (int(total) if total.isdigit() else None)


def _request(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
  headers = {"User-Agent": f"bert-squad/{__version__} (python urllib)"}
  if offset:
    headers["Range"] = f"bytes={offset}-"
  return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _open_transfer(url: str, part: str, source: registry.Source, target: str,
                   timeout: float) -> tuple[http.client.HTTPResponse | None, int, int | None]:
  """Opens the response to append to `part`: (response or None if complete, offset, total)."""
  offset = os.path.getsize(part) if os.path.exists(part) else 0
  try:
    response = _request(url, offset, timeout)
  except urllib.error.HTTPError as e:
    if e.code == 416 and offset:  # nothing left to send: complete, or the file changed
      _, total = _content_range(e.headers.get("Content-Range"))
      e.close()
      if total == offset:
        return None, offset, total
      os.remove(part)
      return _open_transfer(url, part, source, target, timeout)
    e.close()
    raise InputError(f"{url}: HTTP {e.code} {e.reason}; check the name, --url or --mirror, "
                     f"or {_by_hand_hint(source, target)}") from None
  except urllib.error.URLError as e:
    raise network_error(url, e.reason, source, target) from None
  except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
    raise network_error(url, e, source, target) from None
  length = response.headers.get("Content-Length")
  length = int(length) if length and length.isdigit() else None
  if response.status == 206:
    start, total = _content_range(response.headers.get("Content-Range"))
    if start == offset:
      return response, offset, total if total is not None else (
          offset + length if length is not None else None)
    response.close()
    if not offset:
      raise InputError(f"{url}: the server sent a part (Content-Range "
                       f"{response.headers.get('Content-Range')}) of what was asked in full")
    os.remove(part)  # a range we did not ask for: start over
    return _open_transfer(url, part, source, target, timeout)
  return response, 0, length  # 200: the server ignores Range, so start over


def _byte_count(done: int, total: int | None) -> str:
  return f"{done} of {total} bytes" if total is not None else f"{done} bytes"


def _transfer(url: str, part: str, source: registry.Source, target: str, timeout: float,
              progress: IO[str] | None) -> None:
  """Appends the rest of `url` to `part`; raises `_Interrupted` if it arrives short."""
  response, offset, total = _open_transfer(url, part, source, target, timeout)
  if response is None:
    return
  with response:
    if total is not None:
      io_utils.check_free_space(os.path.dirname(part) or ".", total - offset,
                                os.path.basename(target))
    if progress and offset:
      progress.write(f"resuming {os.path.basename(target)} at {io_utils.human_bytes(offset)}\n")
    elif progress and os.path.exists(part) and os.path.getsize(part):
      progress.write(f"{url} ignores Range requests: downloading from the start\n")
    bar = (progress_lib.Progress(total, os.path.basename(target), "B", progress, initial=offset,
                                 unit_scale=True, log_every_s=10.0) if progress else None)
    done = offset
    try:
      with open(part, "ab" if offset else "wb") as f:
        # read1 returns what has arrived, so a timeout loses no received bytes.
        while block := response.read1(_CHUNK_BYTES):
          f.write(block)
          done += len(block)
          if bar:
            bar.advance(len(block))
    except OSError as e:
      if e.errno in (errno.ENOSPC, errno.EDQUOT):
        raise InputError(f"disk full while writing {part}: {e.strerror}; free some space and "
                         "run the same command again to resume") from None
      if isinstance(e, TimeoutError):
        raise _Interrupted(f"timed out after {_byte_count(done, total)}") from None
      if isinstance(e, ConnectionError):
        raise _Interrupted(f"connection lost ({e.strerror or e}) after "
                           f"{_byte_count(done, total)}") from None
      raise
    except http.client.IncompleteRead:
      raise _Interrupted(f"connection closed after {_byte_count(done, total)}") from None
    finally:
      if bar:
        bar.close()
  if total is not None and done != total:
    raise _Interrupted(f"truncated download: got {_byte_count(done, total)}")


def fetch(url: str, target: str, source: registry.Source, timeout: float = 60.0, retries: int = 3,
          progress: IO[str] | None = None) -> None:
  """Downloads `url` to `target` through `target.part`, resuming and retrying.

  The size is checked against Content-Length; `source.sha256`, when known, is
  checked before `target.part` is renamed to `target`. A wrong file is deleted;
  an interrupted one is kept for the next run to resume.
  """
  part = target + ".part"
  for attempt in range(retries + 1):
    try:
      _transfer(url, part, source, target, timeout, progress)
      break
    except _Interrupted as e:
      if attempt == retries:
        raise InputError(f"{url}: {e}; the partial file {part} is kept: run the same command "
                         "again to resume") from None
      if progress:
        progress.write(f"{e}; resuming (retry {attempt + 1} of {retries})\n")
      time.sleep(min(2 ** attempt, 30))
  if source.sha256:
    actual = io_utils.file_sha256(part)
    if actual != source.sha256:
      os.remove(part)
      raise InputError(f"{url}: sha256 mismatch: expected {source.sha256}, got {actual}; "
                       f"the bad file was removed")
  os.replace(part, target)


def _verification_text(source: registry.Source) -> str:
  if source.sha256:
    return "sha256 verified"
  if source.member_sha256:
    return f"sha256 of {len(source.member_sha256)} unpacked files verified"
  return "sha256 check skipped: no checksum is known"


def _check_existing_file(path: str, expected_sha256: str) -> None:
  """A file already there (e.g. downloaded by hand) must have the expected sha256."""
  actual = io_utils.file_sha256(path)
  if actual != expected_sha256:
    raise InputError(f"{path}: sha256 mismatch: expected {expected_sha256}, got {actual}; "
                     "delete it (or pass --overwrite) to download it again")


def download(source: registry.Source, output_dir: str, mirror: str | None = None,
             timeout: float = 60.0, retries: int = 3, overwrite: bool = False,
             keep_archive: bool = False,
             progress: IO[str] | None = None) -> registry.Downloaded:
  """Downloads (and for a checkpoint, unpacks) `source` into `output_dir`.

  An existing result is kept unless `overwrite`. A checkpoint's zip stays
  beside the folder until it is unpacked and checked (so a failed unpack does
  not cost a new download), then it is deleted unless `keep_archive`.
  """
  if "://" in output_dir:
    raise InputError(f"--output_dir={output_dir}: must be a local folder (copy the result to "
                     "remote storage afterwards, e.g. with gsutil cp -r)")
  io_utils.make_output_dir(output_dir, "--output_dir")
  url = registry.mirrored_url(source.url, mirror)
  target = os.path.join(output_dir, source.local_name)
  final = target if source.kind == registry.FILE else os.path.join(output_dir, source.name)
  if os.path.exists(final) and not overwrite:
    if source.kind == registry.FILE and source.sha256:
      _check_existing_file(final, source.sha256)
      return registry.Downloaded(source, final, "already present, sha256 verified")
    return registry.Downloaded(source, final,
                               "already present: kept (--overwrite fetches it again)")
  if overwrite:
    for stale in (final, target, target + ".part"):
      if os.path.isdir(stale):
        shutil.rmtree(stale)
      elif os.path.exists(stale):
        os.remove(stale)
  if not os.path.exists(target):
    fetch(url, target, source, timeout, retries, progress)
  elif source.sha256:
    _check_existing_file(target, source.sha256)
  if source.kind == registry.CHECKPOINT:
    try:
      archives.extract_zip(target, final, source.member_sha256)
    except archives.ArchiveError:
      os.remove(target)  # so that the next run downloads it again
      raise
    if not keep_archive:
      os.remove(target)
  return registry.Downloaded(source, final, _verification_text(source))
