"""The parameter editor: an ipywidgets form generated from :data:`vosapp.params.REGISTRY`.

Two layers, so the logic is testable without a browser:

* :class:`ParameterForm` -- the model: edited values, validation errors (the registry's own
  :class:`~vosapp.params.ParameterError` text, never an exception out of a callback), the
  diff against the registry defaults and against what is saved, ``save()`` through
  :meth:`vosapp.store.Store.set_param` (``by="lab"``) and ``apply()`` to a running switch
  (an in-kernel :class:`vosapp.lab.attach.LabSwitch` or an attached
  :class:`vosapp.lab.attach.RemoteSwitch` -- anything with ``set_param`` and ``params``).
* :class:`ParameterEditor` -- a thin view: one accordion section per VOS3000 navigation path,
  the right widget per kind (:func:`make_input`), each parameter's description, source and
  value source, an inline error line, a diff table and Save / Apply buttons, with the
  "applies to new sessions only" rule written next to the Apply button.

``ipywidgets`` is imported only when a view is built.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from vosapp.params import NEW_SESSIONS_RULE, REGISTRY, Kind, Param, ParameterError, Params

if TYPE_CHECKING:
    import ipywidgets

    from vosapp.store import Store

__all__ = [
    "ApplyTarget",
    "ParameterEditor",
    "ParameterForm",
    "SaveResult",
    "WidgetSpec",
    "make_input",
    "plain_text",
    "table",
    "widget_spec",
]

SOURCE_WORDS = {"seed": "VOS3000 manual (seed)", "secondary": "secondary pages",
                "vosapp": "vosapp's own"}


class ApplyTarget(Protocol):
    """A running switch the form can apply values to (LabSwitch, RemoteSwitch)."""

    @property
    def params(self) -> Params: ...

    def set_param(self, name: str, value: object) -> Any: ...


# ----------------------------------------------------------------------------- the model

@dataclass
class SaveResult:
    """What :meth:`ParameterForm.save` / :meth:`ParameterForm.apply` did."""

    changed: dict[str, Any] = field(default_factory=dict)  # name -> value written
    skipped: dict[str, str] = field(default_factory=dict)  # name -> error text (invalid)
    failed: dict[str, str] = field(default_factory=dict)   # name -> error from the target

    @property
    def ok(self) -> bool:
        return not self.skipped and not self.failed

    def summary(self) -> str:
        parts = [f"{len(self.changed)} changed"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} invalid, not written ({', '.join(self.skipped)})")
        if self.failed:
            parts.append(f"{len(self.failed)} refused ({', '.join(self.failed)})")
        return "; ".join(parts)


class ParameterForm:
    """Edited parameter values with validation, diffs, save and apply (no widgets).

    Parameters
    ----------
    params : Params, optional
        The values to start from (what is saved/running now). Default: from ``store``
        (``store.load_params(base)``), else from ``target.params``, else the defaults.
    store : Store, optional
        Where :meth:`save` persists (``set_param(..., by="lab")``).
    base : Params, optional
        The config file's values (what the store layers its values on; recorded as "old"
        in the history of a first change).
    target : ApplyTarget, optional
        The running switch :meth:`apply` sends values to.
    """

    def __init__(self, params: Params | None = None, *, store: Store | None = None,
                 base: Params | None = None, target: ApplyTarget | None = None,
                 by: str = "lab") -> None:
        self.store = store
        self.base = base
        self.target = _as_target(target)
        self.by = by
        if params is None:
            if store is not None:
                params = store.load_params(base)
            elif target is not None:
                params = target.params
            else:
                params = base if base is not None else Params.defaults()
        self.saved: Params = params
        self.values: dict[str, Any] = params.as_dict()
        self.inputs: dict[str, object] = {}
        self.errors: dict[str, str] = {}
        self.listeners: list[Callable[[str], None]] = []

    @staticmethod
    def groups() -> dict[str, list[Param]]:
        """Parameters by VOS3000 navigation path, in registry order."""
        grouped: dict[str, list[Param]] = {}
        for param in REGISTRY:
            grouped.setdefault(param.navigation, []).append(param)
        return grouped

    def set(self, name: str, raw: object) -> bool:
        """Take an input for ``name``: True when valid (the value is kept), False with the
        registry's error text in :attr:`errors`. Never raises for a bad value."""
        try:
            param = REGISTRY[name]
        except ParameterError as exc:
            self.errors[str(name)] = str(exc)
            self._notify(str(name))
            return False
        self.inputs[name] = raw
        try:
            value = param.coerce(raw)
        except ParameterError as exc:
            self.errors[name] = str(exc)
            self._notify(name)
            return False
        self.errors.pop(name, None)
        self.values[name] = value
        self._notify(name)
        return True

    def reset(self, name: str | None = None) -> None:
        """Edited value(s) back to the registry default (not saved until :meth:`save`)."""
        for param in REGISTRY if name is None else [REGISTRY[name]]:
            self.set(param.name, param.default)

    def reload(self) -> None:
        """Re-read the saved values (store, else target) and drop every edit: what to do
        after the store or the switch changed behind the form's back."""
        if self.store is not None:
            self.saved = self.store.load_params(self.base)
        elif self.target is not None:
            self.saved = self.target.params
        self.revert()

    def revert(self) -> None:
        """Drop every edit: back to the saved values."""
        self.values = self.saved.as_dict()
        self.inputs.clear()
        self.errors.clear()
        self._notify("")

    def _notify(self, name: str) -> None:
        for listener in list(self.listeners):
            listener(name)

    @property
    def valid(self) -> bool:
        return not self.errors

    def params(self) -> Params:
        """The edited values as Params (invalid inputs keep their last valid value)."""
        return Params(self.values)

    def diff(self) -> dict[str, tuple[Any, Any]]:
        """``name -> (default, edited value)`` for every value differing from the registry."""
        return {p.name: (p.default, self.values[p.name]) for p in REGISTRY
                if self.values[p.name] != p.default}

    def pending(self) -> dict[str, tuple[Any, Any]]:
        """``name -> (saved, edited)`` for edits not saved yet."""
        return {p.name: (self.saved[p.name], self.values[p.name]) for p in REGISTRY
                if self.values[p.name] != self.saved[p.name]}

    def save(self) -> SaveResult:
        """Persist every pending valid edit with ``store.set_param(..., by=self.by)``."""
        if self.store is None:
            raise ValueError("this form has no store to save to (ParameterForm(store=...))")
        result = SaveResult(skipped=dict(self.errors))
        for name, (_, value) in self.pending().items():
            if name in self.errors:
                continue
            result.changed[name] = self.store.set_param(name, value, by=self.by,
                                                        base=self.base)
        self.saved = self.store.load_params(self.base)
        self._notify("")
        return result

    def apply(self, target: ApplyTarget | None = None) -> SaveResult:
        """Send every valid edited value that differs from the running switch's to it.

        The switch validates again and uses the values for *new* sessions only.
        """
        target = _as_target(target) if target is not None else self.target
        if target is None:
            raise ValueError("no running switch to apply to (ParameterForm(target=...))")
        running = target.params
        result = SaveResult(skipped=dict(self.errors))
        for param in REGISTRY:
            name = param.name
            if name in self.errors or running[name] == self.values[name]:
                continue
            try:
                result.changed[name] = target.set_param(name, self.values[name])
            except ParameterError as exc:
                result.failed[name] = str(exc)
        self._notify("")
        return result


