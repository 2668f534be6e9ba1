"""``memory://``: in-process queues, for tests of user code."""
