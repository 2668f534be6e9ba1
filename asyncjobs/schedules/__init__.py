"""Scheduling: schedule sources and exactly-once firing (see the scheduler issue)."""
