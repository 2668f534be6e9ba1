"""override_settings(ASYNCJOBS=...) takes effect: the app is rebuilt from the new
settings and rebuilt again when they are restored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import override_settings

from asyncjobs import app as app_state
from asyncjobs import current_app, current_config
from asyncjobs.django import conf
from asyncjobs.django.errors import AsyncJobsImproperlyConfigured
from tests.testapp import tasks


@pytest.fixture(autouse=True)
def configured_from_settings() -> Iterator[None]:
    """The app of the suite's settings, whatever earlier tests left current."""
    previous = app_state._current
    conf.setup()
    yield
    app_state.restore(previous)


def test_override_settings_rebuilds_the_app_and_restores_it() -> None:
    before = current_app()
    changed = {**settings.ASYNCJOBS, "QUEUES": ["default", "other", "extra"], "MAX_ATTEMPTS": 7}
    with override_settings(ASYNCJOBS=changed):
        assert current_app() is not before
        assert current_config().queues == ("default", "other", "extra")
        assert current_config().max_attempts == 7
    assert current_config().queues == before.config.queues
    assert current_config().max_attempts == before.config.max_attempts


def test_settings_that_do_not_work_are_what_a_send_raises() -> None:
    bad = {"BROKER_URL": "redis://h/0", "MAX_DELIVERIES": 0}
    with (
        override_settings(ASYNCJOBS=bad),
        pytest.raises(AsyncJobsImproperlyConfigured, match="MAX_DELIVERIES"),
    ):
        tasks.add.kiq_sync(1, 2)
    assert current_config().max_deliveries >= 1  # good again
