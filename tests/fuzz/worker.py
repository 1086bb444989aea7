"""A persistent worker process that survives what kills a process.

LLVM reports some errors by printing "LLVM ERROR: ..." and calling abort():
no Python exception, the interpreter is gone. A fuzzer that compiled in its
own process would die with the first such graph and report nothing. So the
fuzzer evaluates every graph in a worker subprocess:

    with Worker() as w:
        result = w.call(fn, *args, label=str(graph))

`fn` must be a module-level function (it is pickled by reference). When the
worker dies (a signal, an abort, os._exit) or does not answer within
`timeout` seconds, `call` raises `WorkerCrashed` whose message names the
label (the graph) and ends with the tail of the worker's stderr (where LLVM
writes its reason); the next `call` starts a fresh worker. An exception
raised by `fn` inside the worker comes back as `WorkerError` with the
remote type name, message and traceback (exceptions are not pickled: many
are not picklable).

The protocol is length-prefixed pickles over two pipes; the worker moves its
own stdout onto stderr first, so a stray print() cannot corrupt it.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time

_HEADER = struct.Struct("<Q")
_HERE = os.path.dirname(os.path.abspath(__file__))
_TESTS = os.path.dirname(_HERE)
_REPO = os.path.dirname(_TESTS)


class WorkerCrashed(AssertionError):
    """The worker process died (or hung) while evaluating something."""


class WorkerError(Exception):
    """`fn` raised inside the worker: the remote exception, as text."""

    def __init__(self, type_name: str, message: str, remote_traceback: str, label: str = ""):
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback
        self.label = label
        super().__init__(f"{type_name}: {message}")

    def __str__(self) -> str:
        text = f"{self.type_name}: {self.message}"
        if self.label:
            text += f"\nwhile evaluating:\n{self.label}"
        return text + f"\n--- worker traceback ---\n{self.remote_traceback}"


def _signal_name(returncode) -> str:
    if returncode is None:
        return "no exit status"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class Worker:
    """One worker subprocess, restarted on demand after it dies."""

    def __init__(self, timeout: float = 300.0, env: dict | None = None):
        self.timeout = timeout
        self.extra_env = dict(env or {})
        # thousands of random kernels would flood the user's kernel cache: the worker gets its own
        # (kept across restarts, removed by close()); LAZYGRAD_FUZZ_CACHE names another folder or "off"
        self.cache_dir = None
        if "LAZYGRAD_CACHE" not in self.extra_env:
            chosen = os.environ.get("LAZYGRAD_FUZZ_CACHE")
            if chosen:
                self.extra_env["LAZYGRAD_CACHE"] = chosen
            else:
                self.cache_dir = tempfile.mkdtemp(prefix="lazygrad-fuzz-cache-")
                self.extra_env["LAZYGRAD_CACHE"] = os.path.join(self.cache_dir, "kernels")
        self.proc: subprocess.Popen | None = None
        self.stderr_file = None
        self.restarts = 0
        self.calls = 0

    # ---- process management ----
    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self._cleanup()
        env = dict(os.environ)
        env.update(self.extra_env)
        path = [_REPO, _TESTS] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(path)
        env.setdefault("PYTHONFAULTHANDLER", "1")
        self.stderr_file = tempfile.TemporaryFile(prefix="lazygrad-worker-")
        self.proc = subprocess.Popen([sys.executable, "-u", "-m", "fuzz.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr_file, env=env, cwd=_REPO)
        self.restarts += 1

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        self._cleanup()
        if self.cache_dir is not None:
            import shutil
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            self.cache_dir = None

    def _cleanup(self) -> None:
        if self.proc is not None:
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except Exception:
                    pass
        self.proc = None
        if self.stderr_file is not None:
            self.stderr_file.close()
            self.stderr_file = None

    def __enter__(self) -> "Worker":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stderr_tail(self, limit: int = 4000) -> str:
        if self.stderr_file is None:
            return ""
        try:
            self.stderr_file.flush()
            size = self.stderr_file.seek(0, os.SEEK_END)
            self.stderr_file.seek(max(0, size - limit))
            return self.stderr_file.read().decode(errors="replace")
        except Exception:
            return ""

    # ---- calls ----
    def call(self, fn, *args, label: str = ""):
        """fn(*args) in the worker; raises WorkerCrashed / WorkerError as described above."""
        self.start()
        self.calls += 1
        proc = self.proc
        payload = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            proc.stdin.write(_HEADER.pack(len(payload)) + payload)
            proc.stdin.flush()
            reply = self._read_reply(proc)
        except TimeoutError:  # (before OSError: TimeoutError is one)
            proc.kill()
            proc.wait()
            message = self._crash_message(f"did not answer within {self.timeout:g} s (killed)", label)
            self._cleanup()
            raise WorkerCrashed(message) from None
        except (BrokenPipeError, EOFError, OSError):
            reply = None
        if reply is None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            message = self._crash_message(f"died ({_signal_name(proc.returncode)})", label)
            self._cleanup()
            raise WorkerCrashed(message)
        status = reply[0]
        if status == "ok":
            return reply[1]
        _, type_name, message, tb = reply
        raise WorkerError(type_name, message, tb, label)

    def _crash_message(self, what: str, label: str) -> str:
        text = f"the worker process {what} while evaluating"
        text += f":\n{label}" if label else " a call"
        tail = self.stderr_tail().strip()
        if tail:
            text += f"\n--- worker stderr (tail) ---\n{tail}"
        return text

    def _read_exact(self, proc, n: int, deadline: float) -> bytes:
        fd = proc.stdout.fileno()
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, min(n - got, 1 << 20))
            if not chunk:
                raise EOFError("worker closed its pipe")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _read_reply(self, proc):
        deadline = time.monotonic() + self.timeout
        (size,) = _HEADER.unpack(self._read_exact(proc, _HEADER.size, deadline))
        return pickle.loads(self._read_exact(proc, size, deadline))


# ---- the worker side ----

def _serve() -> None:
    import resource
    import traceback
    try:  # a deliberate or LLVM abort should not leave a core file behind
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # print() in the worker goes to stderr, never into the protocol
    sys.stdout = os.fdopen(1, "w", buffering=1)
    while True:
        header = proto_in.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        (size,) = _HEADER.unpack(header)
        fn, args = pickle.loads(proto_in.read(size))
        try:
            reply = ("ok", fn(*args))
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as e:  # noqa: BLE001  (everything goes back to the parent)
            if isinstance(e, KeyboardInterrupt):
                raise
            reply = ("err", type(e).__name__, str(e), traceback.format_exc())
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        proto_out.write(_HEADER.pack(len(data)) + data)
        proto_out.flush()


if __name__ == "__main__":
    _serve()
