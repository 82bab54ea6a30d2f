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
