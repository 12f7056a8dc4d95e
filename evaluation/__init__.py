"""The domain: centers, staff, experts, projects, draws, tasks, reports, the audit log."""
