"""Experiments: presets and the steps a notebook calls, one module per notebook."""

# experiment name (as given to `python -m kdlib run`) -> notebook in notebooks/
NOTEBOOKS = {
    "mnist-kd": "01_mnist_kd.ipynb",
    "cifar10-ast": "02_cifar10_ast.ipynb",
    "imagenet100-ast": "03_imagenet100_ast.ipynb",
}
