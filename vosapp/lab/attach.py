"""One API for a switch in the notebook's kernel and one running as ``vosapp serve``.

* ``sw = await LabSwitch.start()`` runs a :class:`~vosapp.io.runtime.Switch` inside the kernel
  (config ``$VOSAPP_CONFIG`` or ``data/lab.toml``, data directory ``$VOSAPP_DATA_DIR`` or the
  config's, SIP on a free port unless you give ``port=``).
* ``sw = attach()`` connects to a background ``vosapp serve`` through its control channel
  (:mod:`vosapp.io.control`), reading ``<data_dir>/control.json``.

Both give::

    sw.address                       (host, port) of the switch's SIP socket
    sw.params                        the current Params
    sw.set_param(name, value)        validate (ParameterError), persist, apply to new sessions
    sw.reset_param(name | None)
    sw.param_history(name=None)      list of change dicts (at, name, action, old, new, by)
    sw.bindings()                    registrar bindings (dicts)
    sw.auth_events(limit=50, user=None, address=None)
    sw.suspended() / sw.unsuspend(target)
    sw.registrations()               outbound registration status (dicts)
    sw.trace                         records() + subscribe(): feed it to LiveLadder
    sw.trace_records(since=0)        TraceRecords numbered above ``since`` (1, 2, ... in
                                     arrival order; 0 = all the ring still holds)
    await sw.stop()                  graceful stop (stop hooks, e.g. unregister upstream)

The remote calls are short blocking HTTP requests to another process (fine in a notebook
cell); ``RemoteSwitch.trace`` polls in the background on the kernel's event loop while it
has subscribers.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vosapp.errors import VosappError
from vosapp.io.control import (
    ControlError,
    SwitchControl,
    read_control_file,
    record_from_json,
)
from vosapp.params import REGISTRY, ParameterError, Params
from vosapp.trace import TraceRecord

if TYPE_CHECKING:
    from vosapp.io.runtime import Switch
    from vosapp.trace import Trace

__all__ = ["BackgroundSwitch", "LabSwitch", "RemoteSwitch", "RemoteTrace", "attach", "default_config_path",
           "default_data_dir"]

Address = tuple[str, int]
NEW_SESSIONS_RULE = ("Changed values apply to new sessions only; sessions already open keep "
                     "the values they started with (VOS3000 rule, docs/behaviour.md §1).")


def default_config_path() -> Path | None:
    """``$VOSAPP_CONFIG``, else ``data/lab.toml`` next to the repository, else None."""
    env = os.environ.get("VOSAPP_CONFIG")
    if env:
        return Path(env)
    for candidate in (Path("data") / "lab.toml",
                      Path(__file__).resolve().parents[2] / "data" / "lab.toml"):
        if candidate.is_file():
            return candidate
    return None


def default_data_dir(config: str | Path | None = None) -> Path | None:
    """``$VOSAPP_DATA_DIR``, else the config's ``[switch] data_dir``."""
    env = os.environ.get("VOSAPP_DATA_DIR")
    if env:
        return Path(env)
    path = Path(config) if config is not None else default_config_path()
    if path is None:
        return None
    from vosapp.config import load_config

    return load_config(path).switch.data_dir


# --------------------------------------------------------------------------- in-kernel

class LabSwitch:
    """A facade over an in-kernel :class:`~vosapp.io.runtime.Switch` (see module docstring)."""

    def __init__(self, switch: Switch) -> None:
        self.switch = switch
        self._control = SwitchControl(switch, by="lab")

    @classmethod
    async def start(cls, config: str | Path | None = None, *, data_dir: str | Path | None = None,
                    port: int = 0, **options: Any) -> LabSwitch:
        """Build and start a switch on the running loop (``port=0``: any free port)."""
        from vosapp.io.runtime import Switch

        path = Path(config) if config is not None else default_config_path()
        directory = data_dir if data_dir is not None else default_data_dir(path)
        if path is not None:
            switch = Switch.from_config(path, data_dir=directory, port=port, **options)
        else:
            switch = Switch(data_dir=directory, port=port, **options)
        await switch.start()
        return cls(switch)

    @property
    def address(self) -> Address:
        return self.switch.sip_address

    @property
    def params(self) -> Params:
        return self.switch.core.params

    def set_param(self, name: str, value: object) -> Any:
        """Validate (``ParameterError``), persist by "lab", apply to new sessions; returns the
        stored value."""
        return self._control.set_param(name, value)["value"]

    def reset_param(self, name: str | None = None) -> list[str]:
        return list(self._control.reset_param(name)["reset"])

    def param_history(self, name: str | None = None) -> list[dict[str, Any]]:
        return self._control.param_history(name)

    def bindings(self) -> list[dict[str, Any]]:
        return self._control.bindings()

    def auth_events(self, limit: int = 50, user: str | None = None,
                    address: str | None = None) -> list[dict[str, Any]]:
        return self._control.auth_events(limit=limit, user=user, address=address)

    def suspended(self) -> list[dict[str, Any]]:
        return self._control.suspended()

    def unsuspend(self, target: str) -> int:
        return int(self._control.unsuspend(target)["lifted"])

    def registrations(self) -> list[dict[str, Any]]:
        return self._control.registrations()

    @property
    def trace(self) -> Trace:
        return self.switch.trace

    def trace_records(self, since: int = 0) -> list[TraceRecord]:
        records, _ = self._control.trace_records(since, 10**9)
        return [record for _, record in records]

    async def stop(self) -> None:
        """Graceful stop; the trace (and what the stop hooks did) stays readable."""
        await self.switch.stop()
        self._control.close()

    def __repr__(self) -> str:
        state = "{}:{}".format(*self.address) if self.switch.started else "stopped"
        return f"<LabSwitch in-kernel at {state}>"


