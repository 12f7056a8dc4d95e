"""Transaction contracts, sealed and signed by the units' representatives."""
