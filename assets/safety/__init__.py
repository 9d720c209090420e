"""Safety evaluations of the o1 system card over the facts world (the science; Dagster wiring comes later)."""
