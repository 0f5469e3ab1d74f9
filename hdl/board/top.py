"""The board top for an amaranth-boards platform: the board oscillator through a PLL (ECP5
``EHXPLLL``) to ``clock_hz``, a reset held until the PLL locks (plus a power-on count),
synchronised into ``sync``, the UART pins and LEDs around a :class:`BoardSystem`.

LEDs (as many as the board has): 0 heartbeat (about 1 Hz), 1 the host line is active, 2 some
request was refused, 3 some byte outside a frame was skipped.
"""

from amaranth.build import ResourceError
from amaranth.hdl import *
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from .system import BoardSystem


__all__ = ["BoardTop", "ecp5_pll_params"]

#: ECP5 EHXPLLL limits (Lattice TN1263): PFD and VCO ranges, MHz.
_PFD_MHZ = (3.125, 400.0)
_VCO_MHZ = (400.0, 800.0)


def ecp5_pll_params(input_mhz, output_mhz):
    """``(CLKI_DIV, CLKFB_DIV, CLKOP_DIV, achieved_mhz)`` of the EHXPLLL setting closest to
    ``output_mhz``, its VCO nearest mid-range (feedback from CLKOP, as yowasp-ecppll does)."""
    best = None
    for refdiv in range(1, 129):
        pfd = input_mhz / refdiv
        if not _PFD_MHZ[0] <= pfd <= _PFD_MHZ[1]:
            continue
        for fbdiv in range(1, 81):
            out = pfd * fbdiv
            for opdiv in range(1, 129):
                vco = out * opdiv
                if _VCO_MHZ[0] <= vco <= _VCO_MHZ[1]:
                    # closest frequency first, then a VCO near the middle of its range
                    key = (round(abs(out - output_mhz), 9), abs(vco - sum(_VCO_MHZ) / 2))
                    if best is None or key < best[0]:
                        best = (key, refdiv, fbdiv, opdiv, out)
    if best is None or best[0][0] > 0.01 * output_mhz:
        raise ValueError(f"no ECP5 PLL setting makes {output_mhz} MHz from {input_mhz} MHz "
                         f"within 1 %")
    return best[1:]


class BoardTop(Elaboratable):
    def __init__(self, *, config, dram_bytes, clock_hz, baud=115200, timeout_s=0.05):
        self.clock_hz = float(clock_hz)
        self.system = BoardSystem(config=config, dram_bytes=dram_bytes, clock_hz=clock_hz,
                                  baud=baud, timeout_cycles=max(2, int(timeout_s * clock_hz)))
        self.pll = None                 # (CLKI_DIV, CLKFB_DIV, CLKOP_DIV, MHz) once elaborated

    def _clock(self, m, platform):
        clk_in = m.submodules.clk_in = io.Buffer("i", platform.request(platform.default_clk,
                                                                       dir="-"))
        input_hz = platform.default_clk_frequency
        clk, locked = Signal(name="sync_clk"), Signal(name="pll_locked")
        if abs(input_hz - self.clock_hz) < 1:
            m.d.comb += [clk.eq(clk_in.i), locked.eq(1)]
            return clk, locked
        if getattr(platform, "family", None) != "ecp5":
            raise ValueError(f"{type(platform).__name__}: a clock other than the "
                             f"{input_hz / 1e6:g} MHz oscillator needs a PLL; only ECP5 has "
                             f"one here")
        refdiv, fbdiv, opdiv, mhz = ecp5_pll_params(input_hz / 1e6, self.clock_hz / 1e6)
        self.pll = (refdiv, fbdiv, opdiv, mhz)
        m.submodules.pll = Instance(
            "EHXPLLL",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=refdiv, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=opdiv,
            p_CLKOP_CPHASE=opdiv - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=fbdiv,
            a_FREQUENCY_PIN_CLKI=f"{input_hz / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{mhz:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            i_RST=0, i_STDBY=0, i_CLKI=clk_in.i, i_CLKFB=clk, o_CLKOP=clk, o_LOCK=locked,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0,
            i_PLLWAKESYNC=0, i_ENCLKOP=0)
        # No constraint on ``clk`` itself: synthesis renames the net (nextpnr then warns that
        # it does not exist), and nextpnr derives the PLL output's constraint exactly from the
        # oscillator's and the dividers ("Derived frequency constraint of ... for net clk").
        return clk, locked

    def elaborate(self, platform):
        m = Module()
        clk, locked = self._clock(m, platform)
        m.domains.sync = ClockDomain("sync")
        m.domains.por = ClockDomain("por", reset_less=True)
        m.d.comb += [ClockSignal("sync").eq(clk), ClockSignal("por").eq(clk)]
        power_on = Signal(range(1 << 10), init=(1 << 10) - 1)
        with m.If(~locked):
            m.d.por += power_on.eq((1 << 10) - 1)
        with m.Elif(power_on != 0):
            m.d.por += power_on.eq(power_on - 1)
        m.submodules.reset_sync = ResetSynchronizer(power_on != 0, domain="sync")

        system = m.submodules.system = self.system
        uart = platform.request("uart", 0, dir="-")
        rx = m.submodules.uart_rx = io.Buffer("i", uart.rx)
        tx = m.submodules.uart_tx = io.Buffer("o", uart.tx)
        m.d.comb += [system.uart_rx.eq(rx.i), tx.o.eq(system.uart_tx)]

        heartbeat = Signal(range(max(2, int(self.clock_hz))))
        beat = Signal()
        with m.If(heartbeat == 0):
            m.d.sync += [heartbeat.eq(int(self.clock_hz) // 2), beat.eq(~beat)]
        with m.Else():
            m.d.sync += heartbeat.eq(heartbeat - 1)
        lights = [beat, ~system.uart_rx | ~system.uart_tx, system.status[0], system.status[1]]
        for i, value in enumerate(lights):
            try:
                led = m.submodules[f"led{i}"] = io.Buffer("o", platform.request("led", i,
                                                                                dir="-"))
            except ResourceError:
                break
            m.d.comb += led.o.eq(value)
        return m
