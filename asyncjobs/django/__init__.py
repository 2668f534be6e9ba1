"""Django adapter for asyncjobs: add ``"asyncjobs.django"`` to ``INSTALLED_APPS``.

The only package that imports Django. See the README's architecture section.
"""
