"""Interactive panels: ``PANELS[name]()`` builds one with its defaults (see ``base.Panel``)."""

from lecture_lib.panels import race
from lecture_lib.panels.base import PANELS, Panel, register

__all__ = ["PANELS", "Panel", "register", "race"]
