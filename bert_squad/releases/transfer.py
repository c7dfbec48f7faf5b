r"""Downloads Google's released BERT checkpoints and the SQuAD files.

  python -m bert_squad.download --list
  python -m bert_squad.download --name=uncased_L-12_H-768_A-12 --output_dir=models
  python -m bert_squad.download --name=squad_v1.1,squad_v2.0 --output_dir=squad
  python -m bert_squad.download --url=https://host/file.zip --sha256=... --output_dir=out

A checkpoint zip is unpacked into `--output_dir/<name>/` (`bert_config.json`,
`vocab.txt`, `bert_model.ckpt.*`); a plain file lands in `--output_dir/`.
A download goes to `<file>.part` first: an interrupted one resumes from there
with an HTTP `Range` request, and the final name appears only after the size
and, where one is published, the sha256 matched. `--mirror` (or the
`BERT_SQUAD_MIRROR` variable) fetches the registry's files from another server
laid out like `wget --force-directories` saves them: `<mirror>/<host>/<path>`.

Only the standard library speaks HTTP here (urllib), so this tool needs no
package beyond the project's own. Flags are defined only when this module runs
as a program, so importing it defines none.
"""
import dataclasses
import difflib
import errno
import http.client
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from typing import IO, Iterable, Mapping, Sequence

from absl import flags

from bert_squad import __version__
from bert_squad.common import cli
from bert_squad.common import io_utils
from bert_squad.common import progress as progress_lib
from bert_squad.common.errors import InputError

FLAGS = flags.FLAGS

MIRROR_ENV = "BERT_SQUAD_MIRROR"
CHECKPOINT = "checkpoint"  # a zip, unpacked into `<output_dir>/<name>/`
FILE = "file"  # saved as `<output_dir>/<filename>`

_CHUNK_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class Source:
  """One downloadable thing.

  Attributes:
    name: registry name; also the folder a checkpoint is unpacked into.
    url: where it is published.
    kind: `CHECKPOINT` (a zip to unpack) or `FILE`.
    sha256: published sha256 of the downloaded file, or None if none is known.
    filename: local file name; defaults to the last part of the URL path.
    member_sha256: published sha256 of files inside the zip, by name.
    description: one line for `--list`.
  """
  name: str
  url: str
  kind: str = FILE
  sha256: str | None = None
  filename: str | None = None
  member_sha256: Mapping[str, str] = dataclasses.field(default_factory=dict)
  description: str = ""

  @property
  def local_name(self) -> str:
    return self.filename or os.path.basename(urllib.parse.urlsplit(self.url).path)


@dataclasses.dataclass(frozen=True)
class Downloaded:
  """What `download` produced: `path` is the file or the unpacked folder."""
  source: Source
  path: str
  verification: str


