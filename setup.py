"""bert-squad: Google's BERT SQuAD pipeline on TensorFlow 2 / tf_keras."""
import setuptools

# The stack that installs cleanly together on Python 3.11 (see README, "Why these pins").
INSTALL_REQUIRES = [
    "tensorflow~=2.20.0",
    "tensorflow-text~=2.20.0",
    "tf-keras~=2.20.0",
    "tf-models-official==2.20.0",
    "absl-py>=1.0",
    "numpy>=1.26",
    "safetensors>=0.4",
    "matplotlib>=3.7",
    "google-crc32c>=1.5",  # TFRecord checksums without TensorFlow (bert_squad/data/tfrecord.py)
    "orjson>=3.9",  # the n-best file's numbers, 3x faster than repr (bert_squad/answers/prediction_files.py)
    "tqdm>=4.66,<5",  # the one progress display (bert_squad/common/progress.py)
]

setuptools.setup(
    name="bert-squad",
    version="0.1.0",
    description="Google's BERT SQuAD fine-tuning pipeline, reproduced on TensorFlow 2 / tf_keras",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=setuptools.find_packages(include=["bert_squad", "bert_squad.*"]),
    package_data={"bert_squad": ["demo_data/*.json"]},
    py_modules=["run_squad", "evaluate_v2"],
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest>=7"]},
    license="Apache-2.0",
)
