"""RabbitMQ transport (on taskiq-aio-pika): quorum queues with confirms, per-delay TTL
queues, dead-letter queues, inspection."""
