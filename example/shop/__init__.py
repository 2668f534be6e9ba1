"""The example app: signups, a welcome email and a score computed in the background."""
