"""shiftlab: post-train LLMs and VLMs with SFT and RL on tasks whose distribution can be shifted on
purpose, and measure what each method memorizes and what it generalizes."""

import shiftlab.tasks  # noqa: F401  (registers the built-in tasks and their gymnasium environments)

__version__ = "0.1.0"
