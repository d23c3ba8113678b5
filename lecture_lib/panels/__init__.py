"""Interactive panels: ``PANELS[name]()`` builds one with its defaults (see ``base.Panel``).

Every module of this package registers its panels on import; they are all imported here, so a new panel
module needs no edit of this file.
"""

import importlib
import pkgutil

from lecture_lib.panels.base import PANELS, Panel, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["PANELS", "Panel", "register"]
