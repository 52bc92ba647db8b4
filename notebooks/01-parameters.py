# %% [markdown]
# # 01 — Parameters: edit, validate, save, apply
#
# Every VOS3000 behaviour vosapp reproduces is steered by an `SS_*` parameter. This notebook
# shows the registry (type, range, unit, where the value comes from), what happens with a
# bad value, the editor form, saving to the store (with history), and applying a change to a
# running switch — where it reaches **new sessions only**.
#
# It works against the **make-lab switch** when `make lab` runs one (the same store, the same
# running parameters: what you change here is what your softphones get), otherwise against a
# switch it starts in this kernel. The first cell says which.

# %%
from vosapp.config import load_config
from vosapp.lab.attach import default_config_path, default_data_dir
from vosapp.lab.lab_switch import NotebookSwitch
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
lab = await NotebookSwitch.open(config_path, data_dir=data_dir)
switch = lab.switch
print("switch:", lab.summary)

# %% [markdown]
# ## The registry
#
# `source` says where a parameter comes from: **seed** = quoted from the VOS3000 manual,
# **secondary** = known only from reseller pages, **vosapp** = ours. `value_source` says
# whether the default and the range are the manual's or vosapp's own choice.

# %%
table([{"name": p.name, "value": p.format(current[p.name]), "default": p.format(p.default),
        "allowed": p.allowed(), "unit": p.unit, "source": p.source,
        "value source": p.value_source} for p in REGISTRY])

# %% [markdown]
# ## Validation
#
# Values are validated when set. People type values in many forms (`On`, `yes`, `3 min`,
# `"407 Proxy Authentication Required"`); a value outside the range is a `ParameterError`
# naming the parameter, the value and what is allowed.

# %%
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

# %% [markdown]
# ## The editor
#
# One section per VOS3000 navigation path; each parameter gets the widget its type calls
# for (On/Off toggle, option list, bounded number with its unit, Auto-or-number, text), its
# description and source. An invalid value shows the registry's error under the field;
# nothing is raised. The table at the bottom is the diff against the defaults. **Save** writes
# to the store; **Apply to running switch** sends the values to the switch of the first cell.

# %%
form = ParameterForm(store=store, base=config.parameters, target=switch)
editor = ParameterEditor(form)
editor

# %% [markdown]
# Below, the cells drive the form the way a person would (so the notebook runs unattended).
# `SS_SIP_NAT_KEEP_ALIVE_PERIOD` takes 0 (off) or 10–3600 s: 5 falls in the gap.

# %%
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

# %% [markdown]
# ## Save
#
# Save writes through `Store.set_param(..., by="lab")`: the values survive a restart and
# `vosapp params list` in a shell sees them. Every change is kept in the history.

# %%
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

# %% [markdown]
# ## Apply to a running switch — new sessions only
#
# The running switch re-reads the store about once a second, so the saved 407 reaches it. We
# change `SS_SIP_AUTHENTICATION_CODE` back to 401 through the form's **Apply** and watch the
# next registration be challenged with 401 instead of 407. Sessions already open keep what
# they started with — the VOS3000 rule, stated next to the button. The lab phone registers
# with `Expires: 0` (after the challenge): it removes only its own contact, so a softphone
# registered as 1001 on the make-lab switch keeps its binding.

# %%
from vosapp.lab.phones import LabPhone
from vosapp.lab.waiting import wait_until


async def challenge_and_final():
    """The status 1001's REGISTER is challenged with, and the final status."""
    async with LabPhone("1001", "lab-1001-secret", switch.address) as phone:
        reply = await phone.register(expires=0)
    return phone.responses[0].status, reply.status


assert await wait_until(lambda: switch.params["SS_SIP_AUTHENTICATION_CODE"] == 407, 10)
challenge, final = await challenge_and_final()
print("challenge:", challenge, "final:", final)
assert (challenge, final) == (407, 200)

apply_form = ParameterForm(target=switch)
apply_editor = ParameterEditor(apply_form)
apply_editor.set_input("SS_SIP_AUTHENTICATION_CODE", 401)
apply_editor.apply_button.click()
print(apply_editor.status_text)
assert switch.params["SS_SIP_AUTHENTICATION_CODE"] == 401

challenge, final = await challenge_and_final()
print("challenge after apply:", challenge)
assert (challenge, final) == (401, 200)
apply_editor

# %% [markdown]
# ## Tidy up
#
# Stop the switch if this notebook started it (the make-lab switch keeps running), put back
# the values this notebook changed (the history keeps both the changes and the resets), and
# refresh the editor above so it shows what the store holds now.

# %%
await lab.release()
for name in ("SS_SIP_NAT_KEEP_ALIVE_PERIOD", "SS_AUTHENTICATION_MAX_RETRY",
             "SS_SIP_AUTHENTICATION_CODE"):
    store.reset_param(name, by="lab", base=config.parameters)
assert store.load_params(config.parameters) == config.parameters
editor.refresh()
assert form.values == config.parameters.as_dict() and form.pending() == {}
table([{"name": h.name, "action": h.action, "old": h.old, "new": h.new, "by": h.by}
       for h in store.param_history()[-6:]])
