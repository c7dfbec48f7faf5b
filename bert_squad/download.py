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
import os
import sys
from typing import Sequence

from absl import flags

from bert_squad.common import cli
from bert_squad.common.errors import InputError
from bert_squad.releases import registry
from bert_squad.releases import transfer

FLAGS = flags.FLAGS


def _define_flags() -> None:
  flags.DEFINE_list("name", [], "Registry names or groups to download (see --list), "
                    "comma-separated.")
  flags.DEFINE_string("url", None, "Any http(s) URL to download instead (a .zip is unpacked).")
  flags.DEFINE_string("sha256", None, "Expected sha256 of the one file downloaded (with --url, "
                      "or a single --name without a published one).")
  flags.DEFINE_string("output_dir", None, "Folder to download into.")
  flags.DEFINE_string("mirror", os.environ.get(registry.MIRROR_ENV),
                      f"Base URL of a mirror laid out as <mirror>/<host>/<path> "
                      f"(default: ${registry.MIRROR_ENV}).")
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


def _sources_from_flags() -> list[registry.Source]:
  if bool(FLAGS.name) == bool(FLAGS.url):
    raise InputError("give either --name (see --list) or --url")
  sha256 = _sha256_flag()
  if FLAGS.url:
    return [registry.source_for_url(FLAGS.url, sha256)]
  sources = registry.resolve_names(FLAGS.name)
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
    print(registry.registry_table())
    return
  sources = _sources_from_flags()
  if not FLAGS.output_dir:
    raise InputError("--output_dir is required")
  if FLAGS.retries < 0 or FLAGS.timeout <= 0:
    raise InputError("--retries must be >= 0 and --timeout > 0")
  mirror = FLAGS.mirror if not FLAGS.url else None
  for source in sources:
    result = transfer.download(source, FLAGS.output_dir, mirror, FLAGS.timeout, FLAGS.retries,
                               FLAGS.overwrite, FLAGS.keep_archive, progress=sys.stderr)
    sys.stderr.write(f"{source.name}: {result.path} ({result.verification})\n")
    print("\n".join(registry.run_squad_flags(result.path) or [result.path]))


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