def _as_target(target: Any) -> ApplyTarget | None:
    """A LabSwitch/RemoteSwitch as is; a bare in-kernel ``vosapp.io.runtime.Switch`` wrapped."""
    if target is None or hasattr(target, "set_param"):
        return target
    if hasattr(target, "core") and hasattr(target, "trace"):
        from vosapp.lab.attach import LabSwitch

        return LabSwitch(target)
    raise TypeError(f"cannot apply parameters to {target!r}: give a LabSwitch, an attached "
                    "RemoteSwitch or a vosapp.io.runtime.Switch")


# ------------------------------------------------------------------------- widget choice

@dataclass(frozen=True)
class WidgetSpec:
    """Which input a parameter gets: ``kind`` is ``toggle``, ``dropdown``, ``int``,
    ``auto_int`` or ``text``; bounds and options come from the registry."""

    kind: str
    options: tuple[tuple[str, Any], ...] = ()  # (label, value)
    minimum: int | None = None
    maximum: int | None = None
    unit: str = ""
    allowed: str = ""


def widget_spec(param: Param) -> WidgetSpec:
    allowed = param.allowed()
    if param.kind is Kind.ON_OFF:
        return WidgetSpec("toggle", (("On", True), ("Off", False)), allowed=allowed)
    if param.kind is Kind.STATUS_CODE:
        return WidgetSpec("dropdown", tuple((o, int(o.split()[0])) for o in param.options),
                          allowed=allowed)
    if param.kind is Kind.CHOICE:
        return WidgetSpec("dropdown", tuple((o, o) for o in param.options), allowed=allowed)
    if param.kind is Kind.TEXT:
        return WidgetSpec("text", allowed=allowed)
    unit = "" if param.unit == "count" else param.unit
    minimum = 0 if param.zero_disables else param.minimum
    kind = "auto_int" if param.kind is Kind.AUTO_OR_INTEGER else "int"
    return WidgetSpec(kind, minimum=minimum, maximum=param.maximum, unit=unit, allowed=allowed)


