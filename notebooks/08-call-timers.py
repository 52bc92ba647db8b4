# %% [markdown]
# # 08 — Call timers in virtual time
#
# The call-side `SS_*` parameters of the B2BUA
# ([docs/behaviour.md §4.2–§4.4](../docs/behaviour.md), NAT keep-alive in §2.6), each shown
# as a ladder and checked by an assertion: the INVITE timeout and failover, stopping after an
# INVITE timeout, the trying / ringing / session-progress timeouts, session-timer refresh with
# early hangup On and Off, the re-INVITE safety net for endpoints without session timers, the
# NAT keep-alive, the resend interval's retransmission schedule, and Privacy /
# P-Asserted-Identity / Display From on the vendor leg.
#
# **Why its own switch, not the make-lab one:** these timers run for seconds to minutes (a
# 32 s retransmission schedule, a 90 s session timer). Here the same switch core runs on a
# `VirtualNetwork` driven by a manual clock (`vosapp.lab.call_timers`): a scripted caller
# (a trusted mapping gateway) and scripted vendors (routing gateways `vendor-a`, then
# `vendor-b`, both for prefix `00`), so minutes of signalling replay in milliseconds, the
# same on every run. Times below are virtual seconds since the switch started.

# %%
from itertools import pairwise

import plotly.graph_objects as go
from IPython.display import display

from vosapp.lab.call_timers import (
    ANSWER,
    SILENT,
    SWITCH,
    VENDORS,
    call_lab,
    expected_invite_schedule,
    nat_keepalive_lab,
    retransmission_schedule,
)
from vosapp.lab.widgets import table

# %% [markdown]
# ## SS_SIP_TIMEOUT_INVITE: no answer at all → the next gateway
#
# `vendor-a` never answers. The switch retransmits its INVITE (T1 = 500 ms: at 0.5 s and
# 1.5 s), and after `SS_SIP_TIMEOUT_INVITE` = 3 s gives the gateway up and tries `vendor-b`,
# which answers (§4.2). The caller only ever sees `vendor-b`'s progress.

# %%
lab = call_lab({"SS_SIP_TIMEOUT_INVITE": 3}, vendors={"vendor-a": SILENT, "vendor-b": ANSWER})
lab.caller.call()
lab.run(5)
lab.caller.bye()
lab.run(1)
to_a = lab.sent_times("INVITE", "vendor-a")
to_b = lab.sent_times("INVITE", "vendor-b")
print("INVITEs to vendor-a at", [round(t, 3) for t in to_a], "; to vendor-b at",
      [round(t, 3) for t in to_b])
print("caller got", lab.caller.statuses(), "; CDR gateways tried:", lab.cdr.gateways_tried)
assert abs(to_b[0] - to_a[0] - 3.0) < 0.01
assert len(to_a) == 3 and lab.caller.statuses() == [100, 180, 200]
assert lab.cdr.gateways_tried == ["vendor-a:timeout", "vendor-b:200"]
lab.ladder("SS_SIP_TIMEOUT_INVITE = 3: vendor-a silent, failover to vendor-b")

# %% [markdown]
# ## SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT = On: the call ends with 408
#
# The same silent `vendor-a`, but with the parameter On the INVITE timeout is final: the
# caller gets 408 and `vendor-b` is never tried.

# %%
lab = call_lab({"SS_SIP_TIMEOUT_INVITE": 3,
                "SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT": "On"},
               vendors={"vendor-a": SILENT, "vendor-b": ANSWER})
lab.caller.call()
lab.run(5)
print("caller got", lab.caller.statuses(), "; CDR:", lab.cdr.gateways_tried, lab.cdr.end_reason)
assert lab.caller.statuses() == [100, 408]
assert lab.vendors["vendor-b"].invites == [] and lab.cdr.gateways_tried == ["vendor-a:timeout"]
lab.ladder("STOP_SWITCH_AFTER_INVITE_TIMEOUT = On: 408, no failover")

