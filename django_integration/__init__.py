"""Django adapter for asyncjobs: add ``"django_integration"`` to ``INSTALLED_APPS``.

The only package that imports Django. See the README's architecture section.
"""
