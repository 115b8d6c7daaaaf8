"""``skillrun conformance URL``: the contract as a test users run against their deployment.

- ``sse``: the SSE parser and the stream rules, each with a stable id (``RULES``);
- ``schemas``: validators built from the served spec (every event against its schema);
- ``fuzz``: schemathesis over the served spec, with the stream rules as a check;
- ``behaviours``: what a generator cannot find (resume, incremental delivery, viewers,
  cancel, owner isolation, rate-limit headers);
- ``report``: a rich summary for people, JUnit XML and the exit code for CI.

The suite's tests use the same modules, so a rule is one implementation and one id.
"""

from .report import Result, exit_code, print_summary, write_junit
from .run import Options, run
from .sse import RULES, RuleViolation

__all__ = ["RULES", "Options", "Result", "RuleViolation", "exit_code", "print_summary", "run", "write_junit"]
