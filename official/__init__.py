"""Shared TF-Model-Garden-style utilities (flags, distribution, logging).

Knows nothing about Assemble-ResNet. This is our own package: the
`tf-models-official` wheel also installs a top-level `official` and must not
be installed beside it (tests assert `official.__file__` is in this repo).
"""
