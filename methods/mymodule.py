"""A class whose classmethods and staticmethods are RPC methods (the class itself is not)."""


class MyClass:
    """Reach its methods as ``mymodule.MyClass.<name>``."""

    greeting = "hello"

    @classmethod
    def mymethod(cls, name: str = "world") -> str:
        """Return ``"hello, <name>"`` using a class attribute."""
        return f"{cls.greeting}, {name}"

    @staticmethod
    def double(x: float) -> float:
        """Return ``2 * x``."""
        return 2 * x

    def not_reachable(self) -> str:
        """An instance method: never reachable by RPC."""
        return "instance"
