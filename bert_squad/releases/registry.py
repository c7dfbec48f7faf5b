"""The registry: Google's released BERT checkpoints and the SQuAD files, by name.

names (str) -> `Source` (url, kind, published sha256); a `Source` and a
mirror base URL -> the URL to fetch; an unpacked checkpoint folder ->
run_squad.py flags (list[str]). Pure data and string work: no network, no
disk writes, no TensorFlow.
"""
import dataclasses
import difflib
import os
import urllib.parse
from typing import Iterable, Mapping

from bert_squad.common.errors import InputError

MIRROR_ENV = "BERT_SQUAD_MIRROR"
CHECKPOINT = "checkpoint"  # a zip, unpacked into `<output_dir>/<name>/`
FILE = "file"  # saved as `<output_dir>/<filename>`


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



# sha256 of the SQuAD files: tensorflow/datasets' published checksums
# (question_answering/squad/checksums.tsv); dev-v1.1.json's equals
# ../shared/data's byte-identical copy.
_SQUAD_SHA256 = {
    "train-v1.1.json": "3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955",
    "dev-v1.1.json": "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9",
    "train-v2.0.json": "68dcfbb971bd3e96d5b46c7177b16c1a4e7d4bdef19fb204502738552dede002",
    "dev-v2.0.json": "80a5225e94905956a6446d296ca1093975c4d3b3260f1d6c8f68bc2ab77182d8",
}


def _squad_files() -> list[Source]:
  """train and dev of SQuAD v1.1 and v2.0, in that order."""
  return [Source(f"{split}-v{version}.json", f"{_SQUAD}/{split}-v{version}.json",
                 sha256=_SQUAD_SHA256[f"{split}-v{version}.json"],
                 description=f"SQuAD v{version} {words} set")
          for version in ("1.1", "2.0") for split, words in (("train", "training"), ("dev", "dev"))]


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
      *_squad_files(),
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
