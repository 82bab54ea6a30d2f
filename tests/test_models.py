import pytest
import torch

from kdlib.models import count_parameters, create_model, list_models


def test_parameter_counts():
    teacher = count_parameters(create_model("resnet18_mnist"))
    simple = count_parameters(create_model("simplecnn"))
    student = count_parameters(create_model("mobilenet_student"))
    assert teacher == pytest.approx(11.2e6, rel=0.01)
    assert simple == pytest.approx(130e3, rel=0.05)
    assert student == pytest.approx(273e3, rel=0.01)
    assert teacher / student == pytest.approx(40, rel=0.05)


@pytest.mark.parametrize("name", ["resnet18_mnist", "simplecnn", "mobilenet_student"])
def test_forward_shapes(name):
    model = create_model(name, num_classes=7).eval()
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 7)


def test_teacher_keeps_resolution_in_first_stage():
    model = create_model("resnet18_mnist")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)


def test_width_scales_the_student():
    half = count_parameters(create_model("mobilenet_student", width=0.5))
    full = count_parameters(create_model("mobilenet_student"))
    assert 0.2 < half / full < 0.35  # pointwise convs dominate and scale with width^2


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="mobilenet_student"):
        create_model("resnet1000")
    assert {"resnet18_mnist", "simplecnn", "mobilenet_student"} <= set(list_models())


def test_timm_passthrough():
    model = create_model("timm:resnet10t", num_classes=5, in_chans=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 5)


def test_pretrained_resnet50_from_an_attached_kaggle_model(tmp_path):
    import timm

    from kdlib.models.pretrained import find_weights, pretrained_model

    source = timm.create_model("resnet50", pretrained=False, num_classes=1000)
    folder = tmp_path / "models" / "timm" / "resnet-50" / "pytorch" / "default" / "1"  # Kaggle's new model mount
    folder.mkdir(parents=True)
    torch.save(source.state_dict(), folder / "resnet50_a1_in1k.pth")
    (tmp_path / "notes" / "resnet18.pth").parent.mkdir()
    (tmp_path / "notes" / "resnet18.pth").write_bytes(b"")  # another architecture: not taken
    assert find_weights("resnet50", tmp_path) == folder / "resnet50_a1_in1k.pth"
    model, origin = pretrained_model("resnet50", 100, search_root=tmp_path, allow_download=False)
    assert origin.endswith("resnet50_a1_in1k.pth") and model.fc.out_features == 100
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert torch.equal(model.layer4[2].bn3.running_var, source.layer4[2].bn3.running_var)


def test_missing_pretrained_weights_name_both_ways_to_get_them(tmp_path, monkeypatch):
    from kdlib.models.pretrained import PretrainedWeightsNotFound, pretrained_model

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # an empty cache, whatever this machine's holds
    with pytest.raises(PretrainedWeightsNotFound, match="Add Input.*internet on"):
        pretrained_model("resnet50", 100, search_root=tmp_path, allow_download=False)
