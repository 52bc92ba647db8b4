"""How a notebook talks to a switch running as a background process (``vosapp serve``).

Two layers:

* :class:`SwitchControl` -- the operations a lab needs on a running :class:`Switch`, as plain
  JSON-able values: parameters (get, set with validation, reset), registrar bindings, the
  authentication audit trail, suspensions, outbound registration status, the SIP trace as a
  numbered stream (``trace(since=N)`` returns what came after record N), and a graceful stop.
  ``vosapp.lab.attach.LabSwitch`` uses it in-process; the server below exposes it.
* :class:`ControlServer` -- HTTP/1.1 + JSON on ``127.0.0.1`` (stdlib asyncio, one request per
  connection). It refuses to bind anything but a loopback address, rejects connections whose
  peer is not loopback, and requires ``Authorization: Bearer <token>`` on every request
  (compared in constant time). ``vosapp serve`` writes ``<data_dir>/control.json``
  (``address, port, token, pid, sip_address``) with mode 0600 -- the token is as good as the
  file permissions: whoever can read that file (the same Unix user, or root) controls the
  switch; other local users cannot.

Endpoints (all answers are JSON objects; errors are ``{"error": sentence, "type": kind}``
with 400 bad request / 401 no or wrong token / 404 unknown path / 405 wrong method /
408 no complete request head within ``auth_timeout`` (1 s) / 413 body too large / 503 when
``max_connections`` (default 32) authenticated requests are already being served).

Any local user can connect, so a connection only counts against ``max_connections`` once its
request head carried the token: until then it is *unauthenticated*, closed after
``auth_timeout``, and when ``max_unauthenticated`` (128) are waiting the oldest is dropped to
make room (a real client sends its head at once; an idle squatter is the oldest)::

    GET  /v1/status                      pid, sip address, transports, changed parameters
    GET  /v1/params                      {"values": {name: value}, "changed": [...]}
    POST /v1/params  {"name", "value"}   set (validated, persisted by "control", applied to
                                         new sessions); 400 with the ParameterError text
    POST /v1/params/reset {"name"|null}  back to the config/default value
    GET  /v1/params/history?name=NAME    the store's change history
    GET  /v1/bindings                    registrar bindings (live)
    GET  /v1/auth/events?limit=N&user=U&address=A
    GET  /v1/auth/suspended
    POST /v1/auth/unsuspend {"target"}   lift suspensions of a user or an address
    GET  /v1/registrations               outbound registration status (docs/behaviour.md §3)
    GET  /v1/trace?since=N&limit=M       records numbered > N, and "next" to poll with
    POST /v1/stop                        graceful stop (stop hooks run, e.g. unregister)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import hmac
import ipaddress
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from vosapp.errors import VosappError
from vosapp.params import REGISTRY, ParameterError, Params
from vosapp.trace import TraceRecord

if TYPE_CHECKING:
    from vosapp.io.runtime import Switch
    from vosapp.switch.registrar import RegistrarService

log = logging.getLogger(__name__)

CONTROL_FILE = "control.json"
MAX_BODY = 64 * 1024
MAX_HEADER = 16 * 1024
MAX_TRACE_BATCH = 2000
#: Simultaneous authenticated requests served; more get a 503 and are closed.
MAX_CONNECTIONS = 32
#: Connections that have not yet sent an authenticated request head: how many may wait, and
#: for how long (seconds).
MAX_UNAUTHENTICATED = 128
AUTH_TIMEOUT = 1.0
#: The authenticated rest of a request (its body) must arrive within this many seconds.
REQUEST_TIMEOUT = 10.0
API = "/v1"


class ControlError(VosappError):
    """A control-channel request failed; ``status`` is the HTTP status, ``kind`` a short tag."""

    def __init__(self, status: int, message: str, kind: str = "bad-request") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


# ------------------------------------------------------------------------------ JSON forms

def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def record_to_json(seq: int, record: TraceRecord) -> dict[str, Any]:
    """A trace record for the wire (``raw`` base64, so every byte survives)."""
    return {"seq": seq, "mono": record.mono, "wall": record.wall,
            "direction": record.direction, "transport": record.transport,
            "src": list(record.src), "dst": list(record.dst),
            "raw": base64.b64encode(record.raw).decode("ascii"), "method": record.method,
            "status": record.status, "call_id": record.call_id, "cseq": record.cseq,
            "branch": record.branch, "note": record.note}


def record_from_json(row: dict[str, Any]) -> TraceRecord:
    return TraceRecord(
        mono=float(row["mono"]), wall=float(row["wall"]), direction=str(row["direction"]),
        transport=str(row.get("transport") or ""),
        src=(str(row["src"][0]), int(row["src"][1])),
        dst=(str(row["dst"][0]), int(row["dst"][1])),
        raw=base64.b64decode(row.get("raw") or ""), method=row.get("method"),
        status=row.get("status"), call_id=row.get("call_id"), cseq=row.get("cseq"),
        branch=row.get("branch"), note=str(row.get("note") or ""))


# ------------------------------------------------------------------------- the operations

class SwitchControl:
    """What the lab can ask of a running :class:`~vosapp.io.runtime.Switch` (JSON-able).

    Parameters
    ----------
    switch : Switch
        Started or not; its trace is read by record number (``Trace.numbered_since``):
        what the ring still holds, whenever this was made.
    by : str
        Recorded as the author of parameter changes in the store's history.
    on_stop : callable, optional
        What a stop request does (``vosapp serve`` sets its stop event); without it
        :meth:`request_stop` schedules ``switch.stop()`` on the running loop.
    """

    def __init__(self, switch: Switch, *, by: str = "control",
                 on_stop: Callable[[], None] | None = None) -> None:
        self.switch = switch
        self.by = by
        self.on_stop = on_stop
        self._stop_task: asyncio.Task[None] | None = None

    def close(self) -> None:
        """Nothing to let go of: the trace is read by number (:meth:`Trace.numbered_since`),
        not followed record by record."""

    # -- status & parameters -------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        switch = self.switch
        return {
            "pid": os.getpid(),
            "started": switch.started,
            "sip_address": list(switch.sip_address) if switch.started else None,
            "transports": list(switch.transports),
            "data_dir": str(switch.data_dir) if switch.data_dir is not None else None,
            "changed": list(switch.core.params.changed()),
            "trace_seq": self.switch.trace.added,
        }

    def params(self) -> Params:
        return self.switch.core.params

    def params_json(self) -> dict[str, Any]:
        params = self.params()
        return {"values": params.as_dict(), "changed": list(params.changed())}

    def _base_params(self) -> Params:
        config = self.switch.config
        return config.parameters if config is not None else Params.defaults()

    def set_param(self, name: object, value: object) -> dict[str, Any]:
        """Validate, persist (when the switch has a store) and apply to new sessions."""
        if not isinstance(name, str):
            raise ParameterError(str(name), name, "an SS_* name", "not a parameter name")
        param = REGISTRY[name]  # ParameterError for an unknown name (with a hint)
        coerced = param.coerce(value)
        store = self.switch.store
        if store is not None and self.switch.started:
            store.set_param(name, coerced, by=self.by, base=self._base_params())
            params = store.load_params(self._base_params())
        else:
            params = self.switch.core.params.replace(**{name: coerced})
        self._apply(params)
        return {"name": name, "value": coerced, "formatted": param.format(coerced),
                "persisted": store is not None and self.switch.started,
                "applies_to": "new sessions"}

    def reset_param(self, name: str | None) -> dict[str, Any]:
        store = self.switch.store
        if name is not None:
            REGISTRY[name]
        if store is not None and self.switch.started:
            names = store.reset_param(name, by=self.by, base=self._base_params())
            params = store.load_params(self._base_params())
        else:
            base = self._base_params()
            current = self.switch.core.params
            names = [name] if name is not None else list(current.changed())
            params = current.replace(**{n: base[n] for n in names})
        self._apply(params)
        return {"reset": names, "applies_to": "new sessions"}

    def param_history(self, name: str | None = None) -> list[dict[str, Any]]:
        """The store's change history (oldest first); empty without a store."""
        if name is not None:
            REGISTRY[name]
        store = self.switch.store
        if store is None or not self.switch.started:
            return []
        return [_jsonable(change) for change in store.param_history(name)]

    def _apply(self, params: Params) -> None:
        # Sessions already open keep the Params object they started with (docs/behaviour.md §1); the
        # core tells the auth policy and the transaction layer (new sessions only).
        self.switch.core.update_params(params, by=self.by)

    # -- registrar, auth, outbound -------------------------------------------------------
    def _registrar_service(self) -> RegistrarService | None:
        return self.switch.app.registrar

    def bindings(self) -> list[dict[str, Any]]:
        service = self._registrar_service()
        if service is None:
            return []
        return [_jsonable(b) for b in service.registrar.all_bindings()]

    def auth_events(self, *, limit: int = 50, user: str | None = None,
                    address: str | None = None) -> list[dict[str, Any]]:
        service = self._registrar_service()
        if service is None:
            return []
        from vosapp.switch.auth import AuthEvent, MemoryJournal
        from vosapp.switch.registrar.auth_journal import SqliteAuthJournal

        journal = service.authenticator.policy.journal
        events: list[AuthEvent] = []
        if isinstance(journal, SqliteAuthJournal):
            events = journal.events(limit=limit, user=user, source_host=address)
        elif isinstance(journal, MemoryJournal):
            events = [e for e in journal.events
                      if (user is None or e.user == user)
                      and (address is None or e.source_host == address)][-limit:]
        return [_jsonable(e) for e in events]

    def suspended(self) -> list[dict[str, Any]]:
        service = self._registrar_service()
        if service is None:
            return []
        return [_jsonable(s) for s in service.authenticator.policy.suspensions()]

    def unsuspend(self, target: str) -> dict[str, Any]:
        service = self._registrar_service()
        if service is None:
            return {"lifted": 0}
        lifted = service.authenticator.policy.unsuspend(target)
        journal = service.authenticator.policy.journal
        if hasattr(journal, "lift"):
            journal.lift(target, time.time(), self.by)
        return {"lifted": lifted}

    def registrations(self) -> list[dict[str, Any]]:
        """Outbound registration status (docs/behaviour.md §3); empty when no gateway registers."""
        outbound = self.switch.app.outbound
        return [s.as_dict() for s in outbound.status()] if outbound is not None else []

    # -- trace ---------------------------------------------------------------------------
    def trace_records(self, since: int = 0, limit: int = MAX_TRACE_BATCH
                      ) -> tuple[list[tuple[int, TraceRecord]], int]:
        """Records numbered above ``since`` (at most ``limit``) and the number to poll with
        next. Numbers start at 1 and never repeat; the oldest fall out of the ring."""
        if since < 0 or limit < 1:
            raise ControlError(400, f"since must be >= 0 and limit >= 1 (got {since}, {limit})")
        selected = self.switch.trace.numbered_since(since, limit)
        return selected, (selected[-1][0] if selected else max(since, 0))

    # -- stop ----------------------------------------------------------------------------
    def request_stop(self) -> dict[str, Any]:
        if self.on_stop is not None:
            self.on_stop()
        elif self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self.switch.stop())
        return {"stopping": True}