# %% [markdown]
# ## Trying, ringing and session-progress timeouts
#
# Once the vendor has answered something, the progress timers take over (§4.3): after
# `100 Trying` alone `SS_SIP_TIMEOUT_TRYING`, after `180` `SS_SIP_TIMEOUT_RINGING`, after
# `183` without SDP `SS_SIP_TIMEOUT_SESSION_PROGRESS`, with SDP (early media)
# `SS_SIP_TIMEOUT_SESSION_PROGRESS_SDP`. Each is set to 5 s here (defaults 20 / 120 / 20 /
# 120 s); expiry CANCELs the vendor and ends the call with 408 — no failover, the vendor did
# answer.

# %%
progress_cases = [
    ("SS_SIP_TIMEOUT_TRYING", [(0.0, 100)]),
    ("SS_SIP_TIMEOUT_RINGING", [(0.0, 100), (0.1, 180)]),
    ("SS_SIP_TIMEOUT_SESSION_PROGRESS", [(0.0, 183, False)]),
    ("SS_SIP_TIMEOUT_SESSION_PROGRESS_SDP", [(0.0, 183, True)]),
]
rows, progress_labs = [], {}
for parameter, script in progress_cases:
    lab = call_lab({parameter: 5}, vendors={"vendor-a": script, "vendor-b": ANSWER})
    lab.caller.call()
    lab.run(7)
    last_progress = [r.mono for r in lab.records() if r.direction == "in" and r.status
                     and r.status < 200][-1]
    [cancel] = lab.sent_times("CANCEL", "vendor-a")
    rows.append({"parameter": parameter, "vendor sent": [s[1] for s in script],
                 "CANCEL after last progress (s)": round(cancel - last_progress, 3),
                 "caller got": lab.caller.statuses(), "CDR end": lab.cdr.end_reason})
    assert abs(cancel - last_progress - 5.0) < 0.01
    assert lab.caller.final.status == 408 and lab.vendors["vendor-b"].invites == []
    progress_labs[parameter] = lab
table(rows)

# %%
for parameter, lab in progress_labs.items():
    display(lab.ladder(f"{parameter} = 5: CANCEL to the vendor, 408 to the caller",
                       address="vendor-a"))

# %% [markdown]
# ## Session timers: SS_SIP_SESSION_TTL and SS_SIP_SESSION_UPDATE_SEGMENT
#
# The switch offers `Session-Expires: SS_SIP_SESSION_TTL` to the vendor (RFC 4028); a vendor
# that supports timers accepts it with the switch as refresher (`refresher=uac`), and the
# switch then re-INVITEs every TTL / `SS_SIP_SESSION_UPDATE_SEGMENT` seconds (§4.4) — same
# SDP, so a refresh changes nothing but proves both ends alive. A vendor without session
# timers is not refreshed at all (see the safety net further down).

# %%
refresh_rows = []
for ttl, segment in [(90, 2), (120, 2), (120, 3)]:
    lab = call_lab({"SS_SIP_SESSION_TTL": ttl, "SS_SIP_SESSION_UPDATE_SEGMENT": segment},
                   session_timers=["vendor-a"])
    lab.caller.call()
    lab.run(250)
    [invite] = lab.vendors["vendor-a"].invites
    sent = lab.sent_times("INVITE", "vendor-a")
    gaps = [round(b - a) for a, b in pairwise(sent)]
    refresh_rows.append({"SS_SIP_SESSION_TTL": ttl, "SS_SIP_SESSION_UPDATE_SEGMENT": segment,
                         "offered": invite.headers.get("Session-Expires"),
                         "refreshes in 250 s": len(sent) - 1, "every (s)": sorted(set(gaps))})
    assert invite.headers.get("Session-Expires") == str(ttl)
    assert set(gaps) == {round(ttl / segment)} and lab.cdr is None
table(refresh_rows)

# %% [markdown]
# ## SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP: On and Off
#
# TTL 90 s, refresh every 45 s. At 100 s the vendor disappears (its link is cut). The next
# refresh (135 s) goes unanswered:
#
# * `SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP` = **On**: the call is hung up as soon as that
#   refresh fails — when its transaction times out (Timer B, 64 × T1 = 32 s);
# * **Off**: the switch waits for the session to expire, 90 s after the last good refresh.

