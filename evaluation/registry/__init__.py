"""Who takes part: centers, staff, experts and their import, units and their representatives."""
