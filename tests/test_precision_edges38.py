"""Edge cases of packed exports and the precision space (report h38: shared ONNX scales, unpackable formats)."""

import pytest
import torch
from torch import nn

from nas.errors import ConfigError
from nas.hardware import FORMATS, PrecisionMLPConfig, PrecisionMLPSpace, exported_size, model_size, pack_model
from nas.hardware.packing import PackedLinear
from nas.hardware.quantization import NumberFormat


def test_exported_size_counts_a_scale_the_exporter_stored_once_as_shared(tmp_path, one_thread):
    # two fp8 layers whose every row has max |w| = 1 get the same power-of-two scale vector; the TorchScript
    # exporter keeps one initializer for both, so the file honestly holds one scale less than the state_dict
    from nas.export import _onnx

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 4))
    with torch.no_grad():
        for layer in (model[1], model[3]):
            layer.weight.uniform_(-0.5, 0.5)
            layer.weight[:, 0] = 1.0
    formats = {"1": "fp8-e5m2", "3": "fp8-e5m2"}
    packed = pack_model(model, formats).eval()
    state = packed.state_dict()
    assert torch.equal(state["1.scale"], state["3.scale"])
    torch.save(state, tmp_path / "weights.pt")
    x = torch.randn(3, 6)
    info = _onnx(packed, x[:2], tmp_path / "model.onnx", x)
    assert info["checker"] == "passed" and info["onnxruntime_max_abs_diff"] < 1e-5
    measured = exported_size(tmp_path)
    total = model_size(model, formats).total_bits
    assert measured.state_tensor_bits == total
    assert measured.onnx_missing == ()
    assert measured.onnx_shared == {"3.scale": "1.scale"}
    assert measured.onnx_shared_bits == 4 * 32
    assert measured.onnx_parameter_bits == total - 4 * 32              # what the file holds: one scale less
    assert measured.onnx_state_bits == total                           # the state_dict's tensors, shared ones counted


def test_exported_size_still_reports_an_entry_with_no_data_behind_it_as_missing(tmp_path, one_thread):
    from nas.export import _onnx

    model = nn.Sequential(nn.Linear(6, 4))
    packed = pack_model(model, {"0": "int8"}).eval()
    state = dict(packed.state_dict())
    state["extra"] = torch.ones(3)                                      # nothing in the graph stands for it
    torch.save(state, tmp_path / "weights.pt")
    x = torch.randn(2, 6)
    _onnx(packed, x, tmp_path / "model.onnx", x)
    measured = exported_size(tmp_path)
    assert measured.onnx_missing == ("extra",) and measured.onnx_shared == {}
    assert measured.onnx_state_bits is None                            # sizes not comparable


def test_precision_space_refuses_a_record_it_cannot_hold_when_the_config_is_made():
    int6 = NumberFormat("int6", "int", 6, 31.0, 8, ("int8", "float16", "float32"))
    with pytest.raises(ConfigError, match=r"PrecisionMLPConfig\.formats\[0\]"):
        PrecisionMLPConfig(formats=(int6, "int8"))


def test_precision_space_takes_a_registered_record_as_its_name(one_thread):
    cfg = PrecisionMLPConfig(hidden=(8,), formats=(FORMATS["int4"], "int8"))
    assert cfg.formats == ("int4", "int8")
    space = PrecisionMLPSpace(cfg)
    net = space.build(space.smallest())
    assert isinstance(net.layers[0], PackedLinear) and net.layers[0].format.name == "int4"


@pytest.mark.parametrize("fmt", [
    NumberFormat("int16", "int", 16, 32767.0, 16, ("int8", "float16", "float32")),
    NumberFormat("int3", "int", 3, 3.0, 8, ("int8", "float32")),
    NumberFormat("fp16", "float", 16, 65504.0, 16, ("float16", "float32"), "float16", 5, 10, 15),
])
def test_precision_space_refuses_a_registered_format_it_cannot_pack_before_any_search(monkeypatch, fmt):
    monkeypatch.setitem(FORMATS, fmt.name, fmt)
    with pytest.raises(ConfigError, match=r"PrecisionMLPConfig\.formats\[1\].*cannot be packed"):
        PrecisionMLPConfig(formats=("int8", fmt.name))


def test_packing_message_offers_only_packable_widths():
    int16 = NumberFormat("int16", "int", 16, 32767.0, 16, ("int8", "float32"))
    with pytest.raises(ConfigError) as err:
        PackedLinear(4, 4, int16)
    assert "2, 4 or 8 bits" in str(err.value) and "1," not in str(err.value)
