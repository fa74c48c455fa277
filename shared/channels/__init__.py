"""Messaging channels: WeChat Official Accounts, WeChat Customer Service (WeCom) and app webhooks.

Layout (ports and adapters side by side, like shared/model):
- ``base.py``: the ``Channel`` port (verify, acknowledge, parse, collect, send, window) and its values.
- ``wechat_oa.py``, ``wecom_kf.py``, ``webhook.py``: one adapter per kind, each with its admin-API
  ``Fields`` and a ``build`` function.
- ``registry.py``: kind name -> adapter module, imported on first use.
- ``state.py`` / ``dynamodb_state.py``: the small shared state (tokens and their lock, cursors,
  windows, seen message ids, delivery logs) in one place across containers.
- ``tokens.py``, ``windows.py``, ``replies.py``, ``dedupe.py``, ``wechat_crypto.py``, ``platform_api.py``:
  the platform rules the adapters share.

Adding a channel kind (say ``line``): write ``shared/channels/line.py`` with a ``Channel`` subclass
(``kind = "line"``), a pydantic ``Fields`` model of what a tenant configures (credentials as names of
tenant secrets), and ``build(channel_id, fields, secret, state, http)``; add its line to
``registry.KINDS``; test it against a stand-in of the platform in tests/support. Nothing else changes:
the channels function and the generate side only speak to the port.
"""
