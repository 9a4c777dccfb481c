"""Hardware cost models: counts, measured latency, lookup tables, learned latency, roofline bounds, energy;
number formats, fake quantization and Hessian-aware precision allocation (docs/precision.md).

The one interface is `CostModel(space, device=..., latency=..., energy=...)(arch_or_module) -> dict[str, float]`
(see `nas.hardware.cost`); docs/hardware.md walks through every part.
"""

from nas.hardware.cost import CostModel, CostReport, MeasuredLatency, cost, qualified_name, resolve_device
from nas.counts import LeafCount, count, count_bytes, count_flops, count_leaves, count_params
from nas.hardware.devices import DeviceProfile, list_devices, load_device
from nas.hardware.energy import AnalyticEnergy, EnergyMeasurement, NvmlMeter, RaplMeter, analytic_energy, measure_energy
from nas.hardware.latency import STATISTICS, LatencyMeasurement, measure_latencies, measure_latency, pinned_threads
from nas.hardware.layers import LayerAdapter, LayerConfig, check_decomposition
from nas.hardware.learned import (Calibration, DegenerateFitError, LatencyFitWarning, LayerLatencyModel,
                                  LayerwiseLatency, fit_calibration, learned_latency, lut_latency)
from nas.hardware.e2e_latency import EndToEndLatency, cost_features, load_samples
from nas.hardware.lut import LatencyTable, build_table
from nas.hardware.roofline import Roofline, roofline
from nas.hardware.accelerator import (AcceleratorReport, Gemm, HeterogeneousAccelerator, LayerCost, NetworkCost,
                                      SubAccelerator, Technology, Template, TEMPLATES, as_workloads, conv_gemm,
                                      linear_gemm, map_gemm, module_workloads)
from nas.hardware.coexplore import CoExploration, GraphData, nasbench_graph_workloads
from nas.hardware.quantization import (FORMAT_NAMES, FORMATS, FakeQuant, ModelSize, NumberFormat, PrecisionCost,
                                       dynamic_int8, fake_quant, get_format, model_size, model_size_bits,
                                       precision_cost, quantize, quantize_model, state_dict_bytes)
from nas.hardware.packing import ExportedSize, PackedConv, PackedLinear, exported_size, pack_model
from nas.hardware.hawq import (Allocation, allocate, hessian_top_eigenvalue, hessian_trace, hessian_vector_product,
                               layer_sensitivity)
from nas.hardware.precision_space import PrecisionMLP, PrecisionMLPConfig, PrecisionMLPSpace, PrecisionMLPSupernet
from nas.hardware.mpc import MPCLatency, MPCReport, NetworkProfile, PROFILES as MPC_PROFILES, Protocol as MPCProtocol

_LAZY = {"adapter_for", "make_space"}  # they import the concrete spaces: loaded on first use only


def __getattr__(name: str):  # noqa: ANN202
    if name in _LAZY:
        from nas.hardware import adapters

        return getattr(adapters, name)
    raise AttributeError(f"module 'nas.hardware' has no attribute {name!r}")

__all__ = ["MPCLatency", "MPCReport", "MPC_PROFILES", "MPCProtocol", "NetworkProfile",
           "AcceleratorReport", "CoExploration", "Gemm", "GraphData", "HeterogeneousAccelerator", "LayerCost",
           "NetworkCost", "SubAccelerator", "TEMPLATES", "Technology", "Template", "as_workloads", "conv_gemm",
           "linear_gemm", "map_gemm", "module_workloads", "nasbench_graph_workloads",
           "FORMATS", "FORMAT_NAMES", "Allocation", "ExportedSize", "FakeQuant", "ModelSize", "NumberFormat",
           "PackedConv", "PackedLinear", "PrecisionCost", "PrecisionMLP", "PrecisionMLPConfig", "PrecisionMLPSpace",
           "PrecisionMLPSupernet", "allocate", "exported_size", "fake_quant", "get_format", "hessian_top_eigenvalue",
           "hessian_trace", "hessian_vector_product", "layer_sensitivity", "model_size", "model_size_bits",
           "pack_model", "precision_cost", "quantize", "quantize_model", "dynamic_int8", "state_dict_bytes",
           "DegenerateFitError", "EndToEndLatency", "LatencyFitWarning", "cost_features", "load_samples",
           "AnalyticEnergy", "Calibration", "CostModel", "CostReport", "DeviceProfile", "EnergyMeasurement",
           "LatencyMeasurement", "LatencyTable", "LayerAdapter", "LayerConfig", "LayerLatencyModel", "LayerwiseLatency",
           "LeafCount", "MeasuredLatency", "NvmlMeter", "RaplMeter", "Roofline", "adapter_for", "analytic_energy",
           "build_table", "check_decomposition", "cost", "count", "count_bytes", "count_flops", "count_leaves",
           "count_params", "fit_calibration", "learned_latency", "list_devices", "load_device", "lut_latency",
           "make_space", "measure_energy", "measure_latencies", "measure_latency", "pinned_threads", "qualified_name",
           "resolve_device", "roofline", "STATISTICS"]
