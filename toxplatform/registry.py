"""A small name -> class registry: generators, detox methods, scorers, dataset importers,
annotation campaign kinds. It lives in the platform core so every app can use it without
importing another app."""
from toxplatform.errors import ApplicationError


class Registry:
    def __init__(self, kind: str, key: str = "name"):
        self.kind = kind
        # The class attribute that names an entry ("name"; importers use "format_name").
        self.key = key
        self._classes: dict[str, type] = {}

    def register(self, cls: type) -> type:
        """Class decorator: `@generators.register` on a class with a `name` attribute."""
        name = getattr(cls, self.key)
        if name in self._classes:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._classes[name] = cls
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

    def items(self) -> list[tuple[str, type]]:
        return sorted(self._classes.items())

    def __iter__(self):
        return iter(self.names())

    def __contains__(self, name: str) -> bool:
        return name in self._classes
