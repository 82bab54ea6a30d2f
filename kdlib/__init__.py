"""kdlib: knowledge distillation and adaptive sparse training for small image models.

The notebooks in ``notebooks/`` are thin front-ends; everything they compute lives here.
"""

__version__ = "0.1.0"
