"""A handler's collaborators, declared once as typed class attributes.

Tornado gives a handler what its route's third element holds as keywords of
``initialize()`` (``(r"/hello", HelloHandler, {"authenticator": a})``). Instead of each
handler writing an ``initialize`` that copies its keywords onto ``self`` and passes the
rest to ``super()``, a handler declares each collaborator with its type::

    class ReportsHandler(AuthenticatedHandler):
        reports: ReportStore = collaborator()  # required
        archive: Archive | None = collaborator(None)  # optional: None unless given

and the one ``initialize`` of :class:`Collaborators` sets those the route gives. It
refuses a keyword the handler does not declare, or a required one left out, with a
``TypeError`` that names the handler: when the application checks its routes at
start-up (:func:`check_route`; jotguard's application does), else on the first request.

At run time the declarations are plain class attributes (the default, or nothing for a
required collaborator) and the route's values plain instance attributes, as an
``initialize`` of one's own would have made them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar, overload

T = TypeVar("T")


class _Required:
    def __repr__(self) -> str:
        return "<required>"


_REQUIRED = _Required()


class _Declaration:
    __slots__ = ("default",)

    def __init__(self, default: object) -> None:
        self.default = default


@overload
def collaborator() -> Any: ...
@overload
def collaborator(default: T) -> T: ...
def collaborator(default: object = _REQUIRED) -> Any:
    """Declare a collaborator, as ``name: Type = collaborator()`` in a
    :class:`Collaborators` class; without ``default`` every route must give it.

    (Typed ``Any`` like ``dataclasses.field``: the annotation is the type.)
    """
    return _Declaration(default)


class Collaborators:
    """Mixin for handlers whose ``initialize`` keywords are declared collaborators."""

    collaborators: ClassVar[frozenset[str]] = frozenset()
    """The keywords this handler's routes may give (its bases' and its own)."""
    required_collaborators: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = set(cls.collaborators)
        required = set(cls.required_collaborators)
        for base in cls.__bases__[1:]:  # a second branch of a multiple inheritance
            declared |= getattr(base, "collaborators", frozenset())
            required |= getattr(base, "required_collaborators", frozenset())
        for name, value in list(vars(cls).items()):
            if not isinstance(value, _Declaration):
                continue
            declared.add(name)
            if value.default is _REQUIRED:
                required.add(name)
                delattr(cls, name)  # unset until initialize sets it
            else:
                required.discard(name)
                setattr(cls, name, value.default)
        cls.collaborators = frozenset(declared)
        cls.required_collaborators = frozenset(required)

    @classmethod
    def check_collaborators(cls, given: Mapping[str, object]) -> None:
        """:raises TypeError: ``given`` names a keyword ``cls`` does not declare, or
        lacks a required one."""
        unknown = sorted(given.keys() - cls.collaborators)
        if unknown:
            takes = ", ".join(sorted(cls.collaborators)) or "none"
            raise TypeError(
                f"{cls.__qualname__} takes no collaborator {unknown[0]!r} (it takes: {takes})"
            )
        missing = sorted(cls.required_collaborators - given.keys())
        if missing:
            raise TypeError(
                f"{cls.__qualname__} needs the collaborator {missing[0]!r}: "
                "give it in its route's keywords"
            )

    def set_collaborators(self, given: Mapping[str, object]) -> None:
        """Set the collaborators a route gives (:meth:`check_collaborators` first).

        What initialize does: a class with work that needs its collaborators extends this.
        """
        cls = type(self)
        # Set comparisons on the keys: no allocation on the path every request takes.
        if not (given.keys() <= cls.collaborators and cls.required_collaborators <= given.keys()):
            cls.check_collaborators(given)
        self.__dict__.update(given)

    def _initialize(self, **given: object) -> None:
        self.set_collaborators(given)

    # Typed as Tornado types RequestHandler.initialize, so a subclass may still write an
    # initialize of its own (taking what it likes, passing the rest to super()).
    initialize: Callable[..., None] = _initialize


def check_route(handler: type, kwargs: Mapping[str, object]) -> None:
    """Call it where the routes are built.

    :raises TypeError: ``kwargs`` is not what ``handler`` declares. A handler with an
        initialize of its own takes what that says: Tornado checks it on the request.
    """
    if issubclass(handler, Collaborators) and handler.initialize is Collaborators.initialize:
        handler.check_collaborators(kwargs)
