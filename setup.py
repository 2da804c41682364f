"""setuptools shim: cffi's build hook is declared here because pyproject metadata cannot carry it."""

from setuptools import setup

setup(cffi_modules=["usernet/_native/build.py:ffibuilder"])
