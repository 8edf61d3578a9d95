"""Generation backends behind one interface: ``Backend.generate(batch) -> completions``."""
