"""A method deep in a subpackage: ``bar.boo.loo.Loo.dec``."""


class Loo:
    """Its staticmethod ``dec`` is reachable as ``bar.boo.loo.Loo.dec``."""

    @staticmethod
    def dec(a: float, b: float) -> float:
        """Return ``a - b``."""
        return a - b
