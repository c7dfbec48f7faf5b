"""WordPiece tokenization: the original's rules, vocab checks, and identity with tf-models-official."""
import random
import re

from official.nlp.tools import tokenization as tfm_tokenization
import pytest

from bert_squad.common.errors import InputError
from bert_squad.data import tokenization

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["un", "##aff", "##able", "grace", "gr", "##aceful", "hello", "Hello", "world", "cafe", "café", "a", "##a",
         "中", "文", "!", ",", "$", ".", "the"]


def _write_vocab(path, tokens):
  path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
  return str(path)


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
  return _write_vocab(tmp_path_factory.mktemp("vocab") / "vocab.txt", SPECIALS + WORDS)


@pytest.fixture(scope="module")
def uncased(vocab_file):
  return tokenization.FullTokenizer(vocab_file, do_lower_case=True)


@pytest.fixture(scope="module")
def cased(vocab_file):
  return tokenization.FullTokenizer(vocab_file, do_lower_case=False)


def test_greedy_longest_match_first(uncased):
  assert uncased.tokenize("unaffable") == ["un", "##aff", "##able"]
  # Greedy takes "grace" and then finds no "##ful": the whole word is [UNK],
  # although "gr ##aceful" would have spelled it (no backtracking).
  assert uncased.tokenize("graceful") == ["[UNK]"]
  assert uncased.tokenize("unknownword hello") == ["[UNK]", "hello"]


def test_lower_case_strips_accents(uncased, cased):
  assert uncased.tokenize("Café HELLO") == ["cafe", "hello"]
  assert cased.tokenize("café Café Hello HELLO") == ["café", "[UNK]", "Hello", "[UNK]"]


def test_punctuation_is_split(uncased):
  # "$" is not Unicode punctuation (Sc) but every non-alphanumeric ASCII char counts.
  assert uncased.tokenize("hello,world!$a.") == ["hello", ",", "world", "!", "$", "a", "."]


def test_cjk_characters_are_split(uncased):
  assert uncased.tokenize("a中文a") == ["a", "中", "文", "a"]


def test_clean_text(uncased):
  # NUL, U+FFFD, control (Cc) and format (Cf, e.g. zero-width space) characters
  # are dropped; Unicode spaces (Zs) separate words; so do \u2028 and friends
  # through str.split in whitespace_tokenize.
  assert uncased.tokenize("hel\x00lo w\ufffdor\u200bld\x07") == ["hello", "world"]
  assert uncased.tokenize("hello\u00a0world\u3000a\u2028the") == ["hello", "world", "a", "the"]
  assert uncased.tokenize(" \t\n ") == []


def test_words_over_200_characters_are_unknown(uncased):
  assert uncased.tokenize("a" * 200) == ["a"] + ["##a"] * 199
  assert uncased.tokenize("a" * 201) == ["[UNK]"]


def test_ids_round_trip(uncased):
  tokens = uncased.tokenize("Hello, world")
  ids = uncased.convert_tokens_to_ids(tokens)
  assert ids == [SPECIALS.index("[PAD]") + len(SPECIALS) + WORDS.index(t) for t in tokens]
  assert uncased.convert_ids_to_tokens(ids) == tokens
  assert list(uncased.vocab)[:3] == ["[PAD]", "[UNK]", "[CLS]"] and uncased.vocab["[SEP]"] == 3


def test_basic_tokenizer_matches_the_port():
  text = "Héllo, WORLD! 中文 ¿Qué? naïve\u00a0café — ‘quoted’"
  for do_lower_case in (True, False):
    ours = tokenization.BasicTokenizer(do_lower_case=do_lower_case).tokenize(text)
    assert ours == tfm_tokenization.BasicTokenizer(do_lower_case=do_lower_case).tokenize(text)
  assert tokenization.BasicTokenizer(do_lower_case=True).tokenize("Héllo, WORLD!") == ["hello", ",", "world", "!"]


