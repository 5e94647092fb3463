"""Where a path lives: on a local disk, or on a remote filesystem reached through etils.epath (gs://...).
Standard library only: the workdir and the checkpoints both ask it."""
from __future__ import annotations

import os
import re


def is_local(path: str) -> bool:
  """False for URLs of remote filesystems (gs://bucket/..., s3://...)."""
  return re.match(r'^[A-Za-z][A-Za-z0-9+.-]*://', os.fspath(path)) is None


def absolute(path: str) -> str:
  """A local path made absolute (Orbax wants them so); a remote one as given."""
  return os.path.abspath(path) if is_local(path) else path
