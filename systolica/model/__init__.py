"""NumPy golden models, written from the spec (SPEC.md, docs/), never from the RTL.

Pure NumPy: nothing here imports ``systolica.hdl`` or ``systolica.testbench``. The simulation
testbenches check the gateware against these models, and the runtime runs programs on them.

- :mod:`.reference`: arithmetic (wrapping accumulation, matmul, requantisation), PSUM, SBUF.
- :mod:`.dma`: DMA descriptors, their checks and the copies they make.
- :mod:`.tile`: the instruction-level tile model (runs ISA programs; docs/isa.md).
- :mod:`.checks`: what it finds that hardware cannot: data races, deadlocks.
- :mod:`.programs`: a hand-scheduled double-buffered GEMM program; :mod:`.random_programs`:
  random race-free programs.
"""
