"""The demo printers' reader and line writer (infra/demo/queue_reader.py), without a server: an
in-memory queue with SQS's receive/delete semantics, and a clock the tests move."""
from __future__ import annotations

import dataclasses
import io
import re
import threading
import time

import pytest
from botocore.exceptions import ClientError

from infra.demo.queue_reader import FeedPrinter, QueueReader, Totals, totals_line


class MemoryQueue:
    """ReceiveMessage (up to 10, invisible once received) and DeleteMessageBatch, thread-safe;
    `fail_deletes` maps a body to the failures its deletes get first ("retry" or "final")."""

    def __init__(self, bodies, fail_deletes=None, missing=False):
        self._lock = threading.Lock()
        self.visible = list(bodies)
        self.in_flight: dict[str, str] = {}
        self.deleted: list[str] = []
        self.fail_deletes = {k: list(v) for k, v in (fail_deletes or {}).items()}
        self.missing = missing
        self.calls = {"receive": 0, "delete": 0}
        self.max_asked = 0

    def receive_message(self, QueueUrl, MaxNumberOfMessages, WaitTimeSeconds, MessageAttributeNames=None):
        if self.missing:
            raise ClientError({"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue", "Message": "gone"}},
                              "ReceiveMessage")
        assert 1 <= MaxNumberOfMessages <= 10
        with self._lock:
            self.calls["receive"] += 1
            self.max_asked = max(self.max_asked, MaxNumberOfMessages)
            taken, self.visible = self.visible[:MaxNumberOfMessages], self.visible[MaxNumberOfMessages:]
        if not taken:  # long polling: an empty queue answers after a wait (kept short here)
            time.sleep(min(WaitTimeSeconds, 0.002))
        with self._lock:
            self.calls["with messages"] = self.calls.get("with messages", 0) + bool(taken)
            messages = []
            for body in taken:
                handle = f"rh-{len(self.in_flight)}-{body}"
                self.in_flight[handle] = body
                messages.append({"Body": body, "ReceiptHandle": handle})
        return {"Messages": messages} if messages else {}

    def delete_message_batch(self, QueueUrl, Entries):
        assert 1 <= len(Entries) <= 10
        ok, failed = [], []
        with self._lock:
            self.calls["delete"] += 1
            for entry in Entries:
                body = self.in_flight[entry["ReceiptHandle"]]
                plan = self.fail_deletes.get(body)
                if plan:
                    kind = plan.pop(0)
                    failed.append({"Id": entry["Id"], "Code": "InternalError" if kind == "retry" else "Invalid",
                                   "SenderFault": kind == "final"})
                    continue
                self.deleted.append(self.in_flight.pop(entry["ReceiptHandle"]))
                ok.append({"Id": entry["Id"]})
        return {"Successful": ok, "Failed": failed}


def _bodies(n):
    return [f"m{i:04d}" for i in range(n)]


def test_every_message_is_handed_over_once_and_deleted_by_several_pollers():
    # GIVEN 253 messages in the queue
    queue, got = MemoryQueue(_bodies(253)), []
    # WHEN four pollers read until the queue has been quiet for a moment
    reader = QueueReader(queue, "url", lambda bodies: got.extend(bodies) or len(bodies), pollers=4, quiet_s=0.3)
    totals = reader.run()
    # THEN each was handled once and deleted, 10 per call, and the totals say so
    assert sorted(got) == _bodies(253) and queue.deleted and sorted(queue.deleted) == _bodies(253)
    assert dataclasses.replace(totals, receive_calls=0) == Totals(received=253, handled=253, deleted=253)
    assert queue.max_asked == 10 and queue.calls["delete"] == 26 and not queue.in_flight


def test_max_messages_never_receives_more_than_it_can_hand_over():
    # GIVEN 95 messages and a reader that stops after 30 (four pollers asking at the same time)
    queue, got = MemoryQueue(_bodies(95)), []
    reader = QueueReader(queue, "url", lambda bodies: got.extend(bodies) or len(bodies), pollers=4, max_messages=30)
    # WHEN it runs
    totals = reader.run()
    # THEN exactly 30 were received, shown and deleted; the other 65 were never taken (still visible)
    assert (len(got), totals.received, totals.deleted, reader.accepted) == (30, 30, 30, 30)
    assert len(queue.visible) == 65 and not queue.in_flight


