"""C sources, their cffi build script and the pure-Python twins of every C function.

Import `usernet.native`, not this package: the façade there chooses between the
compiled functions and their twins.
"""
