"""`streamscore bench`: throughput and scoring benchmarks (figures go to the README)."""