def test_max_counts_what_the_handler_showed_not_what_it_skipped():
    # GIVEN alerts of two types, and a handler that shows only one of them
    queue, shown = MemoryQueue([("E" if i % 3 == 0 else "G") + str(i) for i in range(60)]), []

    def only_e(bodies):
        kept = [b for b in bodies if b.startswith("E")]
        shown.extend(kept)
        return len(kept)
    # WHEN it stops after 10 shown
    totals = QueueReader(queue, "url", only_e, pollers=3, max_messages=10).run()
    # THEN 10 were shown, and everything received (shown or not) was deleted
    assert len(shown) == 10 and totals.deleted == totals.received >= 10


def test_a_delete_that_fails_on_the_service_side_is_retried_and_a_refused_one_is_counted():
    queue = MemoryQueue(_bodies(20), fail_deletes={"m0003": ["retry"], "m0011": ["final"]})
    totals = QueueReader(queue, "url", len, pollers=2, quiet_s=0.3).run()
    # THEN m0003 was deleted on the second attempt; m0011 stays (it will be delivered again) and is counted
    assert "m0003" in queue.deleted and "m0011" not in queue.deleted
    assert (totals.received, totals.deleted, totals.not_deleted) == (20, 19, 1)
    assert "1 could not be deleted and will be delivered again" in totals_line("alert", totals, 20)


class SlowDeletes(MemoryQueue):
    """Each DeleteMessageBatch waits until the poller has received again (or 5 s): a reader that deleted
    before receiving again would wait the whole 5 s each time."""

    def __init__(self, bodies):
        super().__init__(bodies)
        self.received_again_during_delete: list[bool] = []
        self._receives = threading.Semaphore(0)

    def receive_message(self, **kwargs):
        response = super().receive_message(**kwargs)
        self._receives.release()
        return response

    def delete_message_batch(self, QueueUrl, Entries):
        self._receives.acquire()  # this batch's own receive
        self.received_again_during_delete.append(self._receives.acquire(timeout=5))
        self._receives.release()
        return super().delete_message_batch(QueueUrl, Entries)


def test_a_poller_receives_its_next_batch_while_the_last_one_is_being_deleted():
    # GIVEN 30 messages and one poller, each delete waiting for the poller's next receive
    queue, got = SlowDeletes(_bodies(30)), []
    # WHEN it reads until the queue is quiet
    totals = QueueReader(queue, "url", lambda bodies: got.extend(bodies) or len(bodies), pollers=1,
                         quiet_s=0.3, partial_pause_s=0).run()
    # THEN every delete overlapped the next receive, and the stop still waited for every delete
    assert queue.received_again_during_delete and all(queue.received_again_during_delete)
    assert sorted(queue.deleted) == _bodies(30) and totals.deleted == 30 and totals.not_deleted == 0


