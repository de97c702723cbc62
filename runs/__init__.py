"""The run lifecycle: every run decision, the trace, worker liveness."""