def make_input(param: Param, value: Any) -> Any:
    """The ipywidgets input for ``param`` showing ``value``.

    The returned widget has ``.value`` in the parameter's Python type, except the Auto-or-int
    composite (an ``HBox`` of a "Auto" Checkbox and an IntText) read with :func:`input_value`.
    Integer inputs are deliberately *unbounded* (``IntText``, the range in their tooltip and
    in the row's "allowed" line): a bounded widget would clamp 10 to 60 before the registry
    sees it, and the registry's error ("… is out of range; allowed: 60-3600 s") would never
    show.
    """
    import ipywidgets as widgets

    spec = widget_spec(param)
    layout = widgets.Layout(width="260px")
    if spec.kind == "toggle":
        return widgets.ToggleButtons(options=list(spec.options), value=bool(value),
                                     style={"button_width": "60px"})
    if spec.kind == "dropdown":
        return widgets.Dropdown(options=list(spec.options), value=value, layout=layout)
    if spec.kind == "text":
        return widgets.Text(value=str(value), placeholder="text, or OPTIONS", layout=layout,
                            continuous_update=False)
    number = widgets.IntText(
        value=param.minimum if value == "Auto" else int(value), step=1,
        tooltip=f"allowed: {spec.allowed}", layout=widgets.Layout(width="120px"),
        description_allow_html=False)
    if spec.kind == "int":
        return number
    auto = widgets.Checkbox(value=value == "Auto", description="Auto", indent=False,
                            layout=widgets.Layout(width="70px"))
    number.disabled = value == "Auto"
    return widgets.HBox([auto, number])


def input_value(param: Param, widget: Any) -> Any:
    """What the input currently says (before validation)."""
    if widget_spec(param).kind == "auto_int":
        auto, number = widget.children
        return "Auto" if auto.value else number.value
    return widget.value


def _observe(param: Param, widget: Any, callback: Callable[[], None]) -> None:
    targets = widget.children if widget_spec(param).kind == "auto_int" else [widget]
    for target in targets:
        target.observe(lambda _change: callback(), names="value")


