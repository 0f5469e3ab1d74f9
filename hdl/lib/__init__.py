"""Small gateware pieces every block uses: a typed stream queue, a skid buffer (a registered
stream stage), a round-robin arbiter and sticky error flags. Anything ``amaranth.lib`` or
``amaranth.utils`` already provides is used from there instead (``fifo.SyncFIFO``,
``ceil_log2``, ``bits_for``)."""

from .arbiter import RoundRobinArbiter
from .queue import Queue
from .skid import SkidBuffer
from .sticky import StickyFlags

__all__ = ["Queue", "RoundRobinArbiter", "SkidBuffer", "StickyFlags"]