# Published sha256 of the files inside Google's original zips, from NVIDIA
# DeepLearningExamples (BERT/data/GooglePretrainedWeightDownloader.py). Google
# publishes none for the zips themselves. The uncased vocab.txt and the
# BERT-Base bert_config.json values equal ../shared/data's copies.
_UNCASED_VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
_CASED_VOCAB_SHA256 = "eeaa9875b23b04b4c54ef759d03db9d1ba1554838f8fb26c5d96fa551df93d02"
_NVIDIA_MEMBER_SHA256 = {
    "uncased_L-12_H-768_A-12": {
        "bert_config.json": "7b4e5f53efbd058c67cda0aacfafb340113ea1b5797d9ce6ee411704ba21fcbc",
        "bert_model.ckpt.data-00000-of-00001":
            "58580dc5e0bf0ae0d2efd51d0e8272b2f808857f0a43a88aaf7549da6d7a8a84",
        "bert_model.ckpt.index": "04c1323086e2f1c5b7c0759d8d3e484afbb0ab45f51793daab9f647113a0117b",
        "bert_model.ckpt.meta": "dd5682170a10c3ea0280c2e9b9a45fee894eb62da649bbdea37b38b0ded5f60e",
        "vocab.txt": _UNCASED_VOCAB_SHA256,
    },
    "uncased_L-24_H-1024_A-16": {
        "bert_config.json": "bfa42236d269e2aeb3a6d30412a33d15dbe8ea597e2b01dc9518c63cc6efafcb",
        "bert_model.ckpt.data-00000-of-00001":
            "bc6b3363e3be458c99ecf64b7f472d2b7c67534fd8f564c0556a678f90f4eea1",
        "bert_model.ckpt.index": "68b52f2205ffc64dc627d1120cf399c1ef1cbc35ea5021d1afc889ffe2ce2093",
        "bert_model.ckpt.meta": "6fcce8ff7628f229a885a593625e3d5ff9687542d5ef128d9beb1b0c05edc4a1",
        "vocab.txt": _UNCASED_VOCAB_SHA256,
    },
    "cased_L-12_H-768_A-12": {
        "bert_config.json": "f11dfb757bea16339a33e1bf327b0aade6e57fd9c29dc6b84f7ddb20682f48bc",
        "bert_model.ckpt.data-00000-of-00001":
            "734d5a1b68bf98d4e9cb6b6692725d00842a1937af73902e51776905d8f760ea",
        "bert_model.ckpt.index": "517d6ef5c41fc2ca1f595276d6fccf5521810d57f5a74e32616151557790f7b1",
        "bert_model.ckpt.meta": "5f8a9771ff25dadd61582abb4e3a748215a10a6b55947cbb66d0f0ba1694be98",
        "vocab.txt": _CASED_VOCAB_SHA256,
    },
    "cased_L-24_H-1024_A-16": {
        "bert_config.json": "7adb2125c8225da495656c982fd1c5f64ba8f20ad020838571a3f8a954c2df57",
        "bert_model.ckpt.data-00000-of-00001":
            "6ff33640f40d472f7a16af0c17b1179ca9dcc0373155fb05335b6a4dd1657ef0",
        "bert_model.ckpt.index": "ef42a53f577fbe07381f4161b13c7cab4f4fc3b167cec6a9ae382c53d18049cf",
        "bert_model.ckpt.meta": "d2ddff3ed33b80091eac95171e94149736ea74eb645e575d942ec4a5e01a40a1",
        "vocab.txt": _CASED_VOCAB_SHA256,
    },
    "multi_cased_L-12_H-768_A-12": {
        "bert_config.json": "e76c3964bc14a8bb37a5530cdc802699d2f4a6fddfab0611e153aa2528f234f0",
        "bert_model.ckpt.data-00000-of-00001":
            "55b8a2df41f69c60c5180e50a7c31b7cdf6238909390c4ddf05fbc0d37aa1ac5",
        "bert_model.ckpt.index": "7d8509c2a62b4e300feb55f8e5f1eef41638f4998dd4d887736f42d4f6a34b37",
        "bert_model.ckpt.meta": "95e5f1997e8831f1c31e5cf530f1a2e99f121e9cd20887f2dce6fe9e3343e3fa",
        "vocab.txt": "fe0fda7c425b48c516fc8f160d594c8022a0808447475c1a7c6d6479763f310c",
    },
}

_GCS = "https://storage.googleapis.com/bert_models"
_SQUAD = "https://rajpurkar.github.io/SQuAD-explorer/dataset"
_CODALAB = "https://worksheets.codalab.org/rest/bundles"


def _checkpoint(name: str, release: str, description: str) -> Source:
  return Source(name, f"{_GCS}/{release}/{name}.zip", CHECKPOINT,
                member_sha256=_NVIDIA_MEMBER_SHA256.get(name, {}), description=description)


_SMALL_BERT_NICKNAMES = {(2, 128): " (BERT-Tiny)", (4, 256): " (BERT-Mini)",
                         (4, 512): " (BERT-Small)", (8, 512): " (BERT-Medium)",
                         (12, 768): " (BERT-Base re-trained)"}


