"""NER's records and results.

(For now these names are the core's NER-shaped models under NER's own names, so that both
halves of the NER package can import them from here while the core is generalised.)
"""

from prelabel.model import CONLL_TYPES, Entity, EntityType, Ontology, Unaligned
from prelabel.model import ItemResult as NerResult
from prelabel.model import Record as NerRecord

__all__ = ["CONLL_TYPES", "Entity", "EntityType", "NerRecord", "NerResult", "Ontology", "Unaligned"]
