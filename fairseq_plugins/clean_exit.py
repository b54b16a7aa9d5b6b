"""A clean process exit after training: fairseq's data-prefetch threads are stopped before the interpreter ends.

fairseq's ``BufferedIterator`` (``--data-buffer-size`` > 0, the default) fetches batches in a daemon thread,
``BackgroundConsumer``. When training stops before the epoch's end (``--max-update``, ``--stop-time-hours``)
that thread may still be building a batch, and a daemon thread still inside torch's native code while the
interpreter shuts down aborts the process: "terminate called without an active exception", exit status
134, after a training that succeeded. DiffusER's batches (corruption in Python) take long enough to build
that about one run in three ended so.

``install_clean_exit`` cuts each consumer's source off once a stop flag is set (fairseq's own loop then ends
as at the end of an epoch), and registers an exit handler that raises the flag, empties the consumers'
queues (a consumer waiting to put a batch would never look at the flag) and waits until they have stopped.
"""
from __future__ import annotations

import atexit
import queue
import threading
import time

from fairseq.data import iterators

STOPPING = threading.Event()


def _until_stopped(batches):
    """``batches`` until ``STOPPING`` is set (checked between two batches)."""
    for batch in batches:
        if STOPPING.is_set():
            return
        yield batch


_fairseq_consumer_init = iterators.BackgroundConsumer.__init__


def _consumer_init_until_stopped(self, batch_queue, source, max_len, cuda_device):
    """fairseq's ``BackgroundConsumer.__init__`` with its source cut off once ``STOPPING`` is set."""
    _fairseq_consumer_init(self, batch_queue, _until_stopped(source), max_len, cuda_device)


def stop_background_consumers(timeout: float = 30.0) -> list[threading.Thread]:
    """Stop every live ``BackgroundConsumer`` (at most ``timeout`` seconds in all); returns those still alive."""
    STOPPING.set()
    consumers = [thread for thread in threading.enumerate() if isinstance(thread, iterators.BackgroundConsumer)]
    deadline = time.monotonic() + timeout
    for consumer in consumers:
        while consumer.is_alive() and time.monotonic() < deadline:
            try:
                while True:
                    consumer._queue.get_nowait()
            except queue.Empty:
                pass
            consumer.join(0.05)
    return [consumer for consumer in consumers if consumer.is_alive()]


def install_clean_exit() -> None:
    """Patch fairseq's consumer to honour the stop flag and stop the consumers at exit; idempotent."""
    if iterators.BackgroundConsumer.__init__ is not _consumer_init_until_stopped:
        iterators.BackgroundConsumer.__init__ = _consumer_init_until_stopped
        atexit.register(stop_background_consumers)
