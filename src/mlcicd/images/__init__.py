"""Container images with podman: the project's image, and a base image for machines that
cannot pull one (docs/containers.md).

podman.py   calling podman: found once, failures said in the caller's error class
base.py     ``mlcicd image base``: a Python base image from Debian packages (debootstrap)
build.py    ``mlcicd image build``: the project's Dockerfile, carrying this mlcicd
"""
