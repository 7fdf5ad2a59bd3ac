"""The Qdrant client factory shared by the content service and the content actors."""

from __future__ import annotations

from qdrant_client import QdrantClient

from mesh.settings import Settings


def make_qdrant(settings: Settings) -> QdrantClient:
    """A client of the Qdrant at QDRANT_URL, or of local-mode Qdrant under ``qdrant_path``.

    Local mode (no server: points live in SQLite and in this process's memory) takes an
    exclusive lock on its folder: only ONE process can open it at a time; a second one gets
    ``RuntimeError: Storage folder ... is already accessed by another instance``. Any setup
    where several processes (service workers, actors) reach the vectors needs QDRANT_URL.
    Local mode also scans every point on each query: fine for thousands, not for millions.
    """
    if settings.qdrant_url is not None:
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        # No version probe on construction: building a client must not touch the network.
        return QdrantClient(url=settings.qdrant_url, api_key=api_key, check_compatibility=False)
    settings.qdrant_path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(settings.qdrant_path))
