"""Packaging: ``pip install -e .`` installs the compiler; ``.[test]`` adds the test tools."""

from setuptools import find_packages, setup

setup(
    name="nncompiler",
    version="0.1.0",
    description="An ONNX-to-accelerator neural-network compiler: IR, passes, CPU (LLVM), TVM and "
                "systolic-array targets",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["compiler*", "frontends*", "ir*", "passes*", "backends*", "runtime*"]),
    # The C runtime's sources (the cpu target compiles them at run time) and its README.
    package_data={"runtime": ["c/*.c", "c/*.h", "c/*.md"], "backends": ["**/*.c", "**/*.h"]},
    install_requires=[
        "numpy>=1.24",
        "onnx>=1.16",
        "ml_dtypes>=0.4",
        "llvmlite>=0.42",
        "networkx>=3.0",
        "apache-tvm>=0.20",
        # MetaSchedule (build --target tvm --tune) crashes with newer apache-tvm-ffi in apache-tvm 0.27;
        # psutil: MetaSchedule asks it for the core count.
        "apache-tvm-ffi==0.1.14.post0",
        "psutil>=5",
        "tqdm>=4.60",
    ],
    extras_require={
        # MetaSchedule's cost-model-guided search (without it --tune samples the design space at random),
        # and tornado for running TVM's RPC tracker (python -m tvm.exec.rpc_tracker).
        "tvm-tune": ["apache-tvm[meta-schedule,popen-pool,rpc]>=0.27"],
        # setuptools and wheel: tests/test_install.py builds the package without build isolation.
        "test": ["pytest>=7", "onnxruntime>=1.17", "hypothesis>=6", "setuptools>=61", "wheel",
                 "tornado>=6"],  # tests/tvm/test_tuning.py starts TVM's RPC tracker
    },
    entry_points={"console_scripts": ["nncompiler=compiler.cli:main"]},
)
