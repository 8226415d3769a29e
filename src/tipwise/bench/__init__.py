"""Benchmarks (`tipwise bench ...`): learning quality, decision latency, learner throughput, HTTP."""
