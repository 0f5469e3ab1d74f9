"""The systolica compiler: ``C = A @ B`` and int8 layer sequences into tile programs
(docs/compiler.md).

- :mod:`.plan`: the tiling (:class:`GemmPlan`, :func:`plan_gemm`) within the SBUF and PSUM;
- :mod:`.schedule`: plans into one :class:`~systolica.isa.Program` with generated semaphores,
  double buffering and the ACT drain overlapped with compute;
- :mod:`.layers`: the front end (:func:`compile_gemm`, :func:`compile_layers`, :class:`Linear`,
  :class:`Requantize`, :class:`ReLU`) and the DRAM layout (:class:`CompiledProgram`);
- :mod:`.perf`: the analytical performance model (:func:`predict`, :func:`estimate_plan`);
- :mod:`.mesh`: a GEMM split over a chip's mesh (:func:`compile_mesh_gemm`), one program per
  tile, operands forwarded over the NoC; :mod:`.chip_perf`: the chip's performance model.

Imports only config, isa and model (never the runtime, hdl or testbench).
"""

from .layers import (OUT_DTYPES, CompiledProgram, Linear, ReLU, Requantize, compile_gemm,
                     compile_layers, fuse, reference)
from .perf import Costs, Interval, PredictionError, Timeline, estimate_plan, predict
from .plan import Buffer, CompileError, DramMatrix, GemmPlan, plan_gemm
from .schedule import ActSpec, Stage, emit
from .mesh import MeshCompiledProgram, MeshPlan, compile_mesh_gemm, plan_mesh_gemm
from .chip_perf import ChipTimeline, predict_chip

__all__ = ["OUT_DTYPES", "CompiledProgram", "Linear", "ReLU", "Requantize", "compile_gemm",
           "compile_layers", "fuse", "reference", "Costs", "Interval", "PredictionError",
           "Timeline", "estimate_plan", "predict", "Buffer", "CompileError", "DramMatrix",
           "GemmPlan", "plan_gemm", "ActSpec", "Stage", "emit", "MeshCompiledProgram", "MeshPlan",
           "compile_mesh_gemm", "plan_mesh_gemm", "ChipTimeline", "predict_chip"]
