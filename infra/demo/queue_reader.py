"""Reads a demo subscriber queue as fast as it fills, for `make notifications` and `make alerts`.

Several pollers (threads) each receive up to 10 messages per call with long polling, hand them to one
handler, then pass them to a deleter thread (one DeleteMessageBatch) and receive again at once: a poller
waits one round trip per batch, not two, which is what bounds the rate when the endpoint is loaded.
Every message is counted (received, handled, deleted), so a stop (Ctrl-C, --max, --seconds, a queue
quiet for a while) waits for the deletes in flight and ends with exact totals, and a message is never
deleted unseen. The lines go to a FeedPrinter: buffered writes, every line while the
rate is low and, above --lines-per-s, the rest counted in one summary line a second (or 1 in N with
--sample N, which it says), so printing never slows the reading down.
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, TextIO

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

MAX_PER_CALL = 10          # SQS's limit for ReceiveMessage and DeleteMessageBatch
# A poller reads 10 per round trip (its deletes go to a deleter meanwhile). In a session at 1,000 positions/s
# the endpoint answers in 100-200 ms, so 4 pollers waiting for their own deletes read ~110/s of the ~330/s the
# demo queue gets (soak, 2026-12-07). 8 pollers and 8 deleters: AwsClients gives SQS clients a pool for them.
DEFAULT_POLLERS = 8
LONG_POLL_S = 5            # a stop waits at most this long for the receives in flight (then handles them)
QUIET_POLL_S = 1           # long poll while watching for a quiet queue (quiet_s): a stop comes within a second
# After a receive that came back short of 10 (the queue had no more), the poller waits this long before the
# next: a steady feed is then read in full batches instead of a few messages per call (each call costs the
# printer ~0.5 ms of CPU in botocore, and the endpoint as much), for at most this much more latency.
PARTIAL_PAUSE_S = 0.2
DEFAULT_LINES_PER_S = 100  # lines a person (or `make logs`) can follow; the rest go into the summary line
_DELETE_ATTEMPTS = 3
_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


@dataclass
class Totals:
    received: int = 0
    handled: int = 0        # passed to the handler (shown, left out of the lines, or of a type not asked for)
    deleted: int = 0
    not_deleted: int = 0    # still in the queue after the delete attempts: delivered again later
    call_errors: int = 0    # receive/delete calls that failed and were retried
    receive_calls: int = 0


class QueueReader:
    """`QueueReader(sqs, url, handle).run()` reads until stopped and returns the Totals.

    ``handle(bodies)`` gets each received batch's bodies (one call at a time, in receive order) and
    returns how many of them count toward ``max_messages`` (those it showed); it runs before the batch
    is deleted, so a message is deleted only once the handler has it.
    """

    def __init__(self, sqs, queue_url: str, handle: Callable[[list[str]], int], *, pollers: int = DEFAULT_POLLERS,
                 max_messages: int | None = None, seconds: float | None = None, quiet_s: float | None = None,
                 long_poll_s: int = LONG_POLL_S, partial_pause_s: float = PARTIAL_PAUSE_S,
                 tick: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if pollers < 1:
            raise ValueError(f"pollers must be >= 1, not {pollers}")
        self._sqs, self._url, self._handle = sqs, queue_url, handle
        self._pollers, self._max, self._seconds, self._quiet_s = pollers, max_messages, seconds, quiet_s
        self._long_poll_s = min(long_poll_s, QUIET_POLL_S) if quiet_s is not None else long_poll_s
        self._tick, self._clock, self._partial_pause_s = tick, clock, partial_pause_s
        self.totals = Totals()
        self._lock = threading.Lock()          # totals, budget, last message time
        self._handle_lock = threading.Lock()   # one handler call at a time
        self._stop = threading.Event()
        # Deletes run beside the receives; at most one batch per poller waits for a deleter, so a slow
        # delete path slows the pollers down instead of piling up handled messages.
        self._deleter = ThreadPoolExecutor(max_workers=pollers, thread_name_prefix="sqs-deleter")
        self._delete_slots = threading.BoundedSemaphore(2 * pollers)
        self._accepted = 0
        self._reserved = 0
        self._fatal: BaseException | None = None
        self._warned = False
        self.interrupted = False
        self.abandoned = 0   # pollers still in a call when a second Ctrl-C ended the wait

    @property
    def accepted(self) -> int:
        """Messages the handler counted (shown), over the whole read."""
        return self._accepted

    # -- the budget: never receive more than max_messages can take ------------------------------------
    def _reserve(self) -> int:
        with self._lock:
            if self._max is None:
                return MAX_PER_CALL
            want = min(MAX_PER_CALL, self._max - self._accepted - self._reserved)
            if want <= 0:
                if self._accepted >= self._max:
                    self._stop.set()
                return 0
            self._reserved += want
            return want

    def _settle(self, reserved: int, accepted: int) -> None:
        with self._lock:
            self._accepted += accepted
            if self._max is not None:
                self._reserved -= reserved
                if self._accepted >= self._max:
                    self._stop.set()

    # -- one poller -----------------------------------------------------------------------------------
    def _wait_s(self, deadline: float | None) -> int:
        if deadline is None:
            return self._long_poll_s
        return max(0, min(self._long_poll_s, int(deadline - self._clock())))

    def _poll(self, deadline: float | None) -> None:
        failures = 0
        while not self._stop.is_set():
            want = self._reserve()
            if want == 0:
                self._stop.wait(0.05)
                continue
            try:
                # No message attributes asked for: the printers show the body, and each attribute costs
                # the endpoint an MD5 and the client parsing.
                messages = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=want,
                                                     WaitTimeSeconds=self._wait_s(deadline)).get("Messages", [])
            except (ClientError, BotoCoreError) as exc:
                self._settle(want, 0)
                if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in _MISSING_QUEUE:
                    self._fatal = exc
                    self._stop.set()
                    return
                failures += 1
                self._count_error(exc)
                self._stop.wait(min(5.0, 0.2 * 2 ** min(failures, 5)))
                continue
            failures = 0
            accepted = 0
            with self._lock:
                self.totals.receive_calls += 1
                if messages:
                    self.totals.received += len(messages)
                    self._last_message = self._clock()
            if messages:
                with self._handle_lock:
                    try:
                        accepted = self._handle([m.get("Body", "") for m in messages])
                    finally:
                        self.totals.handled += len(messages)
            self._settle(want, accepted)
            if messages:
                self._delete_slots.acquire()
                self._deleter.submit(self._delete_then_release, messages)
                if len(messages) < want and self._partial_pause_s:
                    self._stop.wait(self._partial_pause_s)

    def _delete_then_release(self, messages: list[dict]) -> None:
        try:
            self._delete(messages)
        except Exception:   # counted as not deleted: the messages come back after their visibility timeout
            logger.exception("deleting %d messages failed", len(messages))
            with self._lock:
                self.totals.not_deleted += len(messages)
        finally:
            self._delete_slots.release()

    def _delete(self, messages: list[dict]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        for attempt in range(1, _DELETE_ATTEMPTS + 1):
            try:
                response = self._sqs.delete_message_batch(QueueUrl=self._url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                self._count_error(exc)
                time.sleep(0.2 * attempt)
                continue
            done = len(response.get("Successful", []))
            retry = {f.get("Id") for f in response.get("Failed", []) if not f.get("SenderFault")}
            final = len(response.get("Failed", [])) - len(retry)
            with self._lock:
                self.totals.deleted += done
                self.totals.not_deleted += final
            entries = [e for e in entries if e["Id"] in retry]
            if not entries:
                return
        with self._lock:
            self.totals.not_deleted += len(entries)

    def _count_error(self, exc: BaseException) -> None:
        with self._lock:
            self.totals.call_errors += 1
            first, self._warned = not self._warned, True
        (logger.warning if first else logger.debug)("SQS call failed, retrying: %s", exc)

    # -- the whole read -------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self) -> Totals:
        started = self._last_message = self._clock()
        deadline = None if self._seconds is None else started + self._seconds
        threads = [threading.Thread(target=self._poll, args=(deadline,), name=f"sqs-poller-{i}", daemon=True)
                   for i in range(self._pollers)]
        for thread in threads:
            thread.start()
        try:
            while any(t.is_alive() for t in threads):
                now = self._clock()
                if deadline is not None and now >= deadline:
                    self._stop.set()
                if self._quiet_s is not None and now - self._last_message >= self._quiet_s:
                    self._stop.set()
                self._tick()
                for thread in threads:
                    thread.join(0.2 / len(threads))
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            self._stop.set()
            self._join(threads)
            self._deleter.shutdown(wait=True)   # the deletes of what was handled (a few round trips)
            self._tick()
        if self._fatal is not None:
            raise self._fatal
        return self.totals

    def _join(self, threads: list[threading.Thread]) -> None:
        """Wait for the receives in flight: what they bring is handled and deleted, so nothing is left
        invisible in the queue. A second Ctrl-C stops waiting (those messages come back later)."""
        try:
            for thread in threads:
                thread.join(self._long_poll_s + 20)
        except KeyboardInterrupt:
            pass
        self.abandoned = sum(t.is_alive() for t in threads)


class FeedPrinter:
    """Writes a feed's lines without slowing its reader down: lines are buffered and written together
    at each tick (the reader ticks five times a second); while more than ``lines_per_s`` arrive in a
    second the rest are counted, not formatted, and one summary line says so at the end of that second.
    ``sample=N`` writes 1 line in N instead, with a summary line every second that says it samples.
    ``lines_per_s=None`` writes every line."""

    def __init__(self, noun: str = "message", *, lines_per_s: int | None = DEFAULT_LINES_PER_S,
                 sample: int | None = None, out: TextIO | None = None, note: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        if sample is not None and sample < 1:
            raise ValueError(f"sample must be >= 1, not {sample}")
        if lines_per_s is not None and lines_per_s < 0:
            raise ValueError(f"lines_per_s must be >= 0, not {lines_per_s}")
        self.noun, self.lines_per_s, self.sample = noun, lines_per_s, sample
        self._out = out
        self._note = note or (lambda text: print(f"==> {text}", file=sys.stderr, flush=True))
        self._clock, self._wall = clock, wall
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._second: float | None = None   # start of the current second
        self._seen = 0                      # items of the current second
        self._shown_now = 0                 # lines written of the current second
        self.seen = 0
        self.shown = 0

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout  # looked up late: a redirect (or pytest's capsys) replaces it

    def describe(self) -> str:
        if self.sample is not None:
            return f"sampling: 1 {self.noun} in {self.sample} is shown, with a count every second"
        if self.lines_per_s is None:
            return f"every {self.noun} is shown"
        if self.lines_per_s == 0:
            return f"a count of {self.noun}s every second, no {self.noun} shown (--lines-per-s 0)"
        return (f"every {self.noun} is shown up to {self.lines_per_s} a second; above that rate the rest are "
                f"counted in a line each second (--all shows every one, --sample N 1 in N)")

    def show(self, items: Iterable, render: Callable[[object], str] = str) -> int:
        """Take a batch; returns how many of its items were written (rendered only if written)."""
        written = 0
        with self._lock:
            now = self._clock()
            for item in items:
                self._roll(now)
                self._seen += 1
                self.seen += 1
                if self.sample is not None:
                    keep = self.seen % self.sample == 1 or self.sample == 1
                else:
                    keep = self.lines_per_s is None or self._shown_now < self.lines_per_s
                if keep:
                    self._pending.append(render(item))
                    self._shown_now += 1
                    self.shown += 1
                    written += 1
            if len(self._pending) >= 1000:
                self._flush()
        return written

    def tick(self) -> None:
        """Write what is buffered; close the second that has passed (its summary line, if due)."""
        with self._lock:
            self._roll(self._clock())
            self._flush()

    def _roll(self, now: float) -> None:
        if self._second is None:
            self._second = now
        elif now - self._second >= 1.0:
            self._summary(now - self._second)
            self._second, self._seen, self._shown_now = now, 0, 0

    def _summary(self, span: float) -> None:
        hidden = self._seen - self._shown_now
        if not self._seen or (self.sample is None and not hidden):
            return
        self._flush()
        stamp = time.strftime("%H:%M:%S", time.localtime(self._wall()))
        rate = self._seen / span if span > 0 else float(self._seen)
        how = f"sampling 1 in {self.sample}: " if self.sample is not None else ""
        self._note(f"{stamp} {how}{self._seen} {self.noun}(s) in {span:.1f} s ({rate:.0f}/s), {self._shown_now} "
                   f"shown, {hidden} not shown; {self.seen} received in all")

    def _flush(self) -> None:
        if self._pending:
            self.out.write("\n".join(self._pending) + "\n")
            self._pending.clear()
            self.out.flush()

    def close(self) -> None:
        with self._lock:
            if self._second is not None:
                self._summary(self._clock() - self._second)
                self._second, self._seen, self._shown_now = None, 0, 0
            self._flush()


def totals_line(noun: str, totals: Totals, shown: int | None, interrupted: bool = False, abandoned: int = 0,
                shown_note: str = "") -> str:
    """The last line a printer writes. It starts with "<received> <noun>(s) received": `make soak` reads
    the notification printer's count from it (plain digits, no separators)."""
    parts = [f"{totals.received} {noun}(s) received", f"{totals.deleted} deleted"]
    if shown is not None:
        parts.append(f"{shown} shown{shown_note}")
    line = ", ".join(parts)
    if totals.not_deleted:
        line += (f"; {totals.not_deleted} could not be deleted and will be delivered again after the queue's "
                 "visibility timeout")
    if totals.call_errors:
        line += f"; {totals.call_errors} SQS call(s) failed and were retried"
    if abandoned:
        line += f"; stopped without waiting for {abandoned} receive(s) in flight (their messages come back later)"
    return line + (" (stopped by Ctrl-C)" if interrupted else "")