# %%
session_rows, session_labs = [], {}
for early in ("On", "Off"):
    lab = call_lab({"SS_SIP_SESSION_TTL": 90, "SS_SIP_SESSION_TIMEOUT_EARLY_HANGUP": early},
                   session_timers=["vendor-a"])
    lab.caller.call()
    lab.run(100)
    lab.net.blocked.add((SWITCH, VENDORS["vendor-a"]))  # the vendor is gone
    lab.run(100)
    invites = lab.sent_times("INVITE", "vendor-a")
    refreshes = sorted({round(t, 1) for t in invites[1:]})  # retransmissions folded
    [bye] = lab.sent_times("BYE", "caller")
    session_rows.append({"early hangup": early, "refreshes sent at": refreshes[:3],
                         "BYE to caller at": round(bye, 1), "CDR end": lab.cdr.end_reason})
    session_labs[early] = (lab, refreshes, bye)
table(session_rows)

# %%
lab_on, refreshes_on, bye_on = session_labs["On"]
lab_off, refreshes_off, bye_off = session_labs["Off"]
assert refreshes_on[:3] == refreshes_off[:3] and abs(refreshes_on[1] - refreshes_on[0] - 45) < 0.1
assert abs(bye_on - (refreshes_on[2] + 32)) < 0.1      # failed refresh + Timer B
assert abs(bye_off - (refreshes_off[1] + 90)) < 0.1    # last good refresh + Session-Expires
assert lab_on.cdr.end_reason == "session refresh failed (no answer)"
assert lab_off.cdr.end_reason == "session expired"
print(f"On hangs up {bye_off - bye_on:.0f} s earlier than Off")
lab_on.ladder("session timer 90 s, refresh every 45 s; vendor gone at 100 s; early hangup On",
              method=["INVITE", "BYE"])

# %% [markdown]
# ## SS_SIP_NO_TIMER_REINVITE_INTERVAL: the safety net without session timers
#
# Neither end uses session timers, so nothing would ever notice a dead leg. With
# `SS_SIP_NO_TIMER_REINVITE_INTERVAL` = 60 s the switch sends a liveness re-INVITE on
# each leg every 60 s (no answer → hang up; here both answer, so the call lives on).

# %%
lab = call_lab({"SS_SIP_NO_TIMER_REINVITE_INTERVAL": 60})
lab.caller.call()
lab.run(125)
to_vendor = lab.sent_times("INVITE", "vendor-a")[1:]
to_caller = lab.sent_times("INVITE", "caller")
print("re-INVITEs to vendor-a at", [round(t, 1) for t in to_vendor], "; to the caller at",
      [round(t, 1) for t in to_caller])
assert [round(t) for t in to_vendor] == [round(t) for t in to_caller] == [60, 120]
assert lab.caller.final.headers.get("Session-Expires") is None and lab.cdr is None
lab.ladder("SS_SIP_NO_TIMER_REINVITE_INTERVAL = 60: liveness re-INVITEs on both legs",
           method=["INVITE", "ACK"])

# %% [markdown]
# ## SS_SIP_NAT_KEEP_ALIVE_PERIOD / _MESSAGE
#
# Phone 1001 registers from 203.0.113.7:40001 while its Contact says 192.168.1.20:5060: the
# registrar sees it behind NAT and, every `SS_SIP_NAT_KEEP_ALIVE_PERIOD` seconds, sends the
# `SS_SIP_NAT_KEEP_ALIVE_MESSAGE` text as one UDP datagram to the address the REGISTER came
# from, keeping the NAT's mapping open (§2.6). Period 20 s, message `PING` here.

# %%
nat = nat_keepalive_lab({"SS_SIP_NAT_KEEP_ALIVE_PERIOD": 20,
                         "SS_SIP_NAT_KEEP_ALIVE_MESSAGE": "PING"}).run(65)
keepalives = nat.keepalives()
print([(round(t, 2), data) for t, data in keepalives])
assert [data for _, data in keepalives] == [b"PING"] * 3
gaps = [b[0] - a[0] for a, b in pairwise(keepalives)]
assert all(abs(gap - 20) < 0.01 for gap in gaps)
nat.ladder("NAT keep-alive every 20 s to the phone's public address")

