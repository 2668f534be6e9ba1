"""Creates users in a browser test's site, in a process on the site's settings:

    python -m tests.support.site_users '[{"username": ..., "password": ..., "staff": ...,
                                           "superuser": ..., "permissions": ["app.codename"]}]'

A permission that does not exist (yet) is left out, not an error: the console's
permissions come with its model. The last line printed is JSON: per user, the
permissions granted and those missing.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def create(spec: dict[str, Any]) -> dict[str, list[str]]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(
        spec["username"],
        password=spec["password"],
        is_staff=bool(spec.get("staff")),
        is_superuser=bool(spec.get("superuser")),
    )
    granted: list[str] = []
    missing: list[str] = []
    for name in spec.get("permissions", []):
        app_label, _, codename = name.partition(".")
        permission = Permission.objects.filter(
            content_type__app_label=app_label, codename=codename
        ).first()
        if permission is None:
            missing.append(name)
        else:
            user.user_permissions.add(permission)
            granted.append(name)
    return {"granted": granted, "missing": missing}


def main(argv: list[str]) -> int:
    import django

    django.setup()
    specs: list[dict[str, Any]] = json.loads(argv[0])
    print(json.dumps({spec["username"]: create(spec) for spec in specs}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
