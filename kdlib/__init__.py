"""kdlib: knowledge distillation and adaptive sparse training for small image models.

The notebooks in ``notebooks/`` are thin front-ends; everything they compute lives here.
"""

__version__ = "0.1.0"


def _install_warning_format():
    """kdlib's own warnings print as 'UserWarning: message', without the source file and line Python puts first:
    in a saved notebook that is a path on the machine that ran it, which tells a reader nothing (and names a local
    folder). Other libraries' warnings keep Python's format."""
    import warnings
    from pathlib import Path

    package = str(Path(__file__).resolve().parent)
    python_format = warnings.formatwarning
    if getattr(python_format, "_kdlib", False):
        return

    def formatwarning(message, category, filename, lineno, line=None):
        if str(filename).startswith(package):
            return f"{category.__name__}: {message}\n"
        return python_format(message, category, filename, lineno, line)

    formatwarning._kdlib = True
    warnings.formatwarning = formatwarning


_install_warning_format()
