"""Doc-stride windows over examples -> model features; TFRecord and metadata I/O."""
import dataclasses


@dataclasses.dataclass
class InputFeatures:
  """One window of one example, as the original `InputFeatures`.

  Attributes:
    unique_id: running id from 1000000000, the key that joins logits back.
    example_index: index of the example in the list it was built from.
    doc_span_index: which window of that example this is.
    tokens: `[CLS] query [SEP] doc [SEP]` wordpieces, length <= max_seq_length.
    token_to_orig_map: token position -> index into the example's doc_tokens.
    token_is_max_context: token position -> whether this window is the one
      where that token has the most context.
    input_ids, input_mask, segment_ids: int lists of length max_seq_length.
    start_position, end_position: answer token positions (training only).
    is_impossible: training label (training only).
  """
  unique_id: int
  example_index: int
  doc_span_index: int
  tokens: list[str]
  token_to_orig_map: dict[int, int]
  token_is_max_context: dict[int, bool]
  input_ids: list[int]
  input_mask: list[int]
  segment_ids: list[int]
  start_position: int | None = None
  end_position: int | None = None
  is_impossible: bool | None = None
