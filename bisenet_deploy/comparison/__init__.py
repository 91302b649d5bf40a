"""The one comparison core: how a model's outputs are measured against a reference (`measures`)
and judged by a named tolerance profile (`profiles`).

Export parity (`export/parity.py`) and `bisenet-compare` (`evaluation/compare.py`) both use it, so
"relative error" and "labels identical" have one definition and one report shape. numpy only: it
imports no backend, runner or command-line code.
"""
