"""The package list, which pyproject.toml cannot say: the shipped data stays at the top
of the repository and installs as package data under ``tvmq/_data/`` (tvmq.resources
finds it in either place). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

DATA = {f"tvmq._data.{name}": name for name in ("targets", "firmware", "schedules")}

setup(
    packages=[*find_packages(include=["tvmq", "tvmq.*"]), *DATA],
    package_dir=DATA,
    include_package_data=False,  # the package data is exactly what is listed here
    package_data={
        "tvmq.examples": ["*.onnx", "*.npz"],
        "tvmq.backend": ["kernels/*.h"],
        **{package: ["**/*"] for package in DATA},
    },
    # firmware/build/ is where `make -C firmware` builds by default: never shipped.
    exclude_package_data={"tvmq._data.firmware": ["build/*"]},
)