def test_a_delete_that_raises_is_counted_as_not_deleted_and_reading_goes_on():
    # GIVEN a queue whose first delete raises something no retry expects
    queue, got = MemoryQueue(_bodies(25)), []
    original, calls = queue.delete_message_batch, []

    def delete(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("connection pool broke")
        return original(**kwargs)
    queue.delete_message_batch = delete
    # WHEN it is read
    totals = QueueReader(queue, "url", lambda bodies: got.extend(bodies) or len(bodies), pollers=1,
                         quiet_s=0.3, partial_pause_s=0).run()
    # THEN all 25 were handed over, the 10 of the failed delete are counted as not deleted, the rest deleted
    assert sorted(got) == _bodies(25)
    assert totals.not_deleted == 10 and totals.deleted == 15 and len(queue.deleted) == 15


def test_a_queue_that_does_not_exist_stops_the_reader_with_the_error():
    with pytest.raises(ClientError, match="NonExistentQueue"):
        QueueReader(MemoryQueue([], missing=True), "url", len, pollers=2, seconds=5).run()


def test_the_totals_line_keeps_the_count_the_soak_reads():
    # make soak reads the notification printer's count with this very pattern (infra/soak/run.py)
    line = totals_line("notification", Totals(received=12345, handled=12345, deleted=12345), 300, interrupted=True)
    assert re.findall(r"(\d+) notification\(s\) received", line) == ["12345"]
    assert line == "12345 notification(s) received, 12345 deleted, 300 shown (stopped by Ctrl-C)"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _printer(**kwargs):
    out, notes, clock = io.StringIO(), [], Clock()
    printer = FeedPrinter("notification", out=out, note=notes.append, clock=clock, wall=lambda: 0.0, **kwargs)
    return printer, out, notes, clock


def test_above_the_line_rate_the_rest_are_counted_not_formatted_and_a_line_says_so():
    # GIVEN a printer that shows at most 100 lines a second
    printer, out, notes, clock = _printer(lines_per_s=100)
    rendered = []

    def render(item):
        rendered.append(item)
        return f"line {item}"
    # WHEN 250 arrive within one second, then the second ends
    for start in range(0, 250, 10):
        printer.show(range(start, start + 10), render)
        clock.now += 0.03
    printer.tick()
    assert out.getvalue().splitlines() == [f"line {i}" for i in range(100)] and len(rendered) == 100
    clock.now += 0.5
    printer.tick()
    # THEN one summary line counts the 150 not shown
    assert len(notes) == 1
    assert re.search(r"250 notification\(s\) in 1\.\d s \(\d+/s\), 100 shown, 150 not shown; 250 received in all",
                     notes[0]), notes
    # AND a quiet second shows every line again, with no summary
    printer.show(["a", "b"])
    clock.now += 1.5
    printer.tick()
    printer.close()
    assert out.getvalue().splitlines()[-2:] == ["a", "b"] and len(notes) == 1


def test_sampling_shows_one_in_n_and_says_it_samples():
    printer, out, notes, clock = _printer(lines_per_s=None, sample=10)
    printer.show(range(95))
    clock.now += 1.0
    printer.tick()
    assert out.getvalue().splitlines() == [str(i) for i in range(0, 95, 10)]
    assert notes and "sampling 1 in 10: 95 notification(s)" in notes[0] and "10 shown, 85 not shown" in notes[0]
    assert "sampling" in printer.describe()


def test_all_shows_every_line_and_zero_lines_per_second_only_counts():
    printer, out, notes, clock = _printer(lines_per_s=None)
    printer.show(range(5000))
    printer.close()
    assert len(out.getvalue().splitlines()) == 5000 and notes == []
    counts_only, out, notes, clock = _printer(lines_per_s=0)
    assert counts_only.show(range(40)) == 0
    counts_only.close()
    assert out.getvalue() == "" and "40 notification(s)" in notes[0] and "0 shown, 40 not shown" in notes[0]


def test_after_a_short_batch_a_poller_waits_so_a_steady_feed_is_read_in_full_batches():
    # GIVEN a queue fed 5 messages every 10 ms (500/s) for half a second
    def read(pause_s):
        queue = MemoryQueue([])

        def feed():
            for i in range(50):
                with queue._lock:
                    queue.visible.extend(f"m{i:02d}-{j}" for j in range(5))
                time.sleep(0.01)
        feeder = threading.Thread(target=feed)
        feeder.start()
        totals = QueueReader(queue, "url", len, pollers=1, quiet_s=0.4, partial_pause_s=pause_s).run()
        feeder.join()
        return totals, queue.calls["with messages"]
    # WHEN one poller reads it without, then with, a pause after a short batch
    (eager, eager_calls), (patient, patient_calls) = read(0), read(0.2)
    # THEN both read all 250, the patient one in nearly full batches (~10 a call, not ~5)
    assert eager.received == patient.received == eager.deleted == patient.deleted == 250
    assert patient_calls <= 32 and patient_calls * 1.4 < eager_calls, (patient_calls, eager_calls)
