"""fairseq's prefetch threads stop at exit: a consumer building a batch or waiting on a full queue ends
within the handler's timeout, so no daemon thread is left inside torch while the interpreter shuts down."""
from __future__ import annotations

import time

import pytest
from fairseq.data.iterators import BufferedIterator

from fairseq_plugins import clean_exit


@pytest.fixture(autouse=True)
def stop_flag_cleared():
    clean_exit.STOPPING.clear()
    yield
    clean_exit.STOPPING.clear()


class SlowBatches:
    """``count`` batches (their indices), each taking ``seconds`` to build."""

    def __init__(self, count: int, seconds: float):
        self.count, self.seconds = count, seconds

    def __len__(self):
        return self.count

    def __iter__(self):
        for index in range(self.count):
            time.sleep(self.seconds)
            yield index


@pytest.mark.parametrize("buffer_size, seconds", [(1, 0.0), (10, 0.2)])
def test_stopping_ends_a_consumer_that_waits_on_a_full_queue_or_builds_a_batch(buffer_size, seconds):
    batches = BufferedIterator(buffer_size, SlowBatches(1000, seconds))
    assert next(batches) == 0
    time.sleep(0.1)  # a full queue (size 1) or a batch being built
    assert clean_exit.stop_background_consumers(timeout=5.0) == []
    assert not batches._consumer.is_alive()


def test_without_the_flag_a_consumer_delivers_every_batch_then_stops():
    batches = BufferedIterator(2, SlowBatches(5, 0.01))
    assert list(batches) == [0, 1, 2, 3, 4]
    batches._consumer.join(1.0)
    assert not batches._consumer.is_alive()
