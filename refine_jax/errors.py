"""The errors a command can end with, and the exit code and word of each (`cli.run` maps them). Imports nothing of
the project.

    exit 2  `BadInput` (a bad config field, flag, file or folder), or a missing file: one `error:` line, before any
            compute, nothing written
    exit 3  `Preempted`: SIGTERM / SIGINT; a training command saved a checkpoint (re-run to resume)
    exit 4  `Diverged`: a non-finite loss or evaluation metric; the last good checkpoint is left as it was
    exit 1  a run that finds its workdir lock taken by another run stops at once, without saving (refine_jax/lock.py)
"""


class BadInput(ValueError):
  """Input a command refuses before any compute (exit 2); the message names what is wrong and what is allowed."""


class ConfigError(BadInput):
  """A bad config field."""

  def __init__(self, field: str, message: str):
    super().__init__(f'config.{field}: {message}')
    self.field = field


class Diverged(RuntimeError):
  """A non-finite loss or evaluation metric; the last good checkpoint is left as it was."""


class Preempted(RuntimeError):
  """SIGTERM/SIGINT: a training command saved a checkpoint; re-running the same command resumes."""


# (error types, exit code, the word the one line starts with), first match wins.
EXITS = (((BadInput, FileNotFoundError), 2, 'error'), ((Preempted,), 3, 'preempted'), ((Diverged,), 4, 'diverged'))
