"""The run lifecycle: states, transitions, claim, lease and retry; the trace; worker liveness."""
