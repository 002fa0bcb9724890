"""An OpenAI-compatible LLM simulator that answers prelabel's prompts from gold labels.

Every test, demo and benchmark of prelabel talks to it through the real `openai` client. It
enforces RPM/TPM caps like OpenAI (429s with the same headers and error codes), and injects
seeded faults: latency, server errors, hangs, malformed content, noisy answers. Its Batch API
(files, batches, expiry, cancel, the enqueued-token limit) answers from the same oracle.
For `--confidence` it samples `n` answers, each its own seeded draw of the noise, makes up
token log-probabilities (simulator/logprobs.py: they prove nothing about a model), and
answers verification questions from gold (simulator/verifier.py).
"""

from simulator.oracle import Oracle
from simulator.server import SimulatorConfig, build_app, serve, serve_in_thread

__all__ = ["Oracle", "SimulatorConfig", "build_app", "serve", "serve_in_thread"]