# --- the printers' shared flags --------------------------------------------------------------------------

def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is not >= {minimum}")
        return value
    return parse


def add_reader_flags(parser: argparse.ArgumentParser) -> None:
    """--pollers, and how lines are printed (--lines-per-s N | --all | --sample N)."""
    parser.add_argument("--pollers", type=_at_least(1), default=DEFAULT_POLLERS,
                        help=f"concurrent receivers (threads; default {DEFAULT_POLLERS})")
    lines = parser.add_mutually_exclusive_group()
    lines.add_argument("--lines-per-s", type=_at_least(0), default=DEFAULT_LINES_PER_S, metavar="N",
                       help=f"show at most N messages a second and count the rest in a line each second "
                            f"(default {DEFAULT_LINES_PER_S}; 0: only the counts)")
    lines.add_argument("--all", action="store_true", help="show every message, whatever the rate")
    lines.add_argument("--sample", type=_at_least(1), default=None, metavar="N",
                       help="show 1 message in N, with a count every second")


def feed_from_args(noun: str, args: argparse.Namespace) -> FeedPrinter:
    if args.sample is not None:
        return FeedPrinter(noun, lines_per_s=None, sample=args.sample)
    return FeedPrinter(noun, lines_per_s=None if args.all else args.lines_per_s)
