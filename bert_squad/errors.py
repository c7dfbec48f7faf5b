"""The one exception type for user mistakes (bad files, bad flags).

Entry points catch `InputError`, print its message as one line to stderr and
exit with code 2 -- no traceback. Library code raises it with a message that
names the file and the place (article index, question id, flag, variable).
"""


class InputError(ValueError):
  """A problem with the user's input that the user can fix.

  Attributes:
    message: one line, e.g. "dev.json: article 3, question 'abc': answer_start
      -1 is out of range".
  """

  EXIT_CODE = 2


def located(path: str, where: str, problem: str) -> InputError:
  """Builds an `InputError` that reads "<path>: <where>: <problem>"."""
  parts = [p for p in (path, where, problem) if p]
  return InputError(": ".join(parts))
