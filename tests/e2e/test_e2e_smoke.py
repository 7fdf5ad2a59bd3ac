"""The operational endpoints: readiness, metrics, the OpenAPI document."""

from __future__ import annotations

import re

import pytest
import requests

pytestmark = pytest.mark.e2e


def test_ready(mesh):
    resp = requests.get(mesh.url("/ready"), timeout=15)
    assert resp.status_code == 200, resp.text


def test_metrics_exposes_prometheus_text(mesh):
    resp = requests.get(mesh.url("/metrics"), timeout=15)
    assert resp.status_code == 200, resp.text
    assert re.search(r"^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* ", resp.text, re.MULTILINE), resp.text[:500]


def test_openapi_document(mesh):
    resp = requests.get(mesh.url("/api/openapi.json"), timeout=15)
    assert resp.status_code == 200, resp.text
    assert "openapi" in resp.json()
