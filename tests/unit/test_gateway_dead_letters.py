"""The dead-letter gauge of /metrics: one reading of RabbitMQ per cache period, at most."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.metrics import DEAD_LETTERS_KEY, DeadLetterCollector


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Broker:
    """Counts as RabbitMQ would answer them; ``down`` makes the reading fail."""

    def __init__(self) -> None:
        self.waiting = {"email": 2, "mesh.mirror": 0}
        self.readings = 0
        self.down = False

    def counts(self) -> Mapping[str, int]:
        self.readings += 1
        if self.down:
            raise ConnectionRefusedError("broker down")
        return dict(self.waiting)


def samples(collector: DeadLetterCollector) -> dict[str, float]:
    return {s.labels["queue"]: s.value for f in collector.collect() for s in f.samples}


def test_depths_are_read_once_per_cache_period() -> None:
    broker, clock = Broker(), Clock()
    collector = DeadLetterCollector(broker.counts, ttl=5, clock=clock)
    assert samples(collector) == {"email": 2, "mesh.mirror": 0}
    broker.waiting["email"] = 3
    clock.now += 4.9
    assert samples(collector)["email"] == 2  # cached
    clock.now += 0.1
    assert samples(collector)["email"] == 3
    assert broker.readings == 2


def test_a_broker_that_does_not_answer_shows_no_gauge_and_is_not_asked_every_scrape() -> None:
    broker, clock = Broker(), Clock()
    broker.down = True
    collector = DeadLetterCollector(broker.counts, ttl=5, clock=clock)
    assert samples(collector) == {}
    assert samples(collector) == {}
    assert broker.readings == 1
    broker.down = False
    clock.now += 5
    assert samples(collector) == {"email": 2, "mesh.mirror": 0}


def test_metrics_shows_the_gauge_the_dashboard_reads(app, client) -> None:
    broker = Broker()
    app.extensions[DEAD_LETTERS_KEY] = DeadLetterCollector(broker.counts, ttl=5)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'mesh_dead_letters{queue="email"} 2.0' in text
    assert 'mesh_dead_letters{queue="mesh.mirror"} 0.0' in text


def test_without_a_broker_metrics_still_answers(client) -> None:
    response = client.get("/metrics")  # the test config points at a port nothing listens on
    assert response.status_code == 200
    assert "mesh_dead_letters" not in response.get_data(as_text=True)
