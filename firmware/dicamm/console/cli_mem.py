# Console command `mem`: the heap now and its high-water mark since start.
# The mark is the live heap (after a collection) sampled by a small task every
# few seconds of real time and at every `mem` call; it is what the bench reports
# as heap_peak. Importing this module starts the sampler (the console imports it
# from inside the running asyncio loop).
import gc

from dicamm.platform import asyncio

from micropython import const

_PERIOD_MS = const(2000)

_peak = [0, 0]  # [live bytes high-water, samples]
_task = []      # keeps the sampler task referenced


def sample():
    gc.collect()
    a = gc.mem_alloc()
    if a > _peak[0]:
        _peak[0] = a
    _peak[1] += 1
    return a


async def _sampler():
    while True:
        sample()
        await asyncio.sleep_ms(_PERIOD_MS)


def _start():
    try:
        _task.append(asyncio.create_task(_sampler()))
    except Exception:  # no running loop (imported outside the app): on demand only
        pass


def mem_dict():
    alloc = sample()
    free = gc.mem_free()
    return {"alloc": alloc, "free": free, "total": alloc + free, "peak_alloc": _peak[0], "samples": _peak[1]}


def cmd_mem(con, args):
    if args.flags.get("map"):
        # Block by block (T tuple, L list, D dict, S str, A bytearray, B function,
        # h other, = rest of a block, . free): where the holes of a fragmented
        # heap are and what lies between them; then the interned names (never
        # freed: a count growing with uptime is a leak). Printed by MicroPython itself.
        import micropython
        gc.collect()
        micropython.mem_info(1)
        micropython.qstr_info()
        return
    d = mem_dict()
    con.emit(args, d, lambda d: con.write("heap %d of %d bytes used (%d free); high-water %d over %d samples" % (
        d["alloc"], d["total"], d["free"], d["peak_alloc"], d["samples"])))


_start()
