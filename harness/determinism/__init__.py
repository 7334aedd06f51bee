"""The determinism suite: the same seeded request must give the same tokens on every replica,
alone or under load, repeated, and after an upgrade (against a golden file)."""

from .compare import Completion, Observation, first_divergence, judge_request
from .corpus import BUILTIN, CorpusError, CorpusRequest, builtin_corpus, load_corpus
from .golden import GoldenLine, golden_line, load_golden
from .suite import SuiteOptions, TargetUnreachable, describe_divergence, run_suite

__all__ = [
    "BUILTIN",
    "Completion",
    "CorpusError",
    "CorpusRequest",
    "GoldenLine",
    "Observation",
    "SuiteOptions",
    "TargetUnreachable",
    "builtin_corpus",
    "describe_divergence",
    "first_divergence",
    "golden_line",
    "judge_request",
    "load_corpus",
    "load_golden",
    "run_suite",
]
