"""What every context shares: domain errors, the audit log, identifiers and money."""
