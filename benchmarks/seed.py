"""The seed prelabel replaces, as a baseline: where NER with LLMs goes wrong.

The seed is Kili's tutorial "How to import OpenAI NER pre-annotations" (kili-python-sdk,
recipes/ner_pre_annotations_openai.ipynb): one request per sentence, an instruction block then
the sentence, an answer `{"ORGANIZATION": [...], "LOCATION": [...], "PERSON": [...],
"MISCELLANEOUS": [...]}`; each mention placed with `sentence.find(content)`, and entity tokens
mapped to tags by token string, whatever their position.

The prompt below is a reconstruction, not a copy. The public notebook's own instruction block
is shorter (78 o200k tokens: the list of types, then the JSON keys, then "Sentence below:");
the seed prelabel replaces extends it with a role, a goal and pro-tips, which this
reconstruction writes out in our own words with the same structure and the same answer keys.
`SHORT_PROMPT` paraphrases the public notebook's block at about its length, so that the token
benchmark can show prelabel against both.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

#: The seed's answer keys, in the order its prompt lists them, and the CoNLL tags they mean.
SEED_TYPES = {"ORGANIZATION": "ORG", "LOCATION": "LOC", "PERSON": "PER", "MISCELLANEOUS": "MISC"}

SEED_PROMPT = """You are a world-class expert in named entity recognition (NER), working as a \
data annotator.

Goal: read the sentence below and find every named entity in it, so that the entities can be \
imported as pre-annotations into a labeling project, where human annotators will review them.

In the sentence below, give me the list of:
- organization named entities
- location named entities
- person named entities
- miscellaneous named entities (named entities that are not an organization, a location or \
a person).
Format the output in JSON with exactly the following keys:
- ORGANIZATION for the organization named entities
- LOCATION for the location named entities
- PERSON for the person named entities
- MISCELLANEOUS for the miscellaneous named entities.
Each key maps to a list of strings. Answer with the JSON object only, with no explanation \
before or after it.

Pro tips:
- Copy each entity exactly as it is written in the sentence, without changing its spelling, \
its case or its spacing.
- Do not translate, shorten or complete the entities.
- An entity made of several words is a single entity: keep its words together.
- If the sentence contains no entity of a type, give an empty list for that type.
- Do not add entities that are not in the sentence.
- Nationalities, languages, events and products are miscellaneous named entities.
- Sports teams, companies, political parties and institutions are organizations.
- Countries, cities, regions, rivers and mountains are locations.

Sentence below:
"""

#: The public notebook's instruction block, paraphrased at about its length (no role, goal
#: or tips): the smallest prompt that asks for the seed's answer.
SHORT_PROMPT = """From the sentence below, list the named entities of each kind:
- organizations
- locations
- persons
- miscellaneous.
Give the output as JSON with these keys:
- ORGANIZATION for the organizations
- LOCATION for the locations
- PERSON for the persons
- MISCELLANEOUS for the miscellaneous entities.
The sentence:
"""


def seed_messages(text: str, prompt: str = SEED_PROMPT) -> list[dict[str, str]]:
    """One request of the seed: its instruction block and the sentence, in one user message."""
    return [{"role": "user", "content": prompt + text}]


def find_spans(text: str, answer: Mapping[str, Sequence[str]]) -> list[tuple[str, int, int]]:
    """The seed's offsets: `text.find(mention)` for every mention, `(tag, start, end)`.

    A repeated mention lands on its first occurrence, a short one may land inside a word;
    a mention `find` cannot see (-1) is dropped, as the seed drops it.
    """
    spans = []
    for name, mentions in answer.items():
        tag = SEED_TYPES.get(name)
        if tag is None:
            continue
        for mention in mentions:
            start = text.find(mention)
            if start != -1:
                spans.append((tag, start, start + len(mention)))
    return spans


def token_string_tags(tokens: Sequence[str], answer: Mapping[str, Sequence[str]]) -> list[str]:
    """The seed's tags: each mention split on spaces, its words given B-/I- by string.

    Every token whose string appears in some mention takes the next tag queued for that
    string, wherever the token is in the sentence.
    """
    queued: dict[str, list[str]] = defaultdict(list)
    for name, tag in SEED_TYPES.items():
        for mention in answer.get(name, ()):
            for i, word in enumerate(mention.split(" ")):
                queued[word].append(f"{'B' if i == 0 else 'I'}-{tag}")
    tags = []
    for token in tokens:
        tags.append(queued[token].pop(0) if queued.get(token) else "O")
    return tags
