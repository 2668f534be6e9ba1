"""Build the transport a broker URL names, with the result store its settings name."""

from __future__ import annotations

from asyncjobs.brokers.base import ReliableBroker, TransportOptions
from asyncjobs.brokers.errors import ConfigurationError
from asyncjobs.brokers.stores import ResultStoreOptions
from asyncjobs.brokers.transport import transport_for


def build_broker(
    url: str,
    options: TransportOptions,
    *,
    result_backend_url: str | None = None,
    result_ttl_s: int = 86_400,
) -> ReliableBroker:
    """A broker for ``url`` (a scheme of ``brokers.transport.SCHEMES``) whose results go
    to ``result_backend_url`` (none: taskiq's default, which keeps nothing)."""
    broker = transport_for(url).build_broker(url, options)
    if result_backend_url:
        spec = transport_for(result_backend_url, "RESULT_BACKEND_URL")
        if spec.build_result_store is None:
            raise ConfigurationError(
                f"RESULT_BACKEND_URL: {spec.name} stores no results; use a redis:// URL"
            )
        store_options = ResultStoreOptions(
            ttl_s=result_ttl_s, key_prefix=options.key_prefix, retry_for_s=options.lease_timeout_s
        )
        broker.with_result_backend(spec.build_result_store(result_backend_url, store_options))
    return broker
