"""Dramatiq actors of the notifications service: plain functions, registered in services.workers."""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from dramatiq import Broker
from dramatiq.middleware import Middleware, Retries
from pymongo.database import Database

from contracts.notifications import SEND_EMAIL_ACTOR
from mesh.clients import make_mongo
from mesh.settings import Settings, get_settings
from services.notifications.logic import COLLECTION

log = logging.getLogger(__name__)


@cache
def _db() -> Database:
    settings = get_settings()
    return make_mongo(settings)[settings.mongo_db]


def send_email(key: str) -> None:
    """Send the e-mail of one notification, once; retried by Dramatiq on failure."""
    deliver_email(_db(), get_settings(), key)


class EmailBusy(OSError):
    """Another delivery of the same e-mail holds its lease; retried like any transient failure."""


# Longer than an SMTP exchange can take (its timeout is 30 s): a lease left by a process that
# died mid-send lapses after this, and the e-mail is sent again (at least once, never twice
# while the first attempt may still succeed).
EMAIL_LEASE = timedelta(minutes=2)


def deliver_email(db: Database, settings: Settings, key: str) -> bool:
    """Deliver the e-mail of the notification ``key`` unless already sent; True if sent now.

    Two copies of one task (an event handled twice at once queues it twice) never both send:
    each first claims a lease on the document with a conditional update, and the loser
    raises :class:`EmailBusy`, so it is retried and then finds the e-mail sent.
    """
    doc = db[COLLECTION].find_one({"key": key})
    if doc is None:
        raise LookupError(f"no notification {key}")
    if doc.get("emailSent") or not doc.get("email"):
        return False
    if not claim_lease(db, doc["_id"]):
        raise EmailBusy(f"the e-mail of {key} is being sent by another worker")
    message = build_message(settings.mail_from, doc["email"], key)
    try:
        if settings.smtp_url:
            send_smtp(settings.smtp_url, message, settings.smtp_ca_file)
        else:
            write_eml(settings.mesh_var_dir / "mail", key, message)
    except BaseException:
        # Not sent: the next attempt (a retry, a replay) must not wait out the lease.
        db[COLLECTION].update_one({"_id": doc["_id"]}, {"$set": {"emailLease": None}})
        raise
    sent = {
        "emailSent": True,
        "emailSentAt": datetime.now(UTC),
        "emailFailed": False,
        "emailLease": None,
    }
    db[COLLECTION].update_one({"_id": doc["_id"]}, {"$set": sent})
    log.info("e-mail sent", extra={"key": key})
    return True


def claim_lease(db: Database, doc_id: Any) -> bool:
    """Take the sending lease of one notification's e-mail; False if another holds it."""
    now = datetime.now(UTC)
    free = {"$or": [{"emailLease": None}, {"emailLease": {"$lt": now}}]}
    # The conditions under an explicit $and, beside the _id: the same query for MongoDB, but
    # the embedded server scans the whole collection for a field condition next to an $or
    # (10 ms at 4,000 notifications, growing), and looks the _id up for this form (0.7 ms).
    claimed = db[COLLECTION].update_one(
        {"_id": doc_id, "$and": [{"emailSent": {"$ne": True}}, free]},
        {"$set": {"emailLease": now + EMAIL_LEASE}},
    )
    return claimed.modified_count == 1


def mark_email_failed(db: Database, key: str) -> bool:
    """Record that the e-mail of ``key`` was given up on, unless it was sent; True if marked.

    A replay from the dead-letter queue that then sends it makes it ``sent`` again."""
    doc = db[COLLECTION].find_one({"key": key})
    if doc is None or doc.get("emailSent"):
        return False
    db[COLLECTION].update_one({"_id": doc["_id"]}, {"$set": {"emailFailed": True}})
    log.warning("e-mail given up", extra={"key": key})
    return True


class EmailOutcome(Middleware):
    """Marks a notification's e-mail ``failed`` once Dramatiq gives up on its message.

    Its ``after_process_message`` must run after the Retries middleware's, which fails a
    message whose retries are spent (it then goes to ``email.XQ``): see :func:`add_outcome`.
    """

    def __init__(self, db: Callable[[], Database] = _db) -> None:
        self.db = db

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        if exception is None or message.actor_name != SEND_EMAIL_ACTOR or not message.failed:
            return
        try:
            mark_email_failed(self.db(), str(message.args[0]))
        except Exception:  # the message is dead-lettered all the same; the status stays queued
            log.exception("could not mark the e-mail failed", extra={"args": message.args})


def add_outcome(broker: Broker, db: Callable[[], Database] = _db) -> None:
    """Install :class:`EmailOutcome` so that it sees what Retries decided: Dramatiq calls the
    ``after_*`` hooks in reverse order, so it goes before Retries in the list."""
    broker.add_middleware(EmailOutcome(db), before=Retries)


def build_message(sender: str, email: dict[str, str], key: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email["to"]
    message["Subject"] = email["subject"]
    message["Message-ID"] = f"<{key}@mesh>"
    message.set_content(email["text"])
    return message


def write_eml(folder: Path, key: str, message: EmailMessage) -> Path:
    """Write ``<key>.eml`` atomically: a reader never sees half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{key}.eml"
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(message.as_bytes())
    os.replace(tmp, target)
    return target


def send_smtp(url: str, message: EmailMessage, ca_file: Path | None = None) -> None:
    """Send over ``smtp://`` or ``smtps://user:pass@host:port``; ``?starttls=1`` upgrades.

    TLS always verifies the server's certificate and name, against ``ca_file`` if given."""
    parts = urlparse(url)
    host = parts.hostname or "localhost"
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    with _connect(parts.scheme, host, parts.port, context) as smtp:
        if "starttls=1" in (parts.query or ""):
            smtp.starttls(context=context)
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(message)


def _connect(scheme: str, host: str, port: int | None, context: ssl.SSLContext) -> smtplib.SMTP:
    if scheme == "smtps":
        return smtplib.SMTP_SSL(host, port or 465, timeout=30, context=context)
    return smtplib.SMTP(host, port or 25, timeout=30)
