"""Dramatiq actors of the notifications service: plain functions, registered in services.workers."""

from __future__ import annotations

import logging
import os
import smtplib
import tempfile
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlparse

from pymongo.database import Database

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


def deliver_email(db: Database, settings: Settings, key: str) -> bool:
    """Deliver the e-mail of the notification ``key`` unless already sent; True if sent now."""
    doc = db[COLLECTION].find_one({"key": key})
    if doc is None:
        raise LookupError(f"no notification {key}")
    if doc.get("emailSent") or not doc.get("email"):
        return False
    message = build_message(settings.mail_from, doc["email"], key)
    if settings.smtp_url:
        send_smtp(settings.smtp_url, message)
    else:
        write_eml(settings.mesh_var_dir / "mail", key, message)
    db[COLLECTION].update_one({"_id": doc["_id"]}, {"$set": {"emailSent": True}})
    log.info("e-mail sent", extra={"key": key})
    return True


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


def send_smtp(url: str, message: EmailMessage) -> None:
    """Send over ``smtp://`` or ``smtps://user:pass@host:port``; ``?starttls=1`` upgrades."""
    parts = urlparse(url)
    port = parts.port or (465 if parts.scheme == "smtps" else 25)
    smtp_cls = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    with smtp_cls(parts.hostname or "localhost", port, timeout=30) as smtp:
        if "starttls=1" in (parts.query or ""):
            smtp.starttls()
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(message)
