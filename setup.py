"""Package discovery with the repository's layout (the metadata is in pyproject.toml).

Every package under socket_edge/ is found, and the top-level cli/ and calibration/ folders, with
their subpackages, are installed as socket_edge.cli and socket_edge.calibration: nothing installs a
generic top-level import name. A new module or package is shipped without editing a list;
tests/test_wheel.py fails if one is missing from the wheel.
"""

from setuptools import find_packages, setup

# folder in the repository -> the package it is installed as
MAPPED = {"cli": "socket_edge.cli", "calibration": "socket_edge.calibration"}

packages = find_packages(include=["socket_edge", "socket_edge.*"])
package_dir = {"socket_edge": "socket_edge"}
for folder, name in MAPPED.items():
    packages += [name, *(f"{name}.{sub}" for sub in find_packages(folder))]
    package_dir[name] = folder

setup(packages=packages, package_dir=package_dir)
