"""The shop's tests: `python example/manage.py test example.shop` (no broker needed).

Each test's sends are captured (``CaptureTasks``: ``self.jobs``) and run on the test's
own database connection, so the tasks see rows the test created and never committed.
"""

from __future__ import annotations

from django.test import TestCase, override_settings

from asyncjobs import Reject, current_config
from asyncjobs.django.testing import CaptureTasks
from example.shop.models import Signup, Visit
from example.shop.tasks import compute_score, nightly_report, record_visit, send_welcome_email


class SignupTests(CaptureTasks, TestCase):
    def test_the_sync_view_sends_both_tasks_on_commit_and_they_run(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(
                "/signup/sync", '{"email": "ada@example.org"}', content_type="application/json"
            )
        self.assertEqual(response.status_code, 202)
        signup = Signup.objects.get(email="ada@example.org")
        self.jobs.assert_enqueued(send_welcome_email, args=[signup.pk], queue="emails")
        self.jobs.assert_enqueued(compute_score, args=[signup.pk])

        self.jobs.run_pending()

        signup.refresh_from_db()
        self.assertIsNotNone(signup.welcome_sent_at)
        self.assertEqual(signup.score, len("ada") * 3 + 10)

    def test_a_rolled_back_signup_sends_nothing(self) -> None:
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post("/signup/sync", "{}", content_type="application/json")
        self.assertEqual(response.status_code, 400)
        self.jobs.assert_not_enqueued(send_welcome_email)

    async def test_the_async_view_sends_and_the_tasks_run(self) -> None:
        response = await self.async_client.post(
            "/signup", '{"email": "bob@example.com"}', content_type="application/json"
        )
        self.assertEqual(response.status_code, 202)
        signup = await Signup.objects.aget(email="bob@example.com")
        self.jobs.assert_enqueued(send_welcome_email, args=[signup.pk])

        await self.jobs.arun_pending()

        await signup.arefresh_from_db()
        self.assertIsNotNone(signup.welcome_sent_at)


class TasksSeeTheTestsRows(CaptureTasks, TestCase):
    """Nothing here commits: TestCase rolls each test back."""

    def test_a_sync_task_reads_a_row_the_test_created(self) -> None:
        Signup.objects.create(email="a@example.org")
        handle = nightly_report.kiq_sync()
        self.jobs.run_pending()
        self.assertEqual(self.jobs.result(handle).return_value, 1)

    def test_an_async_task_reads_and_writes_a_row_the_test_created(self) -> None:
        signup = Signup.objects.create(email="carol@example.org")
        handle = compute_score.kiq_sync(signup.pk)
        self.jobs.run_pending()
        signup.refresh_from_db()
        self.assertEqual(signup.score, len("carol") * 3 + 10)
        self.assertEqual(self.jobs.result(handle).return_value, signup.score)

    def test_a_task_exception_reaches_the_test(self) -> None:
        compute_score.kiq_sync(999_999)
        with self.assertRaisesMessage(Reject, "signup 999999 does not exist"):
            self.jobs.run_pending()


class EagerTests(CaptureTasks, TestCase):
    capture_eager = True

    def test_a_sync_view_send_has_run_when_the_response_comes(self) -> None:
        response = self.client.post("/visits/home")
        self.assertEqual(response.status_code, 202)
        self.assertEqual(Visit.objects.filter(page="home").count(), 1)
        self.assertEqual(self.client.get("/visits/home").json()["visits"], 1)
        self.jobs.assert_enqueued(record_visit, args=["home"])


class SettingsTests(CaptureTasks, TestCase):
    @override_settings(
        ASYNCJOBS={"BROKER_URL": "redis://127.0.0.1:6379/0", "QUEUES": ["default", "emails", "x"]}
    )
    def test_override_settings_takes_effect_and_stays_off_the_broker(self) -> None:
        self.assertEqual(current_config().queues, ("default", "emails", "x"))
        self.assertTrue(current_config().broker_url.startswith("memory://"))
        record_visit.kiq_sync("x")
        self.jobs.assert_enqueued(record_visit, args=["x"])
