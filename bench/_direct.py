"""Direct warm `Pipeline.run` timings in a process of its own, for bench/runs.py's P4.

Reads one JSON line ``{"spec": ..., "inputs": ...}``, builds and warms the pipeline, answers ``@ready``,
then for every further line runs the pipeline once and answers ``@<seconds>``. Protocol lines start with
``@`` so library chatter on stdout cannot be mistaken for them.
"""

from __future__ import annotations

import json
import sys
import time

from workflows.validation import build_pipeline
from workflows.execute import run_pipeline
from workflows.spec import spec_from_dict


def main() -> None:
    job = json.loads(sys.stdin.readline())
    spec = spec_from_dict(job["spec"])
    pipeline = build_pipeline(spec)
    pipeline.warm_up()
    run_pipeline(spec, pipeline, job["inputs"])
    print("@ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        run_pipeline(spec, pipeline, job["inputs"])
        print(f"@{time.perf_counter() - start}", flush=True)


if __name__ == "__main__":
    main()
