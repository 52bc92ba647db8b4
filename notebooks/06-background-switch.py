# %% [markdown]
# # 06 — A switch in the background
#
# `vosapp serve` runs the switch as its own process (as in production). It opens a
# **control channel**: HTTP/JSON on 127.0.0.1 only, protected by a random token that it
# writes, with the address, to `<data_dir>/control.json` (mode 0600 — readable only by the
# user running the switch). `vosapp.lab.attach()` reads that file and gives the same API
# as the in-kernel switch of notebooks 01–03.
#
# Here the notebook starts `vosapp serve` itself (a temporary data directory, SIP on a free
# port), attaches, watches a live ladder from the remote trace, changes a parameter live and
# stops the switch gracefully. **Why its own switch:** it shows the whole life of a background
# process, including stopping it — which must not happen to the make-lab switch (notebook 01
# attaches to that one with the same API).

# %%
import stat
import tempfile
from pathlib import Path

from vosapp.lab.attach import BackgroundSwitch, attach, default_config_path
from vosapp.lab.ladder import LiveLadder, figure
from vosapp.lab.phones import LabPhone
from vosapp.lab.widgets import ParameterEditor, ParameterForm, table
from vosapp.params import ParameterError

scratch = tempfile.TemporaryDirectory(prefix="vosapp-nb06-")  # removed at the end
data_dir = Path(scratch.name)
background = BackgroundSwitch.spawn(data_dir, default_config_path())
print(background)
control_file = data_dir / "control.json"
print(control_file, oct(stat.S_IMODE(control_file.stat().st_mode)))
assert stat.S_IMODE(control_file.stat().st_mode) == 0o600

# %% [markdown]
# In a shell, the same is `vosapp serve --data-dir DIR` (add `--listen 127.0.0.1:0` for any
# free port); then in any notebook `remote = attach("DIR")` — or just `attach()` when
# `VOSAPP_DATA_DIR`/the config point at that directory.

# %%
remote = attach(data_dir)
status = remote.status()
print(status)
assert status["pid"] == background.process.pid
assert tuple(remote.address) == background.sip_address

# %%
host, port = remote.address
good = await LabPhone("1001", "lab-1001-secret", remote.address).open()
bad = await LabPhone("1002", "not-it", remote.address).open()
live = LiveLadder(remote.trace, names={f"{host}:{port}": "vosapp serve",
                                       "{}:{}".format(*good.address): "1001",
                                       "{}:{}".format(*bad.address): "1002 (wrong)"},
                  title="from the background switch's trace")
live

# %%
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

# %% [markdown]
# ## Change a parameter live
#
# `set_param` goes through the control channel: validated by the switch (a bad value comes
# back as the same `ParameterError`), persisted in its store (`by = "control"`), and used by
# **new sessions only**. The editor form works against the remote switch too.

# %%
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
print(editor.status_text)
assert remote.params["SS_SIP_AUTHENTICATION_CODE"] == 407
history = remote.param_history("SS_SIP_AUTHENTICATION_CODE")
assert history[-1]["by"] == "control" and history[-1]["new"] == 407

third = await LabPhone("1001", "lab-1001-secret", remote.address).open()
assert (await third.register(expires=300)).status == 200
assert third.responses[0].status == 407          # the new session got the new value
editor

# %% [markdown]
# ## Stop it gracefully
#
# `await remote.stop()` asks over the control channel; the process runs its stop hooks
# (e.g. unregistering from carriers), removes `control.json` and exits with status 0.

# %%
remote.trace.poll()
live.flush()
await remote.stop()
code = background.wait(15)
print("exit status:", code)
assert code == 0
assert not control_file.exists()
scratch.cleanup()
for phone in (good, bad, third):
    phone.close()
live.close()
figure(live.ladder, title="the background switch's session")
