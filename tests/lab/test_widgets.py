"""The parameter editor: one widget per parameter with its bounds/options, inline registry
errors, diff, save to a real Store, apply to a (fake) running switch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ipywidgets")

from vosapp.lab.widgets import (
    ParameterEditor,
    ParameterForm,
    input_value,
    widget_spec,
)
from vosapp.params import NEW_SESSIONS_RULE, REGISTRY, Kind, ParameterError, Params
from vosapp.store import Store


def registry_error(name: str, value: object) -> str:
    with pytest.raises(ParameterError) as caught:
        REGISTRY[name].coerce(value)
    return str(caught.value)


def test_every_parameter_gets_the_right_widget_with_bounds_and_options() -> None:
    import ipywidgets as widgets

    editor = ParameterEditor(ParameterForm())
    assert set(editor.inputs) == set(REGISTRY.names())
    for param in REGISTRY:
        widget = editor.inputs[param.name]
        value = input_value(param, widget)
        assert param.coerce(value) == param.default, param.name
        if param.kind is Kind.ON_OFF:
            assert isinstance(widget, widgets.ToggleButtons)
            assert [v for _, v in widget.options] == [True, False]
        elif param.kind is Kind.STATUS_CODE:
            assert isinstance(widget, widgets.Dropdown)
            assert [label for label, _ in widget.options] == list(param.options)
            assert [v for _, v in widget.options] == [401, 407]
        elif param.kind is Kind.CHOICE:
            assert isinstance(widget, widgets.Dropdown)
            assert [v for _, v in widget.options] == list(param.options)
        elif param.kind is Kind.TEXT:
            assert isinstance(widget, widgets.Text)
        elif param.kind is Kind.INTEGER:
            # Unbounded: a bounded widget would clamp out-of-range input before validation.
            assert type(widget) is widgets.IntText
            assert widget.tooltip == f"allowed: {param.allowed()}"
        else:
            assert param.kind is Kind.AUTO_OR_INTEGER
            auto, number = widget.children
            assert isinstance(auto, widgets.Checkbox) and auto.value is True
            assert type(number) is widgets.IntText
            assert number.tooltip == f"allowed: {param.allowed()}"
            assert number.disabled


def test_sections_follow_the_vos3000_navigation_paths() -> None:
    editor = ParameterEditor(ParameterForm())
    titles = [editor.accordion.get_title(i) for i in range(len(editor.accordion.children))]
    assert titles == list(dict.fromkeys(p.navigation for p in REGISTRY))
    shown = sum(len(section.children) for section in editor.accordion.children)
    assert shown == len(REGISTRY)


def test_descriptions_units_and_sources_are_shown() -> None:
    editor = ParameterEditor(ParameterForm())
    for section in editor.accordion.children:
        for row in section.children:
            info = row.children[0].children[1].value
            name = info.split("<b>")[1].split("</b>")[0]
            param = REGISTRY[name]
            assert param.description.split()[0] in info
            assert param.value_source.split()[0] in info
            if widget_spec(param).unit:
                assert f" {param.unit}" in info


@pytest.mark.parametrize(("name", "value"), [
    ("SS_SIP_NAT_KEEP_ALIVE_PERIOD", 5),           # 0 (off) or 10-3600: 5 is in the gap
    ("SS_SIP_NO_TIMER_REINVITE_INTERVAL", 30),     # 0 (off) or 60-7200
    ("SS_SIP_NAT_KEEP_ALIVE_MESSAGE", "héllo"),    # printable ASCII only
    ("SS_SIP_NAT_KEEP_ALIVE_MESSAGE", "x" * 201),
])
def test_invalid_input_shows_the_registry_error_inline(name: str, value: Any) -> None:
    form = ParameterForm()
    editor = ParameterEditor(form)
    editor.set_input(name, value)  # no exception escapes the widget callback
    expected = registry_error(name, value)
    assert editor.error_text(name) == expected
    assert form.errors[name] == expected
    assert form.values[name] == REGISTRY[name].default  # the last valid value is kept
    valid = 0 if REGISTRY[name].kind is Kind.INTEGER else "OPTIONS"
    editor.set_input(name, valid)
    assert editor.error_text(name) == "" and name not in form.errors


@pytest.mark.parametrize(("name", "value"), [
    ("SS_AUTHENTICATION_FAILED_SUSPEND", 10),      # below 60-3600 s
    ("SS_AUTHENTICATION_FAILED_SUSPEND", 5000),    # above
    ("SS_SIP_RESEND_INTERVAL", 50),                # below 100-4000 ms
    ("SS_SIP_USER_AGENT_EXPIRE", 10),              # Auto, or 20-7200 s (the composite)
])
def test_typed_out_of_range_value_shows_the_registry_error_and_is_not_saved(
        tmp_path: Path, name: str, value: int) -> None:
    with Store.open(tmp_path) as store:
        form = ParameterForm(store=store)
        editor = ParameterEditor(form)
        row_info = _row_info(editor, name)
        assert f"allowed: {REGISTRY[name].allowed()}" in row_info  # the bounds are shown
        editor.set_input(name, value)
        # Not clamped by the widget: the registry sees the typed value and its text shows.
        assert input_value(REGISTRY[name], editor.inputs[name]) == value
        expected = registry_error(name, value)
        assert "is out of range; allowed:" in expected
        assert editor.error_text(name) == expected
        assert form.errors[name] == expected
        editor.save_button.click()
        assert "1 invalid" in editor.status.value and name in editor.status.value
        assert store.stored_params() == {}
        assert store.param_history() == []
        assert store.load_params()[name] == REGISTRY[name].default


def _row_info(editor: ParameterEditor, name: str) -> str:
    for section in editor.accordion.children:
        for row in section.children:
            info = row.children[0].children[1].value
            if f"<b>{name}</b>" in info:
                return str(info)
    raise AssertionError(f"no row for {name}")


def test_form_set_never_raises_and_reports_unknown_names() -> None:
    form = ParameterForm()
    assert not form.set("SS_AUTHENTICATION_FAILED_SUSPEND", 59)
    assert form.errors["SS_AUTHENTICATION_FAILED_SUSPEND"] == registry_error(
        "SS_AUTHENTICATION_FAILED_SUSPEND", 59)
    assert not form.set("SS_NOT_A_PARAMETER", 1)
    assert "not a known parameter" in form.errors["SS_NOT_A_PARAMETER"]
    assert form.set("SS_AUTHENTICATION_FAILED_SUSPEND", "10 min")
    assert form.values["SS_AUTHENTICATION_FAILED_SUSPEND"] == 600


def test_auto_or_int_composite() -> None:
    form = ParameterForm()
    editor = ParameterEditor(form)
    editor.set_input("SS_SIP_USER_AGENT_EXPIRE", 300)
    assert form.values["SS_SIP_USER_AGENT_EXPIRE"] == 300
    assert not editor.inputs["SS_SIP_USER_AGENT_EXPIRE"].children[1].disabled
    editor.set_input("SS_SIP_USER_AGENT_EXPIRE", "Auto")
    assert form.values["SS_SIP_USER_AGENT_EXPIRE"] == "Auto"


def test_diff_against_defaults_and_pending_edits() -> None:
    start = Params.defaults().replace(SS_SIP_AUTHENTICATION_RETRY=3)
    form = ParameterForm(start)
    assert form.diff() == {"SS_SIP_AUTHENTICATION_RETRY": (6, 3)}
    assert form.pending() == {}
    editor = ParameterEditor(form)
    editor.set_input("SS_REPLY_UNAUTHORIZED", False)
    assert form.diff() == {"SS_SIP_AUTHENTICATION_RETRY": (6, 3),
                           "SS_REPLY_UNAUTHORIZED": (True, False)}
    assert form.pending() == {"SS_REPLY_UNAUTHORIZED": (True, False)}
    assert "SS_REPLY_UNAUTHORIZED" in editor.diff_view.value
    assert "not saved" in editor.diff_view.value
    editor.revert_button.click()
    assert form.pending() == {} and editor.inputs["SS_REPLY_UNAUTHORIZED"].value is True


def test_save_persists_to_a_real_store_by_lab(tmp_path: Path) -> None:
    base = Params.defaults().replace(SS_SIP_AUTHENTICATION_CODE=407)  # the config's value
    with Store.open(tmp_path) as store:
        form = ParameterForm(store=store, base=base)
        assert form.values["SS_SIP_AUTHENTICATION_CODE"] == 407
        editor = ParameterEditor(form)
        editor.set_input("SS_AUTHENTICATION_MAX_RETRY", 3)
        editor.set_input("SS_SIP_AUTHENTICATION_CODE", 401)
        editor.set_input("SS_SIP_NAT_KEEP_ALIVE_PERIOD", 5)  # invalid: not saved
        editor.save_button.click()
        assert "2 changed" in editor.status.value and "1 invalid" in editor.status.value
        loaded = store.load_params(base)
        assert loaded["SS_AUTHENTICATION_MAX_RETRY"] == 3
        assert loaded["SS_SIP_AUTHENTICATION_CODE"] == 401
        assert loaded["SS_SIP_NAT_KEEP_ALIVE_PERIOD"] == 30
        history = [(h.name, h.old, h.new, h.by) for h in store.param_history()]
        assert ("SS_SIP_AUTHENTICATION_CODE", 407, 401, "lab") in history
        assert ("SS_AUTHENTICATION_MAX_RETRY", 6, 3, "lab") in history
        assert form.pending() == {}
        assert editor.status_text == "saved: 2 changed; 1 invalid, not written " \
            "(SS_SIP_NAT_KEEP_ALIVE_PERIOD)"  # for print(): no markup


def test_refresh_shows_what_the_store_holds_after_a_reset(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        form = ParameterForm(store=store)
        editor = ParameterEditor(form)
        editor.set_input("SS_AUTHENTICATION_MAX_RETRY", 3)
        editor.save_button.click()
        store.reset_param("SS_AUTHENTICATION_MAX_RETRY", by="lab")  # behind the editor's back
        editor.set_input("SS_REPLY_UNAUTHORIZED", False)              # an unsaved edit
        assert editor.inputs["SS_AUTHENTICATION_MAX_RETRY"].value == 3  # stale until ...
        editor.refresh()                                                # ... refreshed
        assert editor.inputs["SS_AUTHENTICATION_MAX_RETRY"].value == 6
        assert editor.inputs["SS_REPLY_UNAUTHORIZED"].value is True
        assert form.pending() == {} and "every parameter at its default" in \
            editor.diff_view.value


def test_refresh_rereads_a_running_switch() -> None:
    switch = FakeSwitch()
    editor = ParameterEditor(ParameterForm(target=switch))
    switch.set_param("SS_SIP_AUTHENTICATION_CODE", 407)  # changed elsewhere (a shell)
    editor.refresh()
    assert editor.inputs["SS_SIP_AUTHENTICATION_CODE"].value == 407


class FakeSwitch:
    def __init__(self) -> None:
        self.params = Params.defaults()
        self.calls: list[tuple[str, object]] = []

    def set_param(self, name: str, value: object) -> Any:
        self.calls.append((name, value))
        if name == "SS_SIP_PUBLISH_EXPIRE":
            raise ParameterError(name, value, "refused by the test switch")
        self.params = self.params.replace(**{name: value})
        return self.params[name]


def test_apply_sends_only_differences_and_states_the_rule() -> None:
    switch = FakeSwitch()
    form = ParameterForm(target=switch)
    editor = ParameterEditor(form)
    assert NEW_SESSIONS_RULE in editor.widget.children[2].value
    assert "new sessions only" in NEW_SESSIONS_RULE
    editor.set_input("SS_ENDPOINT_REGISTER_RETRY", 2)
    editor.set_input("SS_SIP_PUBLISH_EXPIRE", 120)
    editor.apply_button.click()
    assert switch.calls == [("SS_ENDPOINT_REGISTER_RETRY", 2), ("SS_SIP_PUBLISH_EXPIRE", 120)]
    assert switch.params["SS_ENDPOINT_REGISTER_RETRY"] == 2
    assert "refused" in editor.status.value
    assert editor.save_button.disabled  # this form has no store


def test_save_without_store_is_shown_not_raised() -> None:
    editor = ParameterEditor(ParameterForm())
    editor._run(editor.form.save, "saved")
    assert "no store" in editor.status.value


def test_apply_to_a_bare_in_kernel_switch(tmp_path: Path) -> None:
    import asyncio

    from vosapp.io.runtime import Switch

    async def scenario() -> None:
        switch = Switch(data_dir=tmp_path, port=0, transports=("UDP",))
        await switch.start()
        try:
            form = ParameterForm(target=switch)
            assert form.set("SS_SIP_USER_AGENT_PRIVACY", "id")
            result = form.apply()
            assert result.changed == {"SS_SIP_USER_AGENT_PRIVACY": "Id"}
            assert switch.core.params["SS_SIP_USER_AGENT_PRIVACY"] == "Id"
            assert switch.store is not None
            assert switch.store.param_history()[-1].by == "lab"
        finally:
            await switch.stop()

    asyncio.run(scenario())
    with pytest.raises(TypeError, match="cannot apply parameters"):
        ParameterForm(target=object())  # type: ignore[arg-type]
