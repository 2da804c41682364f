"""The directory `usernet run` puts first on PYTHONPATH; its `sitecustomize` installs usernet at start-up."""
