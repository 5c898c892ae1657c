"""A small name -> class registry shared by generators, detox methods and scorers."""
from toxplatform.errors import ApplicationError


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, type] = {}

    def register(self, cls: type) -> type:
        """Class decorator: `@generators.register` on a class with a `name` attribute."""
        if cls.name in self._classes:
            raise ValueError(f"{self.kind} {cls.name!r} is registered twice")
        self._classes[cls.name] = cls
        return cls

    def unregister(self, name: str) -> None:
        """Remove a class (plugins loaded for a while, tests)."""
        self._classes.pop(name, None)

    def get(self, name: str) -> type:
        try:
            return self._classes[name]
        except KeyError:
            raise ApplicationError(
                f"Unknown {self.kind} {name!r}", {"known": ", ".join(sorted(self._classes))}
            ) from None

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: str) -> bool:
        return name in self._classes
