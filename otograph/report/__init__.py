"""Reports: tables of groups, parameters, FLOPs and latency."""
