"""AWPO training data preparation (paper Sec. 4.1 "Training Details").

Raw tool-use dialogues (ToolACE, xLAM-60k, Hammer-masked xLAM, APIGen-MT) become single-step instances in
ms-swift's GRPO row format; a reference rationale can then be attached to each instance by any
OpenAI-compatible model. Entry point: ``python -m data_prep {build,convert,demo,rationales,import-batch,sft}``.
"""
