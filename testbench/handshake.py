"""Small helpers for testbenches and models that handle one stream beat at a time.

``send`` / ``receive`` move one beat through a stream from a testbench; ``wait_for`` ticks until
a condition holds. They loop on ``ctx.tick()`` rather than using ``tick().until()``: a testbench
left inside ``until`` when a model's protocol check (or the watchdog) ends the simulation leaves
an unraisable "aclose()" error behind at garbage collection. ``hold_check`` is the stream rule
(valid held, payload unchanged until ready) for models that sample a channel every cycle.
"""

__all__ = ["send", "receive", "wait_for", "hold_check"]


async def send(ctx, stream, payload):
    """Offer ``payload`` on ``stream`` until it is accepted; returns with valid low again."""
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    while not (await ctx.tick().sample(stream.ready))[2]:
        pass
    ctx.set(stream.valid, 0)


async def receive(ctx, stream):
    """Hold ready until a beat arrives; returns its payload."""
    ctx.set(stream.ready, 1)
    while True:
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if valid:
            break
    ctx.set(stream.ready, 0)
    return payload


async def wait_for(ctx, predicate):
    """Tick at least once, then until ``predicate(ctx)`` holds."""
    await ctx.tick()
    while not predicate(ctx):
        await ctx.tick()


def hold_check(pending, valid, ready, payload, fail):
    """One cycle of the stream rule, from values sampled at a clock edge: ``pending`` is what the
    previous call returned. Calls ``fail(message)`` if a payload offered earlier was withdrawn or
    changed before acceptance; returns the payload now waiting for ready (or None)."""
    if pending is not None:
        if not valid:
            fail("valid dropped before ready")
        elif payload != pending:
            fail(f"payload changed while waiting for ready: {pending} -> {payload}")
    return payload if (valid and not ready) else None
