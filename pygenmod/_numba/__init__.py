"""numba fallbacks: the same contract as the compiled kernels (inputs, then outputs).

Each module here is imported only when the numba backend serves a call, so importing
pygenmod never imports numba. Every function is ``cache=True``: compiled once per machine.
"""
