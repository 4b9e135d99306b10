"""The exception that ends a batch early, raised by the batch processor and by the on-failure delivery.

Its own module so both can import it without importing each other.
"""
from __future__ import annotations


class BatchAborted(Exception):
    """Shutdown or revocation interrupted the batch: nothing after its last handled record may be committed."""