def _small_bert(layers: int, hidden: int) -> Source:
  """One of the 24 compact BERTs of Turc et al. 2019 (release 2020_02_20)."""
  file_stem = f"uncased_L-{layers}_H-{hidden}_A-{hidden // 64}"
  nickname = _SMALL_BERT_NICKNAMES.get((layers, hidden), "")
  # The 12/768 one shares its zip name with the 2018 BERT-Base: the date tells them apart.
  name = file_stem + ("_2020_02_20" if (layers, hidden) == (12, 768) else "")
  return Source(name, f"{_GCS}/2020_02_20/{file_stem}.zip", CHECKPOINT,
                description=f"small BERT{nickname}: {layers}-layer, {hidden}-hidden, uncased")


def _build_registry() -> dict[str, Source]:
  sources = [
      _checkpoint("uncased_L-12_H-768_A-12", "2018_10_18",
                  "BERT-Base, Uncased: 12-layer, 768-hidden"),
      _checkpoint("uncased_L-24_H-1024_A-16", "2018_10_18",
                  "BERT-Large, Uncased: 24-layer, 1024-hidden"),
      _checkpoint("cased_L-12_H-768_A-12", "2018_10_18",
                  "BERT-Base, Cased: 12-layer, 768-hidden"),
      _checkpoint("cased_L-24_H-1024_A-16", "2018_10_18",
                  "BERT-Large, Cased: 24-layer, 1024-hidden"),
      _checkpoint("wwm_uncased_L-24_H-1024_A-16", "2019_05_30",
                  "BERT-Large, Uncased, Whole Word Masking"),
      _checkpoint("wwm_cased_L-24_H-1024_A-16", "2019_05_30",
                  "BERT-Large, Cased, Whole Word Masking"),
      _checkpoint("multi_cased_L-12_H-768_A-12", "2018_11_23",
                  "BERT-Base, Multilingual Cased: 104 languages (XQuAD)"),
      # Google's README: the first multilingual model, not recommended (use multi_cased);
      # both are lower-cased, as the original's --do_lower_case check says.
      _checkpoint("multilingual_L-12_H-768_A-12", "2018_11_03",
                  "BERT-Base, Multilingual Uncased (original): 102 languages"),
      _checkpoint("chinese_L-12_H-768_A-12", "2018_11_03",
                  "BERT-Base, Chinese Simplified and Traditional, uncased"),
      *[_small_bert(layers, hidden) for layers in (2, 4, 6, 8, 10, 12)
        for hidden in (128, 256, 512, 768)],
      # sha256 of the SQuAD files: tensorflow/datasets' published checksums
      # (question_answering/squad/checksums.tsv); dev-v1.1.json's equals
      # ../shared/data's byte-identical copy.
      Source("train-v1.1.json", f"{_SQUAD}/train-v1.1.json",
             sha256="3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955",
             description="SQuAD v1.1 training set"),
      Source("dev-v1.1.json", f"{_SQUAD}/dev-v1.1.json",
             sha256="95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9",
             description="SQuAD v1.1 dev set"),
      Source("train-v2.0.json", f"{_SQUAD}/train-v2.0.json",
             sha256="68dcfbb971bd3e96d5b46c7177b16c1a4e7d4bdef19fb204502738552dede002",
             description="SQuAD v2.0 training set"),
      Source("dev-v2.0.json", f"{_SQUAD}/dev-v2.0.json",
             sha256="80a5225e94905956a6446d296ca1093975c4d3b3260f1d6c8f68bc2ab77182d8",
             description="SQuAD v2.0 dev set"),
      # The official evaluators: the CodaLab bundles the SQuAD site links; their
      # sha256 as several public projects pin them.
      Source("evaluate-v1.1.py", f"{_CODALAB}/0xbcd57bee090b421c982906709c8c27e1/contents/blob/",
             sha256="f5a673dbbd173e29e9ea38f1b2091d883583b77b3a4c17144b223fb0f2f9bd09",
             filename="evaluate-v1.1.py", description="official SQuAD v1.1 evaluator"),
      Source("evaluate-v2.0.py", f"{_CODALAB}/0x6b567e1cf2e041ec80d7098f031c5c9e/contents/blob/",
             sha256="710840ce2c2c61716334c056777032f24660b83eb9869a451036e6a24d8103c4",
             filename="evaluate-v2.0.py", description="official SQuAD v2.0 evaluator"),
  ]
  return {source.name: source for source in sources}


