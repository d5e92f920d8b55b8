"""Graph nodes: thin adapters around real libraries, one job each."""
