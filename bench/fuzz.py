"""#16: schemathesis over the whole HTTP API of a real `stackyard web` + worker (Redis + PostgreSQL), every
check, without and then with an admin password. Prints, per mode, the operations and requests, the answers
that were 5xx, the checks that failed (each with a request to replay), and the time. Exits 1 on any of them.

The suite runs the same pass with 3 examples per operation (tests/api/test_fuzz_integration.py); this one
runs many more. Run: `make fuzz` or `.venv/bin/python bench/fuzz.py [--examples 100] [--seed N]`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import redis_postgres_stack  # noqa: E402

from tests.support.fuzz import FUZZ_ENV, run_fuzz, seed  # noqa: E402

PASSWORD = "bench-fuzz-admin-password"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=100, help="test cases per operation and phase at most")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis seed (to replay a run)")
    args = parser.parse_args()
    failed = False
    with redis_postgres_stack("fuzz", redis_db=12, extra_env=dict(FUZZ_ENV)) as stack:
        stack.start_web()
        stack.start_worker()
        known = seed(stack)
        for password in (None, PASSWORD):
            if password:
                stack.kill(stack.web, signal.SIGTERM)
                stack.start_web(STACKYARD_ADMIN_PASSWORD=password)
            started = time.monotonic()
            report = run_fuzz(stack, known, max_examples=args.examples, password=password, seed=args.seed,
                              out=stack.root / ("schemathesis-login" if password else "schemathesis-open"))
            print(f"fuzz {'with' if password else 'without'} STACKYARD_ADMIN_PASSWORD, {args.examples} examples "
                  f"per operation ({time.monotonic() - started:.0f} s; reports and web.log under {stack.root})")
            print("    " + report.summary().replace("\n", "\n    "))
            failed = failed or bool(report.failures) or report.responses_5xx > 0 or report.exit_code != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
