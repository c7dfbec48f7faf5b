r"""Estimates the accelerator memory of fine-tuning, and the largest micro-batch that fits.

  python -m bert_squad.memory --bert_config_file=uncased_L-24_H-1024_A-16/bert_config.json \
      --max_seq_length=384 --dtype=float16 --gpu_memory_gb=16 --train_batch_size=24 [--gradient_checkpointing]

prints the parts in GB (2**30 bytes, as the cards' "16 GB" mean), one per line,
then, with --train_batch_size, the `--gradient_accumulation_steps` that makes it
fit, and last `max_train_batch_size: K` (the micro-batch per device; 0 if not
even one example fits). What is counted: docs/memory.md and
`bert_squad.training.memory_estimate`. An estimate from the model's shapes,
checked against CPU measurements, not on a GPU.

Only the command line. Flags are defined only when this module runs as a
program, so importing it defines none.
"""
import math
from typing import Sequence

from absl import flags

from bert_squad.common import cli
from bert_squad.common.errors import InputError
from bert_squad.modeling import model_config
from bert_squad.training import memory_estimate

FLAGS = flags.FLAGS


def _define_flags() -> None:
  flags.DEFINE_string("bert_config_file", None,
                      "The model's bert_config.json (Google's format), e.g. of BERT-Base or BERT-Large.")
  flags.DEFINE_integer("max_seq_length", 384, "Tokens per window, as run_squad.py's --max_seq_length.")
  flags.DEFINE_string("dtype", "float32",
                      f"Training precision, as run_squad.py's --dtype: {', '.join(memory_estimate.DTYPES)}.")
  flags.DEFINE_float("gpu_memory_gb", None,
                     "Memory of one accelerator in GB of 2**30 bytes (a '16 GB' card: 16).")
  flags.DEFINE_bool("gradient_checkpointing", False,
                    "As run_squad.py's --gradient_checkpointing: each layer keeps only its input and is "
                    "recomputed in the backward pass, one layer at a time.")
  flags.DEFINE_integer("train_batch_size", None,
                       "Optional: run_squad.py's --train_batch_size; prints the --gradient_accumulation_steps "
                       "that makes its micro-batch fit on one device.")


def report_lines(estimate: memory_estimate.MemoryEstimate, dtype: str, gpu_bytes: int,
                 train_batch_size: int | None,
                 checkpointed: memory_estimate.MemoryEstimate | None = None) -> list[str]:
  """The lines the command prints; the last one is `max_train_batch_size: K`.

  `checkpointed`: the estimate with gradient checkpointing, when `estimate` is
  without it; adds a line with the micro-batch that checkpointing would fit.
  """
  max_batch = estimate.max_train_batch_size(gpu_bytes)
  parts = [
      ("weights (float32)", estimate.weights),
      (f"weight copies ({dtype})", estimate.weight_copies),
      ("gradients (float32)", estimate.gradients),
      ("optimizer slots (2 x float32)", estimate.optimizer_slots),
      ("workspace", estimate.workspace),
      ("activations per example", estimate.activations_per_example),
      ("recomputed layer per example", estimate.recomputed_per_example),
      ("backward pass per example", estimate.backward_per_example),
      (f"total at micro-batch {max(max_batch, 1)}", estimate.total_bytes(max(max_batch, 1))),
  ]
  parts = [(name, value) for name, value in parts
           if value or name not in (f"weight copies ({dtype})", "recomputed layer per example")]
  width = max(len(name) for name, _ in parts) + 1
  lines = [f"{name + ':':<{width}} {value / memory_estimate.GIB:7.2f} GB" for name, value in parts]
  lines.append(f"{'parameters:':<{width}} {estimate.num_parameters / 1e6:7.1f} M")
  if train_batch_size is not None:
    k = memory_estimate.gradient_accumulation_steps(estimate, train_batch_size, gpu_bytes)
    if k is None:
      lines.append(f"--train_batch_size={train_batch_size}: no --gradient_accumulation_steps fits "
                   "(not even one example per micro-batch)")
    else:
      accumulators = (f" (+{estimate.accumulators / memory_estimate.GIB:.2f} GB of gradient accumulators)"
                      if k > 1 else "")
      lines.append(f"--gradient_accumulation_steps={k}: micro-batch {train_batch_size // k} of "
                   f"--train_batch_size={train_batch_size}{accumulators}")
  if checkpointed is not None:
    lines.append(f"with --gradient_checkpointing: max_train_batch_size {checkpointed.max_train_batch_size(gpu_bytes)}")
  lines.append(f"max_train_batch_size: {max_batch}")
  return lines


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise InputError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.bert_config_file:
    raise InputError("--bert_config_file is required")
  if FLAGS.gpu_memory_gb is None:
    raise InputError("--gpu_memory_gb is required")
  if not math.isfinite(FLAGS.gpu_memory_gb) or FLAGS.gpu_memory_gb <= 0:
    raise InputError(f"--gpu_memory_gb={FLAGS.gpu_memory_gb}: must be a positive number")
  if FLAGS.train_batch_size is not None and FLAGS.train_batch_size <= 0:
    raise InputError(f"--train_batch_size={FLAGS.train_batch_size}: must be positive")
  memory_estimate.compute_bytes(FLAGS.dtype)  # names a bad --dtype before the config is read
  config = model_config.BertConfig.from_json_file(FLAGS.bert_config_file)
  estimate = memory_estimate.estimate_memory(config, FLAGS.max_seq_length, FLAGS.dtype,
                                            FLAGS.gradient_checkpointing)
  checkpointed = None if FLAGS.gradient_checkpointing else memory_estimate.estimate_memory(
      config, FLAGS.max_seq_length, FLAGS.dtype, gradient_checkpointing=True)
  gpu_bytes = int(FLAGS.gpu_memory_gb * memory_estimate.GIB)
  print("\n".join(report_lines(estimate, FLAGS.dtype, gpu_bytes, FLAGS.train_batch_size, checkpointed)))


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
