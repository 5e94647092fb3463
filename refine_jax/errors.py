"""The errors a run can end with; `main` maps each to an exit code. Imports nothing of the project."""


class ConfigError(ValueError):
  """A bad config field; `main` turns it into exit code 2 before any compute."""

  def __init__(self, field: str, message: str):
    super().__init__(f'config.{field}: {message}')
    self.field = field


class Diverged(RuntimeError):
  """A non-finite loss; the last good checkpoint is left as it was."""


class Preempted(RuntimeError):
  """SIGTERM/SIGINT: a checkpoint was saved; re-running the same command resumes."""
