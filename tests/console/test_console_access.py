"""Who gets which console page, CSRF on every POST, and a broker that is down: a banner
on the console, and nothing at all on the rest of the admin."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from django.test import Client

from asyncjobs.app import App, restore
from asyncjobs.config import load_config
from asyncjobs.django.console import calls
from tests.console.conftest import client_of, make_user

OVERVIEW = "/admin/asyncjobs/console/"
PAGES = [OVERVIEW, OVERVIEW + "dead-letters/", OVERVIEW + "tasks/", OVERVIEW + "schedules/"]


@pytest.fixture
def down_app() -> Iterator[App]:
    """asyncjobs configured with a Redis nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = load_config({"BROKER_URL": f"redis://:s3cret@127.0.0.1:{port}/0"}, {})
    app = App.from_config(config)
    previous = app.activate()
    yield app
    app.broker.home.stop()
    restore(previous)


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_users_go_to_the_login_page(console_db: None, page: str) -> None:
    response = Client().get(page)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize("page", PAGES)
def test_a_signed_in_user_who_is_not_staff_gets_403(console_db: None, page: str) -> None:
    plain = client_of(make_user("plain", staff=False))
    assert plain.get(page).status_code == 403


@pytest.mark.parametrize("page", PAGES)
def test_staff_without_the_view_permission_gets_403(console_db: None, page: str) -> None:
    staff = client_of(make_user("staff-only"))
    assert staff.get(page).status_code == 403


def test_a_post_without_the_csrf_token_is_refused(console_db: None) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("root", superuser=True))
    response = client.post(OVERVIEW + "dead-letters/purge/", {"queue": "default", "confirm": "yes"})
    assert response.status_code == 403


def test_a_broker_that_is_down_is_a_banner_and_the_admin_goes_on(
    down_app: App, admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    for page in PAGES[:2]:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        assert b'id="asyncjobs-banner"' in response.content
        assert b"s3cret" not in response.content

    # The admin's own pages never reach the broker: make any call fail loudly.
    def no_call(*args: object, **kwargs: object) -> None:
        raise AssertionError("a broker call from a page that is not the console's")

    monkeypatch.setattr(calls, "run", no_call)
    for page in ("/admin/", "/admin/auth/user/"):
        assert admin_client.get(page).status_code == 200, page
    index = admin_client.get("/admin/")
    assert b"/admin/asyncjobs/console/" in index.content  # the console's link, no call
