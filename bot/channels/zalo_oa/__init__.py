"""Zalo Official Account: a police unit's own OA as the tip line. One module per job:

- client.py: the OpenAPI and OAuth v4 calls over aiohttp;    - pkce.py: the permission address (PKCE);
- tokens.py: the token pair, refreshed under a database lock; - signature.py: the webhook signature;
- events.py: webhook events → Inbound;                        - rendering.py: Reply → OA messages;
- codes.py: Zalo's error codes and what each does;            - channel.py: the channel itself;
- connect.py: `tinbao zalo-oa connect` and `status`.

What Zalo's API does, and which source says so, is in docs/zalo-oa.md.
"""
