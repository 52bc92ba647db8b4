# %% [markdown]
# # 00 — Start here
#
# **vosapp** is a softswitch lab: a SIP switch (registrar, B2BUA, media relay with
# transcoding and DTMF conversion) that reproduces the SIP behaviour of the VOS3000
# softswitch, steered by the same `SS_*` parameters, and these notebooks, which show that
# behaviour happen and check it with assertions. What the switch does, and where vosapp chose,
# is in [docs/behaviour.md](../docs/behaviour.md).
#
# `make lab` started two things: this JupyterLab, and **the lab switch** (`vosapp serve` on
# `data/lab.toml`) — the centre of the lab. Your softphones register to it; notebooks that
# only need a switch attach to it, so what they do shows up where you look.
#
# | notebook | what it teaches | switch |
# |---|---|---|
# | `01-parameters` | the `SS_*` registry: edit, validate, save, apply to the running switch, the change history | the lab switch (else one in the kernel) |
# | `02-registration-and-auth` | phones registering with right and wrong passwords, live ladder, 401 vs 407, silence, the brute-force arithmetic in virtual time | its own: it provokes suspensions and changes policy |
# | `03-outbound-registration` | vosapp registering with a carrier: refresh, graceful stop, the authenticated unregister, the stale window | its own: it needs a carrier configuration |
# | `04-transcoding-quality` | speech through every codec and tandem: PESQ, STOI, spectrograms, packet loss and concealment | none: it measures the codecs and the relay's transcoder directly |
# | `05-dtmf-tuning` | the inband DTMF receiver against ITU-T Q.24, talk-off, noise, RFC 2833 / SIP INFO / Inband conversion | none: it measures the receiver and converter directly |
# | `06-background-switch` | `vosapp serve` as a process: attach, watch, change a parameter live, stop it | its own: it stops the switch it started |
# | `07-calls` | live calls PCMA phone → switch → G.729 vendor: ladder with media events, PESQ/STOI/spectrograms, every codec and DTMF rule on real calls, loss sweep, CDRs | its own: it needs gateways configured per demonstration |
# | `08-call-timers` | the call-side timers in virtual time, each with a ladder: INVITE timeout and failover, trying/ringing/progress timeouts, session-timer refresh and early hangup, the non-timer re-INVITE, NAT keep-alive, T1 and the retransmission schedule, Privacy / PAI / Display From towards the vendor | its own, in virtual time: minutes of timers replay in milliseconds |
#
# Every notebook runs top to bottom with **Run > Run All Cells**; `make test` runs them all.

# %%
from IPython.display import Markdown, display

from vosapp.config import load_config
from vosapp.lab.attach import default_config_path
from vosapp.lab.lab_switch import find_lab_switch
from vosapp.lab.widgets import table

config_path = default_config_path()
config = load_config(config_path)
host, port = config.switch.sip_host, config.switch.sip_port
print("configuration:", config_path)
assert (host, port) == ("127.0.0.1", 5060)
assert [a.user for a in config.accounts] == ["1001", "1002"]

# %% [markdown]
# ## Point a softphone at the lab switch
#
# Any SIP softphone on this machine (Linphone, MicroSIP, Zoiper, baresip, …) — the switch
# listens on loopback only:
#
# | setting | value |
# |---|---|
# | SIP server / domain / registrar | `127.0.0.1`, port `5060` |
# | transport | UDP or TCP |
# | user name (and authentication user) | `1001` or `1002` |
# | password | below — **lab-only passwords**, published in `data/lab.toml`: never reuse them |
#
# Register two softphones, one per account, and watch them appear in the bindings below (run
# the cell again). Dialled numbers are routed to the routing gateway of `data/lab.toml`
# (`lab-vendor`, 127.0.0.1:5080): something must answer there to complete a call, e.g.
# `sipp -sn uas -p 5080` in a terminal. Calls from one softphone account to the other are
# described in [docs/behaviour.md §4.1](../docs/behaviour.md).

# %%
table([{"user": account.user, "password": account.password, "domain": f"{host}:{port}",
        "transport": "UDP or TCP",
        "allowed from": ", ".join(map(str, account.networks)) or "anywhere"}
       for account in config.accounts])

# %% [markdown]
# ## Is the lab switch running?
#
# The cell asks the switch through its control channel (`<data_dir>/control.json`, the same
# way notebook 01 attaches). When `make lab` runs it you see its address and the phones
# registered to it; otherwise how to start it.

# %%
lab_switch, why_not = find_lab_switch(config_path)
if lab_switch is None:
    display(Markdown(f"**No lab switch running** ({why_not}). In a terminal, in the "
                     "repository: `make lab` starts it together with JupyterLab."))
else:
    status = lab_switch.status()
    print(f"lab switch: vosapp serve pid {status['pid']}, SIP on "
          "{}:{}".format(*lab_switch.address))
    display(table(lab_switch.bindings(), ["aor", "contact", "received_host", "received_port",
                                          "expires_at", "user_agent"]))

# %% [markdown]
# ## Stop everything
#
# * **Ctrl-C** in the terminal running `make lab`: JupyterLab shuts down, then the lab switch
#   stops gracefully (it unregisters from carriers when `SS_SIP_USER_AGENT_SEND_UNREGISTER` is
#   On) — nothing keeps running.
# * Or in JupyterLab: **File > Shut Down**; `make lab` then stops the switch and returns.
#
# Your parameter changes and registrations live in the switch's data directory (`var/lab/`,
# SQLite) and are there again on the next `make lab`.