REGISTRY: Mapping[str, Source] = _build_registry()

# Names that stand for several registry entries.
GROUPS: Mapping[str, tuple[str, ...]] = {
    "squad_v1.1": ("train-v1.1.json", "dev-v1.1.json", "evaluate-v1.1.py"),
    "squad_v2.0": ("train-v2.0.json", "dev-v2.0.json", "evaluate-v2.0.py"),
}


def resolve_names(names: Iterable[str]) -> list[Source]:
  """Registry entries for names and group names, in order, without repeats."""
  resolved = []
  for name in names:
    if name in GROUPS:
      members = GROUPS[name]
    elif name in REGISTRY:
      members = (name,)
    else:
      close = difflib.get_close_matches(name, [*REGISTRY, *GROUPS], n=3)
      hint = f"did you mean {', '.join(close)}? " if close else ""
      raise InputError(f"--name={name}: unknown name; {hint}see --list")
    resolved.extend(REGISTRY[m] for m in members if REGISTRY[m] not in resolved)
  return resolved


def source_for_url(url: str, sha256: str | None = None) -> Source:
  """A `Source` for an arbitrary URL: a `.zip` is unpacked into a folder named after it."""
  parts = urllib.parse.urlsplit(url)
  filename = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
  if (parts.scheme not in ("http", "https") or filename in ("", ".", "..", ".zip")
      or "/" in filename or os.sep in filename):
    raise InputError(f"--url={url}: give an http(s) URL that ends in a file name")
  if filename.endswith(".zip"):
    return Source(filename[:-len(".zip")], url, CHECKPOINT, sha256)
  return Source(filename, url, FILE, sha256)


def mirrored_url(url: str, mirror: str | None) -> str:
  """`url` on `mirror`, laid out as `<mirror>/<host>/<path>` (as `wget -x` saves it)."""
  if not mirror:
    return url
  parts = urllib.parse.urlsplit(url)
  return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def _human_bytes(count: float) -> str:
  for unit in ("B", "kB", "MB", "GB"):
    if count < 1000 or unit == "GB":
      return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
    count /= 1000
  raise AssertionError("unreachable")


class _Interrupted(Exception):
  """The transfer stopped early; the `.part` file holds what arrived."""


class ArchiveError(InputError):
  """A zip that is corrupt, unsafe or not what was published."""


def _by_hand_hint(source: Source, target: str) -> str:
  return f"download it by hand from {source.url} and put it in {target}"


def _network_error(url: str, reason: object, source: Source, target: str) -> InputError:
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


