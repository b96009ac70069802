"""The desktop app: a thin PySide6 layer over the Qt-free core (`clipphotos.library`)."""
from __future__ import annotations

import sys


def _immortalise_singletons() -> None:
    """Keep None, True and False alive under PySide6 6.12 on Python 3.10/3.11.

    That PySide6 (an abi3 wheel) hands back None from every void method, and a few other
    values, without taking a reference, as is only safe where they are immortal (Python
    3.12+, PEP 683). On older Pythons each call drops None's count by one, and after a few
    thousand calls (one grid repaint) the interpreter aborts with "deallocating None". Giving
    them an enormous count makes them as immortal as 3.12 does; it changes nothing else.
    """
    if sys.version_info >= (3, 12):
        return
    import ctypes
    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40


_immortalise_singletons()
