"""What the `answer` signature does: `AnswerSettings`, a frozen dataclass of ints, bools, floats."""
import dataclasses

from bert_squad.common.errors import InputError
from bert_squad.data import windows


@dataclasses.dataclass(frozen=True)
class AnswerSettings:
  """What the `answer` signature does; the original `run_squad.py` flags of the same names."""
  max_seq_length: int = 384
  doc_stride: int = 128
  max_query_length: int = 64
  do_lower_case: bool = True
  n_best_size: int = 20
  max_answer_length: int = 30
  version_2_with_negative: bool = False
  null_score_diff_threshold: float = 0.0

  def validate(self) -> None:
    """Raises `InputError` naming the flag of a setting that cannot work."""
    windows.validate_window_params(self.max_seq_length, self.doc_stride, self.max_query_length)
    for name in ("n_best_size", "max_answer_length"):
      if getattr(self, name) < 1:
        raise InputError(f"--{name}={getattr(self, name)}: must be at least 1")
