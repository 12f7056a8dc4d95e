"""What supervisors see: anomaly flags, searches over the records, the evidence package."""