def test_load_vocab_strips_lines_like_the_original(tmp_path):
  path = tmp_path / "v.txt"
  path.write_text("[CLS]\n  [SEP]  \r\n[UNK]\n x\n", encoding="utf-8")
  assert list(tokenization.load_vocab(str(path)).items()) == [("[CLS]", 0), ("[SEP]", 1), ("[UNK]", 2), ("x", 3)]


BAD_VOCABS = {
    "empty": (b"", r"vocab file is empty"),
    "duplicate": (b"[CLS]\n[SEP]\n[UNK]\nx\nx\n", r"line 5: duplicate token 'x' \(first on line 4\)"),
    "blank_line": (b"[CLS]\n\n[SEP]\n[UNK]\n", r"line 2: blank line"),
    "no_cls": (b"[SEP]\n[UNK]\nx\n", r"vocab lacks \[CLS\]"),
    "no_sep_unk": (b"[CLS]\nx\n", r"vocab lacks \[SEP\], \[UNK\]"),
    "not_utf8": (b"[CLS]\n[SEP]\n[UNK]\n\xff\n", r"not valid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD_VOCABS))
def test_bad_vocab_raises_input_error_naming_the_file(tmp_path, case):
  content, pattern = BAD_VOCABS[case]
  path = tmp_path / "vocab.txt"
  path.write_bytes(content)
  with pytest.raises(InputError) as raised:
    tokenization.FullTokenizer(str(path), do_lower_case=True)
  assert str(raised.value).startswith(f"{path}: ")
  assert re.search(pattern, str(raised.value)), str(raised.value)


def test_missing_vocab(tmp_path):
  with pytest.raises(InputError, match="vocab file not found"):
    tokenization.load_vocab(str(tmp_path / "none.txt"))


# Characters that exercise every branch: ASCII, accents (precomposed and
# combining), German, CJK, Zs spaces, control and format characters, U+FFFD,
# NUL, \u2028, Unicode and ASCII punctuation, digits.
FUZZ_ALPHABET = ("abcXYZ019 éÉüÜßñçå\u0301\u0308中文字\u3400\u00a0\u2009\u202f\u3000\t\n\r\x00\x07\x1f\x85"
                 "\u200b\u200d\ufeff\ufffd\u2028.,!?$^`~-—«»¿\u2019()")


@pytest.fixture(scope="module")
def fuzz_vocab(tmp_path_factory):
  letters = sorted(set(FUZZ_ALPHABET.lower() + FUZZ_ALPHABET.upper() + "aeiouaaeu") - set(" \t\n\r"))
  bigrams = ["ab", "##ab", "bc", "##bc", "xy", "##yz", "ca", "##01", "19", "ue", "##ss"]
  tokens = SPECIALS + [c for c in letters if c.strip()] + ["##" + c for c in letters if c.strip()] + bigrams
  return _write_vocab(tmp_path_factory.mktemp("fuzz") / "vocab.txt", list(dict.fromkeys(tokens)))


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_identical_to_tf_models_full_tokenizer_on_random_text(fuzz_vocab, do_lower_case):
  ours = tokenization.FullTokenizer(fuzz_vocab, do_lower_case=do_lower_case)
  reference = tfm_tokenization.FullTokenizer(fuzz_vocab, do_lower_case=do_lower_case)
  # The original google-research/bert limit; the port's default is 400.
  reference.wordpiece_tokenizer.max_input_chars_per_word = 200
  rng = random.Random(7)
  texts = ["".join(rng.choice(FUZZ_ALPHABET) for _ in range(rng.randint(0, 60))) for _ in range(3000)]
  texts += ["a" * 199 + "é", "b" * 201, "a" * 300 + ".a"]
  for text in texts + texts:  # the second pass is served from the memo
    assert ours.tokenize(text) == reference.tokenize(text), repr(text)
    assert ours.basic_tokenizer.tokenize(text) == reference.basic_tokenizer.tokenize(text), repr(text)