# ----------------------------------------------------------------------------- remote

class RemoteTrace:
    """The remote switch's trace, with ``records()`` and ``subscribe()`` like a Trace.

    ``poll()`` fetches what is new (blocking, a few ms on loopback). While someone is
    subscribed, a task on the running event loop polls every ``interval`` seconds and calls
    the subscribers with each new record (what :class:`vosapp.lab.ladder.LiveLadder` needs).
    """

    def __init__(self, remote: RemoteSwitch, *, interval: float = 0.2,
                 capacity: int = 10_000) -> None:
        self.remote = remote
        self.interval = interval
        self.capacity = capacity
        self._records: deque[TraceRecord] = deque(maxlen=capacity)
        self._next = 0
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[TraceRecord], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.errors = 0

    def _fetch(self) -> list[TraceRecord]:
        with self._lock:
            fresh: list[TraceRecord] = []
            while True:
                answer = self.remote.request("GET", f"/v1/trace?since={self._next}")
                batch = [record_from_json(row) for row in answer["records"]]
                self._next = int(answer["next"])
                fresh.extend(batch)
                if len(batch) < 2000:
                    break
            self._records.extend(fresh)
            return fresh

    def poll(self) -> int:
        """Fetch new records now and hand them to the subscribers; returns how many."""
        fresh = self._fetch()
        self._notify(fresh)
        return len(fresh)

    def _notify(self, records: list[TraceRecord]) -> None:
        for record in records:
            for callback in list(self._subscribers):
                callback(record)

    def records(self) -> list[TraceRecord]:
        """Every record fetched so far (fetching what is new first)."""
        self.poll()
        return list(self._records)

    def subscribe(self, callback: Callable[[TraceRecord], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        self._ensure_poller()

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _ensure_poller(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: call poll() yourself
        self._task = loop.create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        while self._subscribers:
            try:
                fresh = await asyncio.to_thread(self._fetch)
            except (OSError, ControlError):
                self.errors += 1
                if self.remote.closed:
                    return
            else:
                self._notify(fresh)
            await asyncio.sleep(self.interval)

    def close(self) -> None:
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()

    def __len__(self) -> int:
        return len(self._records)


class RemoteSwitch:
    """A background ``vosapp serve`` reached through its control channel."""

    def __init__(self, host: str, port: int, token: str, *, pid: int | None = None,
                 timeout: float = 5.0) -> None:
        self.host = host
        self.port = int(port)
        self.token = token
        self.pid = pid
        self.timeout = timeout
        self.closed = False
        self.trace = RemoteTrace(self)

    def request(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        """One HTTP request; the server's error sentence becomes a ControlError (or the
        ParameterError it reported)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = {"Authorization": f"Bearer {self.token}"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            raise ControlError(response.status, f"not a JSON answer: {raw[:80]!r}") from None
        if response.status >= 400:
            if answer.get("type") == "parameter":
                raise ParameterError(answer.get("name", "?"), None, answer.get("allowed", ""),
                                     message=answer.get("error"))
            raise ControlError(response.status, answer.get("error", f"HTTP {response.status}"),
                               answer.get("type", "error"))
        return answer

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/v1/status")

    @property
    def address(self) -> Address:
        host, port = self.status()["sip_address"]
        return (host, int(port))

    @property
    def params(self) -> Params:
        values = self.request("GET", "/v1/params")["values"]
        return Params({name: value for name, value in values.items() if name in REGISTRY})

    def set_param(self, name: str, value: object) -> Any:
        if isinstance(value, bool | int | str) or value is None:
            sent: object = value
        else:
            sent = str(value)
        return self.request("POST", "/v1/params", {"name": name, "value": sent})["value"]

    def reset_param(self, name: str | None = None) -> list[str]:
        return list(self.request("POST", "/v1/params/reset", {"name": name})["reset"])

    def param_history(self, name: str | None = None) -> list[dict[str, Any]]:
        query = f"?name={name}" if name else ""
        return list(self.request("GET", f"/v1/params/history{query}")["history"])

    def bindings(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/bindings")["bindings"])

    def auth_events(self, limit: int = 50, user: str | None = None,
                    address: str | None = None) -> list[dict[str, Any]]:
        from urllib.parse import urlencode

        query = {"limit": str(limit)}
        if user is not None:
            query["user"] = user
        if address is not None:
            query["address"] = address
        return list(self.request("GET", f"/v1/auth/events?{urlencode(query)}")["events"])

    def suspended(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/auth/suspended")["suspended"])

    def unsuspend(self, target: str) -> int:
        return int(self.request("POST", "/v1/auth/unsuspend", {"target": target})["lifted"])

    def registrations(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/registrations")["registrations"])

    def trace_records(self, since: int = 0) -> list[TraceRecord]:
        out: list[TraceRecord] = []
        while True:
            answer = self.request("GET", f"/v1/trace?since={since}")
            out.extend(record_from_json(row) for row in answer["records"])
            if int(answer["next"]) == since:
                return out
            since = int(answer["next"])

    async def stop(self, *, timeout: float = 15.0) -> None:
        """Ask for a graceful stop and wait until the control channel is gone."""
        await asyncio.to_thread(self.request, "POST", "/v1/stop")
        self.trace.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                await asyncio.to_thread(self.request, "GET", "/v1/status")
            except (OSError, ControlError, http.client.HTTPException):
                self.closed = True
                return
            await asyncio.sleep(0.1)
        raise ControlError(504, f"the switch at {self.host}:{self.port} did not stop in "
                           f"{timeout} s", "stop-timeout")

    def __repr__(self) -> str:
        return f"<RemoteSwitch control {self.host}:{self.port} pid={self.pid}>"


def attach(data_dir: str | Path | None = None, config: str | Path | None = None, *,
           timeout: float = 5.0) -> RemoteSwitch:
    """Connect to the ``vosapp serve`` whose data directory is ``data_dir`` (default:
    ``$VOSAPP_DATA_DIR``, else the config's ``data_dir``), checking it answers."""
    directory = Path(data_dir) if data_dir is not None else default_data_dir(config)
    if directory is None:
        raise VosappError("attach(): no data directory (give data_dir=, or set "
                          "VOSAPP_DATA_DIR, or a config with [switch] data_dir)")
    info = read_control_file(directory)
    remote = RemoteSwitch(str(info["address"]), int(info["port"]), str(info["token"]),
                          pid=info.get("pid"), timeout=timeout)
    try:
        remote.status()
    except OSError as exc:
        raise ControlError(503, f"{directory}/control.json names {info['address']}:"
                           f"{info['port']} but nothing answers there ({exc}); a stale file "
                           "from a switch that did not stop cleanly?", "unreachable") from None
    return remote



# ------------------------------------------------------------------- a background process

class BackgroundSwitch:
    """``vosapp serve`` started as a subprocess of the kernel (for notebook 06 and tests).

    stdout is read until the ``vosapp listening on HOST:PORT`` line; stderr (the log) goes
    to ``<data_dir>/serve.log`` so a chatty switch can never block on a full pipe.
    """

    def __init__(self, process: subprocess.Popen[bytes], sip_address: Address, data_dir: Path,
                 log_path: Path) -> None:
        self.process = process
        self.sip_address = sip_address
        self.data_dir = data_dir
        self.log_path = log_path

    @classmethod
    def spawn(cls, data_dir: str | Path, config: str | Path | None = None, *,
              listen: str = "127.0.0.1:0", udp_only: bool = True,
              extra_args: tuple[str, ...] = (), timeout: float = 30.0,
              new_session: bool = False) -> BackgroundSwitch:
        """Start ``vosapp serve`` and wait for its ready line.

        ``new_session`` puts it in its own session, so a Ctrl-C meant for the terminal's
        foreground program (JupyterLab under ``vosapp lab``) does not stop the switch too.
        """
        directory = Path(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = Path(config) if config is not None else default_config_path()
        args = [sys.executable, "-m", "vosapp.cli", "serve", "--data-dir", str(directory),
                "--listen", listen, *extra_args]
        if path is not None:
            args += ["--config", str(Path(path).resolve())]
        if udp_only:
            args.append("--udp-only")
        log_path = directory / "serve.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log_file,
                                       stdin=subprocess.DEVNULL, env=env,
                                       start_new_session=new_session)
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        buffered = b""
        while True:
            match = _READY.search(buffered.decode("utf-8", "replace"))
            if match:
                break
            if process.poll() is not None:
                raise VosappError(f"vosapp serve exited with {process.returncode} before it "
                                  f"was ready: {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                process.kill()
                raise VosappError(f"vosapp serve was not ready in {timeout} s "
                                  f"(log: {log_path})")
            ready, _, _ = select.select([process.stdout], [], [], 0.1)
            if ready:
                chunk = os.read(process.stdout.fileno(), 4096)
                buffered += chunk
        return cls(process, (match.group(1), int(match.group(2))), directory, log_path)

    def attach(self, *, timeout: float = 5.0) -> RemoteSwitch:
        return attach(self.data_dir, timeout=timeout)

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit; returns its exit status."""
        return self.process.wait(timeout)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM (a graceful stop too) and wait; SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __repr__(self) -> str:
        state = "running" if self.process.poll() is None else f"exited {self.process.returncode}"
        return (f"<BackgroundSwitch pid={self.process.pid} sip={self.sip_address[0]}:"
                f"{self.sip_address[1]} {state}>")


_READY = re.compile(r"vosapp listening on (\S+):(\d+) ")
