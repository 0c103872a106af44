"""Model adapter, judge client and cache, eval runner, run files."""
