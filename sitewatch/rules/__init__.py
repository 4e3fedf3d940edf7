"""The streaming evaluator's rule families, each a small set of numpy state arrays and functions
over whole batches. `engine.Evaluator` routes batches to them and `tracker.AlertTracker` turns
their signals into alert changes (one open alert per source and rule)."""
