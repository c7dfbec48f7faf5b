"""Unpacks a downloaded checkpoint zip, safely and all at once.

archive path (a .zip) + target folder + published member sha256 {name: hex}
-> the target folder holding the zip's files directly (a single top folder
in the zip is unwrapped). Raises `ArchiveError` for a corrupt or unsafe zip
or a member whose sha256 differs.
"""
import errno
import os
import shutil
import tempfile
import zipfile
from typing import Mapping

from bert_squad.common import io_utils
from bert_squad.common.errors import InputError


class ArchiveError(InputError):
  """A zip that is corrupt, unsafe or not what was published."""


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
      io_utils.check_free_space(parent, sum(info.file_size for info in zf.infolist()), archive)
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