# ------------------------------------------------------------------------------ the server

def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class ControlServer:
    """HTTP/JSON control channel on loopback, token-protected (see the module docstring)."""

    def __init__(self, control: SwitchControl, *, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, max_connections: int = MAX_CONNECTIONS,
                 max_unauthenticated: int = MAX_UNAUTHENTICATED,
                 auth_timeout: float = AUTH_TIMEOUT) -> None:
        if max_connections < 1 or max_unauthenticated < 1:
            raise ValueError(f"max_connections and max_unauthenticated must be at least 1 "
                             f"(got {max_connections}, {max_unauthenticated})")
        if not is_loopback(host):
            raise ControlError(400, f"the control channel binds a loopback address only "
                               f"(127.0.0.0/8 or ::1), not {host!r}", "not-loopback")
        self.control = control
        self.host = host
        self.port = port
        self.token = token or secrets.token_urlsafe(32)
        self._server: asyncio.base_events.Server | None = None
        self.requests = 0
        self.max_connections = max_connections
        #: Authenticated requests being served now, and those refused for being over the cap.
        self.active = 0
        self.refused = 0
        self.max_unauthenticated = max_unauthenticated
        self.auth_timeout = auth_timeout
        #: Connections still to present the token (oldest first), and how many were dropped
        #: to make room for newer ones.
        self._unauthenticated: dict[asyncio.StreamWriter, None] = {}
        self.evicted = 0

    @property
    def unauthenticated(self) -> int:
        return len(self._unauthenticated)

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise ControlError(500, "the control server is not started", "not-started")
        name = self._server.sockets[0].getsockname()
        return (name[0], int(name[1]))

    async def start(self) -> ControlServer:
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._unauthenticated):  # their tasks end now, not cancelled
                writer.transport.abort()
            await asyncio.sleep(0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    # -- control.json --------------------------------------------------------------------
    def write_file(self, data_dir: str | Path) -> Path:
        """Write ``control.json`` (mode 0600, atomically) for :func:`vosapp.lab.attach`."""
        directory = Path(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        host, port = self.address
        switch = self.control.switch
        content = json.dumps({
            "address": host, "port": port, "token": self.token, "pid": os.getpid(),
            "sip_address": list(switch.sip_address) if switch.started else None,
            "started_at": time.time()}, indent=1)
        target = directory / CONTROL_FILE
        temporary = directory / f".{CONTROL_FILE}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask said
            os.write(fd, content.encode())
        finally:
            os.close(fd)
        os.replace(temporary, target)
        return target

    @staticmethod
    def remove_file(data_dir: str | Path) -> None:
        """Remove ``control.json`` if this process wrote it."""
        target = Path(data_dir) / CONTROL_FILE
        try:
            if json.loads(target.read_text()).get("pid") == os.getpid():
                target.unlink()
        except (OSError, ValueError):
            pass

    # -- HTTP ----------------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            if not peer or not is_loopback(str(peer[0])):
                await self._reply(writer, 403, {"error": "only loopback clients are served",
                                                "type": "not-loopback"})
                return
            try:
                request = await self._authenticate(reader, writer)
            except ControlError as exc:
                await self._reply(writer, exc.status, {"error": str(exc), "type": exc.kind})
                return
            if self.active >= self.max_connections:
                # A runaway notebook loop must not exhaust the switch's file descriptors.
                self.refused += 1
                await asyncio.wait_for(self._reply(writer, 503, {
                    "error": f"too many control connections (at most {self.max_connections}"
                             " at a time); retry shortly", "type": "busy"}), 1.0)
                return
            self.active += 1
            try:
                status, body = await self._serve(reader, *request)
                self.requests += 1
                await self._reply(writer, status, body)
            finally:
                self.active -= 1
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _authenticate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                            ) -> tuple[str, str, dict[str, str]]:
        """The request head, once it has arrived (within ``auth_timeout``) with the token."""
        if len(self._unauthenticated) >= self.max_unauthenticated:
            oldest = next(iter(self._unauthenticated))
            del self._unauthenticated[oldest]
            self.evicted += 1
            oldest.transport.abort()  # its task ends on the reset
        self._unauthenticated[writer] = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.auth_timeout)
        except asyncio.LimitOverrunError:
            raise ControlError(413, "request head too large") from None
        except TimeoutError:
            raise ControlError(408, f"request head not received in {self.auth_timeout:g} s",
                               "timeout") from None
        finally:
            self._unauthenticated.pop(writer, None)
        method, target, headers = _parse_head(head)
        self._check_token(headers.get("authorization"))
        return method, target, headers

    async def _serve(self, reader: asyncio.StreamReader, method: str, target: str,
                     headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            body = await asyncio.wait_for(_read_body(reader, headers), REQUEST_TIMEOUT)
            url = urlsplit(target)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            return self._route(method.upper(), url.path, query, body)
        except ControlError as exc:
            return exc.status, {"error": str(exc), "type": exc.kind}
        except ParameterError as exc:
            return 400, {"error": str(exc), "type": "parameter", "name": exc.name,
                         "allowed": exc.allowed}
        except VosappError as exc:
            return 400, {"error": str(exc), "type": type(exc).__name__}
        except TimeoutError:
            return 408, {"error": f"request not received in {REQUEST_TIMEOUT:g} s",
                         "type": "timeout"}
        except (ConnectionError, asyncio.IncompleteReadError):
            raise
        except Exception as exc:  # never take the switch down for a control request
            log.exception("control request failed")
            return 500, {"error": f"internal error: {exc!r}", "type": "internal"}

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        reasons = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
                   403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                   408: "Request Timeout", 413: "Payload Too Large",
                   500: "Internal Server Error", 503: "Service Unavailable"}
        head = (f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n")
        if status == 401:
            head += 'WWW-Authenticate: Bearer realm="vosapp-control"\r\n'
        elif status == 503:
            head += "Retry-After: 1\r\n"
        writer.write(head.encode() + b"\r\n" + payload)
        await writer.drain()

    def _check_token(self, value: str | None) -> None:
        if not value:
            raise ControlError(401, "missing 'Authorization: Bearer <token>' (the token is in"
                               " <data_dir>/control.json)", "unauthorized")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), self.token.encode()):
            raise ControlError(401, "wrong control token", "unauthorized")

    def _route(self, method: str, path: str, query: dict[str, str],
               body: Any) -> tuple[int, dict[str, Any]]:
        control = self.control
        routes: dict[str, dict[str, Callable[[], tuple[int, dict[str, Any]]]]] = {
            "/status": {"GET": lambda: (200, control.status())},
            "/params": {"GET": lambda: (200, control.params_json()),
                        "POST": lambda: (200, control.set_param(
                            _field(body, "name"), _field(body, "value")))},
            "/params/reset": {"POST": lambda: (200, control.reset_param(
                _optional_name(body)))},
            "/params/history": {"GET": lambda: (200, {"history": control.param_history(
                query.get("name") or None)})},
            "/bindings": {"GET": lambda: (200, {"bindings": control.bindings()})},
            "/auth/events": {"GET": lambda: (200, {"events": control.auth_events(
                limit=_int(query, "limit", 50, 1, 10_000), user=query.get("user"),
                address=query.get("address"))})},
            "/auth/suspended": {"GET": lambda: (200, {"suspended": control.suspended()})},
            "/auth/unsuspend": {"POST": lambda: (200, control.unsuspend(
                str(_field(body, "target"))))},
            "/registrations": {"GET": lambda: (200, {
                "registrations": control.registrations()})},
            "/trace": {"GET": lambda: self._trace(query)},
            "/stop": {"POST": lambda: (202, control.request_stop())},
        }
        if not path.startswith(API + "/") or path[len(API):] not in routes:
            raise ControlError(404, f"no such endpoint {path!r}; see vosapp.io.control",
                               "not-found")
        handlers = routes[path[len(API):]]
        if method not in handlers:
            raise ControlError(405, f"{path} takes {' or '.join(handlers)}, not {method}",
                               "method-not-allowed")
        return handlers[method]()

    def _trace(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        since = _int(query, "since", 0, 0, 2**62)
        limit = _int(query, "limit", MAX_TRACE_BATCH, 1, MAX_TRACE_BATCH)
        records, following = self.control.trace_records(since, limit)
        return 200, {"records": [record_to_json(seq, r) for seq, r in records],
                     "next": following}


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    if len(head) > MAX_HEADER:
        raise ControlError(413, "request head too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ControlError(400, f"not an HTTP/1.x request line: {lines[0][:80]!r}")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ControlError(400, f"malformed header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> Any:
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise ControlError(400, f"bad Content-Length {length_text!r}")
    length = int(length_text)
    if length > MAX_BODY:
        raise ControlError(413, f"body of {length} bytes is over {MAX_BODY}")
    if not length:
        return None
    raw = await reader.readexactly(length)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ControlError(400, f"the body is not JSON ({exc})") from None
    except RecursionError:
        raise ControlError(400, "the JSON body is nested too deeply") from None


def _field(body: Any, name: str) -> Any:
    if not isinstance(body, dict):
        raise ControlError(400, f"expected a JSON object body with {name!r}")
    if name not in body:
        raise ControlError(400, f"the JSON body lacks {name!r}")
    return body[name]


def _optional_name(body: Any) -> str | None:
    if body is None:
        return None
    name = _field(body, "name")
    if name is not None and not isinstance(name, str):
        raise ControlError(400, "'name' must be a parameter name or null")
    return name


def _int(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    if name not in query:
        return default
    text = query[name]
    if not text.lstrip("-").isdigit() or not low <= int(text) <= high:
        raise ControlError(400, f"query parameter {name}={text!r}: expected an integer "
                           f"{low}-{high}")
    return int(text)


def read_control_file(data_dir: str | Path) -> dict[str, Any]:
    """The content of ``<data_dir>/control.json`` (ControlError when absent or unreadable)."""
    target = Path(data_dir) / CONTROL_FILE
    try:
        content = json.loads(target.read_text())
    except FileNotFoundError:
        raise ControlError(404, f"{target} does not exist: is `vosapp serve` running with "
                           "this data directory (and without --no-control)?",
                           "no-control-file") from None
    except (OSError, ValueError) as exc:
        raise ControlError(400, f"{target} is unreadable: {exc}", "bad-control-file") from None
    if not isinstance(content, dict):
        raise ControlError(400, f"{target} is not a JSON object", "bad-control-file")
    for key in ("address", "port", "token"):
        if key not in content:
            raise ControlError(400, f"{target} lacks {key!r}", "bad-control-file")
    return content
