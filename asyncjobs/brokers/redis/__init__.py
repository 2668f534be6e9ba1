"""Redis Streams transport (on taskiq-redis): the broker, its deliveries, leases, delays,
dead letters, inspection and the Redis result store."""
