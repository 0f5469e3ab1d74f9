"""Package discovery only; everything else is in pyproject.toml.

hdl/, testbench/ and synth/ sit beside systolica/ on disk but install as systolica.hdl,
systolica.testbench and systolica.synth (nothing installs a top-level ``hdl``). Every subpackage
under them is found automatically, so a new folder with an ``__init__.py`` cannot be forgotten.
"""

from setuptools import find_packages, setup

ROOTS = {"systolica": "systolica", "systolica.hdl": "hdl", "systolica.testbench": "testbench",
         "systolica.synth": "synth"}

#: Folders of package data without an __init__.py (pyproject.toml lists their files).
DATA_PACKAGES = ["systolica.testbench.cxx"]

packages = []
for name, path in ROOTS.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(path)]
packages += DATA_PACKAGES

setup(packages=packages, package_dir=ROOTS)
