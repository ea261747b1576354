"""One registry helper for everything selectable by name in a card or config: device families,
training algorithms, weight encodings, sensing schemes and ADC models.

A registry is a mapping name -> class; ``@registry.register`` (the class carries its name in the
registry's attribute, e.g. ``name`` or ``kind``) or ``@registry.register("name")`` (the name is
given and set on the class) adds a class, and :meth:`Registry.lookup` turns an unknown name into
one :class:`~dse.errors.DseError` listing the known ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from dse.errors import DseError

T = TypeVar("T", bound=type)


class Registry(dict[str, Any]):
    """Classes by name. ``what`` names the kind in messages; ``attr`` is the class attribute
    that holds a class's name; ``key`` is the config key shown in messages."""

    def __init__(self, what: str, attr: str = "name", key: str | None = None) -> None:
        super().__init__()
        self.what = what
        self.attr = attr
        self.key = key

    @overload
    def register(self, arg: str) -> Callable[[T], T]: ...

    @overload
    def register(self, arg: T) -> T: ...

    def register(self, arg: Any) -> Any:
        """Class decorator, bare (the name is the class's ``attr``) or with the name."""
        if isinstance(arg, str):
            def deco(cls: T) -> T:
                setattr(cls, self.attr, arg)
                self[arg] = cls
                return cls
            return deco
        self[getattr(arg, self.attr)] = arg
        return arg

    def lookup(self, name: Any, source: str | None = None) -> Any:
        """The class registered as ``name`` (DseError listing the known names otherwise)."""
        if name not in self:
            where = f"{self.key}: " if self.key else ""
            raise DseError(f"{where}unknown {self.what} '{name}' (known: "
                           f"{', '.join(sorted(self))})", source=source)
        return self[name]
