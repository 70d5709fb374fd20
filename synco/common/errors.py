"""One exception type for every problem that is the user's to fix.

The CLI turns a :class:`UserError` into one sentence on stderr and a non-zero
exit; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input or environment, explained in one sentence.

    ``exit_code`` lets a command distinguish kinds of failure (2: bad input,
    the default; 3: environment/installation problem).
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