def _show_value(param: Param, widget: Any, value: Any) -> None:
    if widget_spec(param).kind == "auto_int":
        auto, number = widget.children
        auto.value = value == "Auto"
        number.disabled = value == "Auto"
        if value != "Auto":
            number.value = int(value)
    else:
        widget.value = value


# ------------------------------------------------------------------------------- the view

class ParameterEditor:
    """The form as ipywidgets; display ``editor.widget`` (or the editor itself) in a cell.

    Every input writes into the :class:`ParameterForm`; an invalid value shows the
    registry's error text under the parameter (the callback never raises). Save persists
    through the form's store; Apply sends to the form's target switch.
    """

    def __init__(self, form: ParameterForm, *, groups: Iterable[str] | None = None) -> None:
        import ipywidgets as widgets

        self.form = form
        self.inputs: dict[str, Any] = {}
        self.error_labels: dict[str, Any] = {}
        self._syncing = False
        sections = []
        titles = []
        wanted = set(groups) if groups is not None else None
        for navigation, params in form.groups().items():
            if wanted is not None and navigation not in wanted:
                continue
            rows = [self._row(param) for param in params]
            sections.append(widgets.VBox(rows))
            titles.append(navigation)
        self.accordion = widgets.Accordion(children=sections)
        for index, title in enumerate(titles):
            self.accordion.set_title(index, title)
        if sections:
            self.accordion.selected_index = 0
        self.diff_view = widgets.HTML()
        self.status = widgets.HTML()
        self.save_button = widgets.Button(description="Save", icon="save",
                                          tooltip="persist in the store (by lab)",
                                          disabled=form.store is None)
        self.apply_button = widgets.Button(description="Apply to running switch", icon="play",
                                           layout=widgets.Layout(width="200px"),
                                           disabled=form.target is None)
        self.revert_button = widgets.Button(description="Revert edits", icon="undo")
        self.save_button.on_click(lambda _b: self._run(form.save, "saved"))
        self.apply_button.on_click(lambda _b: self._run(form.apply, "applied"))
        self.revert_button.on_click(lambda _b: self._revert())
        rule = widgets.HTML(f"<i>{html.escape(NEW_SESSIONS_RULE)}</i>")
        self.widget = widgets.VBox([
            self.accordion,
            widgets.HBox([self.save_button, self.apply_button, self.revert_button]),
            rule, self.status, self.diff_view])
        form.listeners.append(lambda _name: self._refresh_diff())
        self._refresh_diff()

    def _row(self, param: Param) -> Any:
        import ipywidgets as widgets

        spec = widget_spec(param)
        widget = make_input(param, self.form.values[param.name])
        self.inputs[param.name] = widget
        error = widgets.HTML()
        self.error_labels[param.name] = error
        _observe(param, widget, lambda: self._changed(param))
        unit = f" {spec.unit}" if spec.unit else ""
        source = SOURCE_WORDS.get(param.source, param.source)
        info = (f"<b>{param.name}</b>{html.escape(unit)} &mdash; {html.escape(param.description)}"
                f"<br><small>allowed: {html.escape(spec.allowed)} &middot; default "
                f"{html.escape(param.format(param.default))} &middot; source: "
                f"{html.escape(source)} ({html.escape(param.value_source)})</small>")
        return widgets.VBox([widgets.HBox([widget, widgets.HTML(info)]), error],
                            layout=widgets.Layout(margin="0 0 6px 0"))

    def _changed(self, param: Param) -> None:
        if self._syncing:
            return
        widget = self.inputs[param.name]
        if widget_spec(param).kind == "auto_int":
            widget.children[1].disabled = bool(widget.children[0].value)
        try:
            ok = self.form.set(param.name, input_value(param, widget))
        except Exception as exc:  # noqa: BLE001 - a view must never raise into the widgets
            self.form.errors[param.name] = f"{param.name}: {exc}"
            ok = False
        label = self.error_labels[param.name]
        label.value = "" if ok else (
            f"<span style='color:#c00'>{html.escape(self.form.errors[param.name])}</span>")

    def set_input(self, name: str, value: Any) -> None:
        """Set an input as a user would (tests, scripted demos)."""
        param = REGISTRY[name]
        widget = self.inputs[name]
        if widget_spec(param).kind == "auto_int":
            auto, number = widget.children
            if value == "Auto":
                auto.value = True
            else:
                auto.value = False
                number.value = value
        else:
            widget.value = value

    def error_text(self, name: str) -> str:
        """The error line shown under ``name`` (plain text; empty when valid)."""
        return plain_text(self.error_labels[name].value)

    @property
    def status_text(self) -> str:
        """The status line (what Save/Apply did) as plain text, for ``print``."""
        return plain_text(self.status.value)

    def _run(self, action: Callable[[], SaveResult], verb: str) -> None:
        try:
            result = action()
        except Exception as exc:  # noqa: BLE001 - shown, never raised into the callback
            self.status.value = f"<span style='color:#c00'>{html.escape(str(exc))}</span>"
            return
        colour = "#080" if result.ok else "#c60"
        self.status.value = (f"<span style='color:{colour}'>{verb}: "
                             f"{html.escape(result.summary())}</span>")

    def refresh(self) -> None:
        """Show the saved values again (e.g. after the store was reset from a cell or a
        shell); pending edits are dropped."""
        self.form.reload()
        self._show_form_values()

    def _revert(self) -> None:
        self.form.revert()
        self._show_form_values()

    def _show_form_values(self) -> None:
        self._syncing = True
        try:
            for name, widget in self.inputs.items():
                _show_value(REGISTRY[name], widget, self.form.values[name])
                self.error_labels[name].value = ""
        finally:
            self._syncing = False
        self._refresh_diff()

    def _refresh_diff(self) -> None:
        rows = []
        pending = self.form.pending()
        for name, (default, value) in self.form.diff().items():
            param = REGISTRY[name]
            mark = " (not saved)" if name in pending else ""
            rows.append(f"<tr><td>{name}</td><td>{html.escape(param.format(default))}</td>"
                        f"<td><b>{html.escape(param.format(value))}</b>{mark}</td></tr>")
        for name in pending:
            if name not in self.form.diff():
                param = REGISTRY[name]
                rows.append(f"<tr><td>{name}</td><td colspan=2>back to default "
                            f"{html.escape(param.format(param.default))} (not saved)</td></tr>")
        table = ("<table><tr><th align=left>changed from default</th><th>default</th>"
                 f"<th>value</th></tr>{''.join(rows)}</table>") if rows else \
            "<i>every parameter at its default</i>"
        self.diff_view.value = table

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def editor(form: ParameterForm | None = None, **form_options: Any) -> ipywidgets.VBox:
    """Shortcut: the editor's widget for ``form`` (or ``ParameterForm(**form_options)``)."""
    return ParameterEditor(form if form is not None else ParameterForm(**form_options)).widget


def plain_text(markup: str) -> str:
    """The text of a small HTML fragment (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]*>", "", markup))


def table(rows: Iterable[dict[str, Any]], columns: Iterable[str] | None = None,
          *, limit: int = 200) -> Any:
    """A small HTML table of dict rows for notebooks (no pandas needed)."""
    from IPython.display import HTML

    rows = list(rows)
    names = list(columns) if columns is not None else list(
        dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th align=left>{html.escape(str(n))}</th>" for n in names)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(n)))}</td>" for n in names) + "</tr>"
        for row in rows[:limit])
    more = f"<p><i>{len(rows) - limit} more rows not shown</i></p>" if len(rows) > limit else ""
    return HTML(f"<table><tr>{head}</tr>{body}</table>{more}" if rows else "<i>(none)</i>")


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "On" if value else "Off"
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)
