"""No detoxification: the baseline every method is compared with."""
from evaluation.detox.base import DetoxMethod, registry


@registry.register
class NoDetox(DetoxMethod):
    name = "none"
    summary = "No detoxification: the baseline every method is compared with"