def _open_transfer(url: str, part: str, source: Source, target: str,
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
    raise _network_error(url, e.reason, source, target) from None
  except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
    raise _network_error(url, e, source, target) from None
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


def _check_free_space(folder: str, needed: int, what: str) -> None:
  free = shutil.disk_usage(folder).free
  if needed > free:
    raise InputError(f"disk full: {what} needs {_human_bytes(needed)} more in {folder}, "
                     f"only {_human_bytes(free)} free")


def _transfer(url: str, part: str, source: Source, target: str, timeout: float,
              progress: IO[str] | None) -> None:
  """Appends the rest of `url` to `part`; raises `_Interrupted` if it arrives short."""
  response, offset, total = _open_transfer(url, part, source, target, timeout)
  if response is None:
    return
  with response:
    if total is not None:
      _check_free_space(os.path.dirname(part) or ".", total - offset, os.path.basename(target))
    if progress and offset:
      progress.write(f"resuming {os.path.basename(target)} at {_human_bytes(offset)}\n")
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


def fetch(url: str, target: str, source: Source, timeout: float = 60.0, retries: int = 3,
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


def _check_member_paths(archive: str, zf: zipfile.ZipFile) -> None:
  """Refuses absolute paths and `..` in member names (zip slip).

  `zipfile` would silently rewrite such names; a checkpoint that holds them is
  not Google's, so it is refused instead.
  """
  for name in zf.namelist():
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
      raise ArchiveError(f"{archive}: unsafe path in the archive: {name!r}; "
                         "the archive was removed")


def _content_root(folder: str) -> str:
  """The folder that holds the files: Google's 2018 zips wrap them in one top folder."""
  entries = [e for e in os.listdir(folder) if e != "__MACOSX"]
  if len(entries) == 1 and os.path.isdir(os.path.join(folder, entries[0])):
    return os.path.join(folder, entries[0])
  return folder


def _verify_members(root: str, member_sha256: Mapping[str, str], archive: str) -> None:
  for member, expected in sorted(member_sha256.items()):
    path = os.path.join(root, member)
    if not os.path.isfile(path):
      raise ArchiveError(f"{archive}: {member} is missing from the archive; "
                         "the archive was removed")
    actual = io_utils.file_sha256(path)
    if actual != expected:
      raise ArchiveError(f"{archive}: {member}: sha256 mismatch: expected {expected}, "
                         f"got {actual}; the archive was removed")


def extract_zip(archive: str, folder: str, member_sha256: Mapping[str, str] | None = None) -> None:
  """Unpacks `archive` so that its files end up directly in `folder`.

  It unpacks into a temporary folder beside `folder`, checks `member_sha256`,
  then renames: `folder` appears complete or not at all. Raises
  `ArchiveError` for a corrupt archive, one with absolute or `..` member
  paths, or a member whose sha256 differs; the caller removes such an archive.
  """
  parent = os.path.dirname(folder) or "."
  try:
    with zipfile.ZipFile(archive) as zf:
      _check_member_paths(archive, zf)
      _check_free_space(parent, sum(info.file_size for info in zf.infolist()), archive)
      scratch = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.tmp-", dir=parent)
      try:
        zf.extractall(scratch)
        root = _content_root(scratch)
        _verify_members(root, member_sha256 or {}, archive)
        os.replace(root, folder)
      finally:
        shutil.rmtree(scratch, ignore_errors=True)
  except zipfile.BadZipFile as e:
    raise ArchiveError(f"{archive}: not a valid zip archive ({e}); it was probably cut short or "
                       "is an error page; the archive was removed") from None
  except OSError as e:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
      raise InputError(f"disk full while unpacking {archive} into {parent}: {e.strerror}; "
                       "free some space and run the same command again") from None
    raise


def _verification_text(source: Source) -> str:
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


def download(source: Source, output_dir: str, mirror: str | None = None, timeout: float = 60.0,
             retries: int = 3, overwrite: bool = False, keep_archive: bool = False,
             progress: IO[str] | None = None) -> Downloaded:
  """Downloads (and for a checkpoint, unpacks) `source` into `output_dir`.

  An existing result is kept unless `overwrite`. A checkpoint's zip stays
  beside the folder until it is unpacked and checked (so a failed unpack does
  not cost a new download), then it is deleted unless `keep_archive`.
  """
  if "://" in output_dir:
    raise InputError(f"--output_dir={output_dir}: must be a local folder (copy the result to "
                     "remote storage afterwards, e.g. with gsutil cp -r)")
  io_utils.make_output_dir(output_dir, "--output_dir")
  url = mirrored_url(source.url, mirror)
  target = os.path.join(output_dir, source.local_name)
  final = target if source.kind == FILE else os.path.join(output_dir, source.name)
  if os.path.exists(final) and not overwrite:
    if source.kind == FILE and source.sha256:
      _check_existing_file(final, source.sha256)
      return Downloaded(source, final, "already present, sha256 verified")
    return Downloaded(source, final, "already present: kept (--overwrite fetches it again)")
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
  if source.kind == CHECKPOINT:
    try:
      extract_zip(target, final, source.member_sha256)
    except ArchiveError:
      os.remove(target)  # so that the next run downloads it again
      raise
    if not keep_archive:
      os.remove(target)
  return Downloaded(source, final, _verification_text(source))


def run_squad_flags(folder: str) -> list[str]:
  """`--vocab_file`, `--bert_config_file`, `--init_checkpoint` for an unpacked checkpoint."""
  paths = {"vocab_file": "vocab.txt", "bert_config_file": "bert_config.json",
           "init_checkpoint": "bert_model.ckpt"}
  if not os.path.exists(os.path.join(folder, "bert_config.json")):
    return []
  return [f"--{flag}={os.path.join(folder, name)}" for flag, name in paths.items()]


def registry_table() -> str:
  """The registry as text, one source per line, groups first."""
  lines = [f"{'group':32} contents"]
  lines += [f"{name:32} {', '.join(members)}" for name, members in GROUPS.items()]
  lines += ["", f"{'name':36} {'sha256':8} {'description':58} url"]
  for source in REGISTRY.values():
    checked = "file" if source.sha256 else "members" if source.member_sha256 else "none"
    lines.append(f"{source.name:36} {checked:8} {source.description:58} {source.url}")
  return "\n".join(lines)


def _define_flags() -> None:
  flags.DEFINE_list("name", [], "Registry names or groups to download (see --list), "
                    "comma-separated.")
  flags.DEFINE_string("url", None, "Any http(s) URL to download instead (a .zip is unpacked).")
  flags.DEFINE_string("sha256", None, "Expected sha256 of the one file downloaded (with --url, "
                      "or a single --name without a published one).")
  flags.DEFINE_string("output_dir", None, "Folder to download into.")
  flags.DEFINE_string("mirror", os.environ.get(MIRROR_ENV),
                      f"Base URL of a mirror laid out as <mirror>/<host>/<path> "
                      f"(default: ${MIRROR_ENV}).")
  flags.DEFINE_boolean("list", False, "Print the registry and exit.")
  flags.DEFINE_float("timeout", 60.0, "Seconds to wait for a connection or for data.")
  flags.DEFINE_integer("retries", 3,
                       "How often an interrupted transfer is resumed before giving up.")
  flags.DEFINE_boolean("overwrite", False, "Download again what is already there.")
  flags.DEFINE_boolean("keep_archive", False, "Keep a checkpoint's zip after unpacking it.")


def _sha256_flag() -> str | None:
  if FLAGS.sha256 is None:
    return None
  value = FLAGS.sha256.strip().lower()
  if len(value) != 64 or set(value) - set("0123456789abcdef"):
    raise InputError(f"--sha256={FLAGS.sha256}: not a sha256 (64 hex digits)")
  return value


def _sources_from_flags() -> list[Source]:
  if bool(FLAGS.name) == bool(FLAGS.url):
    raise InputError("give either --name (see --list) or --url")
  sha256 = _sha256_flag()
  if FLAGS.url:
    return [source_for_url(FLAGS.url, sha256)]
  sources = resolve_names(FLAGS.name)
  if sha256:
    if len(sources) != 1:
      raise InputError("--sha256 needs exactly one file: a single --name or --url")
    if sources[0].sha256 and sources[0].sha256 != sha256:
      raise InputError(f"--sha256={sha256}: {sources[0].name} has the published sha256 "
                       f"{sources[0].sha256}")
    sources = [dataclasses.replace(sources[0], sha256=sha256)]
  return sources


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise InputError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.list:
    print(registry_table())
    return
  sources = _sources_from_flags()
  if not FLAGS.output_dir:
    raise InputError("--output_dir is required")
  if FLAGS.retries < 0 or FLAGS.timeout <= 0:
    raise InputError("--retries must be >= 0 and --timeout > 0")
  mirror = FLAGS.mirror if not FLAGS.url else None
  for source in sources:
    result = download(source, FLAGS.output_dir, mirror, FLAGS.timeout, FLAGS.retries,
                      FLAGS.overwrite, FLAGS.keep_archive, progress=sys.stderr)
    sys.stderr.write(f"{source.name}: {result.path} ({result.verification})\n")
    print("\n".join(run_squad_flags(result.path) or [result.path]))


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
