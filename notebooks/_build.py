"""Generates notebooks 01, 02, 03 and 06 from the cell sources below (reviewable Python).

Run ``.venv/bin/python notebooks/_build.py`` after editing; commit the .ipynb files (they carry
no outputs). Every notebook must run top to bottom on the default configuration
(``VOSAPP_CONFIG=data/lab.toml``) and asserts what it claims, so ``tests/test_notebooks.py``
fails when the lab would lie.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _nbtools import HERE, code, md, write

# --------------------------------------------------------------------------------------- 01

NB01 = [
    md("""
    # 01 — Parameters: edit, validate, save, apply

    Every VOS3000 behaviour vosapp reproduces is steered by an `SS_*` parameter. This notebook
    shows the registry (type, range, unit, where the value comes from), what happens with a
    bad value, the editor form, saving to the store (with history), and applying a change to a
    running switch — where it reaches **new sessions only**.
    """),
    code("""
    from pathlib import Path

    from vosapp.config import load_config
    from vosapp.lab.attach import LabSwitch, default_config_path, default_data_dir
    from vosapp.lab.widgets import ParameterEditor, ParameterForm, table
    from vosapp.params import REGISTRY, ParameterError, Params
    from vosapp.store import Store

    config_path = default_config_path()
    config = load_config(config_path)
    data_dir = default_data_dir(config_path)
    store = Store.open(data_dir)
    print("config:", config_path)
    print("store :", store.path)
    current = store.load_params(config.parameters)
    """),
    md("""
    ## The registry

    `source` says where a parameter comes from: **seed** = quoted from the VOS3000 manual,
    **secondary** = known only from reseller pages, **vosapp** = ours. `value_source` says
    whether the default and the range are the manual's or vosapp's own choice.
    """),
    code("""
    table([{"name": p.name, "value": p.format(current[p.name]), "default": p.format(p.default),
            "allowed": p.allowed(), "unit": p.unit, "source": p.source,
            "value source": p.value_source} for p in REGISTRY])
    """),
    md("""
    ## Validation

    Values are validated when set. People type values in many forms (`On`, `yes`, `3 min`,
    `"407 Proxy Authentication Required"`); a value outside the range is a `ParameterError`
    naming the parameter, the value and what is allowed.
    """),
    code("""
    params = Params.defaults()
    print(params.replace(SS_AUTHENTICATION_FAILED_SUSPEND="3 min")["SS_AUTHENTICATION_FAILED_SUSPEND"])
    print(params.replace(SS_SIP_AUTHENTICATION_CODE="407 Proxy Authentication Required")
          ["SS_SIP_AUTHENTICATION_CODE"])
    try:
        params.replace(SS_AUTHENTICATION_FAILED_SUSPEND=30)
    except ParameterError as error:
        caught = error
        print("ParameterError:", error)
    assert caught.name == "SS_AUTHENTICATION_FAILED_SUSPEND"
    assert "60-3600 s" in str(caught)
    """),
    md("""
    ## The editor

    One section per VOS3000 navigation path; each parameter gets the widget its type calls
    for (On/Off toggle, option list, bounded number with its unit, Auto-or-number, text), its
    description and source. An invalid value shows the registry's error under the field;
    nothing is raised. The table at the bottom is the diff against the defaults.
    """),
    code("""
    form = ParameterForm(store=store, base=config.parameters)
    editor = ParameterEditor(form)
    editor
    """),
    md("""
    Below, the cells drive the form the way a person would (so the notebook runs unattended).
    `SS_SIP_NAT_KEEP_ALIVE_PERIOD` takes 0 (off) or 10–3600 s: 5 falls in the gap.
    """),
    code("""
    editor.set_input("SS_SIP_NAT_KEEP_ALIVE_PERIOD", 5)
    print("shown under the field:", editor.error_text("SS_SIP_NAT_KEEP_ALIVE_PERIOD"))
    try:
        REGISTRY["SS_SIP_NAT_KEEP_ALIVE_PERIOD"].coerce(5)
    except ParameterError as error:
        assert editor.error_text("SS_SIP_NAT_KEEP_ALIVE_PERIOD") == str(error)

    editor.set_input("SS_SIP_NAT_KEEP_ALIVE_PERIOD", 20)      # valid again
    editor.set_input("SS_AUTHENTICATION_MAX_RETRY", 3)
    editor.set_input("SS_SIP_AUTHENTICATION_CODE", 407)
    assert form.valid
    print("pending edits:", form.pending())
    print("diff against defaults:", form.diff())
    """),
    md("""
    ## Save

    Save writes through `Store.set_param(..., by="lab")`: the values survive a restart and
    `vosapp params list` in a shell sees them. Every change is kept in the history.
    """),
    code("""
    result = form.save()
    print(result.summary())
    assert set(result.changed) == {"SS_SIP_NAT_KEEP_ALIVE_PERIOD", "SS_AUTHENTICATION_MAX_RETRY",
                                   "SS_SIP_AUTHENTICATION_CODE"}
    reloaded = Store.open(data_dir).load_params(config.parameters)   # a second connection
    assert reloaded["SS_AUTHENTICATION_MAX_RETRY"] == 3
    history = store.param_history()
    assert [h.by for h in history[-3:]] == ["lab"] * 3
    table([{"at": h.at, "name": h.name, "action": h.action, "old": h.old, "new": h.new,
            "by": h.by} for h in history[-10:]])
    """),
    md("""
    ## Apply to a running switch — new sessions only

    A switch started in this kernel (SIP on a free port) loads the saved values. We change
    `SS_SIP_AUTHENTICATION_CODE` back to 401 through the form's **Apply** and watch the next
    registration be challenged with 401 instead of 407. Sessions already open keep what they
    started with — the VOS3000 rule, stated next to the button.
    """),
    code("""
    from vosapp.lab.phones import LabPhone

    switch = await LabSwitch.start(config_path, data_dir=data_dir, port=0)
    print("switch on", switch.address)
    assert switch.params["SS_SIP_AUTHENTICATION_CODE"] == 407        # the saved value

    async with LabPhone("1001", "lab-1001-secret", switch.address) as phone:
        reply = await phone.register(expires=60)
    print("challenge:", phone.responses[0].status, "final:", reply.status)
    assert phone.responses[0].status == 407 and reply.status == 200

    apply_form = ParameterForm(target=switch)
    apply_editor = ParameterEditor(apply_form)
    apply_editor.set_input("SS_SIP_AUTHENTICATION_CODE", 401)
    apply_editor.apply_button.click()
    print(apply_editor.status.value)
    assert switch.params["SS_SIP_AUTHENTICATION_CODE"] == 401

    async with LabPhone("1001", "lab-1001-secret", switch.address) as phone:
        reply = await phone.register(expires=60)
    print("challenge after apply:", phone.responses[0].status)
    assert phone.responses[0].status == 401 and reply.status == 200
    apply_editor
    """),
    md("""
    ## Tidy up

    Stop the switch and put back the values this notebook changed (the history keeps both the
    changes and the resets).
    """),
    code("""
    await switch.stop()
    for name in ("SS_SIP_NAT_KEEP_ALIVE_PERIOD", "SS_AUTHENTICATION_MAX_RETRY",
                 "SS_SIP_AUTHENTICATION_CODE"):
        store.reset_param(name, by="lab", base=config.parameters)
    assert store.load_params(config.parameters) == config.parameters
    table([{"name": h.name, "action": h.action, "old": h.old, "new": h.new, "by": h.by}
           for h in store.param_history()[-6:]])
    """),
]

# --------------------------------------------------------------------------------------- 02

NB02 = [
    md("""
    # 02 — Registration and authentication

    A switch in this kernel (the accounts of `data/lab.toml`, SIP on a free loopback port,
    a fresh data directory so nothing here touches your lab's store), lab phones registering
    with right and wrong passwords, and a live ladder of it. Then the policy's arithmetic in
    **virtual time**: a brute-force client against the same switch core for a simulated hour,
    measured from the switch's own audit trail.
    """),
    code("""
    import tempfile
    from pathlib import Path

    from vosapp.lab.attach import LabSwitch, default_config_path
    from vosapp.lab.ladder import LiveLadder, figure
    from vosapp.lab.phones import LabPhone
    from vosapp.lab.widgets import table

    data_dir = Path(tempfile.mkdtemp(prefix="vosapp-nb02-"))
    switch = await LabSwitch.start(default_config_path(), data_dir=data_dir, port=0)
    host, port = switch.address
    print(f"switch on {host}:{port}")
    """),
    md("""
    ## Right and wrong passwords, live

    Phone **1001** has the right password; the impostor for **1002** does not. The first
    REGISTER of each is challenged (401 + `WWW-Authenticate`); 1001's answer is accepted (200),
    the impostor's is challenged again: the phone gives up after one try and reports the 401.
    """),
    code("""
    good = await LabPhone("1001", "lab-1001-secret", switch.address).open()
    bad = await LabPhone("1002", "guess-1", switch.address).open()
    names = {f"{host}:{port}": "switch", "{}:{}".format(*good.address): "1001 (right)",
             "{}:{}".format(*bad.address): "1002 (wrong)"}
    live = LiveLadder(switch.trace, names=names, title="REGISTER with digest")
    live
    """),
    code("""
    ok = await good.register(expires=300)
    refused = await bad.register()
    live.flush()
    print("1001:", [r.status for r in good.responses], " 1002:", [r.status for r in bad.responses])
    assert ok.status == 200 and [r.status for r in good.responses] == [401, 200]
    assert refused.status == 401 and [r.status for r in bad.responses] == [401, 401]
    assert len(live.ladder.arrows) >= 8
    """),
    code("""
    bindings = switch.bindings()
    assert [b["aor"] for b in bindings] == ["1001"]
    events = switch.auth_events()
    assert [e["reason"] for e in events] == ["wrong_password"]
    display(table(bindings, ["aor", "contact", "received_host", "received_port", "expires_at"]))
    table(events, ["user", "source_host", "source_port", "method", "reason", "detail"])
    """),
    md("""
    ## 401 or 407

    `SS_SIP_AUTHENTICATION_CODE` chooses the challenge: 401 with `WWW-Authenticate` (a
    registrar) or 407 with `Proxy-Authenticate` (a proxy). The phone answers with
    `Authorization` or `Proxy-Authorization` accordingly.
    """),
    code("""
    switch.set_param("SS_SIP_AUTHENTICATION_CODE", 407)
    proxy_style = await LabPhone("1001", "lab-1001-secret", switch.address).open()
    reply = await proxy_style.register(expires=300)
    first = proxy_style.responses[0]
    print(first.status, first.reason, "|", first.headers.get("Proxy-Authenticate")[:60], "...")
    assert first.status == 407 and first.headers.get("Proxy-Authenticate")
    assert first.headers.get("WWW-Authenticate") is None and reply.status == 200
    switch.set_param("SS_SIP_AUTHENTICATION_CODE", 401)
    """),
    md("""
    ## SS_REPLY_UNAUTHORIZED = Off: silence

    With Off, a request without valid credentials gets **no response at all** — no challenge,
    no 403. A scanner learns nothing, but a phone that cannot send credentials before being
    challenged cannot register either: the lab phone retransmits (RFC 3261 Timer E) and then
    gives up with `None`.
    """),
    code("""
    switch.set_param("SS_REPLY_UNAUTHORIZED", "Off")
    silent = await LabPhone("1001", "lab-1001-secret", switch.address, timeout=2.0).open()
    answer = await silent.register(expires=300)
    live.flush()
    print("final response:", answer, "| responses received:", len(silent.responses),
          "| REGISTERs sent:", silent.sent)
    assert answer is None and silent.responses == [] and silent.sent >= 3
    switch.set_param("SS_REPLY_UNAUTHORIZED", "On")
    """),
    code("""
    for phone in (good, bad, proxy_style, silent):
        phone.close()
    live.close()
    await switch.stop()
    figure(live.ladder, title="the whole session")
    """),
    md("""
    ## An hour of brute force in virtual time

    The same switch core, registrar and policy on a `VirtualNetwork`: an attacker answers
    every challenge with the next wrong password (after `think` seconds), and starts a new
    attempt one second after a 403. One simulated hour runs in about a second. We count the
    guesses the **switch** checked (`wrong_password` in its audit trail).

    SPEC §2.5: with defaults the terminal is suspended after `SS_AUTHENTICATION_MAX_RETRY` = 6
    failed passwords for `SS_AUTHENTICATION_FAILED_SUSPEND` = 180 s, during which every
    request gets 403 without a password check. So an attacker gets 6 guesses per cycle of
    180 s + the time it needs for those 6 guesses: with ~10 s, 3600 / 190 × 6 ≈ **113** per
    hour; even an instant attacker stays under 3600 / 180 × 6 = 120.
    """),
    code("""
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
    """),
    code("""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, run in (("~1.6 s per guess", human), ("instant", instant)):
        fig.add_scatter(x=[t / 60 for t in run.guess_times],
                        y=list(range(1, len(run.guess_times) + 1)), mode="lines", name=label)
    fig.update_layout(title="guesses the switch checked, defaults (6 per 180 s suspension)",
                      xaxis_title="minutes", yaxis_title="cumulative guesses", height=350)
    fig
    """),
    md("""
    ## The session timeout

    `SS_SIP_AUTHENTICATION_TIMEOUT` (10 s) ends an authentication session that takes too
    long, whatever retries remain. A slow guesser (4 s per answer) sees its session end with
    403 at the third answer (12 s after the challenge). To watch the timeout alone we switch
    the terminal ceilings off (`SS_AUTHENTICATION_MAX_RETRY` = 0, `SS_ENDPOINT_REGISTER_RETRY`
    = 0): ten minutes are enough — and show why the ceilings matter: without them the guesses
    per hour are several times 120.
    """),
    code("""
    from collections import Counter

    slow = brute_force_hour(seconds=600, think=4.0, SS_AUTHENTICATION_MAX_RETRY=0,
                            SS_ENDPOINT_REGISTER_RETRY=0)
    reasons = Counter(slow.audit)
    print(f"10 minutes: {slow.guesses} guesses, {reasons['session_timeout']} sessions ended "
          f"by the timeout, {slow.suspensions} suspensions -> {slow.guesses_per_hour:.0f}/hour")
    assert reasons["session_timeout"] >= 10 and slow.suspensions == 0
    assert slow.guesses <= 3 * (reasons["session_timeout"] + 1)   # <= 10 s / 4 s + 1 per session
    assert slow.guesses_per_hour > 120                             # the ceiling is what holds
    """),
    md("""
    ## Tightening: retry 3, suspend 600 s

    With `SS_SIP_AUTHENTICATION_RETRY` = 3, `SS_AUTHENTICATION_MAX_RETRY` = 3 and
    `SS_AUTHENTICATION_FAILED_SUSPEND` = 600, the ceiling is 3600 / 600 × 3 = 18 per hour.
    """),
    code("""
    tight = brute_force_hour(SS_SIP_AUTHENTICATION_RETRY=3, SS_AUTHENTICATION_MAX_RETRY=3,
                             SS_AUTHENTICATION_FAILED_SUSPEND=600)
    print(f"{tight.guesses} guesses in one hour, {tight.suspensions} suspensions")
    assert tight.guesses <= 20
    """),
    md("""
    ## SS_REPLY_UNAUTHORIZED = Off for a whole hour: zero responses

    The attacker never gets a challenge, so it never even gets to guess: 3,600 attempts, not
    one byte back. The audit trail still records every dropped attempt.
    """),
    code("""
    dark = brute_force_hour(SS_REPLY_UNAUTHORIZED=False)
    print(f"sent {dark.sent} REGISTERs, received {dark.responses} responses, "
          f"{dark.guesses} password checks, {len(dark.audit)} audit entries")
    assert dark.responses == 0 and dark.guesses == 0 and len(dark.audit) >= 3000
    dark407 = brute_force_hour(SS_REPLY_UNAUTHORIZED=False, SS_SIP_AUTHENTICATION_CODE=407)
    assert dark407.responses == 0
    """),
]

# --------------------------------------------------------------------------------------- 03

NB03 = [
    md("""
    # 03 — Outbound registration to a carrier

    vosapp registers a routing gateway with a carrier's registrar (SPEC §3): digest
    authentication, refresh before expiry, and on a **graceful stop** an authenticated
    `REGISTER … Expires: 0` so the carrier drops the binding at once
    (`SS_SIP_USER_AGENT_SEND_UNREGISTER` = On). With Off, nothing is sent and the carrier keeps
    a stale binding until it expires.

    The carrier here is `LabRegistrar`: a small registrar on a loopback port that challenges
    with digest and records every REGISTER it gets.
    """),
    code("""
    import asyncio
    import tempfile
    from pathlib import Path

    from vosapp.lab.attach import LabSwitch
    from vosapp.lab.ladder import LiveLadder, figure
    from vosapp.lab.phones import LabRegistrar
    from vosapp.lab.scenarios import TRUNK_PASSWORD, TRUNK_USER, upstream_config
    from vosapp.lab.widgets import table

    async def wait_for(predicate, timeout=5.0):
        for _ in range(int(timeout / 0.05)):
            if predicate():
                return True
            await asyncio.sleep(0.05)
        return predicate()
    """),
    md("""
    ## Register

    The config gives the routing gateway `carrier` a `[routing_gateway.register]` table
    pointing at the lab registrar (`upstream_config` writes it next to a fresh data directory).
    """),
    code("""
    carrier = await LabRegistrar({TRUNK_USER: TRUNK_PASSWORD}, max_expires=600).start()
    work = Path(tempfile.mkdtemp(prefix="vosapp-nb03-"))
    config_path = upstream_config(work, carrier.address)
    print(config_path.read_text())
    switch = await LabSwitch.start(config_path, data_dir=work / "data", port=0)
    names = {"{}:{}".format(*switch.address): "vosapp", "{}:{}".format(*carrier.address): "carrier"}
    live = LiveLadder(switch.trace, names=names, title="outbound registration")
    live
    """),
    code("""
    assert await wait_for(lambda: any(r.status == 200 for r in carrier.registers))
    assert await wait_for(lambda: switch.registrations()[0]["state"] == "registered")
    live.flush()
    status = switch.registrations()[0]
    print(status["state"], "granted", status["granted_expires"], "s; next:", status["next_action"])
    assert [(r.status, r.authorized) for r in carrier.registers] == [(401, False), (200, True)]
    assert status["granted_expires"] == 600 and status["next_action"] == "refresh"
    table(switch.registrations(), ["gateway", "proxy", "state", "granted_expires",
                                   "last_response", "next_action", "cseq"])
    """),
    md("""
    ## Stop the switch: the authenticated unregister

    `stop()` runs the stop hooks before the sockets close; the outbound feature sends
    `REGISTER` with `Expires: 0` (same Call-ID, From tag and Contact, CSeq + 1) carrying the
    same credentials up front (next nonce-count on the carrier's last nonce — it would answer
    a fresh challenge too), and waits (bounded) for the 200.
    """),
    code("""
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
    """),
    md("""
    ## The same with SS_SIP_USER_AGENT_SEND_UNREGISTER = Off

    Nothing is sent on stop. The carrier still believes we are there until the binding
    expires — the stale window (calls it routes to us in that window fail).
    """),
    code("""
    carrier_off = await LabRegistrar({TRUNK_USER: TRUNK_PASSWORD}, max_expires=600).start()
    work_off = Path(tempfile.mkdtemp(prefix="vosapp-nb03-off-"))
    config_off = upstream_config(work_off, carrier_off.address,
                                 parameters={"SS_SIP_USER_AGENT_SEND_UNREGISTER": "Off"})
    switch_off = await LabSwitch.start(config_off, data_dir=work_off / "data", port=0)
    assert await wait_for(lambda: any(r.status == 200 for r in carrier_off.registers))
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
    """),
    md("""
    ## Refresh, over an hour of virtual time

    The same outbound feature on a `VirtualNetwork` with the same registrar logic
    (`CarrierRegistrar`), granting only 120 s: vosapp refreshes before every expiry (here
    every 80 s: `granted - min(granted/2, 64×T1 + 8 s)`), re-answering a challenge whenever
    the carrier's nonce has gone stale. An hour takes a moment.
    """),
    code("""
    from vosapp.lab.scenarios import virtual_outbound

    run = virtual_outbound(max_expires=120)
    run.run(3600)
    accepted = [r for r in run.carrier.registers if r.status == 200]
    gaps = [b.time - a.time for a, b in zip(accepted, accepted[1:])]
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
    """),
    code("""
    stale_run = virtual_outbound(max_expires=3600, SS_SIP_USER_AGENT_SEND_UNREGISTER=False)
    stale_run.run(60)
    stale_run.stop()
    contact, until = stale_run.carrier.bindings[TRUNK_USER]
    print(f"Off: no unregister; stale window {until - stale_run.now:.0f} s of a 3600 s grant")
    assert stale_run.carrier.unregisters == [] and until - stale_run.now > 3000
    """),
]

# --------------------------------------------------------------------------------------- 06

NB06 = [
    md("""
    # 06 — A switch in the background

    `vosapp serve` runs the switch as its own process (as in production). It opens a
    **control channel**: HTTP/JSON on 127.0.0.1 only, protected by a random token that it
    writes, with the address, to `<data_dir>/control.json` (mode 0600 — readable only by the
    user running the switch). `vosapp.lab.attach()` reads that file and gives the same API
    as the in-kernel switch of notebooks 01–03.

    Here the notebook starts `vosapp serve` itself (a temporary data directory, SIP on a free
    port), attaches, watches a live ladder from the remote trace, changes a parameter live and
    stops the switch gracefully.
    """),
    code("""
    import stat
    import tempfile
    from pathlib import Path

    from vosapp.lab.attach import BackgroundSwitch, attach, default_config_path
    from vosapp.lab.ladder import LiveLadder, figure
    from vosapp.lab.phones import LabPhone
    from vosapp.lab.widgets import ParameterEditor, ParameterForm, table
    from vosapp.params import ParameterError

    data_dir = Path(tempfile.mkdtemp(prefix="vosapp-nb06-"))
    background = BackgroundSwitch.spawn(data_dir, default_config_path())
    print(background)
    control_file = data_dir / "control.json"
    print(control_file, oct(stat.S_IMODE(control_file.stat().st_mode)))
    assert stat.S_IMODE(control_file.stat().st_mode) == 0o600
    """),
    md("""
    In a shell, the same is `vosapp serve --data-dir DIR` (add `--listen 127.0.0.1:0` for any
    free port); then in any notebook `remote = attach("DIR")` — or just `attach()` when
    `VOSAPP_DATA_DIR`/the config point at that directory.
    """),
    code("""
    remote = attach(data_dir)
    status = remote.status()
    print(status)
    assert status["pid"] == background.process.pid
    assert tuple(remote.address) == background.sip_address
    """),
    code("""
    host, port = remote.address
    good = await LabPhone("1001", "lab-1001-secret", remote.address).open()
    bad = await LabPhone("1002", "not-it", remote.address).open()
    live = LiveLadder(remote.trace, names={f"{host}:{port}": "vosapp serve",
                                           "{}:{}".format(*good.address): "1001",
                                           "{}:{}".format(*bad.address): "1002 (wrong)"},
                      title="from the background switch's trace")
    live
    """),
    code("""
    assert (await good.register(expires=300)).status == 200
    assert (await bad.register()).status == 401
    remote.trace.poll()
    live.flush()
    bindings = remote.bindings()
    print("bindings:", [(b["aor"], b["contact"]) for b in bindings])
    assert [b["aor"] for b in bindings] == ["1001"]
    assert "wrong_password" in [e["reason"] for e in remote.auth_events()]
    assert sum(1 for a in live.ladder.arrows if a.method == "REGISTER" and a.status is None) >= 4
    table(bindings, ["aor", "contact", "received_host", "received_port", "user_agent"])
    """),
    md("""
    ## Change a parameter live

    `set_param` goes through the control channel: validated by the switch (a bad value comes
    back as the same `ParameterError`), persisted in its store (`by = "control"`), and used by
    **new sessions only**. The editor form works against the remote switch too.
    """),
    code("""
    try:
        remote.set_param("SS_SIP_AUTHENTICATION_CODE", 403)
    except ParameterError as error:
        print("refused:", error)
        refused = error
    assert "401 Unauthorized / 407" in str(refused)

    form = ParameterForm(target=remote)
    editor = ParameterEditor(form)
    editor.set_input("SS_SIP_AUTHENTICATION_CODE", 407)
    editor.apply_button.click()
    print(editor.status.value)
    assert remote.params["SS_SIP_AUTHENTICATION_CODE"] == 407
    history = remote.param_history("SS_SIP_AUTHENTICATION_CODE")
    assert history[-1]["by"] == "control" and history[-1]["new"] == 407

    third = await LabPhone("1001", "lab-1001-secret", remote.address).open()
    assert (await third.register(expires=300)).status == 200
    assert third.responses[0].status == 407          # the new session got the new value
    editor
    """),
    md("""
    ## Stop it gracefully

    `await remote.stop()` asks over the control channel; the process runs its stop hooks
    (e.g. unregistering from carriers), removes `control.json` and exits with status 0.
    """),
    code("""
    remote.trace.poll()
    live.flush()
    await remote.stop()
    code = background.wait(15)
    print("exit status:", code)
    assert code == 0
    assert not control_file.exists()
    for phone in (good, bad, third):
        phone.close()
    live.close()
    figure(live.ladder, title="the background switch's session")
    """),
]


def main() -> None:
    for name, cells in (("01-parameters.ipynb", NB01),
                        ("02-registration-and-auth.ipynb", NB02),
                        ("03-outbound-registration.ipynb", NB03),
                        ("06-background-switch.ipynb", NB06)):
        print("wrote", write(name, cells).relative_to(HERE.parent))


if __name__ == "__main__":
    main()