# %% [markdown]
# ## SS_SIP_RESEND_INTERVAL: T1 and the retransmission schedule
#
# `SS_SIP_RESEND_INTERVAL` is RFC 3261's T1. An unanswered INVITE is re-sent at T1, 3·T1,
# 7·T1 … (Timer A doubles each time) until Timer B = 64 × T1 gives up (§17.1.1.2). With
# 500 ms that is 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s and a 32 s timeout; with 200 ms the
# same seven copies are squeezed into 12.8 s. (`SS_SIP_TIMEOUT_INVITE` is raised to 300 s
# here so that only the transaction timers act.)

# %%
schedules = {}
for t1_ms in (500, 200):
    times, lab = retransmission_schedule(t1_ms)
    expected, timer_b = expected_invite_schedule(t1_ms)
    gave_up = lab.cdr.end_time - lab.cdr.setup_time
    schedules[t1_ms] = times
    print(f"T1 = {t1_ms} ms: INVITE sent at {times} s; gave up after {gave_up:.1f} s "
          f"(Timer B {timer_b:.1f} s); caller got {lab.caller.statuses()}")
    assert all(abs(a - b) < 1e-3 for a, b in zip(times, expected, strict=True))
    assert abs(gave_up - timer_b) < 0.05 and lab.caller.statuses() == [100, 503]

fig = go.Figure([go.Scatter(x=times, y=[f"T1 = {t1} ms"] * len(times), mode="markers+text",
                            text=[f"{t:g}" for t in times], textposition="top center",
                            name=f"T1 = {t1} ms", marker={"size": 10})
                 for t1, times in schedules.items()])
fig.update_layout(title="INVITE transmissions to a silent vendor (s)", height=260,
                  xaxis_title="seconds after the first INVITE", showlegend=False)
fig

# %%
lab.ladder("T1 = 200 ms: INVITE retransmissions, Timer B at 12.8 s, 503 to the caller")

# %% [markdown]
# ## Privacy, P-Asserted-Identity and Display From on the vendor leg
#
# Per routing gateway (docs/parameters.md, gateway settings; §4.4): `display_from` keeps or
# drops the caller's display name, `privacy` passes the caller's `Privacy` through, removes it
# or sets `id` / `none` (RFC 3323), `p_asserted_identity` passes it through, removes it or
# builds it from the caller's number (RFC 3325). The caller sends `From: "Alice"
# <sip:1001@…>` with `Privacy: none` and a P-Asserted-Identity of its own; what did each
# vendor receive?

# %%
caller_headers = [("Privacy", "none"), ("P-Asserted-Identity", "<sip:alice@10.0.0.2>")]
settings_cases = {
    "defaults (Passthrough, display On)": {},
    "display Off, Privacy Id, PAI From caller": {
        "display_from": False, "privacy": "Id", "p_asserted_identity": "From caller"},
    "Privacy Remove, PAI Remove": {"privacy": "Remove", "p_asserted_identity": "Remove"},
}
received, privacy_labs = {}, {}
for label, settings in settings_cases.items():
    lab = call_lab(gateways={"vendor-a": settings})
    lab.caller.call(headers=caller_headers)
    lab.run(1)
    [invite] = lab.vendors["vendor-a"].invites
    received[label] = invite
    privacy_labs[label] = lab
table([{"vendor-a settings": label, "From": str(invite.from_).split(";tag=")[0],
        "Privacy": invite.headers.get("Privacy"),
        "P-Asserted-Identity": invite.headers.get("P-Asserted-Identity")}
       for label, invite in received.items()])

# %%
default, hidden, removed = received.values()
assert default.from_.display == "Alice" and default.headers.get("Privacy") == "none"
assert default.headers.get("P-Asserted-Identity") == "<sip:alice@10.0.0.2>"
assert hidden.from_.display is None and hidden.from_.uri.user == "1001"
assert hidden.headers.get("Privacy") == "id"
assert hidden.headers.get("P-Asserted-Identity") == f"<sip:1001@{SWITCH[0]}>"
assert "Privacy" not in removed.headers and "P-Asserted-Identity" not in removed.headers
print(bytes(hidden).decode().split("\r\n\r\n")[0])
privacy_labs["display Off, Privacy Id, PAI From caller"].ladder(
    "vendor leg with display Off, Privacy id, PAI from the caller")
