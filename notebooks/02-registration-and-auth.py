# %% [markdown]
# # 02 — Registration and authentication
#
# A switch in this kernel (the accounts of `data/lab.toml`, SIP on a free loopback port,
# a fresh data directory), lab phones registering
# with right and wrong passwords, and a live ladder of it. Then the policy's arithmetic in
# **virtual time**: a brute-force client against the same switch core for a simulated hour,
# measured from the switch's own audit trail.
#
# **Why its own switch, not the make-lab one:** this notebook feeds wrong passwords (which
# count towards suspending 1002 from 127.0.0.1) and switches `SS_REPLY_UNAUTHORIZED` off, and
# it checks the exact bindings and audit trail it produced — none of which may touch the
# switch your softphones use.

# %%
import tempfile
from pathlib import Path

from IPython.display import display

from vosapp.lab.attach import LabSwitch, default_config_path
from vosapp.lab.ladder import LiveLadder, figure
from vosapp.lab.phones import LabPhone
from vosapp.lab.widgets import table

work = tempfile.TemporaryDirectory(prefix="vosapp-nb02-")  # removed when the switch stops
data_dir = Path(work.name)
switch = await LabSwitch.start(default_config_path(), data_dir=data_dir, port=0)
host, port = switch.address
print(f"switch on {host}:{port}")

# %% [markdown]
# ## Right and wrong passwords, live
#
# Phone **1001** has the right password; the impostor for **1002** does not. The first
# REGISTER of each is challenged (401 + `WWW-Authenticate`); 1001's answer is accepted (200),
# the impostor's is challenged again: the phone gives up after one try and reports the 401.

# %%
good = await LabPhone("1001", "lab-1001-secret", switch.address).open()
bad = await LabPhone("1002", "guess-1", switch.address).open()
names = {f"{host}:{port}": "switch", "{}:{}".format(*good.address): "1001 (right)",
         "{}:{}".format(*bad.address): "1002 (wrong)"}
live = LiveLadder(switch.trace, names=names, title="REGISTER with digest")
live

# %%
ok = await good.register(expires=300)
refused = await bad.register()
live.flush()
print("1001:", [r.status for r in good.responses], " 1002:", [r.status for r in bad.responses])
assert ok.status == 200 and [r.status for r in good.responses] == [401, 200]
assert refused.status == 401 and [r.status for r in bad.responses] == [401, 401]
assert len(live.ladder.arrows) >= 8

# %%
bindings = switch.bindings()
assert [b["aor"] for b in bindings] == ["1001"]
events = switch.auth_events()
assert [e["reason"] for e in events] == ["wrong_password"]
display(table(bindings, ["aor", "contact", "received_host", "received_port", "expires_at"]))
table(events, ["user", "source_host", "source_port", "method", "reason", "detail"])

# %% [markdown]
# ## 401 or 407
#
# `SS_SIP_AUTHENTICATION_CODE` chooses the challenge: 401 with `WWW-Authenticate` (a
# registrar) or 407 with `Proxy-Authenticate` (a proxy). The phone answers with
# `Authorization` or `Proxy-Authorization` accordingly.

# %%
switch.set_param("SS_SIP_AUTHENTICATION_CODE", 407)
proxy_style = await LabPhone("1001", "lab-1001-secret", switch.address).open()
reply = await proxy_style.register(expires=300)
first = proxy_style.responses[0]
print(first.status, first.reason, "|", first.headers.get("Proxy-Authenticate")[:60], "...")
assert first.status == 407 and first.headers.get("Proxy-Authenticate")
assert first.headers.get("WWW-Authenticate") is None and reply.status == 200
switch.set_param("SS_SIP_AUTHENTICATION_CODE", 401)

# %% [markdown]
# ## SS_REPLY_UNAUTHORIZED = Off: silence
#
# With Off, a request without valid credentials gets **no response at all** — no challenge,
# no 403. A scanner learns nothing, but a phone that cannot send credentials before being
# challenged cannot register either: the lab phone retransmits (RFC 3261 Timer E) and then
# gives up with `None`.

# %%
switch.set_param("SS_REPLY_UNAUTHORIZED", "Off")
silent = await LabPhone("1001", "lab-1001-secret", switch.address, timeout=2.0).open()
answer = await silent.register(expires=300)
live.flush()
print("final response:", answer, "| responses received:", len(silent.responses),
      "| REGISTERs sent:", silent.sent)
assert answer is None and silent.responses == [] and silent.sent >= 3
switch.set_param("SS_REPLY_UNAUTHORIZED", "On")

# %%
for phone in (good, bad, proxy_style, silent):
    phone.close()
live.close()
await switch.stop()
work.cleanup()
figure(live.ladder, title="the whole session")

