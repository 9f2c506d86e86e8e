"""Business logic: verb-named functions with explicit arguments (``now`` is passed in)."""
