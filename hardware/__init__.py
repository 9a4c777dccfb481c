"""Hardware cost models: counts (params, FLOPs), and (in later modules) latency, lookup tables, energy."""
