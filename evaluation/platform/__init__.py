"""Events to the trading platform: webhook subscriptions, deliveries, the archive."""
