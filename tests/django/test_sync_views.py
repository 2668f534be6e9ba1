"""A sync view (Django's test client runs it through the WSGI handler, no event loop):
``kiq_sync`` sends; ``kiq()`` without ``await`` fails the request with the error naming
``kiq_sync`` instead of answering 202 with nothing sent."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from asyncjobs.config import AsyncJobsConfig
from asyncjobs.errors import NoEventLoopError
from tests.support.queued import queued_task_ids

pytestmark = [pytest.mark.redis, pytest.mark.filterwarnings("error::RuntimeWarning")]


@override_settings(ROOT_URLCONF="tests.testapp.urls")
def test_a_sync_view_sends_with_kiq_sync(configured: AsyncJobsConfig) -> None:
    response = Client().post("/sends")
    assert response.status_code == 202
    assert queued_task_ids(configured) == [response.json()["task"]]


@override_settings(ROOT_URLCONF="tests.testapp.urls")
def test_a_sync_view_that_forgot_await_fails_naming_kiq_sync(configured: AsyncJobsConfig) -> None:
    with pytest.raises(NoEventLoopError, match=r"use add\.kiq_sync"):
        Client().post("/forgot-await")
    assert queued_task_ids(configured) == []
