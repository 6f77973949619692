"""The Kubernetes operator (kopf), formerly ``extschema.handlers``; the only package importing kopf/aiohttp.

Importing it registers the handlers with kopf (``extschema run`` does). One concern per module:
``handlers`` (the kopf handlers only), ``settings``, ``runtime`` (state in kopf's memo), ``kubeapi``,
``targets``, ``claims``, ``recheck``, ``status`` and ``database`` (blocking work in threads).
"""

from __future__ import annotations

from extschema.controller import handlers
from extschema.controller.runtime import Runtime, memo_for
from extschema.controller.settings import Settings

__all__ = ["Runtime", "Settings", "handlers", "memo_for"]
