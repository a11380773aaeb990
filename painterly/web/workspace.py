"""The server's own files: one temporary folder per app, one sub-folder per browser session (its uploads as
the runs used them, results, JSON), deleted when the session ends and all of it when the app closes."""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import threading
from pathlib import Path

from painterly.web.limits import Deadline

_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
KEEP_RUNS = 4  # folders of each kind kept per session: the shown result and a few before it ("continue" reads the
# last run's; a run still reading the photo staged before the newest finds it)


class Workspace:
    """Per-session folders and stop tokens. A session's name comes from the client, so it is never used as a
    path as it is: anything but ``[A-Za-z0-9_-]`` is replaced by its hash."""

    def __init__(self, root: str | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="painterly-web-", dir=root))
        self._lock = threading.Lock()
        self._runs: dict[tuple[str, str], int] = {}
        self._stops: dict[str, Deadline] = {}

    def _session(self, session: str | None) -> str:
        session = session or "anonymous"
        return session if _SAFE.match(session) else hashlib.sha256(session.encode()).hexdigest()[:32]

    def run_dir(self, session: str | None, kind: str = "run") -> Path:
        """A new, empty folder ``KIND-N`` for one run (or one staged photo) of ``session``; its oldest folders of
        that kind beyond ``KEEP_RUNS`` go."""
        name = self._session(session)
        with self._lock:
            n = self._runs.get((name, kind), 0) + 1
            self._runs[(name, kind)] = n
        folder = self.root / name / f"{kind}-{n}"
        folder.mkdir(parents=True)
        old = self.root / name / f"{kind}-{n - KEEP_RUNS}"
        if n > KEEP_RUNS and old.exists():
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def owns(self, path: str | Path) -> bool:
        """Whether ``path`` (after resolving links) lies inside this workspace."""
        return Path(path).resolve().is_relative_to(self.root.resolve())

    def start(self, session: str | None, seconds: float) -> Deadline:
        """The stop token of ``session``'s new optimisation (a Stop press reaches the latest one)."""
        token = Deadline(seconds)
        with self._lock:
            self._stops[self._session(session)] = token
        return token

    def stop(self, session: str | None) -> bool:
        with self._lock:
            token = self._stops.get(self._session(session))
        if token is not None:
            token.stop()
        return token is not None

    def end(self, session: str | None) -> None:
        """The session closed its page: stop its run and delete its files."""
        self.stop(session)
        name = self._session(session)
        with self._lock:
            self._stops.pop(name, None)
            for key in [k for k in self._runs if k[0] == name]:
                del self._runs[key]
        shutil.rmtree(self.root / name, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
