"""The panel pattern: controls + one FigureWidget + an ``update`` that redraws synchronously.

A panel owns ``controls`` (name -> ipywidgets value widget), ``figure`` (a plotly ``FigureWidget``, or a
list of them) and ``widget`` (what a notebook displays). Setting ``controls[k].value`` calls ``update``
at once, in the kernel, so pytest can move every slider without a browser. Heavy numerical work happens in
jitted library functions whose hyperparameters are traced: after the first draw, moving a control never
compiles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import ipywidgets as widgets

PANELS: dict[str, Callable[[], Panel]] = {}


def register(name: str):
    """Class decorator: ``PANELS[name]()`` builds the panel with its defaults."""

    def deco(cls):
        PANELS[name] = cls
        cls.name = name
        return cls

    return deco


class Panel:
    name: str = "panel"

    def __init__(self):
        self._holding = False
        self.controls: dict[str, widgets.ValueWidget] = {}
        self.figure = None
        self.widget: widgets.Widget | None = None
        self.build()
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.update()

    def build(self) -> None:
        """Create ``controls``, ``figure`` and ``widget``."""
        raise NotImplementedError

    def update(self, changed: str | None = None) -> None:
        """Redraw ``figure`` from the current control values; ``changed`` names the control that moved."""
        raise NotImplementedError

    @contextlib.contextmanager
    def hold(self):
        """Set several controls at once with one redraw at the end."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        self.update()

    def _on_change(self, change):
        if self._holding:
            return
        name = next((k for k, c in self.controls.items() if c is change["owner"]), None)
        self.update(name)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