# %% [markdown]
# ## An hour of brute force in virtual time
#
# The same switch core, registrar and policy on a `VirtualNetwork`: an attacker answers
# every challenge with the next wrong password (after `think` seconds), and starts a new
# attempt one second after a 403. One simulated hour runs in about a second. We count the
# guesses the **switch** checked (`wrong_password` in its audit trail).
#
# [docs/behaviour.md §2.5](../docs/behaviour.md): with defaults the terminal is suspended after
# `SS_AUTHENTICATION_MAX_RETRY` = 6 failed passwords for `SS_AUTHENTICATION_FAILED_SUSPEND` = 180 s, during which every
# request gets 403 without a password check. So an attacker gets 6 guesses per cycle of
# 180 s + the time it needs for those 6 guesses: with ~10 s, 3600 / 190 × 6 ≈ **113** per
# hour; even an instant attacker stays under 3600 / 180 × 6 = 120.

# %%
from vosapp.lab.scenarios import brute_force_hour, expected_guesses_per_hour

human = brute_force_hour(think=1.6)        # a tool taking ~1.6 s per guess
cycle = human.guess_times[6] - human.guess_times[0]
expected = expected_guesses_per_hour(human.params, guess_time=cycle - 180)
print(f"cycle measured: {cycle:.1f} s -> 3600 / {cycle:.1f} x 6 = {expected:.1f} expected")
print(f"measured: {human.guesses} guesses in one hour, {human.suspensions} suspensions, "
      f"responses {human.statuses}")
assert human.guesses <= 120 and abs(human.guesses - expected) <= 6

instant = brute_force_hour()               # answers every challenge at once
print(f"instant attacker: {instant.guesses} guesses/hour (ceiling 3600/180x6 = 120)")
assert instant.guesses <= 120

# %%
import plotly.graph_objects as go

fig = go.Figure()
for label, run in (("~1.6 s per guess", human), ("instant", instant)):
    fig.add_scatter(x=[t / 60 for t in run.guess_times],
                    y=list(range(1, len(run.guess_times) + 1)), mode="lines", name=label)
fig.update_layout(title="guesses the switch checked, defaults (6 per 180 s suspension)",
                  xaxis_title="minutes", yaxis_title="cumulative guesses", height=350)
fig

# %% [markdown]
# ## The session timeout
#
# `SS_SIP_AUTHENTICATION_TIMEOUT` (10 s) ends an authentication session that takes too
# long, whatever retries remain. A slow guesser (4 s per answer) sees its session end with
# 403 at the third answer (12 s after the challenge). To watch the timeout alone we switch
# the terminal ceilings off (`SS_AUTHENTICATION_MAX_RETRY` = 0, `SS_ENDPOINT_REGISTER_RETRY`
# = 0): ten minutes are enough — and show why the ceilings matter: without them the guesses
# per hour are several times 120.

# %%
from collections import Counter

slow = brute_force_hour(seconds=600, think=4.0, SS_AUTHENTICATION_MAX_RETRY=0,
                        SS_ENDPOINT_REGISTER_RETRY=0)
reasons = Counter(slow.audit)
print(f"10 minutes: {slow.guesses} guesses, {reasons['session_timeout']} sessions ended "
      f"by the timeout, {slow.suspensions} suspensions -> {slow.guesses_per_hour:.0f}/hour")
assert reasons["session_timeout"] >= 10 and slow.suspensions == 0
assert slow.guesses <= 3 * (reasons["session_timeout"] + 1)   # <= 10 s / 4 s + 1 per session
assert slow.guesses_per_hour > 120                             # the ceiling is what holds

# %% [markdown]
# ## Tightening: retry 3, suspend 600 s
#
# With `SS_SIP_AUTHENTICATION_RETRY` = 3, `SS_AUTHENTICATION_MAX_RETRY` = 3 and
# `SS_AUTHENTICATION_FAILED_SUSPEND` = 600, the ceiling is 3600 / 600 × 3 = 18 per hour.

# %%
tight = brute_force_hour(SS_SIP_AUTHENTICATION_RETRY=3, SS_AUTHENTICATION_MAX_RETRY=3,
                         SS_AUTHENTICATION_FAILED_SUSPEND=600)
print(f"{tight.guesses} guesses in one hour, {tight.suspensions} suspensions")
assert tight.guesses <= 20

# %% [markdown]
# ## SS_REPLY_UNAUTHORIZED = Off for a whole hour: zero responses
#
# The attacker never gets a challenge, so it never even gets to guess: 3,600 attempts, not
# one byte back. The audit trail still records every dropped attempt.

# %%
dark = brute_force_hour(SS_REPLY_UNAUTHORIZED=False)
print(f"sent {dark.sent} REGISTERs, received {dark.responses} responses, "
      f"{dark.guesses} password checks, {len(dark.audit)} audit entries")
assert dark.responses == 0 and dark.guesses == 0 and len(dark.audit) >= 3000
dark407 = brute_force_hour(SS_REPLY_UNAUTHORIZED=False, SS_SIP_AUTHENTICATION_CODE=407)
assert dark407.responses == 0
