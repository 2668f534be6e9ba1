"""A small Django project that uses asyncjobs: what ``make demo`` and the e2e tests run."""
