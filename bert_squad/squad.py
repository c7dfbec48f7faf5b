"""Reading SQuAD v1.1 / v2.0 JSON into examples (the original `read_squad_examples`)."""
import dataclasses


@dataclasses.dataclass
class SquadExample:
  """One question about one paragraph, as the original `SquadExample`.

  Attributes:
    qas_id: the question id from the JSON.
    question_text: the question as written.
    doc_tokens: the context split on whitespace (the original's rule).
    orig_answer_text: the (first) answer's text; None in prediction mode.
    start_position: index into `doc_tokens` of the answer's first word.
    end_position: index into `doc_tokens` of the answer's last word.
    is_impossible: SQuAD 2.0 question without an answer.
    paragraph_index: running index of the paragraph in the file, so that
      questions about the same context can share its tokenization.
  """
  qas_id: str
  question_text: str
  doc_tokens: list[str]
  orig_answer_text: str | None = None
  start_position: int | None = None
  end_position: int | None = None
  is_impossible: bool = False
  paragraph_index: int = -1
