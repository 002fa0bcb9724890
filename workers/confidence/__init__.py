"""How sure a model is of an answer, as pure arithmetic (`RunConfig.confidence`): the workers
hand these functions an answer's tokens, its samples or its verification, and get
confidences in [0, 1] back.

- `spans`: an answer's token log-probabilities placed on its text, per item and proposal;
- `vote`: several sampled answers agreed into one, with each proposal's share;
- `verdicts`: a verification's yes/no answers (and their log-probabilities) as confidences.
"""

from workers.confidence.spans import Measured, logprob_confidence
from workers.confidence.verdicts import verdict_confidence
from workers.confidence.vote import Vote, vote

__all__ = ["Measured", "Vote", "logprob_confidence", "verdict_confidence", "vote"]
