"""Notification channels (SMTP, WeCom, DingTalk, SMS gateway, webhook), the outbox and delivery.

A channel turns one notification (Alertmanager's webhook payload, version 4)
into one delivery; :mod:`saltops.notify.worker` retries with backoff from the
persistent outbox and logs every attempt.
"""
