# %% [markdown]
# # 03 — Outbound registration to a carrier
#
# vosapp registers a routing gateway with a carrier's registrar
# ([docs/behaviour.md §3](../docs/behaviour.md)): digest authentication, refresh before expiry, and on a **graceful stop** an authenticated
# `REGISTER … Expires: 0` so the carrier drops the binding at once
# (`SS_SIP_USER_AGENT_SEND_UNREGISTER` = On). With Off, nothing is sent and the carrier keeps
# a stale binding until it expires.
#
# The carrier here is `LabRegistrar`: a small registrar on a loopback port that challenges
# with digest and records every REGISTER it gets.

# %%
import asyncio
import tempfile
from itertools import pairwise
from pathlib import Path

from vosapp.lab.attach import LabSwitch
from vosapp.lab.ladder import LiveLadder, figure
from vosapp.lab.phones import LabRegistrar
from vosapp.lab.scenarios import TRUNK_PASSWORD, TRUNK_USER, upstream_config
from vosapp.lab.waiting import wait_until
from vosapp.lab.widgets import table

# %% [markdown]
# ## Register
#
# The config gives the routing gateway `carrier` a `[routing_gateway.register]` table
# pointing at the lab registrar (`upstream_config` writes it next to a fresh data directory).

# %%
carrier = await LabRegistrar({TRUNK_USER: TRUNK_PASSWORD}, max_expires=600).start()
scratch = tempfile.TemporaryDirectory(prefix="vosapp-nb03-")  # removed further down
work = Path(scratch.name)
config_path = upstream_config(work, carrier.address)
print(config_path.read_text())
switch = await LabSwitch.start(config_path, data_dir=work / "data", port=0)
names = {"{}:{}".format(*switch.address): "vosapp", "{}:{}".format(*carrier.address): "carrier"}
live = LiveLadder(switch.trace, names=names, title="outbound registration")
live

# %%
assert await wait_until(lambda: any(r.status == 200 for r in carrier.registers))
assert await wait_until(lambda: switch.registrations()[0]["state"] == "registered")
live.flush()
status = switch.registrations()[0]
print(status["state"], "granted", status["granted_expires"], "s; next:", status["next_action"])
assert [(r.status, r.authorized) for r in carrier.registers] == [(401, False), (200, True)]
assert status["granted_expires"] == 600 and status["next_action"] == "refresh"
table(switch.registrations(), ["gateway", "proxy", "state", "granted_expires",
                               "last_response", "next_action", "cseq"])

# %% [markdown]
# ## Stop the switch: the authenticated unregister
#
# `stop()` runs the stop hooks before the sockets close; the outbound feature sends
# `REGISTER` with `Expires: 0` (same Call-ID, From tag and Contact, CSeq + 1) carrying the
# same credentials up front (next nonce-count on the carrier's last nonce — it would answer
# a fresh challenge too), and waits (bounded) for the 200.

# %%
await switch.stop()
live.flush()
unregister = [r for r in carrier.registers if r.expires == 0]
print([(r.status, r.authorized, r.cseq) for r in unregister])
assert unregister and unregister[-1].authorized and unregister[-1].status == 200
assert unregister[-1].call_id == carrier.registers[0].call_id
assert carrier.live_bindings() == {}
sent = [r for r in switch.trace.records(direction="out") if r.method == "REGISTER"
        and b"Expires: 0" in r.raw]
assert sent and any(b"Authorization: Digest" in r.raw for r in sent)
live.close()
figure(live.ladder, title="register ... graceful stop -> REGISTER Expires: 0 (authenticated)")

# %% [markdown]
# ## The same with SS_SIP_USER_AGENT_SEND_UNREGISTER = Off
#
# Nothing is sent on stop. The carrier still believes we are there until the binding
# expires — the stale window (calls it routes to us in that window fail).

# %%
carrier_off = await LabRegistrar({TRUNK_USER: TRUNK_PASSWORD}, max_expires=600).start()
scratch_off = tempfile.TemporaryDirectory(prefix="vosapp-nb03-off-")
work_off = Path(scratch_off.name)
config_off = upstream_config(work_off, carrier_off.address,
                             parameters={"SS_SIP_USER_AGENT_SEND_UNREGISTER": "Off"})
switch_off = await LabSwitch.start(config_off, data_dir=work_off / "data", port=0)
assert await wait_until(lambda: any(r.status == 200 for r in carrier_off.registers))
await switch_off.stop()
await asyncio.sleep(0.3)
print("REGISTERs with Expires: 0:", len(carrier_off.unregisters))
assert carrier_off.unregisters == []
assert TRUNK_USER in carrier_off.live_bindings()
contact, until = carrier_off.bindings[TRUNK_USER]
stale = until - carrier_off.clock.now()
print(f"the carrier keeps {contact} for another {stale:.0f} s")
assert 500 < stale <= 600
notes = [r.note for r in switch_off.trace_records() if r.direction == "event"]
assert any("unregister not sent" in note for note in notes)
print([n for n in notes if "unregister" in n])
carrier.close(); carrier_off.close()
scratch.cleanup(); scratch_off.cleanup()  # both switches have stopped

# %% [markdown]
# ## Refresh, over an hour of virtual time
#
# The same outbound feature on a `VirtualNetwork` with the same registrar logic
# (`CarrierRegistrar`), granting only 120 s: vosapp refreshes before every expiry (here
# every 80 s: `granted - min(granted/2, 64×T1 + 8 s)`), re-answering a challenge whenever
# the carrier's nonce has gone stale. An hour takes a moment.

# %%
from vosapp.lab.scenarios import virtual_outbound

run = virtual_outbound(max_expires=120)
run.run(3600)
accepted = [r for r in run.carrier.registers if r.status == 200]
gaps = [b.time - a.time for a, b in pairwise(accepted)]
print(f"{len(run.carrier.registers)} REGISTERs, {len(accepted)} accepted; "
      f"longest gap between accepted ones {max(gaps):.1f} s (grant 120 s)")
assert len(accepted) >= 40 and max(gaps) < 120       # the binding never lapsed
assert run.stop()                                     # graceful stop in virtual time
assert run.carrier.unregisters[-1].authorized and run.carrier.live_bindings() == {}

import plotly.graph_objects as go

fig = go.Figure(go.Scatter(x=[r.time / 60 for r in run.carrier.registers],
                           y=[r.status for r in run.carrier.registers], mode="markers"))
fig.update_layout(title="REGISTERs at the carrier (401 = challenge, 200 = accepted)",
                  xaxis_title="minutes", yaxis_title="status", height=300)
fig

# %%
stale_run = virtual_outbound(max_expires=3600, SS_SIP_USER_AGENT_SEND_UNREGISTER=False)
stale_run.run(60)
stale_run.stop()
contact, until = stale_run.carrier.bindings[TRUNK_USER]
print(f"Off: no unregister; stale window {until - stale_run.now:.0f} s of a 3600 s grant")
assert stale_run.carrier.unregisters == [] and until - stale_run.now > 3000
